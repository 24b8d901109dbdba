"""Ctrl-C during `kerasae.fit`: the run stops between compiled calls, keeps the last
finished epoch, resumes to the numbers of an uninterrupted run, and leaves SIGINT as it
found it. SIGINT is sent to this very process, as a terminal does."""

import os
import signal

import keras
import numpy as np
import pytest

import kerasae
from kerasae.training import TrainingInterrupted
from tests.helpers import default_child_signals, run_json

@pytest.fixture(autouse=True)
def default_signals():
    """Python's own handlers, as in a terminal: a test run started in the background by a
    shell inherits SIGINT ignored, which kerasae rightly leaves alone."""
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    saved_term = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGINT, saved)
    signal.signal(signal.SIGTERM, saved_term)


KWARGS = dict(batch_size=64, strategy="one", seed=5, steps_per_epoch=4, verbose=0,
              builder_kwargs=dict(filters=[8, 16], latent_dim=8))


class CtrlC(keras.callbacks.Callback):
    """Presses Ctrl-C `times` times at the end of batch `batch` of epoch `epoch` (0-based)."""

    def __init__(self, epoch, batch, times=1, sig=signal.SIGINT):
        super().__init__()
        self.at, self.times, self.batches_after = (epoch, batch), times, 0
        self.sig = sig
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) > self.at:
            self.batches_after += 1
        if (self.epoch, batch) == self.at:
            for _ in range(self.times):
                os.kill(os.getpid(), self.sig)


@pytest.mark.slow
def test_ctrl_c_keeps_the_last_epoch_and_the_rerun_gives_the_uninterrupted_numbers(tmp_path):
    run = tmp_path / "run"
    press = CtrlC(epoch=1, batch=1)
    # pytest.raises(KeyboardInterrupt), not (TrainingInterrupted): a stray KeyboardInterrupt
    # must fail this test, not stop the whole session.
    with pytest.raises(KeyboardInterrupt) as info:
        kerasae.fit("conv_ae", "digits", epochs=3, out_dir=str(run), callbacks=[press], **KWARGS)
    assert info.type is TrainingInterrupted
    assert str(info.value) == (f"Training stopped by Ctrl-C in epoch 2 of 3 (step 2 of 4 done); "
                               f"{run} keeps the checkpoint of epoch 1: run again with the same "
                               "output directory to resume.")
    assert press.batches_after == 0  # stopped at once: the next call never ran
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ckpts = run / "checkpoints" / "worker-0"
    assert sorted(p.name for p in ckpts.glob("ckpt-*.index")) == ["ckpt-1.index"]
    assert (run / "history.csv").read_text().strip().splitlines()[1:][0].startswith("0,")
    assert len((run / "history.csv").read_text().strip().splitlines()) == 2
    record = run_json(run)
    assert record["status"] == "interrupted" and record["epochs_run"] == 1

    resumed = kerasae.fit("conv_ae", "digits", epochs=3, out_dir=str(run), **KWARGS)
    whole = kerasae.fit("conv_ae", "digits", epochs=3, out_dir=str(tmp_path / "whole"), **KWARGS)
    assert run_json(run)["resumed_from_epoch"] == 1
    assert [r["epoch"] for r in resumed.history] == [0, 1, 2]
    for a, b in zip(resumed.history, whole.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
    for a, b in zip(resumed.model.get_weights(), whole.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_a_second_ctrl_c_stops_at_once_and_without_out_dir_nothing_is_claimed():
    with pytest.raises(KeyboardInterrupt) as twice:
        kerasae.fit("conv_ae", "digits", epochs=2, callbacks=[CtrlC(0, 0, times=2)], **KWARGS)
    assert twice.type is KeyboardInterrupt  # raised by the second press, inside the callback
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    with pytest.raises(KeyboardInterrupt) as once:
        kerasae.fit("conv_ae", "digits", epochs=2, callbacks=[CtrlC(0, 2)], **KWARGS)
    assert once.type is TrainingInterrupted
    assert str(once.value).endswith("(step 3 of 4 done); nothing was saved (no out_dir).")


def test_a_sigint_handler_of_the_caller_is_left_alone():
    calls = []

    def mine(signum, frame):
        calls.append(signum)

    previous = signal.signal(signal.SIGINT, mine)
    try:
        res = kerasae.fit("conv_ae", "digits", epochs=2, callbacks=[CtrlC(0, 1)], **KWARGS)
        assert len(res.history) == 2 and calls == [signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_during_the_last_call_finishes_the_run_and_still_says_so(tmp_path):
    with pytest.raises(KeyboardInterrupt) as info:
        # (no validation: with it, a Ctrl-C stops the validation pass and drops the epoch)
        kerasae.fit("conv_ae", "digits", epochs=2, out_dir=str(tmp_path), validation=None,
                    callbacks=[CtrlC(1, 3)], **KWARGS)
    assert info.type is TrainingInterrupted
    assert str(info.value) == (f"Ctrl-C came as training ended: all 2 epochs ran and {tmp_path} "
                               "holds the finished run.")
    record = run_json(tmp_path)
    assert record["status"] == "finished" and record["epochs_run"] == 2
    assert (tmp_path / "model.keras").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_stops_at_a_safe_point_as_ctrl_c_does(tmp_path):
    """`kill`, `timeout` and container stops send SIGTERM: the run ends as after Ctrl-C,
    run.json says so, and SIGTERM's default comes back."""
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt) as info:
        kerasae.fit("conv_ae", "digits", epochs=3, out_dir=str(run),
                    callbacks=[CtrlC(epoch=1, batch=1, sig=signal.SIGTERM)], **KWARGS)
    assert info.type is TrainingInterrupted and info.value.cause == "SIGTERM"
    assert str(info.value).startswith("Training stopped by SIGTERM in epoch 2 of 3")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    record = run_json(run)
    assert record["status"] == "interrupted" and record["epochs_run"] == 1


def test_sigterm_before_training_stops_the_command_cleanly(tmp_path):
    """While a folder is decoded into its cache (before any epoch), SIGTERM stops
    `kerasae train` as Ctrl-C would: one line, exit 143, no staging file left in the
    cache, and no run directory (nothing was trained)."""
    import subprocess
    import sys
    import time

    from PIL import Image

    from tests.helpers import ENV, REPO

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3000):
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(
            imgs / f"{i:04d}.png")
    cache, out = tmp_path / "cache", tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kerasae.cli", "train", "conv_ae", "--dataset", str(imgs),
         "--cache", str(cache), "--epochs", "1", "--out", str(out)],
        cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_child_signals)
    deadline = time.time() + 240
    while time.time() < deadline and not (cache.exists() and os.listdir(cache)):
        time.sleep(0.05)  # the cache's staging file appears: decoding has begun
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert err.strip().splitlines()[-1] == "kerasae train: interrupted: stopped by SIGTERM"
    assert "Traceback" not in err
    assert os.listdir(cache) == [] and not out.exists()


