"""One run per output directory, and a run.json that never stays "running".

Two real `kerasae train` processes on one --out: the second is refused at once with the
first's pid, and writes nothing there; a lock left by a SIGKILLed run is taken over and
its run resumes. The workers of one multi-worker job hold their own locks. A run that
stops on an error says "failed" (with the error's first line) or "interrupted"."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import pytest
import tensorflow as tf

import kerasae
from tests.helpers import ENV, REPO, run_json

TINY = ["--arg", "filters=[8,16]", "--batch-size", "64", "--steps-per-epoch", "2",
        "--validation", "none"]
KWARGS = dict(batch_size=64, strategy="one", seed=5, steps_per_epoch=4, validation=None,
              verbose=0, builder_kwargs=dict(filters=[8, 16], latent_dim=8))
LOCK = ".kerasae.lock"  # the chief's lock file inside the run directory

# Holds a run directory (as a run, or a job's chief, does) until its stdin closes.
HOLD = r"""
import sys
from kerasae.training.lock import hold_run_directory
with hold_run_directory(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


# `kerasae train ARGS` (the command's own `main`) once a line arrives on stdin: TensorFlow
# loads while the first run starts, so the test waits for one TensorFlow import, not two.
TRAIN_ON_CUE = r"""
import sys
import kerasae.cli, kerasae.training.train
sys.stdin.readline()
sys.exit(kerasae.cli.main(sys.argv[1:]))
"""


def _holder(out_dir):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out_dir)],
                            cwd=REPO, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line == "held\n", proc.stderr.read()
    return proc


def _saved_epochs(run):
    """The epochs the last recorded checkpoint of a run directory holds (its number).

    TensorFlow's own reading of the directory's `checkpoint` state file: a SIGKILL between
    a checkpoint's files and that record leaves a newer `ckpt-N.index` that is not (yet)
    a checkpoint of the run, and resuming rightly starts from the recorded one."""
    latest = tf.train.latest_checkpoint(str(run / "checkpoints" / "worker-0"))
    return int(latest.rsplit("ckpt-", 1)[1])


def _latent_dim(path):
    model = keras.saving.load_model(path, safe_mode=True)
    return model.get_layer("encoder").output_shape[-1]


