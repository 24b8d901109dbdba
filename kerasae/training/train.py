"""`kerasae.fit`: train an autoencoder under a `tf.distribute` strategy.

It runs its own distributed loop (`kerasae.training.loop.Trainer`) instead of
`model.fit`, because in Keras 3.15 `model.fit` under a real multi-worker
`MultiWorkerMirroredStrategy` fails inside Keras's TF trainer (reduction of
scalar logs), and because every replica must draw its own noise (a
`SeedGenerator` is a mirrored variable, so all replicas would draw the same VAE /
corruption noise).

`fit` resolves its dataset argument once (`kerasae.data.train_and_validation`): the
layer-wise pretraining, the training loop and the `reconstructions.png` picture all
read the sources it returns, so a folder is listed once per run.
"""

import dataclasses
import inspect
import numbers
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from kerasae import data as data_lib
from kerasae import plots
from kerasae._util.backend import require_tensorflow_backend
from kerasae._util.errors import InvalidType, InvalidValue
from kerasae.data.image_options import shape_fits
from kerasae.models import build, get_builder, get_contract, pretrain_layerwise, scaling
from kerasae.models.start import start_recipe
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
    learning_rate=None,
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
    out=None,
    resume=True,
    early_stopping=None,
    tensorboard=True,
    callbacks=None,
    builder_kwargs=None,
    data_dir=None,
    raw_dir=None,
    image_size=None,
    color_mode=None,
    resize="crop",
    cache=None,
    skip_bad=False,
    max_pixels=None,
    columns=None,
    label=None,
    time_column=None,
    window=None,
    stride=None,
    impute=None,
    pretrain_epochs=0,
    steps_per_epoch=None,
    verbose=1,
    shuffle=True,
):
    """Trains an autoencoder under a `tf.distribute` strategy.

    Args:
        model: a builder name (`"conv_ae"`) or a kerasae model.
        data: a dataset: a folder of images, a `tf.data.Dataset`, a `.npz` / `.npy`
            path, a `.csv` path or a DataFrame (a table, or a series cut into windows),
            an array or `(images, labels)`, a `kerasae.data.Source` (e.g.
            `kerasae.data.folder(path, image_size=64)`), or a dataset name. Read
            batch by batch, never whole. Defaults to `"digits"`.
        epochs: total epochs (a resumed run continues up to this). Defaults to `10`.
        batch_size: GLOBAL batch size, split over replicas; must be divisible by
            the replica count. Defaults to `128`.
        learning_rate: Defaults to `None`: `1e-3`, or, for a model that starts from a
            preset whose recipe names a `fine_tune_learning_rate` (`tae_flux2`:
            `1e-5`), that rate.
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
        out: the same as `out_dir`, by the name the uses give it (`out=`); pass one
            of the two. Defaults to `None`.
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
        image_size: size every image of a folder (and TFDS images of varying size) to
            this: `64` or `(height, width)`; `None` needs one size for all images
            (see `kerasae.data.folder`). Validation images are read as the training
            images are. Defaults to `None`.
        color_mode: channels of folder images, `"grayscale"`, `"rgb"` or `"rgba"`;
            `None`: grayscale where every file is. Defaults to `None`.
        resize: how images not of `image_size` are sized: `"crop"`, `"pad"` or
            `"stretch"`. Defaults to `"crop"`.
        cache: a directory where a folder's decoded, sized images are kept
            (memory-mapped), so later epochs and runs read no image files.
        skip_bad: leave out image files that cannot be read (counted) instead of
            failing. Defaults to `False`.
        max_pixels: the largest image decoded; larger files are refused as
            decompression bombs. Defaults to `$KERASAE_MAX_PIXELS`, else 100
            megapixels.
        columns: the feature (or channel) columns of a table or series, names or
            indices; `None`: every numeric column but the label and time columns
            (see `kerasae.data.table`).
        label: the label column of a table or series (name or index), or `None`.
        time_column: the time column of a series (kept as its timestamps) or of a
            table (left out of the features); `None`: a column named `timestamp`,
            `time`, `date` or `datetime`.
        window: steps per window cut from a series (`.csv`, DataFrame or array
            `(T, C)`). Defaults to `None`: a series model's input length.
        stride: steps between two windows. Defaults to `None` (1).
        impute: fill the missing cells of a table or series with the column's
            `"mean"`, `"median"` or `"zero"`; `None` refuses them. Validation data is
            filled with the training data's values.
        pretrain_epochs: epochs per layer of greedy layer-wise pretraining
            (`kerasae.pretrain_layerwise`; stacked dense builders) before training,
            on the training data in memory; skipped when the run resumes from a
            checkpoint. Defaults to `0` (none).
        steps_per_epoch: cap on steps per epoch (for quick runs).
        verbose: 0 silent, 1 progress bar, 2 one line per epoch. Defaults to `1`.
        shuffle: read the training data in a new seeded order every epoch (a
            permutation of `(seed, epoch)`). A `tf.data.Dataset` keeps its own
            order either way. Defaults to `True`.

    Returns:
        A `FitResult` with `model`, `history` (one dict per epoch), `run` (the
        `run.json` content) and `picture`: with `out_dir`, the chief writes
        `reconstructions.png` there (ten validation images, else training images,
        above their reconstructions).

    Raises:
        RunDirectoryBusy: another run (its pid named) is writing `out_dir`.
        TrainingInterrupted: Ctrl-C (a `KeyboardInterrupt`): training stops
            between two compiled calls; `out_dir` keeps the last finished epoch
            and a call with the same arguments resumes from it.
    """
    require_tensorflow_backend("kerasae.fit")
    out_dir = _one_out(out_dir, out)
    options = FitOptions(
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        lr_schedule=lr_schedule, optimizer=optimizer, seed=seed, precision=precision,
        jit_compile=jit_compile, out_dir=out_dir, resume=resume,
        early_stopping=early_stopping, tensorboard=tensorboard, callbacks=callbacks,
        steps_per_epoch=steps_per_epoch, verbose=verbose, shuffle=bool(shuffle),
    )
    if isinstance(pretrain_epochs, bool) or not isinstance(pretrain_epochs, numbers.Integral):
        raise InvalidType("`pretrain_epochs` must be an integer (epochs per layer; 0: no "
                          f"pretraining). Received: pretrain_epochs={pretrain_epochs!r}")
    if pretrain_epochs < 0:
        raise InvalidValue("`pretrain_epochs` must be >= 0 (epochs per layer; 0: no "
                           f"pretraining). Received: pretrain_epochs={pretrain_epochs!r}")
    strat = strategy if isinstance(strategy, tf.distribute.Strategy) else make_strategy(
        strategy, num_devices
    )
    # Taken before anything is read or written there, and held to the end; a run that
    # stops on an error after its start says so in run.json (`Trainer.run`).
    with hold_run_directory(out_dir, *worker_info(strat)):
        train_src, val_src = data_lib.train_and_validation(
            data, split, validation, seed=seed, data_dir=data_dir, raw_dir=raw_dir,
            image_size=image_size, color_mode=color_mode, resize=resize, cache=cache,
            skip_bad=skip_bad, max_pixels=max_pixels, kind=_data_kind(model),
            columns=columns, label=label, time_column=time_column, window=window,
            stride=stride, impute=impute,
            default_window=_default_window(model, builder_kwargs))
        if verbose:
            _say_data_notes(train_src, val_src, validation, options, strat.num_replicas_in_sync)
        if pretrain_epochs:
            model, builder_kwargs = _pretrained(model, builder_kwargs, train_src, options,
                                                pretrain_epochs)
        result = _train(strat, model, builder_kwargs, train_src, val_src, options)
        if out_dir and worker_info(strat)[1]:
            result.picture = _picture(result.model, train_src, val_src, out_dir)
        return result


