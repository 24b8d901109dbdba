"""Streamed datasets: a user's own `tf.data.Dataset`, and TFDS splits without random access.

A stream is read in its own order, example by example; nothing is held in
memory. Every input pipeline reads the same stream and keeps its rows of each
global batch (the same rows `epoch_order` would give it), so N replicas and N
workers split every global batch exactly as for a random-access source, and all
of them run the same number of steps (uneven shards would hang the collectives).
Decoding, where the stream holds encoded images (TFDS), happens after that
choice, so each pipeline decodes only its own rows.

A user's dataset keeps the user's order (kerasae does not shuffle it: shuffle it
yourself with `reshuffle_each_iteration=True`); a resumed run reads it again
from its start. A TFDS stream is shuffled with a buffer seeded by (seed, epoch),
so a resumed epoch reads the same order.
"""

import numpy as np

from kerasae.data import ranges
from kerasae.data.source import DataError, Source

SHUFFLE_BUFFER = 10_000


class StreamSource(Source):
    """A dataset read as a stream. `make(epoch)` returns its unbatched examples.

    Examples are `(image, label)` pairs (label `-1` where there is none), the image
    either ready (`dtype`, `image_shape`) or encoded, then `decode(image)` makes it so.
    """

    random_access = False

    def __init__(self, make, length, *, image_shape, dtype, decode=None, has_labels=False,
                 shuffle_buffer=0, labels=None, **kwargs):
        super().__init__(**kwargs)
        self._make, self._length, self._decode = make, int(length), decode
        self.image_shape, self.dtype = tuple(image_shape), np.dtype(dtype)
        self.has_labels, self.shuffle_buffer = has_labels, int(shuffle_buffer)
        self._labels = labels

    def __len__(self):
        return self._length

    @property
    def labels(self):
        """The labels, read by one pass over the stream (once), or `None`."""
        if not self.has_labels:
            return None
        if self._labels is None:
            ys = [y for _, y in self._make(0).as_numpy_iterator()]
            self._labels = np.asarray(ys, dtype="int64")[: len(self)]
        return self._labels

    def load_batch(self, indices):
        idx = np.asarray(indices, dtype="int64")
        if len(idx) and np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
            return self._read(int(idx[0]), len(idx))
        raise DataError(
            f"{self.name!r} is read as a stream, in order: it has no random access. "
            f"Read it with dataset() or batches(). Received: indices={idx[:5].tolist()}..."
        )

    def batches(self, batch_size=256, *, start=0, stop=None):
        stop = len(self) if stop is None else min(int(stop), len(self))
        ds = self._stream(0, shuffle=False, seed=0).skip(start).take(stop - start)
        for i, (x, _) in enumerate(ds.batch(batch_size).as_numpy_iterator()):
            yield start + i * batch_size, _to_float(x, self.dtype)

    def _read(self, first, count):
        ds = self._stream(0, shuffle=False, seed=0).skip(first).take(count)
        return np.stack([x for x, _ in ds.as_numpy_iterator()]) if count else \
            np.zeros((0,) + self.image_shape, self.dtype)

    def _stream(self, epoch, *, shuffle, seed, shard=None, batch_size=None, steps=None,
                drop_remainder=False):
        import tensorflow as tf

        ds = self._make(epoch)
        if shuffle and self.shuffle_buffer:
            ds = ds.shuffle(self.shuffle_buffer, seed=tf.cast(seed, tf.int64) * 1_000_003
                            + tf.cast(epoch, tf.int64), reshuffle_each_iteration=False)
        n = len(self)
        if drop_remainder or shard is not None:
            n -= n % batch_size
        if steps is not None:
            n = min(n, int(steps) * batch_size)
        ds = ds.take(n)
        if shard is not None:
            index, count, per_replica = shard
            lo, hi = index * count * per_replica, (index + 1) * count * per_replica
            ds = ds.enumerate().filter(
                lambda i, example: tf.logical_and(i % batch_size >= lo, i % batch_size < hi))
            ds = ds.map(lambda i, example: example)
        if self._decode is not None:
            decode = self._decode
            ds = ds.map(lambda x, y: (decode(x), y), num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
        return ds

    def dataset(self, batch_size=128, *, shuffle=True, seed=0, epoch=0, epochs=None,
                steps=None, drop_remainder=False, with_labels=False, shard=None,
                reshuffle_each_iteration=False, prefetch=True, raw=False):
        """A `tf.data.Dataset` of float32 image batches, as `Source.dataset` (see above)."""
        import tensorflow as tf

        if with_labels and not self.has_labels:
            raise DataError(f"Dataset {self.name!r} has no labels. Received: with_labels=True")
        kwargs = dict(shuffle=shuffle, seed=seed, shard=shard, batch_size=batch_size,
                      steps=steps, drop_remainder=drop_remainder)
        if epochs is None:
            ds = self._stream(epoch, **kwargs)
        else:
            epochs = tf.data.Dataset.from_tensor_slices(np.asarray(list(epochs), "int64"))
            ds = epochs.flat_map(lambda e: self._stream(e, **kwargs))
        per_batch = batch_size if shard is None else shard[2]
        ds = ds.batch(per_batch, drop_remainder=drop_remainder or shard is not None)
        scale = self.dtype == np.uint8

        def finish(x, y):
            if not raw:
                x = tf.cast(x, tf.float32) / 255.0 if scale else tf.cast(x, tf.float32)
            return (x, tf.cast(y, tf.int32)) if with_labels else x

        ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if not scale and not raw:
            ds = ranges.check_dataset(ds, f"The dataset {self.name!r}")  # floats: [0, 1]?
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF)
        ds = ds.with_options(options)
        return ds.prefetch(tf.data.AUTOTUNE) if prefetch else ds


