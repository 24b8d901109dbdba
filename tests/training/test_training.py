"""Distributed training: 1 device == 2 mirrored replicas, real multi-worker, crash + resume,
on arrays and on image folders alike."""

import json
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import kerasae  # noqa: F401  (registers the classes that load_model needs)
from tests.helpers import ENV, run_cli, run_json

TINY_ARGS = {
    "conv_ae": ["--arg", "filters=[8,16]", "--latent-dim", "8"],
    "conv_vae": ["--arg", "filters=[8,16]", "--latent-dim", "4"],
}


def train(cwd, *args, env=ENV, check=True):
    return run_cli(["train", *args, "--verbose", "2"], cwd, env=env, check=check)


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    """The digits' train and test splits as PNG files: train/<label>/, test/<label>/."""
    from PIL import Image

    from kerasae.data import get_source

    root = tmp_path_factory.mktemp("digits_png")
    for split in ("train", "test"):
        src = get_source("digits", split)
        for i, (img, y) in enumerate(zip(src.images, src.labels)):
            (root / split / str(y)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[..., 0]).save(root / split / str(y) / f"{i:04d}.png")
    return str(root)


# Each builder on one data route, each route under one builder: both builders and both
# routes are covered in two runs rather than four (the runs are separate processes).
PAIRS = [("conv_ae", "folder"), ("conv_vae", "digits")]


def _dataset(route, digits_folder):
    """The digits as a named dataset, or as a folder of PNG files."""
    return "digits" if route == "digits" else digits_folder


@pytest.mark.slow
@pytest.mark.parametrize("builder,route", PAIRS)
def test_two_mirrored_replicas_match_one_device(builder, route, digits_folder, tmp_path):
    dataset = _dataset(route, digits_folder)
    common = [builder, "--dataset", dataset, "--epochs", "1", "--batch-size", "64",
              "--seed", "7", *TINY_ARGS[builder]]
    train(tmp_path, *common, "--strategy", "one", "--out", "one")
    train(tmp_path, *common, "--strategy", "mirrored", "--num-devices", "2", "--out", "two")
    one, two = run_json(tmp_path / "one"), run_json(tmp_path / "two")
    assert (one["replicas"], two["replicas"]) == (1, 2)
    assert two["strategy"] == "mirrored"
    for key in ("loss", "val_loss") + (("kl_loss",) if builder == "conv_vae" else ()):
        assert abs(one["final"][key] - two["final"][key]) < 1e-4, key


KERAS_FIT = r"""
import json, sys
import numpy as np
from kerasae.training import strategy as strategies
strategy = strategies.make_strategy(sys.argv[1], num_devices=2 if sys.argv[1] == "mirrored" else None)
import kerasae, keras
from sklearn.datasets import load_digits
x = (load_digits().images[:256].astype("float32") / 16)[..., None]
with strategy.scope():
    keras.utils.set_random_seed(3)
    model = kerasae.ConvAE(filters=(8, 16), latent_dim=8, input_shape=(8, 8, 1), seed=3)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
h = model.fit(x, batch_size=64, epochs=2, shuffle=False, verbose=0).history
print(json.dumps({"loss": h["loss"], "w": float(np.sum(model.get_weights()[0]))}))
"""


