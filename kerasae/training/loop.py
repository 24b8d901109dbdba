"""The distributed training loop: a `Trainer` runs compiled steps, epochs and callbacks.

- the global batch is split in order over the replicas (row block r goes to
  replica r), and the summed per-example loss is scaled by the GLOBAL batch
  size, so gradients summed over replicas equal the one-device gradient;
- noise comes from a stateless seed `(seed, step)` for the global batch, and
  each replica keeps its own slice: N replicas see what one device sees;
- several steps run per compiled call when no callback of the caller reads
  per-batch logs, from one input pipeline built for the whole run;
- every epoch is checkpointed (`kerasae.training.checkpoints`), and the chief
  writes `model.keras`, `best.keras` and `history.csv`;
- Ctrl-C stops the run between two compiled calls (`kerasae.training.interrupt`);
  a run that ends any other way than finished is recorded in `run.json` as
  `interrupted` or `failed` (`kerasae.training.records.write_end`).

The caller holds the output directory (`kerasae.training.lock`), as `kerasae.fit` does.
"""

import math
import os
import time

import keras
import tensorflow as tf

from kerasae._util.errors import InvalidType, InvalidValue
from kerasae.training import records
from kerasae.training.checkpoints import RunCheckpoints, save_model
from kerasae.training.interrupt import StopOnInterrupt
from kerasae.training.options import PROGRESS_SECONDS, STEPS_PER_EXECUTION, WARMUP_FRACTION
from kerasae.training.strategy import strategy_kind, worker_info


def lr_schedule(learning_rate, schedule, total_steps):
    """The learning rate of `schedule` (`options.LR_SCHEDULES`): the number itself for
    `"constant"`; a cosine decay to 0 over `total_steps`; for `"warmup_cosine"` a linear
    rise from 0 over the first `WARMUP_FRACTION` of the steps, then that decay."""
    total = max(1, int(total_steps or 1))
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(float(learning_rate), decay_steps=total)
    if schedule == "warmup_cosine":
        warm = max(1, round(total * WARMUP_FRACTION)) if total > 1 else 0
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=max(1, total - warm), warmup_target=float(learning_rate),
            warmup_steps=warm)
    return learning_rate


def make_optimizer(optimizer, learning_rate, precision, schedule="constant", total_steps=None):
    """A Keras optimizer (name or instance), with a learning-rate schedule
    (`lr_schedule`) and loss scaling if asked."""
    learning_rate = lr_schedule(learning_rate, schedule, total_steps)
    if isinstance(optimizer, str):
        opt = keras.optimizers.get({"class_name": optimizer,
                                    "config": {"learning_rate": learning_rate}})
    elif isinstance(optimizer, keras.optimizers.Optimizer):
        # Rebuilt in the strategy's scope: an instance made outside it holds variables of
        # another strategy ("Mixing different tf.distribute.Strategy objects").
        config = optimizer.get_config()
        if schedule != "constant":
            config["learning_rate"] = lr_schedule(float(optimizer.learning_rate.numpy()),
                                                  schedule, total_steps)
        opt = type(optimizer).from_config(config)
    else:
        raise InvalidType(
            "optimizer must be a Keras optimizer name ('adam') or instance "
            f"(keras.optimizers.Adam(1e-3)). Received: optimizer={type(optimizer).__name__}"
        )
    if precision == "mixed_float16" and not isinstance(opt, keras.optimizers.LossScaleOptimizer):
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def _resume_line(checkpoint, done, epochs):
    if done < epochs:
        return f"Resuming from {checkpoint} (epoch {done} of {epochs} done)"
    plural = "s" if done != 1 else ""
    return (f"{checkpoint} already holds {done} epoch{plural}, epochs={epochs} asks for no more: "
            f"nothing to train (pass a larger epochs to train on)")


class TrainingDiverged(InvalidValue):
    """The loss became NaN or infinite; nothing of the epoch was saved."""