@pytest.mark.slow
def test_a_second_train_is_refused_at_once_and_a_killed_runs_lock_is_taken_over(tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "kerasae.cli", "train", "conv_ae", "--dataset", "digits",
         "--epochs", "100000", "--latent-dim", "8", *TINY, "--out", "run", "--verbose", "0"],
        cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Another model, starting over in the same directory: the runs would mix their files.
    second = subprocess.Popen(
        [sys.executable, "-c", TRAIN_ON_CUE, "train", "conv_ae", "--dataset", "digits",
         "--epochs", "1", "--latent-dim", "4", *TINY, "--out", "run", "--no-resume",
         "--verbose", "2"],
        cwd=tmp_path, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not (run / "checkpoints" / "worker-0" / "ckpt-1.index").exists():
            assert first.poll() is None, first.stderr.read()
            assert time.time() < deadline, "no first checkpoint"
            time.sleep(0.1)
        out, err = second.communicate("go\n", timeout=240)
        assert first.poll() is None  # still training
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        first.kill()
        second.kill()
    lines = err.strip().splitlines()
    assert second.returncode == 1 and len(lines) == 1, err
    assert f"pid {first.pid} on host" in lines[0] and "another run" in lines[0]
    assert "pick another output directory (--out" in lines[0]
    assert out == ""  # refused before reading data or building anything
    # Only the first run's files: its model (latent 8) everywhere, no picture of the second.
    record = run_json(run)
    assert record["config"]["latent_dim"] == 8 and record["status"] == "running"
    assert _latent_dim(run / "model.keras") == _latent_dim(run / "best.keras") == 8
    assert not (run / "reconstructions.png").exists()
    # The SIGKILLed run left its lock file; the next run takes it over and resumes.
    with open(run / LOCK) as f:
        assert json.load(f)["pid"] == first.pid
    done = _saved_epochs(run)
    result = kerasae.fit("conv_ae", "digits", epochs=done + 1, out_dir=str(run),
                         **dict(KWARGS, seed=0, steps_per_epoch=2))
    record = run_json(run)
    assert record["status"] == "finished" and record["resumed_from_epoch"] == done
    assert record["epochs_run"] == done + 1 == len(result.history)
    assert not (run / LOCK).exists()  # released


def test_each_worker_holds_its_own_lock_and_a_dead_holders_lock_is_taken_over(tmp_path):
    from kerasae.training.lock import RunDirectoryBusy, hold_run_directory

    run = tmp_path / "new" / "run"  # does not exist yet
    chief = _holder(run)
    try:
        # Another worker of the same job, and again in the same thread (re-entrant).
        with hold_run_directory(run, 1, False), hold_run_directory(run, 1, False):
            assert (run / LOCK).exists()
        with pytest.raises(RunDirectoryBusy, match=f"pid {chief.pid} on host .*kill {chief.pid}"):
            with hold_run_directory(run):
                pass
        # A second job's chief, and a plain fit, are refused before anything is written.
        with pytest.raises(RunDirectoryBusy, match=f"'{run}' is in use by another run"):
            kerasae.fit("conv_ae", "digits", epochs=1, out_dir=str(run), **KWARGS)
        assert os.listdir(run) == [LOCK]
    finally:
        chief.stdin.close()
        chief.wait(timeout=60)
    assert chief.returncode == 0
    assert not (tmp_path / "new").exists()  # the holder made it and left it empty: removed

    killed = _holder(run)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert (run / LOCK).exists()  # stale: its holder is dead, the kernel released the flock
    with hold_run_directory(run):
        with open(run / LOCK) as f:
            assert json.load(f)["pid"] == os.getpid()
    assert not (run / LOCK).exists()


class Fail(keras.callbacks.Callback):
    """Raises `error` at the end of batch 1 of epoch 1 (the second epoch)."""

    def __init__(self, error, before=None):
        super().__init__()
        self.error, self.before, self.epoch = error, before, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == (1, 1):
            if self.before:
                self.before()
            raise self.error


@pytest.mark.parametrize("error, status", [
    (RuntimeError("the data server went away\nsecond line"), "failed"),
    (KeyboardInterrupt(), "interrupted"),  # a second Ctrl-C: not at a safe point
], ids=["error", "ctrl-c"])
def test_a_run_stopped_by_an_error_says_failed_or_interrupted(tmp_path, error, status):
    with pytest.raises(type(error)) as raised:
        kerasae.fit("conv_ae", "digits", epochs=3, out_dir=str(tmp_path),
                    callbacks=[Fail(error)], **KWARGS)
    assert raised.value is error
    record = run_json(tmp_path)
    assert record["status"] == status and record["epochs_run"] == 1  # as the checkpoint
    assert record["final"]["epoch"] == 0
    if status == "failed":
        assert record["error"] == "RuntimeError: the data server went away"
    assert not (tmp_path / LOCK).exists()


def test_a_failure_record_that_cannot_be_written_does_not_hide_the_error(tmp_path):
    def block_run_json():  # a directory where run.json was: it cannot be replaced
        os.remove(tmp_path / "run.json")
        os.mkdir(tmp_path / "run.json")

    with pytest.raises(ValueError, match="^bad batch") as raised:
        kerasae.fit("conv_ae", "digits", epochs=3, out_dir=str(tmp_path),
                    callbacks=[Fail(ValueError("bad batch"), block_run_json)], **KWARGS)
    assert "run.json could not be updated" in " ".join(getattr(raised.value, "__notes__", []))


def test_files_that_vanish_mid_run_end_the_run_failed_with_the_files_named(tmp_path):
    from PIL import Image

    from kerasae.data import get_source

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, img in enumerate(get_source("digits", "train").images[:256]):
        Image.fromarray(img[..., 0]).save(photos / f"{i:03d}.png")

    class Vanish(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                for p in photos.iterdir():
                    p.unlink()

    with pytest.raises(Exception) as raised:
        kerasae.fit("conv_ae", str(photos), epochs=8, out_dir=str(tmp_path / "run"),
                    callbacks=[Vanish()], **KWARGS)
    assert "000.png" in str(raised.value)  # the kerasae error that names the files
    record = run_json(tmp_path / "run")
    first_line = str(raised.value).strip().splitlines()[0]
    # Epochs already read ahead by the pipeline still train: as many as were checkpointed.
    assert record["status"] == "failed"
    assert record["epochs_run"] == _saved_epochs(tmp_path / "run") < 8
    assert record["error"] == f"{type(raised.value).__name__}: {first_line}"
