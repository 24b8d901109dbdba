"""`kerasae.fit`: train an autoencoder under a `tf.distribute` strategy.

It runs its own distributed loop (`kerasae.training.loop.Trainer`) instead of
`model.fit`, because in Keras 3.15 `model.fit` under a real multi-worker
`MultiWorkerMirroredStrategy` fails inside Keras's TF trainer (reduction of
scalar logs), and because every replica must draw its own noise (a
`SeedGenerator` is a mirrored variable, so all replicas would draw the same VAE /
corruption noise).
"""

import warnings

import keras
import tensorflow as tf

from kerasae import data as data_lib
from kerasae._util.errors import InvalidType, InvalidValue
from kerasae.models import build
from kerasae.training.lock import hold_run_directory
from kerasae.training.loop import Trainer
from kerasae.training.options import FitOptions
from kerasae.training.strategy import make_strategy, worker_info


def fit(
    model,
    data="digits",
    *,
    epochs=10,
    batch_size=128,
    learning_rate=1e-3,
    lr_schedule="constant",
    optimizer="adam",
    split="train",
    validation="auto",
    strategy="auto",
    num_devices=None,
    seed=0,
    precision="float32",
    jit_compile=False,
    out_dir=None,
    resume=True,
    early_stopping=None,
    tensorboard=True,
    callbacks=None,
    builder_kwargs=None,
    data_dir=None,
    raw_dir=None,
    steps_per_epoch=None,
    verbose=1,
    shuffle=True,
):
    """Trains an autoencoder under a `tf.distribute` strategy.

    Args:
        model: a builder name (`"conv_ae"`) or a kerasae model.
        data: a dataset: a folder of images, a `tf.data.Dataset`, a `.npz` / `.npy`
            path, an array or `(images, labels)`, a `kerasae.data.Source` (e.g.
            `kerasae.data.folder(path, image_size=64)`), or a dataset name. Read
            batch by batch, never whole. Defaults to `"digits"`.
        epochs: total epochs (a resumed run continues up to this). Defaults to `10`.
        batch_size: GLOBAL batch size, split over replicas; must be divisible by
            the replica count. Defaults to `128`.
        learning_rate: Defaults to `1e-3`.
        lr_schedule: `"constant"` or `"cosine"` (decays to 0 over all epochs;
            resumes correctly since it follows the optimizer's step count).
            Defaults to `"constant"`.
        optimizer: Keras optimizer name or instance (an instance is rebuilt from
            its config inside the strategy's scope, with its own learning rate;
            `learning_rate` applies to names). Defaults to `"adam"`.
        split: training split. Defaults to `"train"`.
        validation: a split of the same dataset (`"test"`), a fraction of the
            training data to hold out (`0.1`), a dataset (path, array, `Source`,
            `tf.data.Dataset`), `"auto"` (the `test` split where the dataset has
            one) or `None`; see `kerasae.data.train_and_validation`. Defaults to
            `"auto"`.
        strategy: `"auto"`, `"one"`, `"mirrored"`, `"multi_worker"` or a
            `tf.distribute.Strategy`. Defaults to `"auto"`.
        num_devices: logical CPU devices for `"mirrored"` on a CPU-only machine.
        seed: seed of weights, shuffling and noise. Defaults to `0`.
        precision: `"float32"`, `"mixed_bfloat16"` or `"mixed_float16"` (GPUs;
            the KL term and sampling stay float32). Defaults to `"float32"`.
        jit_compile: XLA-compile the train step. Defaults to `False` (slower on
            CPUs).
        out_dir: where to write the model, checkpoints, logs and `run.json`;
            `None` writes nothing. One run at a time: the run holds an exclusive
            lock on it until `fit` returns or raises. Defaults to `None`.
        resume: continue from the last checkpoint in `out_dir`. Defaults to `True`.
        early_stopping: patience in epochs on the monitored loss, or `None`.
        tensorboard: write TensorBoard logs under `out_dir/logs`. Defaults to `True`.
        callbacks: extra Keras callbacks. They get every batch's logs (one step
            per compiled call); without them up to 64 steps run per call. Under
            `multi_worker` up to 64 steps always run per call (the same on every
            worker), and batch hooks run once per call.
        builder_kwargs: arguments for the builder when `model` is a name.
        data_dir: TFDS data directory.
        raw_dir: directory of raw IDX files.
        steps_per_epoch: cap on steps per epoch (for quick runs).
        verbose: 0 silent, 1 progress bar, 2 one line per epoch. Defaults to `1`.
        shuffle: read the training data in a new seeded order every epoch (a
            permutation of `(seed, epoch)`). A `tf.data.Dataset` keeps its own
            order either way. Defaults to `True`.

    Returns:
        A `FitResult` with `model`, `history` (one dict per epoch) and `run`
        (the `run.json` content).

    Raises:
        RunDirectoryBusy: another run (its pid named) is writing `out_dir`.
        TrainingInterrupted: Ctrl-C (a `KeyboardInterrupt`): training stops
            between two compiled calls; `out_dir` keeps the last finished epoch
            and a call with the same arguments resumes from it.
    """
    options = FitOptions(
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        lr_schedule=lr_schedule, optimizer=optimizer, seed=seed, precision=precision,
        jit_compile=jit_compile, out_dir=out_dir, resume=resume,
        early_stopping=early_stopping, tensorboard=tensorboard, callbacks=callbacks,
        steps_per_epoch=steps_per_epoch, verbose=verbose, shuffle=bool(shuffle),
    )
    strat = strategy if isinstance(strategy, tf.distribute.Strategy) else make_strategy(
        strategy, num_devices
    )
    # Taken before anything is read or written there, and held to the end; a run that
    # stops on an error after its start says so in run.json (`Trainer.run`).
    with hold_run_directory(out_dir, *worker_info(strat)):
        train_src, val_src = data_lib.train_and_validation(
            data, split, validation, seed=seed, data_dir=data_dir, raw_dir=raw_dir)
        return _train(strat, model, builder_kwargs, train_src, val_src, options)


