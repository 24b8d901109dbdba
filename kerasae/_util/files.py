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


@contextlib.contextmanager
def staged_file(path):
    """Yields a temporary path beside `path`; on success it is synced and renamed to `path`.

    On an error the temporary file is removed and `path` keeps its old content.
    The new file gets the umask's permissions (not `mkstemp`'s 0600).
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{os.path.basename(path)}.",
                               suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
    tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide it from a server
        yield tmp
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