def _to_float(x, dtype):
    return x.astype("float32") / 255.0 if dtype == np.uint8 else x.astype("float32")


# ------------------------------------------------------------- tf.data
def _image_and_label(spec):
    """`(image spec, label spec or None, how to split an element)` of a dataset's elements."""
    import tensorflow as tf

    if isinstance(spec, dict):
        key = next((k for k in ("image", "images", "x") if k in spec), None)
        if key is None:
            raise DataError(
                "A dict element needs an image under 'image' (or 'images', 'x'). "
                f"Received: keys={sorted(spec)}"
            )
        label_key = next((k for k in ("label", "labels", "y") if k in spec), None)
        return spec[key], spec.get(label_key), lambda e: (e[key], e[label_key] if label_key
                                                          else tf.constant(-1, tf.int64))
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise DataError(
                "Tuple elements must be (images, labels). "
                f"Received: {len(spec)} components"
            )
        return spec[0], spec[1], lambda x, y: (x, y)
    return spec, None, lambda x: (x, tf.constant(-1, tf.int64))


def _batched(shape):
    """Whether an element shape is a batch (see `from_tf_dataset`)."""
    rank, first = len(shape), shape[0]
    if rank == 4:
        return True
    if rank == 3:
        if shape[-1] in (1, 3, 4) and shape[1] is None:
            return False  # one image of unknown size, e.g. tf.io.decode_png's (None, None, 3)
        return first is None or shape[-1] not in (1, 3, 4)
    if rank == 2:
        return first is None
    return False


def _count(ds):
    import tensorflow as tf

    n = int(ds.cardinality())
    if n == int(tf.data.INFINITE_CARDINALITY):
        raise DataError(
            "The dataset is infinite (it repeats), so it has no epochs. Pass it without "
            ".repeat(): kerasae reads it once per epoch. Received: cardinality=infinite"
        )
    if n >= 0:
        return n
    return int(ds.reduce(np.int64(0), lambda count, _: count + 1))


def from_tf_dataset(ds, *, name="tf.data", length=None):
    """A `Source` of a user's `tf.data.Dataset`, batched or not.

    Elements are images, `(images, labels)` or a dict with an `"image"` (and
    `"label"`) key; images `(H, W, C)` unbatched or `(batch, H, W, C)` batched
    (grayscale without a channel axis and flat vectors are read likewise), uint8
    in [0, 255] or float in [0, 1], of one fixed size. kerasae re-batches them to
    its global batch size and keeps their order (see the module docstring).

    Args:
        ds: the dataset.
        name: a name for `run.json`. Defaults to `"tf.data"`.
        length: the number of examples, if known; else it is counted once.
    """
    import tensorflow as tf

    image_spec, _, _ = _image_and_label(ds.element_spec)
    if _batched(tuple(image_spec.shape)):
        ds = ds.unbatch()
    image_spec, label_spec, split = _image_and_label(ds.element_spec)
    elements, shape = ds.map(split), tuple(image_spec.shape)
    if len(shape) == 2:
        elements, shape = elements.map(lambda x, y: (x[..., None], y)), shape + (1,)
    if None in shape or not shape:
        raise DataError(
            f"The dataset's images have no fixed size ({shape}); kerasae needs one. Resize "
            "them in the pipeline, e.g. ds.map(lambda x: tf.image.resize(x, (64, 64)) / 255). "
            f"Received: element_spec={ds.element_spec}"
        )
    dtype = image_spec.dtype
    if dtype != tf.uint8 and not dtype.is_floating:
        raise DataError(
            f"Images must be uint8 (0..255) or float in [0, 1]. Received: dtype={dtype.name}")
    out = "uint8" if dtype == tf.uint8 else "float32"
    elements = elements.map(lambda x, y: (tf.cast(x, out), tf.cast(y, tf.int64)))
    return StreamSource(lambda epoch: elements, _count(elements) if length is None else length,
                        image_shape=shape, dtype=out, has_labels=label_spec is not None,
                        name=name, split="all", route="tf.data")
