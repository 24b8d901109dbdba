"""Staged writes: a file or a folder appears whole or not at all, never half-written.

Everything kerasae writes goes to a temporary name in the destination's own
directory (so the final rename stays on one file system and is atomic), is
flushed to disk, and is renamed into place only when complete.
"""

import contextlib
import hashlib
import os
import shutil
import tempfile

from kerasae._util.errors import NotADirectory, NotWritable


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


@contextlib.contextmanager
def staged_file(path, suffix=STAGED):
    """Yields a temporary path beside `path`; on success it is synced and renamed to `path`.

    On an error (a kill, a full disk) the temporary file is removed, or left as a
    hidden `.name.*` file that `remove_stale` cleans, and `path` keeps its old
    content. The new file gets the umask's permissions (not `mkstemp`'s 0600).
    `suffix` lets writers that check extensions (Keras's `.keras`) write the file.
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{os.path.basename(path)}.",
                               suffix=".tmp" + ("" if suffix == STAGED else suffix))
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync_dir(parent)
    finally:
        if os.path.exists(tmp):
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


@contextlib.contextmanager
def staged_directory(path, *, replace=False):
    """Yields a temporary directory beside `path`; on success it is renamed to `path`.

    With `replace=True` an existing `path` is swapped out and deleted only
    after the new directory is in place. On an error the temporary directory
    is removed and `path` is untouched.
    """
    path = os.path.abspath(os.fspath(path))
    parent, base = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    remove_stale(parent)  # what killed writers left
    tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide it from a server
        yield tmp
        fsync_tree(tmp)
        if os.path.lexists(path) and replace:
            old = tempfile.mkdtemp(prefix=f".{base}.old.tmp-", dir=parent)
            os.rmdir(old)
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)  # fails if `path` appeared meanwhile: nothing replaced
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def remove_stale(folder, max_age=3600.0):
    """Removes what killed writers left in `folder`: hidden staging files and folders
    (`.name.*.tmp*`, `.name.tmp-*`, `.name.*.part`) older than `max_age` seconds.

    Younger ones may belong to a writer still at work, so they stay.
    """
    import time

    if not os.path.isdir(folder):
        return []
    removed, now = [], time.time()
    for name in os.listdir(folder):
        if not name.startswith(".") or not (".tmp" in name or name.endswith(".part")):
            continue
        path = os.path.join(folder, name)
        try:
            if now - os.lstat(path).st_mtime < max_age:
                continue
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
            removed.append(path)
        except OSError:
            continue
    return removed


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