@pytest.mark.slow
def test_keras_fit_loss_is_scaled_per_replica(tmp_path):
    # A custom compute_loss must return the per-replica share: with 2 replicas,
    # Keras's own model.fit must then train exactly like one device.
    script = tmp_path / "fit.py"
    script.write_text(KERAS_FIT)
    out = {}
    for strategy in ("one", "mirrored"):
        proc = subprocess.run([sys.executable, str(script), strategy], env=ENV,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[strategy] = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(out["one"]["loss"], out["mirrored"]["loss"], rtol=1e-5)
    np.testing.assert_allclose(out["one"]["w"], out["mirrored"]["w"], rtol=1e-5)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
@pytest.mark.parametrize("builder,route", PAIRS)
def test_two_real_workers_finish_with_the_same_weights(builder, route, digits_folder, tmp_path):
    import keras

    dataset = _dataset(route, digits_folder)
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        env = dict(ENV, TF_CONFIG=json.dumps({
            "cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "kerasae.cli", "train", builder, "--dataset", dataset,
             "--epochs", "2", "--batch-size", "32", "--strategy", "multi_worker",
             # Local settings may differ between workers (a live progress bar on one):
             # every worker must still run the same steps per call, or the collective
             # ops of the calls wait on each other forever.
             "--out", "out", "--verbose", "1" if index == 0 else "2", *TINY_ARGS[builder]],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        logs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(l[-3000:] for l in logs)
    info = run_json(tmp_path / "out")
    assert info["strategy"] == "multi_worker" and info["replicas"] == 2
    assert info["workers"] == 2 and info["epochs_run"] == 2
    chief = keras.saving.load_model(tmp_path / "out" / "model.keras", safe_mode=True)
    other = keras.saving.load_model(
        tmp_path / "out" / "checkpoints" / "worker-1" / "model.keras", safe_mode=True)
    for a, b in zip(chief.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    for i in range(2):  # one checkpoint directory per worker
        assert (tmp_path / "out" / "checkpoints" / f"worker-{i}" / "ckpt-2.index").exists()


@pytest.mark.slow
@pytest.mark.parametrize("route", ["npz", "folder"])
def test_killed_run_resumes_and_matches_its_last_checkpoint(route, tmp_path):
    import keras
    import tensorflow as tf
    from PIL import Image

    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(6000, 16, 16)) * 255).astype("uint8")
    if route == "npz":
        np.savez(tmp_path / "data.npz", x=x)
    else:
        (tmp_path / "data").mkdir()
        for i, img in enumerate(x):
            Image.fromarray(img).save(tmp_path / "data" / f"{i:04d}.png")
    data_arg = "data.npz" if route == "npz" else "data"
    args = [sys.executable, "-m", "kerasae.cli", "train", "conv_ae", "--dataset", data_arg,
            "--epochs", "3", "--batch-size", "32", "--arg", "filters=[16,32]",
            "--out", "run", "--verbose", "2"]
    ckpts = tmp_path / "run" / "checkpoints" / "worker-0"
    proc = subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (ckpts / "ckpt-1.index").exists():
        assert proc.poll() is None and time.time() < deadline, "no first checkpoint"
        time.sleep(0.05)
    time.sleep(0.5)
    assert not (ckpts / "ckpt-2.index").exists(), "epoch 2 finished before the kill"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    rerun = subprocess.run(args, cwd=tmp_path, env=ENV, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Resuming from" in rerun.stdout and "epoch 1 of 3 done" in rerun.stdout
    info = run_json(tmp_path / "run")
    assert info["resumed_from_epoch"] == 1 and info["epochs_run"] == 3
    rows = (tmp_path / "run" / "history.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2"]

    final = keras.saving.load_model(tmp_path / "run" / "model.keras", safe_mode=True)
    restored = type(final).from_config(final.get_config())
    tf.train.Checkpoint(model=restored).restore(str(ckpts / "ckpt-3")).expect_partial()
    for a, b in zip(final.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not any(np.array_equal(a, b) for a, b in zip(
        final.get_weights()[:1], type(final).from_config(final.get_config()).get_weights()[:1]))
    # The same epochs in the same order: an uninterrupted run gives the same numbers.
    whole = subprocess.run([*args[:-4], "--out", "whole", "--verbose", "2"], cwd=tmp_path,
                           env=ENV, capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    resumed, uninterrupted = run_json(tmp_path / "run")["final"], run_json(tmp_path / "whole")["final"]
    for key, value in resumed.items():
        if "loss" in key:
            assert value == pytest.approx(uninterrupted[key], rel=1e-6), key


def test_a_checkpoint_written_but_not_recorded_is_trained_again(tmp_path):
    """A kill after a checkpoint's files but before its record (the `checkpoint` state
    file) leaves `ckpt-2.*` behind the record of `ckpt-1`: the rerun resumes from epoch 1,
    trains epoch 2 again over the stray files and ends where the uninterrupted run did."""
    import keras
    import tensorflow as tf

    run = tmp_path / "run"
    kwargs = dict(batch_size=64, strategy="one", seed=3, steps_per_epoch=3, validation=None,
                  verbose=0, out_dir=str(run), builder_kwargs=dict(filters=[8, 16],
                                                                   latent_dim=8))
    kerasae.fit("conv_ae", "digits", epochs=1, **kwargs)
    ckpts = run / "checkpoints" / "worker-0"
    record_after_one = (ckpts / "checkpoint").read_bytes()
    kerasae.fit("conv_ae", "digits", epochs=2, **kwargs)
    whole = keras.saving.load_model(run / "model.keras", safe_mode=True).get_weights()
    (ckpts / "checkpoint").write_bytes(record_after_one)  # as if killed before the record
    assert (ckpts / "ckpt-2.index").exists()
    assert tf.train.latest_checkpoint(str(ckpts)).endswith("ckpt-1")

    again = kerasae.fit("conv_ae", "digits", epochs=2, **kwargs)
    record = run_json(run)
    assert record["status"] == "finished" and record["resumed_from_epoch"] == 1
    assert len(again.history) == 2 == record["epochs_run"]
    assert tf.train.latest_checkpoint(str(ckpts)).endswith("ckpt-2")
    for a, b in zip(again.model.get_weights(), whole):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_rerunning_a_finished_run_trains_nothing_more(tmp_path):
    args = ["conv_ae", "--dataset", "digits", "--epochs", "1", "--batch-size", "64",
            *TINY_ARGS["conv_ae"], "--out", "done"]
    train(tmp_path, *args)
    first = (tmp_path / "done" / "run.json").read_bytes()
    second_proc = train(tmp_path, *args)
    assert "already holds 1 epoch, epochs=1 asks for no more: nothing to train" \
        in second_proc.stdout
    assert (tmp_path / "done" / "run.json").read_bytes() == first  # the record is untouched
    assert run_json(tmp_path / "done")["epochs_run"] == 1


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_vae_trains_without_nan(precision):
    import keras

    res = kerasae.fit("conv_vae", "digits", epochs=1, batch_size=32, strategy="one",
                      precision=precision, steps_per_epoch=4, validation=None, verbose=0,
                      builder_kwargs=dict(filters=[8, 16], latent_dim=4))
    assert res.model.get_layer("encoder").get_layer("conv_0_0").compute_dtype != "float32"
    assert res.model.get_layer("encoder").get_layer("z_mean").compute_dtype == "float32"
    assert all(np.isfinite(v) for k, v in res.history[-1].items() if "loss" in k)
    assert res.run["precision"] == precision
    # The process-wide policy is restored for whatever runs next.
    assert keras.mixed_precision.dtype_policy().name == "float32"


def test_early_stopping_tensorboard_and_history(tmp_path):
    import keras

    # An optimizer that never moves (the learning_rate argument must be > 0; an
    # optimizer instance keeps its own): nothing improves, so training stops after
    # 1 + patience epochs.
    res = kerasae.fit("conv_ae", "digits", epochs=50, batch_size=64, strategy="one",
                      optimizer=keras.optimizers.SGD(learning_rate=0.0), early_stopping=2,
                      out_dir=str(tmp_path), verbose=0,
                      builder_kwargs=dict(filters=[8, 16], latent_dim=8))
    assert len(res.history) == 3
    assert list((tmp_path / "logs" / "train").glob("events.out.tfevents.*"))
    rows = (tmp_path / "history.csv").read_text().splitlines()
    assert len(rows) == 4 and "val_loss" in rows[0]


@pytest.mark.slow
def test_epoch_logs_are_the_mean_of_the_batch_losses_with_or_without_batch_consumers():
    """Without per-batch consumers up to 64 steps run in one call and their values are read
    once; the epoch's loss must equal the mean over its batches either way (numpy on the
    recorded values), and the weights must match."""
    import keras

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.batches = []

        def on_train_batch_end(self, batch, logs=None):
            self.batches.append(dict(logs))

    kwargs = dict(epochs=2, batch_size=64, strategy="one", seed=3, validation=None, verbose=0,
                  builder_kwargs=dict(filters=[8, 16], latent_dim=8))
    record = Record()
    seen = kerasae.fit("conv_ae", "digits", callbacks=[record], **kwargs)
    plain = kerasae.fit("conv_ae", "digits", **kwargs)
    bar = kerasae.fit("conv_ae", "digits", **dict(kwargs, verbose=1))
    steps = 1437 // 64
    assert len(record.batches) == 2 * steps
    # Running means: batch i's loss * (i + 1) recovers each batch's own loss.
    running = np.array([b["loss"] for b in record.batches[steps:]])
    per_batch = running * np.arange(1, steps + 1) - np.concatenate(
        [[0.0], running[:-1] * np.arange(1, steps)])
    assert seen.history[-1]["loss"] == pytest.approx(per_batch.mean(), rel=1e-5)
    # Several steps per call (no callback of the caller; with or without a live
    # progress bar) train exactly as one step per call.
    for other in (plain, bar):
        for a, b in zip(seen.history, other.history):
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
        for a, b in zip(seen.model.get_weights(), other.model.get_weights()):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_throughput_benchmark_figures_fit_in_the_time_the_run_took(tmp_path, capsys):
    """The benchmark script (not a timed test): every epoch it reports ran inside this
    call, so the time its figures imply cannot exceed the call's wall clock."""
    import time

    from kerasae.benchmarks import fit_throughput

    out = tmp_path / "fit.json"
    start = time.perf_counter()
    fit_throughput.main(["--images", "640", "--epochs", "2", "--rounds", "1", "--batch-size",
                         "64", "--steps-per-execution", "4", "--json", str(out)])
    wall = time.perf_counter() - start
    runs = json.loads(out.read_text())["runs"]
    assert sorted(runs) == ["kerasae.fit", "model.fit", "model.fit spe=4"]
    spent = sum(640 / s for speeds in runs.values() for s in speeds)
    assert 0 < spent < wall, (spent, wall)
    assert "ratio kerasae.fit / model.fit: median" in capsys.readouterr().out


@pytest.mark.slow
def test_a_run_does_not_keep_its_training_data_alive():
    """TensorFlow keeps the Python functions of a tf.data pipeline's numpy_function for
    good; the run's pipeline must not make them hold the images."""
    import gc
    import weakref

    from sklearn.datasets import load_digits

    from kerasae import data

    src = data.from_array(np.minimum(load_digits().images[:256] * 16, 255).astype("uint8"))
    ref = weakref.ref(src)
    kerasae.fit("conv_ae", src, epochs=2, batch_size=64, strategy="one", validation=None,
                verbose=0, builder_kwargs=dict(filters=[8], latent_dim=4))
    del src
    gc.collect()
    assert ref() is None


def test_fit_takes_a_users_tf_data_pipeline_and_an_optimizer_instance():
    """A batched tf.data pipeline of (images, labels) trains like the same images as an array;
    an optimizer made outside the strategy's scope is rebuilt inside it."""
    import keras
    import tensorflow as tf

    from kerasae.data import get_source

    digits = get_source("digits", "train")
    x, y = digits.numpy()[:256], digits.labels[:256]
    kwargs = dict(epochs=2, batch_size=64, strategy="one", seed=5, validation=None, verbose=0,
                  builder_kwargs=dict(filters=[8, 16], latent_dim=8))
    from_array = kerasae.fit("conv_ae", (x, y), optimizer=keras.optimizers.Adam(2e-3),
                             shuffle=False, **kwargs)
    pipeline = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    from_pipeline = kerasae.fit("conv_ae", pipeline, optimizer=keras.optimizers.Adam(2e-3),
                                **kwargs)
    assert from_pipeline.run["dataset"]["route"] == "tf.data"
    for a, b in zip(from_array.history, from_pipeline.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