LOST_RAISE = """
import gc, os, signal, sys
from kerasae import cli

def sigterm_inside_a_gc_callback(phase, info):
    if phase == "start" and not fired:
        fired.append(1)
        os.kill(os.getpid(), signal.SIGTERM)  # its handler runs here, inside the callback
        sum(range(1000))

fired = []
run = cli._run
def armed(args):
    gc.callbacks.append(sigterm_inside_a_gc_callback)
    return run(args)
cli._run = armed
sys.exit(cli.main())
"""


def test_a_sigterm_that_lands_in_a_gc_callback_still_stops_the_command(tmp_path):
    """Python swallows the exception of a signal handler that runs inside a garbage-collector
    callback (jax registers one), printing "Exception ignored": the command must still stop
    at its next safe point with exit 143 and its one line, not run on to exit 0."""
    import subprocess
    import sys

    from tests.helpers import ENV, REPO

    script, out = tmp_path / "lost.py", tmp_path / "run"
    script.write_text(LOST_RAISE)
    proc = subprocess.run(
        [sys.executable, str(script), "train", "conv_ae", "--dataset", "digits",
         "--epochs", "1", "--out", str(out)],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300,
        preexec_fn=default_child_signals)
    assert proc.returncode == 143, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("kerasae train: interrupted: Training stopped by SIGTERM"), last
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    record = run_json(out)
    assert record["status"] == "interrupted" and record["epochs_run"] == 0


def test_a_sigterm_acted_on_after_the_command_finished_says_so(tmp_path):
    """A swallowed SIGTERM in a command without safe points (`list`): the command runs to
    its end, then exits 143 with one line that says its output is whole, not "stopped"."""
    import subprocess
    import sys

    from tests.helpers import ENV, REPO

    script = tmp_path / "lost.py"
    script.write_text(LOST_RAISE)
    whole = subprocess.run([sys.executable, "-m", "kerasae.cli", "list"], cwd=REPO, env=ENV,
                           capture_output=True, text=True, timeout=300)
    proc = subprocess.run([sys.executable, str(script), "list"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300,
                          preexec_fn=default_child_signals)
    assert whole.returncode == 0 and proc.stdout == whole.stdout != ""
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        "kerasae list: SIGTERM came too late to stop the command: it ran to its end (exit 0 "
        "without it) and its output is whole."]


AFTER_THE_WORK = """
import os, signal, sys, time
from kerasae import cli
from kerasae.cli import train

listing = train._list
def then_sigterm(args):
    code = listing(args)  # everything is printed
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)  # the handler runs here, before the command returns
    return code
train._list = then_sigterm
sys.exit(cli.main())
"""


def test_a_sigterm_after_the_output_is_whole_is_not_called_a_stop(tmp_path):
    """A SIGTERM between a command's last line and its return (the trial's `kerasae list`
    and `train` after "model:") is recorded, not raised: exit 143 and the "too late" line."""
    import subprocess
    import sys

    from tests.helpers import ENV, REPO

    script = tmp_path / "after.py"
    script.write_text(AFTER_THE_WORK)
    proc = subprocess.run([sys.executable, str(script), "list"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300,
                          preexec_fn=default_child_signals)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        "kerasae list: SIGTERM came too late to stop the command: it ran to its end (exit 0 "
        "without it) and its output is whole."]
    assert "conv_ae" in proc.stdout
