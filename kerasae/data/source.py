"""`Source`: images in memory plus labels, read as seeded, sharded `tf.data` batches."""

import dataclasses

import numpy as np

from kerasae._util.errors import InvalidValue, KerasaeError


class DataError(KerasaeError, ValueError):
    """A dataset could not be found, read or verified. The message says how to fix it."""


@dataclasses.dataclass
class Source:
    """Images in memory, channels last, plus optional integer labels.

    Attributes:
        images: uint8 in [0, 255] or float32 in [0, 1], shape `(n, H, W, C)`.
        labels: int array of shape `(n,)` or `None`.
        name: dataset name (or `"array"`).
        split: split string.
        route: how it was obtained: `tfds`, `raw`, `embedded` or `array`.
        label_names: class names, if known.
    """

    images: np.ndarray
    labels: np.ndarray = None
    name: str = "array"
    split: str = "train"
    route: str = "array"
    label_names: tuple = ()

    def __len__(self):
        return len(self.images)

    @property
    def image_shape(self):
        return tuple(self.images.shape[1:])

    def numpy(self):
        """All images as float32 in [0, 1]."""
        return to_float(self.images)

    def info(self):
        return {"name": self.name, "split": self.split, "route": self.route,
                "examples": len(self), "image_shape": list(self.image_shape)}

    def dataset(self, batch_size=128, *, shuffle=True, seed=0, epoch=0, epochs=None,
                steps=None, drop_remainder=False, with_labels=False, shard=None,
                reshuffle_each_iteration=False, prefetch=True):
        """A `tf.data.Dataset` of float32 image batches (and labels if asked).

        Shuffling is a permutation drawn from `seed + epoch` (see `epoch_order`).
        `epochs` (e.g. `range(3, 10)`) instead makes one dataset holding those
        epochs one after another, each shuffled as its own epoch and cut to
        `steps` batches if given, so that one pipeline serves a whole run and
        prefetching runs on across epoch boundaries. `shard=(index, count,
        per_replica)` yields one input pipeline's per-replica batches of every
        global batch (used by `kerasae.fit`). `reshuffle_each_iteration` draws a
        new order on every pass over the dataset instead (tf.data's seeded
        shuffle, as for `model.fit(dataset, epochs=...)`; not with `epochs`,
        `steps` or `shard`).
        """
        import tensorflow as tf

        if with_labels and self.labels is None:
            raise DataError(f"Dataset {self.name!r} has no labels. Received: with_labels=True")
        kwargs = dict(shuffle=shuffle, seed=seed, drop_remainder=drop_remainder,
                      shard=shard, steps=steps)
        if shuffle and reshuffle_each_iteration:
            if epochs is not None or steps is not None or shard is not None:
                raise InvalidValue(
                    "reshuffle_each_iteration cannot be combined with epochs, steps or "
                    f"shard. Received: epochs={epochs}, steps={steps}, shard={shard}")
            ds = tf.data.Dataset.range(len(self)).shuffle(
                len(self), seed=int(seed), reshuffle_each_iteration=True)
        elif epochs is None:
            ds = tf.data.Dataset.from_tensor_slices(
                epoch_order(len(self), batch_size, epoch=epoch, **kwargs))
        else:
            # TensorFlow keeps a numpy_function's Python function alive for good, so
            # this one holds a few integers, never the Source and its images.
            n = len(self)

            def order_of(e):
                return epoch_order(n, batch_size, epoch=e, **kwargs)

            def slices(e):
                order = tf.numpy_function(order_of, [e], tf.int64, stateful=False)
                order.set_shape([None])
                return tf.data.Dataset.from_tensor_slices(order)

            epochs = np.asarray(list(epochs), dtype="int64")
            ds = tf.data.Dataset.from_tensor_slices(epochs).flat_map(slices)
        per_batch = batch_size if shard is None else shard[2]
        ds = ds.batch(per_batch, drop_remainder=drop_remainder or shard is not None)
        images = tf.constant(self.images)
        labels = None if self.labels is None else tf.constant(self.labels.astype("int32"))
        scale = self.images.dtype == np.uint8

        def gather(idx):
            x = tf.gather(images, idx)
            x = tf.cast(x, tf.float32) / 255.0 if scale else tf.cast(x, tf.float32)
            if with_labels:
                return x, tf.gather(labels, idx)
            return x

        ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF
        )
        ds = ds.with_options(options)
        return ds.prefetch(tf.data.AUTOTUNE) if prefetch else ds


def epoch_order(n, batch_size, *, shuffle=True, seed=0, epoch=0, drop_remainder=False,
                shard=None, steps=None):
    """The indices of `n` examples for one epoch, in the order `Source.dataset` reads them.

    Shuffling is a permutation drawn from `seed + epoch`, so a resumed run sees
    the same order for the same epoch. `steps` keeps the first `steps` global
    batches. `shard=(index, count, per_replica)` keeps, from each global batch,
    the rows of one input pipeline: rows
    `[index * count * per_replica, (index + 1) * count * per_replica)`.
    """
    order = np.arange(n)
    if shuffle:
        order = np.random.default_rng([int(seed), int(epoch)]).permutation(n)
    if drop_remainder or shard is not None:
        order = order[: n - n % batch_size]
    if steps is not None:
        order = order[: int(steps) * batch_size]
    if shard is not None:
        index, count, per_replica = shard
        rows = count * per_replica
        # Keep this pipeline's rows of every global batch, in order.
        order = order.reshape(-1, batch_size)[:, index * rows:(index + 1) * rows]
    return order.reshape(-1).astype("int64")


def to_float(images):
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype("float32") / 255.0
    return images.astype("float32", copy=False)

