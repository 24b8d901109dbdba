"""Training under `tf.distribute`: strategies, a distributed loop, resume, run records.

`kerasae.fit` runs its own distributed loop instead of `model.fit`, because in
Keras 3.15 `model.fit` under a real multi-worker `MultiWorkerMirroredStrategy`
fails inside Keras's TF trainer (reduction of scalar logs), and because the
loop must give every replica different noise (a `SeedGenerator` is a mirrored
variable, so all replicas would draw the same VAE / corruption noise). The loop:

- builds the model and optimizer inside the strategy's scope;
- splits each global batch in order over the replicas (row block r goes to
  replica r), and scales the summed per-example loss by the GLOBAL batch size,
  so gradients summed over replicas equal the one-device gradient;
- draws noise from a stateless seed `(seed, step)` for the global batch and
  gives each replica its own slice: N replicas see what one device sees;
- runs several steps per compiled call when no callback of the caller reads
  per-batch logs, from one input pipeline built for the whole run;
- checkpoints model + optimizer + history every epoch (one directory per
  worker) and resumes from the last one when rerun (BackupAndRestore
  semantics);
- writes `model.keras`, `best.keras`, `history.csv`, TensorBoard logs and
  `run.json`, and drives Keras callbacks (progress bar, early stopping,
  TensorBoard, yours).
"""

import dataclasses
import json
import os
import platform
import time

import keras
import numpy as np
import tensorflow as tf

from kerasae import data as data_lib
from kerasae._files import atomic_write
from kerasae.models import registry

STRATEGIES = ("auto", "one", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


# ------------------------------------------------------------------ strategy
def _tf_config():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}). Received: TF_CONFIG={raw!r}")


def _num_workers(cfg):
    cluster = (cfg or {}).get("cluster", {})
    return sum(len(v) for k, v in cluster.items() if k in ("worker", "chief"))


def make_strategy(name="auto", num_devices=None):
    """Creates a `tf.distribute` strategy.

    Args:
        name: `"auto"` (multi-worker if TF_CONFIG lists several workers, else
            all local GPUs if more than one, else one device), `"one"`,
            `"mirrored"` (all local GPUs; with no GPU, `num_devices` logical CPU
            devices, for testing), or `"multi_worker"` (from TF_CONFIG).
        num_devices: for `"mirrored"` without GPUs, how many logical CPU devices
            to create (must happen before TensorFlow initializes). Defaults to 2.

    Returns:
        A `tf.distribute.Strategy`.
    """
    if name not in STRATEGIES:
        raise registry.unknown_name_error("strategy", name, STRATEGIES, "strategy")
    cfg = _tf_config()
    if name == "auto":
        gpus = tf.config.list_physical_devices("GPU")
        if _num_workers(cfg) > 1:
            name = "multi_worker"
        elif len(gpus) > 1:
            name = "mirrored"
        else:
            name = "one"
    if name == "one":
        device = "/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    if name == "multi_worker":
        if _num_workers(cfg) < 1:
            raise ValueError(
                "strategy='multi_worker' needs TF_CONFIG with a cluster and this "
                "process's task, e.g. {\"cluster\": {\"worker\": [\"host1:2222\", "
                "\"host2:2222\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}. "
                "Received: TF_CONFIG=" + repr(os.environ.get("TF_CONFIG"))
            )
        gpus = tf.config.list_physical_devices("GPU")
        implementation = (
            tf.distribute.experimental.CommunicationImplementation.NCCL
            if gpus else tf.distribute.experimental.CommunicationImplementation.RING
        )
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=implementation
            )
        )
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy()
    n = 2 if num_devices is None else int(num_devices)
    if n < 1:
        raise ValueError(f"num_devices must be >= 1. Received: num_devices={num_devices}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is None or len(current) != n:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
            )
        except RuntimeError:
            raise RuntimeError(
                f"Cannot split the CPU into {n} logical devices: TensorFlow is already "
                "initialized in this process. Create the strategy first, e.g. "
                f"kerasae.training.make_strategy('mirrored', num_devices={n}), before "
                f"building any model. Received: num_devices={n}"
            ) from None
    devices = [f"/cpu:{i}" for i in range(n)]
    return tf.distribute.MirroredStrategy(
        devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
    )


