"""Staged writes: a file or a folder appears whole or not at all, never half-written.

Everything kerasae writes goes to a temporary name in the destination's own
directory (so the final rename stays on one file system and is atomic), is
flushed to disk, and is renamed into place only when complete.

A temporary name carries its writer: `.<name>.tmp-<pid>-<host>-<started>-<random>`
(`started`: the process's start time, so a reused pid is not taken for its writer).
What a killed writer left is removed as soon as its process is gone (asked with
`os.kill(pid, 0)` on the same host; names of other hosts are judged by their age),
a folder that a killed `replace` swapped out is put back, and a folder that a live
process is staging is not staged a second time. A full disk is said as such, naming
the destination, never the hidden temporary name.
"""

import contextlib
import errno
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time

from kerasae._util.errors import KerasaeError, NotADirectory, NotWritable, PathExists


class DiskFull(KerasaeError, OSError):
    """The disk filled up while a staged file or folder was written; nothing was written."""

    def __init__(self, message):
        super().__init__(errno.ENOSPC, message)
        self.message = message

    def __str__(self):
        return self.message


class PathBusy(KerasaeError, BlockingIOError):
    """Another live process is staging the same destination."""


def sha256_file(path):
    """sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


STAGED = ".tmp"  # temporary names end so (or in `suffix`), and start with "."
MAX_AGE = 3600.0  # seconds: staging names of another host (or unknown owner) count as stale


def _host():
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _started(pid):
    """When process `pid` started (clock ticks after boot, from Linux's /proc), or "0"
    where that is unknown: with the pid it names one process, even once pids are reused
    (a restarted container counts its pids from 1 again)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "0"


def stage_prefix(path, kind=""):
    """`.<name>.<kind>tmp-<pid>-<host>-<started>-`: this process's staging names."""
    pid = os.getpid()
    return f".{os.path.basename(path)}.{kind}tmp-{pid}-{_host()}-{_started(pid)}-"


_OWNER = re.compile(r"\.tmp-(\d+)-([0-9a-f]{8})-(\d+)-")


def _alive(pid, started):
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        pass
    now = _started(pid)
    return started == "0" or now == "0" or now == started  # else: the pid was reused


def _owner_alive(name, path, max_age):
    """Whether the writer of the staging name `name` (at `path`) may still be at work: its
    process lives (same host), else (another host, an older name) it is younger than
    `max_age`."""
    owners = _OWNER.findall(name)
    if owners and owners[-1][1] == _host() and os.name == "posix":
        return _alive(int(owners[-1][0]), owners[-1][2])
    try:
        return time.time() - os.lstat(path).st_mtime < max_age
    except OSError:
        return False


def is_disk_full(error):
    """Whether `error` (or what caused it) is a full disk or quota, as an OSError or in the
    text of another library's error (TensorFlow says ResourceExhaustedError)."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if os.strerror(errno.ENOSPC) in str(error) or os.strerror(errno.EDQUOT) in str(error):
            return True
        # numpy's short write says only "N requested and M written", with no errno.
        if isinstance(error, OSError) and error.errno is None and \
                re.search(r"\d+ requested and \d+ written", str(error)):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def disk_full_error(path):
    kept = " (the existing one is kept)" if os.path.lexists(path) else ""
    return DiskFull(
        f"The disk is full: {path!r} was not written{kept}, and nothing of it is left "
        f"behind. Free some space on the disk of {os.path.dirname(path)!r} and rerun the "
        f"same command. Received: path={path!r}"
    )


@contextlib.contextmanager
def staged_file(path, suffix=STAGED):
    """Yields a temporary path beside `path`; on success it is synced and renamed to `path`.

    On an error (a kill, a full disk) the temporary file is removed, or left as a
    hidden `.name.tmp-*` file that `remove_stale` cleans, and `path` keeps its old
    content; a full disk raises `DiskFull`. The new file gets the umask's permissions
    (not `mkstemp`'s 0600). `suffix` lets writers that check extensions (Keras's
    `.keras`) write the file.
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=stage_prefix(path),
                                   suffix=".tmp" + ("" if suffix == STAGED else suffix))
        os.close(fd)
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync_dir(parent)
    except Exception as e:
        if is_disk_full(e):
            raise disk_full_error(os.path.abspath(path)) from e
        raise
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory
    finally:
        os.close(fd)


def fsync_tree(folder):
    """Flushes every file below `folder` to disk (before a staged folder is renamed)."""
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync(os.path.join(root, name))