def _say_data_notes(train_src, val_src, validation, options, replicas):
    """The notes a verbose run prints on its data before training."""
    if val_src is None and isinstance(validation, str) and validation == "auto":
        print(f"No validation: {train_src.name!r} has no test split. To hold out a "
              "tenth of the training data for it, pass validation=0.1 (--validation 0.1).")
    if not options.steps_per_epoch:
        _say_unused(len(train_src), options.batch_size, replicas, options.shuffle)


def _say_unused(n, batch, replicas=1, shuffle=True):
    """Says so when an epoch's whole batches leave a tenth or more of the examples out
    (the run's batches are whole: a different remainder sits out each shuffled epoch),
    naming the batch size near it that leaves the fewest out."""
    left, steps = n % batch, n // batch
    if n < batch or left < 0.1 * n:
        return  # fewer than one batch: the Trainer's error says so
    # (examples left out, distance from the batch size asked for, batch size)
    low = -(-max(batch // 2, 1) // replicas) * replicas  # a multiple of the replicas
    best = min((n % b, abs(b - batch), b) for b in range(low, 2 * batch + 1, replicas)
               if b <= n)
    out = "change from epoch to epoch" if shuffle else "are the same every epoch, unshuffled"
    print(f"Each epoch trains on {n - left:,} of the {n:,} examples ({steps} "
          f"{'batch' if steps == 1 else 'batches'} of {batch}; the {left:,} left out {out})"
          + (f": --batch-size {best[2]} (batch_size={best[2]}) "
             + ("uses them all." if best[0] == 0 else f"leaves {best[0]:,} out.")
             if best[0] < left else "."))


def _data_kind(model):
    """What the rows of array data are, where the model says: its input kind; a builder's
    contract only settles the one rank that is ambiguous (windows of a series vs
    greyscale images, both 3-D); otherwise the rank of the data decides."""
    if hasattr(model, "input_kind"):
        return model.input_kind
    if isinstance(model, str) and get_contract(model).input_kind == "series":
        return "series"
    return None


def _default_window(model, builder_kwargs):
    """The window a series is cut into for a series model: its input length (a builder
    name's: its `input_shape` argument, the weights it starts from, or its default)."""
    if hasattr(model, "input_kind"):
        return model.image_shape[0] if model.input_kind == "series" else None
    if not isinstance(model, str) or get_contract(model).input_kind != "series":
        return None
    kwargs = builder_kwargs or {}
    shape = kwargs.get("input_shape") or getattr(kwargs.get("weights"), "input_shape", None)
    if not shape:
        default = inspect.signature(get_builder(model)).parameters.get("input_shape")
        shape = None if default is None or default.default is default.empty else default.default
    return int(shape[0]) if shape else None


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
        if options.learning_rate is None:
            options = dataclasses.replace(options, learning_rate=_default_rate(built))
        scaling.adapt_unless_adapted(built, train_src)
        if not shape_fits(tuple(built.image_shape), tuple(train_src.image_shape)):
            raise InvalidValue(
                f"The data has images of shape {train_src.image_shape} but the model "
                f"expects {built.image_shape}. Build the model with input_shape="
                f"{train_src.image_shape}. Received: data shape={train_src.image_shape}"
            )
        return Trainer(strat, built, train_src, val_src, options).run()
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


DEFAULT_LEARNING_RATE = 1e-3


def _default_rate(model):
    """`1e-3`, or the `fine_tune_learning_rate` in the recipe of the preset `model` starts
    from (a pretrained model that a rate of 1e-3 would throw off: measured per preset)."""
    rate = start_recipe(model).get("fine_tune_learning_rate")
    return float(rate) if isinstance(rate, (int, float)) and rate > 0 else DEFAULT_LEARNING_RATE


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


def _pretrained(model, builder_kwargs, train_src, options, epochs):
    """`(model, builder_kwargs)` after greedy layer-wise pretraining (a built model, no
    builder arguments left), or as they were when the run resumes from a checkpoint.

    It runs before the model enters the strategy (`_as_model` then copies it in):
    `pretrain_layerwise` trains with `model.fit` on one device, and a strategy's
    mirrored variables may not be trained outside their strategy.
    """
    out_dir = options.out_dir
    if out_dir and options.resume and os.path.exists(os.path.join(out_dir, "checkpoints")):
        if options.verbose:
            print("Checkpoints exist: skipping layer-wise pretraining, resuming.")
        return model, builder_kwargs
    keras.utils.set_random_seed(options.seed)
    # A copy (or a new model) on the default strategy: the caller's model stays as it was.
    built = _as_model(model, builder_kwargs, train_src.image_shape, tf.distribute.get_strategy())
    stages = pretrain_layerwise(built, train_src.numpy(), epochs=epochs,
                                batch_size=options.batch_size, seed=options.seed,
                                verbose=min(options.verbose, 2))
    if options.verbose:
        for s in stages:
            print(f"pretrained {s['layer']} ({s['units']} units): loss "
                  + " -> ".join(f"{v:.5f}" for v in s["loss"]))
    return built, None


def _one_out(out_dir, out):
    if out_dir is not None and out is not None and os.fspath(out_dir) != os.fspath(out):
        raise InvalidValue("out= and out_dir= name the same folder: pass one of them. "
                           f"Received: out_dir={out_dir!r}, out={out!r}")
    return out_dir if out_dir is not None else out


def _picture(model, train_src, val_src, out_dir):
    """`out_dir/reconstructions.png`: ten validation images (else training images)
    above their reconstructions; `None` for data that are not images."""
    src = train_src if val_src is None else val_src
    if len(src.image_shape) != 3:
        return None
    if src.random_access and len(src) > 10:
        # Ten images spread over the data (class folders are read in class order).
        idx = np.unique(np.linspace(0, len(src) - 1, 10).round().astype("int64"))
        shown = data_lib.to_float(src.load_batch(idx))
    else:
        shown = src.take(10)  # ten images are read, not the dataset
    # A direct call, not predict(): under multi-worker, predict() would start
    # collectives with workers that have already finished.
    recon = np.asarray(model(shown, training=False))
    tag = os.path.splitext(os.path.basename(os.path.normpath(str(train_src.name))))[0]
    return plots.reconstructions(
        shown, recon, os.path.join(out_dir, "reconstructions.png"),
        title=f"{model.builder_name} on {tag}: originals (top) vs reconstructions",
    )