def strategy_kind(strategy):
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    return "one"


def worker_info(strategy):
    """`(task_index, is_chief)` of this process."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 0, True
    task_type, task_id = resolver.task_type, resolver.task_id or 0
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and
                                        "chief" not in resolver.cluster_spec().as_dict())
    return int(task_id), bool(is_chief)


# --------------------------------------------------------------------- state
@dataclasses.dataclass
class FitResult:
    """What `fit` returns: the trained model, the per-epoch history and the run record."""

    model: keras.Model
    history: list
    run: dict
    out_dir: str = None


def versions():
    import kerasae

    return {
        "kerasae": kerasae.__version__, "keras": keras.__version__,
        "tensorflow": tf.__version__, "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _write_history_csv(path, history):
    keys = ["epoch"] + sorted({k for row in history for k in row if k != "epoch"})
    lines = [",".join(keys)]
    for row in history:
        lines.append(",".join(
            "" if row.get(k) is None else repr(row[k]) if isinstance(row[k], float)
            else str(row[k]) for k in keys
        ))
    atomic_write(path, "\n".join(lines) + "\n")


def _as_model(model, builder_kwargs, image_shape, strategy):
    """Builds (or rebuilds) the model inside the strategy scope."""
    with strategy.scope():
        if isinstance(model, str):
            kwargs = dict(builder_kwargs or {})
            kwargs.setdefault("input_shape", image_shape)
            return registry.build(model, **kwargs)
        if not hasattr(model, "forward"):
            raise TypeError(
                "fit needs a kerasae model (from a builder) or a builder name. "
                f"Received: model={type(model).__name__}"
            )
        if builder_kwargs:
            raise ValueError(
                "builder_kwargs only apply when `model` is a builder name. "
                f"Received: builder_kwargs={builder_kwargs!r}"
            )
        # Variables must belong to the strategy: rebuild from config and copy.
        clone = type(model).from_config(model.get_config())
        clone.builder_name = model.builder_name
        clone.builder_config = model.builder_config
        clone.set_weights(model.get_weights())
        return clone


LR_SCHEDULES = ("constant", "cosine")
# Steps per call of the compiled loop when no callback of the caller reads
# per-batch logs (as Keras's steps_per_execution). The cap keeps a Ctrl-C waiting
# for at most this many steps; a live progress bar is updated about every
# PROGRESS_SECONDS.
STEPS_PER_EXECUTION = 64
PROGRESS_SECONDS = 0.2


def _make_optimizer(optimizer, learning_rate, precision, schedule="constant",
                    total_steps=None):
    if schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            float(learning_rate), decay_steps=max(1, int(total_steps))
        )
    if isinstance(optimizer, str):
        opt = keras.optimizers.get({"class_name": optimizer,
                                    "config": {"learning_rate": learning_rate}})
    else:
        opt = optimizer
    if precision == "mixed_float16" and not isinstance(opt, keras.optimizers.LossScaleOptimizer):
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


# ----------------------------------------------------------------------- fit
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
    validation="test",
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
):
    """Trains an autoencoder under a `tf.distribute` strategy.

    Args:
        model: a builder name (`"conv_ae"`) or a kerasae model.
        data: dataset name, `.npz` path, numpy array or `kerasae.data.Source`.
            Defaults to `"digits"`.
        epochs: total epochs (a resumed run continues up to this). Defaults to `10`.
        batch_size: GLOBAL batch size, split over replicas; must be divisible by
            the replica count. Defaults to `128`.
        learning_rate: Defaults to `1e-3`.
        lr_schedule: `"constant"` or `"cosine"` (decays to 0 over all epochs;
            resumes correctly since it follows the optimizer's step count).
            Defaults to `"constant"`.
        optimizer: Keras optimizer name or instance. Defaults to `"adam"`.
        split: training split. Defaults to `"train"`.
        validation: validation split of the same dataset, a `Source`, or `None`.
            Defaults to `"test"` (skipped for datasets without it).
        strategy: `"auto"`, `"one"`, `"mirrored"`, `"multi_worker"` or a
            `tf.distribute.Strategy`. Defaults to `"auto"`.
        num_devices: logical CPU devices for `"mirrored"` on a CPU-only machine.
        seed: seed of weights, shuffling and noise. Defaults to `0`.
        precision: `"float32"`, `"mixed_bfloat16"` or `"mixed_float16"` (GPUs;
            the KL term and sampling stay float32). Defaults to `"float32"`.
        jit_compile: XLA-compile the train step. Defaults to `False` (slower on
            CPUs).
        out_dir: where to write the model, checkpoints, logs and `run.json`;
            `None` writes nothing. Defaults to `None`.
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

    Returns:
        A `FitResult` with `model`, `history` (one dict per epoch) and `run`
        (the `run.json` content).
    """
    if lr_schedule not in LR_SCHEDULES:
        raise registry.unknown_name_error("schedule", lr_schedule, LR_SCHEDULES, "lr_schedule")
    if precision not in PRECISIONS:
        raise registry.unknown_name_error("precision", precision, PRECISIONS, "precision")
    epochs = int(epochs)
    if epochs < 1 or batch_size < 1:
        raise ValueError(
            f"epochs and batch_size must be >= 1. Received: epochs={epochs}, "
            f"batch_size={batch_size}"
        )
    strat = strategy if isinstance(strategy, tf.distribute.Strategy) else make_strategy(
        strategy, num_devices
    )
    keras.mixed_precision.set_dtype_policy(precision)
    try:
        return _fit(
            strat, model, data, epochs=epochs, batch_size=int(batch_size),
            learning_rate=learning_rate, lr_schedule=lr_schedule, optimizer=optimizer,
            split=split,
            validation=validation, seed=int(seed), precision=precision,
            jit_compile=jit_compile, out_dir=out_dir, resume=resume,
            early_stopping=early_stopping, tensorboard=tensorboard,
            callbacks=callbacks or [], builder_kwargs=builder_kwargs,
            data_dir=data_dir, raw_dir=raw_dir, steps_per_epoch=steps_per_epoch,
            verbose=verbose,
        )
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def _fit(strategy, model, data, *, epochs, batch_size, learning_rate, lr_schedule,
         optimizer, split,
         validation, seed, precision, jit_compile, out_dir, resume, early_stopping,
         tensorboard, callbacks, builder_kwargs, data_dir, raw_dir, steps_per_epoch,
         verbose):
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"The global batch size must be divisible by the {replicas} replicas. "
            f"Received: batch_size={batch_size}"
        )
    per_replica = batch_size // replicas
    task_index, is_chief = worker_info(strategy)

    train_src = data_lib.get_source(data, split, data_dir=data_dir, raw_dir=raw_dir)
    val_src = None
    if isinstance(validation, data_lib.Source):
        val_src = validation
    elif validation and isinstance(data, str) and not data.endswith((".npz", ".npy")):
        val_src = data_lib.get_source(data, validation, data_dir=data_dir, raw_dir=raw_dir)
    steps = len(train_src) // batch_size
    if steps == 0:
        raise ValueError(
            f"The training data has {len(train_src)} examples, fewer than one global "
            f"batch. Use a smaller batch size. Received: batch_size={batch_size}"
        )
    if steps_per_epoch:
        steps = min(steps, int(steps_per_epoch))

    keras.utils.set_random_seed(seed)
    model = _as_model(model, builder_kwargs, train_src.image_shape, strategy)
    if tuple(model.image_shape) != tuple(train_src.image_shape):
        raise ValueError(
            f"The data has images of shape {train_src.image_shape} but the model "
            f"expects {model.image_shape}. Build the model with input_shape="
            f"{train_src.image_shape}. Received: data shape={train_src.image_shape}"
        )
    with strategy.scope():
        opt = _make_optimizer(optimizer, learning_rate, precision, lr_schedule,
                              epochs * steps)
        model.compile(optimizer=opt)
        opt.build(model.trainable_variables)
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")

    # ---- checkpoint / resume
    history = []
    ckpt_manager = None
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        ckpt_dir = os.path.join(out_dir, "checkpoints", f"worker-{task_index}")
        ckpt = tf.train.Checkpoint(model=model, optimizer=opt, epoch=epoch_var)
        ckpt_manager = tf.train.CheckpointManager(ckpt, ckpt_dir, max_to_keep=2)
        if resume and ckpt_manager.latest_checkpoint:
            ckpt.restore(ckpt_manager.latest_checkpoint).expect_partial()
            hist_path = ckpt_manager.latest_checkpoint + ".history.json"
            if os.path.exists(hist_path):
                with open(hist_path) as f:
                    history = json.load(f)
            if verbose:
                print(f"Resuming from {ckpt_manager.latest_checkpoint} "
                      f"(epoch {int(epoch_var.numpy())} of {epochs} done)")
    start_epoch = int(epoch_var.numpy())

    # ---- compiled steps
    seed_t = tf.constant(seed, tf.int32)

    def replica_step(x, step):
        ctx = tf.distribute.get_replica_context()
        rid = ctx.replica_id_in_sync_group
        noise_seed = tf.stack([seed_t, tf.cast(step, tf.int32)])
        with tf.GradientTape() as tape:
            x_hat, z_mean, z_log_var = model.forward(
                x, training=True, seed=noise_seed, replica_index=rid,
                num_replicas=replicas,
            )
            terms = model.per_example_terms(x, x_hat, z_mean, z_log_var)
            loss = tf.reduce_sum(terms["loss"]) / batch_size
            loss = loss + tf.cast(model.penalty(), tf.float32) / replicas
            scaled = opt.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        sums = {k: tf.reduce_sum(v) for k, v in terms.items()}
        sums["penalty"] = tf.cast(model.penalty(), tf.float32) / replicas
        return sums

    @tf.function(jit_compile=jit_compile)
    def train_step(x, step):
        out = strategy.run(replica_step, args=(x, step))
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                for k, v in out.items()}

    @tf.function
    def train_steps_on_iterator(iterator, first_step, count):
        # `count` steps in one call (Keras's steps_per_execution): batches are read
        # inside the graph and no Python runs between the steps. Sums are float64 in
        # step order, as a Python-side running sum of the per-step values would be.
        out = train_step(next(iterator), first_step)
        totals = {k: tf.cast(v, tf.float64) for k, v in out.items()}
        for i in tf.range(tf.constant(1, tf.int64), count):
            out = train_step(next(iterator), first_step + i)
            totals = {k: totals[k] + tf.cast(out[k], tf.float64) for k in totals}
        return totals

    @tf.function
    def eval_step(x):
        x_hat, z_mean, z_log_var = model.forward(
            x, training=False, sample=model.variational,
            seed=tf.constant([seed, 0], tf.int32),
        )
        terms = model.per_example_terms(x, x_hat, z_mean, z_log_var)
        return {k: tf.reduce_sum(v) for k, v in terms.items()}

    def evaluate():
        totals, n = {}, 0
        for x in val_src.dataset(256, shuffle=False):
            for k, v in eval_step(x).items():
                totals[k] = totals.get(k, 0.0) + float(v)
            n += int(x.shape[0])
        return {f"val_{k}": v / n for k, v in totals.items()}

    # ---- callbacks
    cbs = list(callbacks)
    monitor = "val_loss" if val_src is not None else "loss"
    if early_stopping:
        cbs.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=int(early_stopping)))
    if out_dir and tensorboard and is_chief:
        cbs.append(keras.callbacks.TensorBoard(os.path.join(out_dir, "logs")))
    # Steps per call (see train_steps_on_iterator): one when the caller's callbacks
    # may read every batch's logs; else up to STEPS_PER_EXECUTION, and with a live
    # progress bar as many as take about PROGRESS_SECONDS, so the bar still moves.
    # Under multi-worker every worker must run the same steps per call (the calls hold
    # collective ops), so there the count depends on nothing local: no timing, no
    # verbosity, no callbacks (which then see the logs of every STEPS_PER_EXECUTION-th
    # batch, as with Keras's steps_per_execution).
    step_seconds = None
    multi_worker = strategy_kind(strategy) == "multi_worker"

    def steps_this_call(left):
        if multi_worker:
            return min(STEPS_PER_EXECUTION, left)
        if callbacks:
            return 1
        if verbose == 1:
            wanted = 1 if step_seconds is None else int(
                PROGRESS_SECONDS / max(step_seconds, 1e-6))
            return max(1, min(wanted, STEPS_PER_EXECUTION, left))
        return min(STEPS_PER_EXECUTION, left)

    cb_list = keras.callbacks.CallbackList(
        cbs, add_history=True, add_progbar=verbose != 0, model=model,
        verbose=verbose, epochs=epochs, steps=steps,
    )
    model.stop_training = False
    cb_list.on_train_begin()
    best = min((row[monitor] for row in history if monitor in row), default=None)
    started = time.time()
    # One pipeline for the whole run: epoch e holds `steps` global batches in the
    # order drawn from (seed, e), whichever epoch the run starts (or resumes) at.
    dist_ds = strategy.distribute_datasets_from_function(
        lambda ctx: train_src.dataset(
            batch_size, shuffle=True, seed=seed, epochs=range(start_epoch, epochs),
            steps=steps, drop_remainder=True,
            shard=(ctx.input_pipeline_id, replicas // ctx.num_input_pipelines, per_replica),
        )
    )
    iterator = iter(dist_ds)
    for epoch in range(start_epoch, epochs):
        cb_list.on_epoch_begin(epoch)
        totals, seen, i = {}, 0, 0
        t0 = time.time()
        while i < steps:
            count = steps_this_call(steps - i)
            cb_list.on_train_batch_begin(i)
            t_call = time.perf_counter()
            out = train_steps_on_iterator(
                iterator, tf.constant(epoch * steps + i, tf.int64),
                tf.constant(count, tf.int64))
            for k, v in out.items():
                totals[k] = totals.get(k, 0.0) + float(v)
            step_seconds = (time.perf_counter() - t_call) / count
            i += count
            seen += count * batch_size
            logs = {k: totals[k] / seen for k in totals if k != "penalty"}
            if "penalty" in totals and totals["penalty"]:
                logs["loss"] = logs["loss"] + totals["penalty"] / i
            cb_list.on_train_batch_end(i - 1, logs)
        elapsed = time.time() - t0
        logs = dict(logs)
        if val_src is not None:
            logs.update(evaluate())
        row = {"epoch": epoch, **{k: float(v) for k, v in logs.items()},
               "images_per_second": seen / elapsed, "seconds": elapsed}
        history.append(row)
        epoch_var.assign(epoch + 1)
        if out_dir:
            improved = best is None or row[monitor] < best
            best = row[monitor] if improved else best
            if is_chief:
                if improved:
                    model.save(os.path.join(out_dir, "best.keras"))
                model.save(os.path.join(out_dir, "model.keras"))
                _write_history_csv(os.path.join(out_dir, "history.csv"), history)
            prefix = ckpt_manager.save(checkpoint_number=epoch + 1)
            atomic_write(prefix + ".history.json", json.dumps(history))
        cb_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cb_list.on_train_end()

    run = {
        "builder": model.builder_name,
        "config": model.builder_config,
        "dataset": {**train_src.info(), "validation": None if val_src is None else val_src.split},
        "strategy": strategy_kind(strategy),
        "replicas": replicas,
        "workers": _num_workers(_tf_config()) or 1,
        "global_batch_size": batch_size,
        "epochs": epochs,
        "epochs_run": len(history),
        "resumed_from_epoch": start_epoch,
        "seed": seed,
        "precision": precision,
        "jit_compile": bool(jit_compile),
        "learning_rate": learning_rate,
        "lr_schedule": lr_schedule,
        "optimizer": optimizer if isinstance(optimizer, str) else type(optimizer).__name__,
        "versions": versions(),
        "final": history[-1] if history else {},
        "wall_seconds": time.time() - started,
    }
    if out_dir and is_chief:
        if not history or start_epoch == epochs:
            model.save(os.path.join(out_dir, "model.keras"))
        atomic_write(os.path.join(out_dir, "run.json"), json.dumps(run, indent=2))
    elif out_dir:
        # Other workers keep their own copy next to their checkpoints, so that
        # replicas can be compared (they must hold the same weights).
        model.save(os.path.join(ckpt_manager.directory, "model.keras"))
    return FitResult(model=model, history=history, run=run, out_dir=out_dir)
