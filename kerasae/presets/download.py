"""Downloads of preset files: streamed to a temporary file, size- and sha256-checked, renamed.

The cache only ever holds verified files: a download goes to a `.part` file
beside its destination and is renamed into place only after its size and
sha256 match the index. A failed mirror (refused, 404, truncated, wrong bytes)
raises `DownloadFailure`, and the caller tries the next one. `receive` is the
streaming part alone (also used for `hf://` presets): it never reads more than
one byte past the pinned size, refuses an announced length that is not the
pinned one before reading, and gives up at a deadline.
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


def _announced(resp, size, at_most):
    """Refuses, before any byte is read, a Content-Length that cannot be the pinned file."""
    try:
        length = int(resp.headers.get("Content-Length", ""))
    except ValueError:
        return  # none, or not a number: the byte count below decides
    if length > size if at_most else length != size:
        pinned = f"at most {size:,}" if at_most else f"{size:,}"
        raise DownloadFailure(f"the server announces {length:,} bytes where {pinned} are "
                              "pinned; refused before reading")


def receive(resp, out, size, report=None, *, at_most=False):
    """Streams an open HTTP response into the binary file `out`, sha256 on the way.

    Reads at most `size + 1` bytes (so a file longer than pinned, or a stream that
    never ends, is refused after one byte too many) within `deadline_for(size)`.
    `size` is the exact pinned size, or a cap with `at_most=True`.

    Returns:
        `(bytes received, sha256 hex digest)`; the caller compares them with the pin.

    Raises:
        DownloadFailure: the length, the deadline or the connection failed.
    """
    h = hashlib.sha256()
    done = 0
    limit = deadline_for(size)
    end = time.monotonic() + limit
    try:
        _announced(resp, size, at_most)
        # read1: whatever has arrived (a trickle still returns), so the deadline is seen.
        for chunk in iter(lambda: resp.read1(min(_CHUNK, size + 1 - done)), b""):
            if time.monotonic() > end:
                raise DownloadFailure(
                    f"too slow: {done} of {size} bytes after the deadline of "
                    f"{limit:.0f} s; discarded")
            done += len(chunk)
            if done > size:
                raise DownloadFailure(
                    f"more than the {'allowed' if at_most else 'expected'} {size} bytes were "
                    "sent; stopped one byte past them and discarded")
            h.update(chunk)
            out.write(chunk)
            if report:
                report(done, size)
    except http.client.IncompleteRead as e:
        raise DownloadFailure(f"truncated: {len(e.partial)} more bytes then the connection "
                              f"closed (of {size} bytes); discarded") from None
    except (http.client.HTTPException, OSError) as e:
        raise DownloadFailure(f"{type(e).__name__}: {e}") from None
    return done, h.hexdigest()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _open(url):
    try:
        return urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT)
    except urllib.error.HTTPError as e:
        raise DownloadFailure(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise DownloadFailure(f"unreachable ({e.reason})") from None
    except (http.client.HTTPException, OSError) as e:
        raise DownloadFailure(f"{type(e).__name__}: {e}") from None


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
            with _open(url) as resp:
                done, got = receive(resp, out, expected_size, progress_reporter(progress, label))
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
    except OSError as e:  # the temporary file (a full disk): this mirror's copy is lost
        raise DownloadFailure(f"{type(e).__name__}: {e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