def _train(strat, model, builder_kwargs, train_src, val_src, options):
    precision = options.precision
    if precision == "mixed_float16" and not tf.config.list_physical_devices("GPU"):
        warnings.warn("precision='mixed_float16' is for GPUs: CPUs emulate float16 math, "
                      "slower than float32. On CPUs use 'mixed_bfloat16' or 'float32'.",
                      UserWarning, stacklevel=3)
    keras.mixed_precision.set_dtype_policy(precision)
    try:
        keras.utils.set_random_seed(options.seed)
        built = _as_model(model, builder_kwargs, train_src.image_shape, strat)
        if tuple(built.image_shape) != tuple(train_src.image_shape):
            raise InvalidValue(
                f"The data has images of shape {train_src.image_shape} but the model "
                f"expects {built.image_shape}. Build the model with input_shape="
                f"{train_src.image_shape}. Received: data shape={train_src.image_shape}"
            )
        return Trainer(strat, built, train_src, val_src, options).run()
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def _as_model(model, builder_kwargs, image_shape, strategy):
    """Builds (or rebuilds) the model inside the strategy scope."""
    with strategy.scope():
        if isinstance(model, str):
            kwargs = dict(builder_kwargs or {})
            kwargs.setdefault("input_shape", image_shape)
            return build(model, **kwargs)
        if not hasattr(model, "forward"):
            raise InvalidType(
                "fit needs a kerasae model (from a builder) or a builder name. "
                f"Received: model={type(model).__name__}"
            )
        if builder_kwargs:
            raise InvalidValue(
                "builder_kwargs only apply when `model` is a builder name. "
                f"Received: builder_kwargs={builder_kwargs!r}"
            )
        # Variables must belong to the strategy: rebuild from config and copy.
        clone = type(model).from_config(model.get_config())
        clone.builder_name = model.builder_name
        clone.builder_config = model.builder_config
        clone.start_point = getattr(model, "start_point", None)
        clone.set_weights(model.get_weights())
        return clone
