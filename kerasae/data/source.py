"""`Source`: a dataset read by index, in batches, as seeded and sharded `tf.data` pipelines.

A source never has to fit in memory: it knows how many examples it holds and
how to load a batch of them by index (an array or a memory-mapped file, image
files decoded in the pipeline, a TFDS random-access data source). Every epoch
reads a seeded permutation (`epoch_order`), so a resumed run and N replicas see
exactly the batches one uninterrupted device sees.
"""

import weakref

import numpy as np

from kerasae._util.errors import InvalidValue, KerasaeError


class DataError(KerasaeError, ValueError):
    """A dataset could not be found, read or verified. The message says how to fix it."""


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
    """uint8 images -> float32 in [0, 1]; float images as float32."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype("float32") / 255.0
    return images.astype("float32", copy=False)


class Source:
    """A dataset of images (channels last) and optional integer labels, read by index.

    Subclasses set `image_shape`, `dtype` (`uint8`: [0, 255], or `float32`: [0, 1]),
    `labels` (an int array or `None`) and implement `__len__` and one loader:
    `load_batch(indices) -> array` (numpy, for arrays and random-access stores) or
    `element_fn()` (a TensorFlow function of one index, for files decoded in the
    pipeline). `labels` is a small array (one int per example) even when the
    images are not in memory.

    Attributes:
        name: dataset name, path or `"array"`.
        split: split string.
        route: how it is read: `array`, `memmap`, `embedded`, `raw`, `tfds`,
            `folder`, `cache` or `tf.data`.
        label_names: class names, if known.
    """

    labels = None
    dtype = np.dtype("uint8")
    image_shape = ()
    random_access = True
    kind = "image"  # or "vector" (records) or "series" (windows): floats of any range

    def __init__(self, *, name="array", split="train", route="array", label_names=(),
                 kind="image"):
        self.name, self.split, self.route = name, split, route
        self.label_names = tuple(label_names or ())
        self.kind = kind

    def __len__(self):
        raise NotImplementedError

    def load_batch(self, indices):
        """Images at `indices` (an int64 array), as an array of `self.dtype`."""
        raise NotImplementedError

    element_fn = None

    # ---------------------------------------------------------------- reading
    def info(self):
        """What `run.json` records about the data."""
        info = {"name": self.name, "split": self.split, "route": self.route,
                "examples": len(self), "image_shape": list(self.image_shape)}
        return info if self.kind == "image" else dict(info, kind=self.kind)

    def take(self, n):
        """The first `n` images, float32 in [0, 1] (a few, e.g. for a picture)."""
        return to_float(self.load_batch(np.arange(min(int(n), len(self)), dtype="int64")))

    def batches(self, batch_size=256, *, start=0, stop=None):
        """Yields `(first index, float32 images)` of consecutive batches, in order."""
        stop = len(self) if stop is None else min(int(stop), len(self))
        for first in range(int(start), stop, batch_size):
            idx = np.arange(first, min(first + batch_size, stop), dtype="int64")
            yield first, to_float(self.load_batch(idx))

    def numpy(self):
        """All images as float32 in [0, 1]: only for data that fits in memory."""
        return to_float(self.load_batch(np.arange(len(self), dtype="int64")))

    def subset(self, indices, split=None):
        """A `Source` of the examples at `indices` (e.g. a validation fraction)."""
        return Subset(self, indices, split=split)

    # --------------------------------------------------------------- pipeline
    def dataset(self, batch_size=128, *, shuffle=True, seed=0, epoch=0, epochs=None,
                steps=None, drop_remainder=False, with_labels=False, shard=None,
                reshuffle_each_iteration=False, prefetch=True, raw=False):
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
        order = _order_dataset(len(self), batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
                               epochs=epochs, steps=steps, drop_remainder=drop_remainder,
                               shard=shard, reshuffle=reshuffle_each_iteration)
        per_batch = batch_size if shard is None else shard[2]
        drop = drop_remainder or shard is not None
        if self.element_fn is not None:
            load = self.element_fn()
            ds = order.map(lambda i: (i, load(i)), num_parallel_calls=tf.data.AUTOTUNE,
                           deterministic=True)
            ds = ds.batch(per_batch, drop_remainder=drop)
        else:
            ds = order.batch(per_batch, drop_remainder=drop)
            ds = ds.map(self._batch_loader(), num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
        labels = None if not with_labels else tf.constant(self.labels.astype("int32"))
        scale = self.dtype == np.uint8

        def finish(idx, x):
            if not raw:
                x = tf.cast(x, tf.float32) / 255.0 if scale else tf.cast(x, tf.float32)
            return (x, tf.gather(labels, idx)) if with_labels else x

        ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF
        )
        ds = ds.with_options(options)
        ds = ds.prefetch(tf.data.AUTOTUNE) if prefetch else ds
        # The loader holds this source weakly (see _batch_loader); the dataset holds it
        # for as long as the dataset (or one made from it) lives.
        ds._kerasae_source = self
        return ds

    def _batch_loader(self):
        import tensorflow as tf

        # TensorFlow keeps a numpy_function's Python function alive for good: it holds
        # the source weakly, so a run does not keep its data alive after it ends.
        ref, np_dtype = weakref.ref(self), self.dtype
        shape, dtype = (None,) + tuple(self.image_shape), tf.as_dtype(self.dtype)

        def read(idx):
            return np.ascontiguousarray(ref().load_batch(idx), dtype=np_dtype)

        def load(idx):
            x = tf.numpy_function(read, [idx], dtype, stateful=False)
            x.set_shape(shape)
            return idx, x

        return load


def _order_dataset(n, batch_size, *, shuffle, seed, epoch, epochs, steps, drop_remainder,
                   shard, reshuffle):
    """The dataset of example indices of `Source.dataset`, in reading order."""
    import tensorflow as tf

    kwargs = dict(shuffle=shuffle, seed=seed, drop_remainder=drop_remainder, shard=shard,
                  steps=steps)
    if shuffle and reshuffle:
        if epochs is not None or steps is not None or shard is not None:
            raise InvalidValue(
                "reshuffle_each_iteration cannot be combined with epochs, steps or "
                f"shard. Received: epochs={epochs}, steps={steps}, shard={shard}")
        return tf.data.Dataset.range(n).shuffle(n, seed=int(seed), reshuffle_each_iteration=True)
    if epochs is None:
        return tf.data.Dataset.from_tensor_slices(epoch_order(n, batch_size, epoch=epoch,
                                                              **kwargs))

    # Like the loader above, this numpy_function's function holds a few integers only.
    def order_of(e):
        return epoch_order(n, batch_size, epoch=e, **kwargs)

    def slices(e):
        order = tf.numpy_function(order_of, [e], tf.int64, stateful=False)
        order.set_shape([None])
        return tf.data.Dataset.from_tensor_slices(order)

    epochs = np.asarray(list(epochs), dtype="int64")
    return tf.data.Dataset.from_tensor_slices(epochs).flat_map(slices)


class ArraySource(Source):
    """Images in an array (in memory, or memory-mapped: read by index, never copied whole).

    Attributes:
        images: uint8 in [0, 255] or float32 in [0, 1], shape `(n, H, W, C)` or `(n, D)`.
        labels: int array of shape `(n,)` or `None`.
    """

    def __init__(self, images, labels=None, **kwargs):
        super().__init__(**kwargs)
        self.images = images
        self.labels = labels
        self.dtype = np.dtype(images.dtype)
        self.image_shape = tuple(images.shape[1:])

    def __len__(self):
        return len(self.images)

    def load_batch(self, indices):
        return self.images[np.asarray(indices)]


class Subset(Source):
    """The examples of `parent` at `indices`, in that order (a split of a split)."""

    def __init__(self, parent, indices, split=None):
        super().__init__(name=parent.name, split=split or parent.split, route=parent.route,
                         label_names=parent.label_names, kind=parent.kind)
        self.parent = parent
        self.indices = np.asarray(indices, dtype="int64")
        self.dtype, self.image_shape = parent.dtype, parent.image_shape
        self.labels = None if parent.labels is None else parent.labels[self.indices]

    def __len__(self):
        return len(self.indices)

    def load_batch(self, indices):
        return self.parent.load_batch(self.indices[np.asarray(indices)])

    def info(self):
        """The parent's record (its reading options too), with this subset's split and size."""
        return dict(self.parent.info(), split=self.split, examples=len(self))

    def explain_error(self, error, indices=None):
        """The parent's explanation of a pipeline error, for this subset's examples."""
        explain = getattr(self.parent, "explain_error", None)
        if explain is None:
            return error
        return explain(error, self.indices if indices is None
                       else self.indices[np.asarray(indices)])

    @property
    def element_fn(self):
        if self.parent.element_fn is None:
            return None

        def make():
            import tensorflow as tf

            inner = self.parent.element_fn()
            where = tf.constant(self.indices)
            return lambda i: inner(tf.gather(where, i))

        return make
