"""Export faults: a full disk, two exports into one folder, what killed exports left.

The full disk is real: a 64 KiB tmpfs mounted in a user and mount namespace of
its own (`unshare`, no root needed where the kernel allows it, skipped where it
does not), so the kernel itself answers ENOSPC to TensorFlow's SavedModel writer.
The other writer is a real second process staging the same folder with kerasae's
own staging code; a killed writer is a real SIGKILL.
"""

import errno
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from kerasae import cli
from kerasae._util import files
from tests.helpers import ENV, build_tiny

TMPFS = "64k"  # holds reference.npz, not the SavedModel's variables

# A second process that stages FOLDER with kerasae's staging code, writes half a file
# into it, says where, and works until it is killed.
HOLDER = """
import sys
from kerasae._util.files import staged_directory
with staged_directory(sys.argv[1]) as tmp:
    open(tmp + "/encoder.onnx", "wb").write(b"half")
    print(tmp, flush=True)
    sys.stdin.read()
"""


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    build_tiny("conv_ae").save(path)
    return path


def _holder(folder):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=ENV)
    return proc, proc.stdout.readline().strip()


def _kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)  # reaped: a zombie would still answer os.kill(pid, 0)


def _hidden(parent):
    return sorted(n for n in os.listdir(parent) if n.startswith("."))


def _own_mount_namespace(folder):
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    cmd = [unshare, "--user", "--map-root-user", "--mount", "sh", "-c",
           f'mount -t tmpfs -o size={TMPFS} tmpfs "$0"', str(folder)]
    ok = subprocess.run(cmd, capture_output=True).returncode == 0
    return unshare if ok else None


def test_a_full_disk_is_one_line_naming_the_folder_and_nothing_is_written(tiny_keras,
                                                                          tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    unshare = _own_mount_namespace(small)
    if unshare is None:
        pytest.skip("needs unshare with user and mount namespaces (a tmpfs without root)")
    out = small / "out"
    script = ('mount -t tmpfs -o size=$3 tmpfs "$0" || exit 99; "$1" -m kerasae.cli export '
              '"$2" "$0/out" --formats saved_model --no-check; rc=$?; echo "left:$(ls -A "$0")"'
              '; exit $rc')
    proc = subprocess.run([unshare, "--user", "--map-root-user", "--mount", "sh", "-c", script,
                           str(small), sys.executable, tiny_keras, TMPFS], env=ENV,
                          capture_output=True, text=True, timeout=600)
    err = proc.stderr.strip()
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"kerasae export: error: The disk is full: {str(out)!r} was not "
                          "written, and nothing of it is left behind. Free some space"), err
    assert "tf.function" not in err and ".tmp" not in err and "SaveV2" not in err
    assert proc.stdout.strip().splitlines()[-1] == "left:"  # the tmpfs is empty again


def test_writing_to_a_full_device_raises_disk_full_naming_the_destination(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    for stage, target in ((files.staged_file, tmp_path / "cache.npy"),
                          (files.staged_directory, tmp_path / "export")):
        with pytest.raises(OSError) as info:
            with stage(target):
                with open("/dev/full", "wb") as f:  # the kernel answers ENOSPC
                    f.write(b"x" * 8192)
        assert info.value.errno == errno.ENOSPC
        assert str(info.value).startswith(f"The disk is full: {str(target)!r} was not written")
        assert cli.explain(info.value)[0] == str(info.value)  # one line, as it is
        assert not target.exists() and _hidden(tmp_path) == []


def test_an_export_into_a_folder_another_export_writes_is_refused_at_once(tiny_keras, tmp_path,
                                                                         capsys):
    out = tmp_path / "out"
    proc, staging = _holder(out)
    try:
        assert cli.main(["export", tiny_keras, str(out), "--formats", "onnx"]) == 1
        err = capsys.readouterr().err.strip()
        assert err == (f"kerasae export: error: Another export (pid {proc.pid}) is writing "
                       f"{str(out)!r} now. Wait for it to end, then pick another output folder, "
                       f"or pass force=True (--force) to replace its result. Received: "
                       f"out_dir={str(out)!r}")
        with pytest.raises(BlockingIOError, match=f"pid {proc.pid}.*is writing {str(out)!r}"):
            with files.staged_directory(out):  # any other staged writer (hub, publish)
                pass
        assert _hidden(tmp_path) == [os.path.basename(staging)]  # the other's, untouched
    finally:
        _kill(proc)
    # Its writer is gone: the next export removes what it left at once, not an hour later.
    assert cli.main(["export", tiny_keras, str(out), "--formats", "onnx", "--no-check"]) == 0
    assert _hidden(tmp_path) == [] and os.path.isfile(out / "encoder.onnx")


def test_what_killed_writers_left_goes_at_once_and_live_writers_stay(tmp_path):
    live, killed = tmp_path / "live", tmp_path / "killed"
    live_proc, live_stage = _holder(live)
    killed_proc, killed_stage = _holder(killed)
    _kill(killed_proc)
    legacy = tmp_path / ".old.tmp-abcd1234"  # no owner in its name: judged by its age
    legacy.mkdir()
    # This process's pid, from a process that started at another time: a restarted
    # container numbers its processes from 1 again.
    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
    reused = tmp_path / f".reused.tmp-{os.getpid()}-{host}-1-abcd1234"
    reused.mkdir()
    try:
        removed = files.remove_stale(str(tmp_path))
        assert sorted(removed) == sorted([killed_stage, str(reused)])
        assert os.path.isdir(live_stage) and legacy.is_dir()
    finally:
        _kill(live_proc)
    assert sorted(files.remove_stale(str(tmp_path))) == [live_stage]
    assert _hidden(tmp_path) == [legacy.name]


def test_a_folder_a_killed_replace_swapped_out_is_put_back(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    # A replace killed between its two renames: the old folder is out, the new not in.
    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
    swapped = tmp_path / f".out.old.tmp-999999999-{host}-1-abcd1234"  # no such pid
    os.rename(out, swapped)
    assert files.remove_stale(str(tmp_path)) == []
    assert (out / "manifest.json").read_text() == "{}" and _hidden(tmp_path) == []


def test_a_folder_that_appears_meanwhile_is_kept_and_named(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(FileExistsError) as info:
        with files.staged_directory(out) as tmp:
            open(os.path.join(tmp, "mine"), "w").close()
            os.mkdir(out)  # another writer finished first
            open(out / "theirs", "w").close()
    assert str(info.value).startswith(f"{str(out)!r} appeared while this process wrote it: "
                                      "another process wrote it first. It is kept")
    assert os.listdir(out) == ["theirs"] and _hidden(tmp_path) == []
