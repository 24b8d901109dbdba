"""One run per output directory: an exclusive lock held while a run writes there.

Two runs writing one directory mix their files (a `run.json` of one model beside the
`model.keras` of another) and break the next resume. So a run takes `fcntl.flock` on
a lock file inside its directory before it writes anything there, and a second run is
refused at once with the holder's pid and host (written into the lock file). The
kernel releases a flock when its holder dies, even by SIGKILL, so a lock left by a
killed run is simply taken over; the file's presence means nothing.

Under `multi_worker` every worker writes its own checkpoints into the same directory:
the chief (or the one process of a run) locks `.kerasae.lock`, another worker
`.kerasae-worker-<i>.lock`, so the workers of one job never lock each other out and
a second job's chief is refused. Light (stdlib only).
"""

import contextlib
import datetime
import json
import os
import socket
import threading
import time

try:
    import fcntl
except ImportError:  # Windows: no flock, runs are not locked
    fcntl = None

from kerasae._util.errors import KerasaeError, NotADirectory

LOCK_NAME = ".kerasae.lock"
# A holder writes its pid right after taking the lock: a reader that finds the file
# still empty waits this long for it.
_INFO_WAIT = 1.0

_held = {}  # lock path -> [fd, thread id, depth]: one process holds a lock once
_guard = threading.Lock()


class RunDirectoryBusy(KerasaeError, BlockingIOError):
    """Another run (its pid named in the message) is writing the output directory."""


def lock_name(task_index=0, is_chief=True):
    """The lock file's name for a process: the chief's, or a worker's own."""
    return LOCK_NAME if is_chief else f".kerasae-worker-{int(task_index)}.lock"


@contextlib.contextmanager
def hold_run_directory(out_dir, task_index=0, is_chief=True):
    """`with hold_run_directory(out_dir):` holds `out_dir` (created if needed) for this run.

    Re-entrant in one thread (a caller may hold the directory around `kerasae.fit`,
    which takes it again).
    A directory this call created is removed again if it is left empty, so a run
    that fails before writing leaves nothing behind. `out_dir=None` holds nothing.

    Raises:
        RunDirectoryBusy: another process (or thread) holds the directory.
    """
    if out_dir is None or fcntl is None:
        yield
        return
    out_dir = os.fspath(out_dir)
    created = _make_directory(out_dir)
    path = os.path.join(os.path.realpath(out_dir), lock_name(task_index, is_chief))
    try:
        _acquire(path, out_dir)
        try:
            yield
        finally:
            _release(path)
    finally:
        for folder in created:  # deepest first; stops at the first that is not empty
            try:
                os.rmdir(folder)
            except OSError:
                break


def _make_directory(out_dir):
    """Creates `out_dir` and its missing parents; returns those it created, deepest first."""
    missing, probe = [], os.path.abspath(out_dir)
    while not os.path.lexists(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    if not os.path.isdir(out_dir):
        if os.path.lexists(out_dir) or not os.path.isdir(probe):
            raise NotADirectory(
                f"The output directory {out_dir!r} cannot be made: "
                f"{out_dir if os.path.lexists(out_dir) else probe!r} is a file. Pick another "
                f"path. Received: out_dir={out_dir!r}"
            )
        os.makedirs(out_dir, exist_ok=True)
    return missing


def _acquire(path, out_dir):
    with _guard:
        mine = _held.get(path)
        if mine is not None and mine[1] == threading.get_ident():
            mine[2] += 1
            return
        if mine is not None:
            raise RunDirectoryBusy(
                f"{out_dir!r} is in use by another thread of this process (a run there has "
                f"not ended); two runs in one directory would mix their files. Pick another "
                f"output directory (out_dir). Received: out_dir={out_dir!r}")
        while True:
            # (again: a holder that failed early removes the directory it made)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_info(fd)
                os.close(fd)
                raise _busy(out_dir, holder) from None
            if _same_file(fd, path):
                break
            # The holder released it and removed the file between our open and our lock:
            # this lock is on a file no one else will find. Take the new one.
            os.close(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.datetime.now().isoformat(timespec="seconds")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except BaseException:
            os.close(fd)  # (a full disk): the lock goes with it
            raise
        _held[path] = [fd, threading.get_ident(), 1]


def _same_file(fd, path):
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _release(path):
    with _guard:
        fd_thread_depth = _held[path]
        fd_thread_depth[2] -= 1
        if fd_thread_depth[2]:
            return
        del _held[path]
        # Removed while still locked, then unlocked: a process that opened the old file
        # meanwhile finds, once it locks it, that the path no longer leads to it.
        with contextlib.suppress(OSError):
            os.remove(path)
        os.close(fd_thread_depth[0])


def _read_info(fd):
    deadline = time.monotonic() + _INFO_WAIT
    while True:
        raw = os.pread(fd, 4096, 0)
        try:
            return json.loads(raw.decode())
        except ValueError:
            if time.monotonic() > deadline:
                return {}
            time.sleep(0.05)


def _busy(out_dir, holder):
    pid, host = holder.get("pid", "unknown"), holder.get("host", "an unknown host")
    since = f", since {holder['started']}" if holder.get("started") else ""
    return RunDirectoryBusy(
        f"{out_dir!r} is in use by another run (pid {pid} on host {host}{since}); two runs in one "
        f"directory would mix their files. Wait for that run to end (or stop it: kill {pid} "
        f"on {host}), or pick another output directory (--out, out_dir). "
        f"Received: out_dir={out_dir!r}"
    )
