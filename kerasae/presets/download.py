"""Downloads of preset files: streamed to a temporary file, size- and sha256-checked, renamed.

The cache only ever holds verified files: a download goes to a `.part` file
beside its destination and is renamed into place only after its size and
sha256 match the index. A failed mirror (refused, 404, truncated, wrong bytes)
raises `DownloadFailure`, and the caller tries the next one.
"""

import hashlib
import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

from kerasae._util.files import remove_stale

PROGRESS_MIN_BYTES = 1 << 20
DOWNLOAD_TIMEOUT = 30.0  # seconds without a byte before a read gives up
# A whole file gets at least DEADLINE_FLOOR seconds, more for large files at MIN_RATE
# bytes/s; a mirror that trickles past its deadline is dropped for the next one.
DEADLINE_FLOOR = 60.0
MIN_RATE = 100_000
_CHUNK = 1 << 16


class DownloadFailure(Exception):
    """One mirror did not deliver a verified file; the message says why."""


def progress_reporter(progress, label):
    """A `report(done, total)` for `progress` (`True`: stderr, `False`: none, or a callable)."""
    if callable(progress):
        return lambda done, total: progress(label, done, total)
    if not progress:
        return None
    state = {"shown": -1}
    tty = sys.stderr.isatty()

    def report(done, total):
        if not total or total < PROGRESS_MIN_BYTES:
            return
        pct = int(100 * done / total)
        step = pct if tty else pct // 25 * 25
        if step == state["shown"]:
            return
        state["shown"] = step
        end = "\n" if done >= total or not tty else ""
        print(f"\rDownloading {label}: {done / 1e6:.1f}/{total / 1e6:.1f} MB ({pct}%)",
              end=end, file=sys.stderr, flush=True)

    return report


def deadline_for(size):
    """Seconds a file of `size` bytes may take, all told."""
    return max(DEADLINE_FLOOR, size / MIN_RATE)


def _stream(url, out, expected_size, report):
    h = hashlib.sha256()
    done = 0
    limit = deadline_for(expected_size)
    end = time.monotonic() + limit
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp:
        # read1: whatever has arrived (a trickle still returns), so the deadline is seen.
        for chunk in iter(lambda: resp.read1(_CHUNK), b""):
            if time.monotonic() > end:
                raise DownloadFailure(
                    f"too slow: {done} of {expected_size} bytes after the deadline of "
                    f"{limit:.0f} s; discarded")
            done += len(chunk)
            if done > expected_size:
                raise DownloadFailure(f"more than the expected {expected_size} bytes; discarded")
            h.update(chunk)
            out.write(chunk)
            if report:
                report(done, expected_size)
    return done, h.hexdigest()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def download(url, dest, spec, progress, label):
    """Streams `url` to a temporary file next to `dest`, verifies it, renames it.

    `.part` files that killed downloads left beside `dest` are removed first.
    """
    expected_size, expected_sha = int(spec["bytes"]), spec["sha256"]
    folder = os.path.dirname(dest)
    os.makedirs(folder, exist_ok=True)
    remove_stale(folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(dest) + ".",
                               suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            done, got = _stream(url, out, expected_size, progress_reporter(progress, label))
            out.flush()
            os.fsync(out.fileno())
        if done != expected_size:
            raise DownloadFailure(f"truncated: {done} of {expected_size} bytes; discarded")
        if got != expected_sha:
            raise DownloadFailure(
                f"failed the sha256 check (expected {expected_sha[:12]}..., got {got[:12]}...); "
                "discarded, the cache is untouched"
            )
        os.chmod(tmp, 0o666 & ~_umask())  # the cache's files get the umask's mode, not 0600
        os.replace(tmp, dest)
    except urllib.error.HTTPError as e:
        raise DownloadFailure(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise DownloadFailure(f"unreachable ({e.reason})") from None
    except http.client.IncompleteRead as e:
        raise DownloadFailure(f"truncated: {len(e.partial)} more bytes then the connection "
                              f"closed (of {expected_size} bytes); discarded") from None
    except (http.client.HTTPException, OSError) as e:
        raise DownloadFailure(f"{type(e).__name__}: {e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