class Trainer:
    """One run of `kerasae.fit`: `Trainer(strategy, model, train, validation, options).run()`.

    `model` must have been built inside `strategy.scope()`; `train` and
    `validation` are `kerasae.data.Source`s (validation may be `None`).
    """

    def __init__(self, strategy, model, train_src, val_src, options):
        self.strategy, self.model, self.options = strategy, model, options
        self.train_src, self.val_src = train_src, val_src
        self.replicas = strategy.num_replicas_in_sync
        batch = options.batch_size
        if batch % self.replicas:
            raise InvalidValue(
                f"The global batch size must be divisible by the {self.replicas} replicas. "
                f"Received: batch_size={batch}"
            )
        self.per_replica = batch // self.replicas
        self.task_index, self.is_chief = worker_info(strategy)
        self.multi_worker = strategy_kind(strategy) == "multi_worker"
        steps = len(train_src) // batch
        if steps == 0:
            raise InvalidValue(
                f"The training data has {len(train_src)} examples, fewer than one global "
                f"batch. Use a smaller batch size. Received: batch_size={batch}"
            )
        self.steps = min(steps, options.steps_per_epoch) if options.steps_per_epoch else steps
        self.monitor = "val_loss" if val_src is not None else "loss"
        self.history, self.start_epoch, self.started = [], 0, time.time()
        self.step_seconds = None
        self._stop = StopOnInterrupt()
        self._build_state()
        self._seed = tf.constant(options.seed, tf.int32)
        # One tf.function per run, each of its own Python function: TensorFlow counts
        # retracing per Python function, and every run traces once.
        def train_step(x, step):
            return self._distributed_step(x, step)

        def train_steps(iterator, first_step, count):
            return self._steps_on_iterator(iterator, first_step, count)

        def eval_step(x):
            return self._eval_batch(x)

        self._train_step = tf.function(train_step, jit_compile=options.jit_compile)
        self._train_steps = tf.function(train_steps)
        self._eval_step = tf.function(eval_step)

    # ------------------------------------------------------------------ state
    def _build_state(self):
        o = self.options
        with self.strategy.scope():
            self.optimizer = make_optimizer(o.optimizer, o.learning_rate, o.precision,
                                            o.lr_schedule, o.epochs * self.steps)
            self.model.compile(optimizer=self.optimizer)
            self.optimizer.build(self.model.trainable_variables)
            self.epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.checkpoints = None
        if o.out_dir:
            os.makedirs(o.out_dir, exist_ok=True)
            self.checkpoints = RunCheckpoints(o.out_dir, self.task_index, self.model,
                                              self.optimizer, self.epoch_var)
            if o.resume and self.checkpoints.latest:
                records.check_resumable(o.out_dir, self)
                self.history = self.checkpoints.restore()
                if o.verbose:
                    print(_resume_line(self.checkpoints.latest, int(self.epoch_var.numpy()),
                                       o.epochs))
        self.start_epoch = int(self.epoch_var.numpy())
        self.epochs_saved = len(self.history)  # the epochs the last checkpoint holds
        self._record = None  # what run.json says of this run: None, "running", "finished"

    @property
    def kept_history(self):
        """The history of the epochs that are checkpointed (all of them without `out_dir`)."""
        return self.history[:self.epochs_saved] if self.checkpoints else self.history

    # ------------------------------------------------------------- compiled steps
    def _replica_step(self, x, step):
        model, opt = self.model, self.optimizer
        rid = tf.distribute.get_replica_context().replica_id_in_sync_group
        noise_seed = tf.stack([self._seed, tf.cast(step, tf.int32)])
        with tf.GradientTape() as tape:
            x_hat, z_mean, z_log_var = model.forward(
                x, training=True, seed=noise_seed, replica_index=rid,
                num_replicas=self.replicas,
            )
            terms = model.per_example_terms(x, x_hat, z_mean, z_log_var)
            loss = tf.reduce_sum(terms["loss"]) / self.options.batch_size
            loss = loss + tf.cast(model.penalty(), tf.float32) / self.replicas
            scaled = opt.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        sums = {k: tf.reduce_sum(v) for k, v in terms.items()}
        sums["penalty"] = tf.cast(model.penalty(), tf.float32) / self.replicas
        return sums

    def _distributed_step(self, x, step):
        out = self.strategy.run(self._replica_step, args=(x, step))
        return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                for k, v in out.items()}

    def _steps_on_iterator(self, iterator, first_step, count):
        # `count` steps in one call (Keras's steps_per_execution): batches are read
        # inside the graph and no Python runs between the steps. Sums are float64 in
        # step order, as a Python-side running sum of the per-step values would be.
        out = self._train_step(next(iterator), first_step)
        totals = {k: tf.cast(v, tf.float64) for k, v in out.items()}
        for i in tf.range(tf.constant(1, tf.int64), count):
            out = self._train_step(next(iterator), first_step + i)
            totals = {k: totals[k] + tf.cast(out[k], tf.float64) for k in totals}
        return totals

    def _eval_batch(self, x):
        model = self.model
        x_hat, z_mean, z_log_var = model.forward(
            x, training=False, sample=model.variational,
            seed=tf.constant([self.options.seed, 0], tf.int32),
        )
        terms = model.per_example_terms(x, x_hat, z_mean, z_log_var)
        return {k: tf.reduce_sum(v) for k, v in terms.items()}

    # ---------------------------------------------------------------- epochs
    def _steps_this_call(self, left):
        # One step per call when the caller's callbacks may read every batch's logs;
        # else up to STEPS_PER_EXECUTION, and with a live progress bar as many as take
        # about PROGRESS_SECONDS, so the bar still moves. Under multi-worker every
        # worker must run the same steps per call (the calls hold collective ops), so
        # there the count depends on nothing local: no timing, no verbosity, no
        # callbacks (which then see the logs of every STEPS_PER_EXECUTION-th batch).
        if self.multi_worker:
            return min(STEPS_PER_EXECUTION, left)
        if self.options.callbacks:
            return 1
        if self.options.verbose == 1:
            wanted = 1 if self.step_seconds is None else int(
                PROGRESS_SECONDS / max(self.step_seconds, 1e-6))
            return max(1, min(wanted, STEPS_PER_EXECUTION, left))
        return min(STEPS_PER_EXECUTION, left)

    def _callbacks(self):
        o = self.options
        cbs = list(o.callbacks)
        if o.early_stopping:
            cbs.append(keras.callbacks.EarlyStopping(monitor=self.monitor,
                                                     patience=int(o.early_stopping)))
        if o.out_dir and o.tensorboard and self.is_chief:
            cbs.append(keras.callbacks.TensorBoard(os.path.join(o.out_dir, "logs")))
        return keras.callbacks.CallbackList(
            cbs, add_history=True, add_progbar=o.verbose != 0, model=self.model,
            verbose=o.verbose, epochs=o.epochs, steps=self.steps,
        )

    def _pipeline(self):
        # One pipeline for the whole run: epoch e holds `steps` global batches in the
        # order drawn from (seed, e), whichever epoch the run starts (or resumes) at.
        o = self.options
        dist = self.strategy.distribute_datasets_from_function(
            lambda ctx: self.train_src.dataset(
                o.batch_size, shuffle=o.shuffle, seed=o.seed,
                epochs=range(self.start_epoch, o.epochs), steps=self.steps,
                drop_remainder=True,
                shard=(ctx.input_pipeline_id, self.replicas // ctx.num_input_pipelines,
                       self.per_replica),
            )
        )
        return iter(dist)

    def _train_epoch(self, epoch, iterator, cb_list):
        totals, seen, i, logs = {}, 0, 0, {}
        t0 = time.time()
        while i < self.steps:
            self._stop.check(lambda: self._interrupted(
                epoch, f"step {i} of {self.steps} done" if i else "before its first step"))
            count = self._steps_this_call(self.steps - i)
            cb_list.on_train_batch_begin(i)
            t_call = time.perf_counter()
            out = self._train_steps(iterator, tf.constant(epoch * self.steps + i, tf.int64),
                                    tf.constant(count, tf.int64))
            for k, v in out.items():
                totals[k] = totals.get(k, 0.0) + float(v)
            if not all(math.isfinite(v) for v in totals.values()):
                raise self._diverged(epoch, i, count, totals)
            self.step_seconds = (time.perf_counter() - t_call) / count
            i += count
            seen += count * self.options.batch_size
            logs = {k: totals[k] / seen for k in totals if k != "penalty"}
            if "penalty" in totals and totals["penalty"]:
                logs["loss"] = logs["loss"] + totals["penalty"] / i
            cb_list.on_train_batch_end(i - 1, logs)
        return dict(logs), seen, time.time() - t0

    def _diverged(self, epoch, done, count, totals):
        where = ("validation" if count == 0 else f"step {done + 1} of {self.steps}" if count == 1
                 else f"steps {done + 1}-{done + count} of {self.steps}")
        value = next(v for v in totals.values() if not math.isfinite(v))
        return TrainingDiverged(
            f"The loss became {value} in epoch {epoch + 1}, {where}; "
            f"training stopped and nothing of this epoch was saved (the last checkpoint, "
            f"model.keras and best.keras hold the epochs before). Lower the learning rate "
            f"(now {self.options.learning_rate:g}: try --lr {self.options.learning_rate / 10:g}), "
            f"or check the data for extreme values, and rerun with --no-resume. "
            f"Received: loss={value}"
        )

    def _interrupted(self, epoch, where):
        out_dir, o = self.options.out_dir, self.options
        if epoch is None:
            n = len(self.history)
            return (f"{self._stop.cause} came as training ended: "
                    + (f"all {n} epochs ran" if n != 1 else "its one epoch ran")
                    + (f" and {out_dir} holds the finished run." if out_dir else "."))
        kept = (f"{out_dir} keeps the checkpoint of epoch {epoch}: run again with the same "
                "output directory to resume" if out_dir and epoch else
                "no epoch had finished" if out_dir else "nothing was saved (no out_dir)")
        return f"Training stopped by {self._stop.cause} in epoch {epoch + 1} of {o.epochs} ({where}); {kept}."

    def _evaluate(self, epoch):
        totals, n = {}, 0
        for x in self.val_src.dataset(256, shuffle=False):
            self._stop.check(lambda: self._interrupted(epoch, "during validation"))
            for k, v in self._eval_step(x).items():
                totals[k] = totals.get(k, 0.0) + float(v)
            n += int(x.shape[0])
        return {f"val_{k}": v / n for k, v in totals.items()}

    def _save_epoch(self, epoch, row, best):
        out_dir = self.options.out_dir
        improved = best is None or row[self.monitor] < best
        if self.is_chief:
            if improved:
                save_model(self.model, os.path.join(out_dir, "best.keras"))
            save_model(self.model, os.path.join(out_dir, "model.keras"))
            records.write_history_csv(os.path.join(out_dir, "history.csv"), self.history)
        self.checkpoints.save(epoch, self.history)
        self.epochs_saved = len(self.history)
        return row[self.monitor] if improved else best

    def run(self):
        """Trains from the start (or last checkpoint) to `options.epochs`; a `FitResult`."""
        try:
            return self._run()
        except BaseException as e:
            error = self._explained(e)
            if self._record == "running":  # never left saying so: interrupted or failed
                records.write_end(self.options.out_dir, self, error)
            if error is e:
                raise
            raise error from None

    def _explained(self, error):
        # A file that does not decode surfaces as an OpError: name it (folders know how).
        if isinstance(error, tf.errors.OpError):
            for src in (self.train_src, self.val_src):
                explained = getattr(src, "explain_error", lambda e: e)(error)
                if explained is not error:
                    return explained
        return error

    def _run(self):
        o = self.options
        cb_list = self._callbacks()
        self.model.stop_training = False
        cb_list.on_train_begin()
        best = min((r[self.monitor] for r in self.history if self.monitor in r), default=None)
        self.started = time.time()
        if o.out_dir and self.is_chief and self.start_epoch < o.epochs:
            records.write_start(o.out_dir, self)
            self._record = "running"
        with self._stop:
            self._epochs(cb_list, best)
            cb_list.on_train_end()
            run = records.run_record(self)
            self._finish(run)
            # Ctrl-C after the last step: the run is complete, and the caller still hears it.
            self._stop.check(lambda: self._interrupted(None, None))
        return records.FitResult(model=self.model, history=self.history, run=run,
                                 out_dir=o.out_dir)

    def _epochs(self, cb_list, best):
        o = self.options
        iterator = self._pipeline()
        for epoch in range(self.start_epoch, o.epochs):
            cb_list.on_epoch_begin(epoch)
            logs, seen, elapsed = self._train_epoch(epoch, iterator, cb_list)
            if self.val_src is not None:
                logs.update(self._evaluate(epoch))
                if not all(math.isfinite(v) for v in logs.values()):
                    raise self._diverged(epoch, self.steps, 0, logs)
            self.history.append({"epoch": epoch, **{k: float(v) for k, v in logs.items()},
                                 "images_per_second": seen / elapsed, "seconds": elapsed})
            self.epoch_var.assign(epoch + 1)
            if o.out_dir:
                best = self._save_epoch(epoch, self.history[-1], best)
            cb_list.on_epoch_end(epoch, logs)
            if self.model.stop_training:
                break

    def _finish(self, run):
        out_dir = self.options.out_dir
        if out_dir and self.is_chief:
            if not os.path.exists(os.path.join(out_dir, "model.keras")):
                save_model(self.model, os.path.join(out_dir, "model.keras"))
            trained = self.start_epoch < self.options.epochs
            if trained or not os.path.exists(os.path.join(out_dir, "run.json")):
                records.write_run(out_dir, run)  # nothing trained: the record stays the run's
            self._record = "finished"
        elif out_dir:
            # Other workers keep their own copy next to their checkpoints, so that
            # replicas can be compared (they must hold the same weights).
            save_model(self.model, os.path.join(self.checkpoints.directory, "model.keras"))