def atomic_write(path, data):
    """Writes `data` (str or bytes) to `path` through `staged_file`."""
    with staged_file(path) as tmp:
        with open(tmp, "wb" if isinstance(data, bytes) else "w", encoding=None
                  if isinstance(data, bytes) else "utf-8") as f:
            f.write(data)


def writer_of(path, max_age=MAX_AGE):
    """The pid (or `"unknown"`) of a live process staging the folder `path`, or `None`."""
    path = os.path.abspath(os.fspath(path))
    parent, base = os.path.split(path)
    try:
        names = os.listdir(parent)
    except OSError:
        return None
    for name in sorted(names):
        where = os.path.join(parent, name)
        if name.startswith(f".{base}.tmp-") and os.path.isdir(where) and \
                _owner_alive(name, where, max_age):
            owners = _OWNER.findall(name)
            return int(owners[-1][0]) if owners else "unknown"
    return None


@contextlib.contextmanager
def staged_directory(path, *, replace=False):
    """Yields a temporary directory beside `path`; on success it is renamed to `path`.

    With `replace=True` an existing `path` is swapped out and deleted only
    after the new directory is in place. On an error the temporary directory
    is removed and `path` is untouched. Raises `PathBusy` when a live process
    stages `path` already, `PathExists` when `path` appeared while this one worked
    (without `replace`), `DiskFull` when the disk filled up.
    """
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    remove_stale(parent)  # what killed writers left
    writer = writer_of(path)
    if writer is not None:
        raise PathBusy(
            f"Another kerasae process (pid {writer}) is writing {path!r} now. Wait for it to "
            f"end, then pick another folder or replace its result. Received: path={path!r}"
        )
    tmp = None
    try:
        tmp = tempfile.mkdtemp(prefix=stage_prefix(path), dir=parent)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide it from a server
        yield tmp
        fsync_tree(tmp)
        _install(tmp, path, replace)
    except Exception as e:
        if is_disk_full(e):
            raise disk_full_error(path) from e
        raise
    finally:
        if tmp is not None and os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _install(tmp, path, replace):
    """Renames the staged folder `tmp` to `path` (swapping an existing one out if `replace`)."""
    if os.path.lexists(path) and replace:
        old = tempfile.mkdtemp(prefix=stage_prefix(path, "old."), dir=os.path.dirname(path))
        os.rmdir(old)
        os.rename(path, old)
        try:
            os.rename(tmp, path)
        except BaseException:
            os.rename(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        os.rename(tmp, path)  # fails if `path` appeared meanwhile: nothing replaced
    except OSError as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise
        raise PathExists(
            f"{path!r} appeared while this process wrote it: another process wrote it "
            f"first. It is kept, and this one's files are removed. Pick another folder, or "
            f"rerun replacing it. Received: path={path!r}"
        ) from None


def remove_stale(folder, max_age=MAX_AGE):
    """Removes what killed writers left in `folder`: hidden staging files and folders
    (`.name.tmp-*`, `.name.*.tmp`, `.name.*.part`) whose writer is gone.

    A name with its writer's pid and host (see the module docstring) is stale as
    soon as that process is gone; other names (another host, other writers) once
    older than `max_age` seconds, as a younger one may belong to a writer at work.
    """
    if not os.path.isdir(folder):
        return []
    removed = []
    for name in os.listdir(folder):
        if not name.startswith(".") or not (".tmp" in name or name.endswith(".part")):
            continue
        path = os.path.join(folder, name)
        if _owner_alive(name, path, max_age):
            continue
        try:
            if _restored(folder, name):
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed.append(path)
        except OSError:
            continue
    return removed


def _restored(folder, name):
    """Puts back a folder that a killed `replace` swapped out (`.name.old.tmp-*`) before
    its successor was in place, rather than deleting the only copy."""
    base, swapped, _ = name[1:].partition(".old.tmp-")
    if not swapped or os.path.lexists(os.path.join(folder, base)):
        return False
    os.rename(os.path.join(folder, name), os.path.join(folder, base))
    return True


def check_writable(path, what="the output folder"):
    """Fails early (`NotWritable`) unless the folder `path` can be created and written in."""
    probe = os.path.abspath(os.fspath(path))
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise NotADirectory(
            f"{what} {os.fspath(path)!r} cannot be made: {probe!r} is a file. Pick another "
            f"path. Received: path={os.fspath(path)!r}"
        )
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".kerasae-write-check-")
        os.close(fd)
        os.remove(tmp)
    except OSError as e:
        raise NotWritable(
            f"{what} {os.fspath(path)!r} cannot be written ({e.strerror} in {probe!r}). Pick "
            f"a folder you can write to. Received: path={os.fspath(path)!r}"
        ) from None
