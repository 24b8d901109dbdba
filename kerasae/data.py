"""Datasets for autoencoders: TFDS names, offline raw IDX files, `digits`, arrays.

Every route ends in the same place: an in-memory `Source` of channels-last
images (uint8, or float32 already in [0, 1]) plus optional labels, from which
`Source.dataset(...)` makes a `tf.data.Dataset` of float32 images in [0, 1],
shuffled with a seed, batched by the global batch size and prefetched.

Routes for a name (in this order for `source="auto"`):

1. a TFDS dataset already prepared under `data_dir` (no network);
2. for `mnist` / `fashion_mnist`: the original raw IDX files (`.gz` or not)
   in `raw_dir`, `$KERASAE_RAW_DATA`, or the Debian location of
   `apt-get install dataset-fashion-mnist`. The *decompressed* bytes are
   checked against pinned sha256 values, so re-gzipped copies pass and damaged
   ones do not. Examples come out in TFDS's own order (see `tfds_order`), so
   both routes yield identical splits;
3. a TFDS download (`download_and_prepare`), tried only when the download
   host answers, so an offline machine fails in seconds, not minutes;
4. otherwise one error listing the ways to fix it.

`digits` (8x8 scikit-learn digits) needs nothing; arrays and `.npz` files are
taken as they are.
"""

import dataclasses
import gzip
import hashlib
import os
import re
import socket

import numpy as np

RAW_ENV = "KERASAE_RAW_DATA"

# sha256 of the DECOMPRESSED IDX files. Fashion-MNIST values were measured here
# on the Debian package's files; the MNIST values are the published checksums
# of the original files.
RAW_DATASETS = {
    "fashion_mnist": {
        "dirs": ("/usr/share/datasets/fashion-mnist",),
        "apt": "apt-get install dataset-fashion-mnist",
        "files": {
            "train": (
                ("train-images-idx3-ubyte",
                 "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
                ("train-labels-idx1-ubyte",
                 "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
            ),
            "test": (
                ("t10k-images-idx3-ubyte",
                 "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
                ("t10k-labels-idx1-ubyte",
                 "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
            ),
        },
        "labels": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                   "Shirt", "Sneaker", "Bag", "Ankle boot"),
    },
    "mnist": {
        "dirs": ("/usr/share/datasets/mnist",),
        "apt": None,
        "files": {
            "train": (
                ("train-images-idx3-ubyte",
                 "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
                ("train-labels-idx1-ubyte",
                 "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
            ),
            "test": (
                ("t10k-images-idx3-ubyte",
                 "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
                ("t10k-labels-idx1-ubyte",
                 "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
            ),
        },
        "labels": tuple(str(i) for i in range(10)),
    },
}
SPLIT_SIZES = {"train": 60000, "test": 10000}


class DataError(ValueError):
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
                raise ValueError(
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


# --------------------------------------------------------------------- public
def load(name, split="train", *, batch_size=128, shuffle=None, seed=0,
         with_labels=False, drop_remainder=False, data_dir=None, raw_dir=None,
         source="auto", download=True):
    """Loads a dataset as a batched, shuffled, prefetched `tf.data.Dataset`.

    Args:
        name: a TFDS image dataset name (`"fashion_mnist"`, `"mnist"`,
            `"cifar10"`, ...), `"digits"`, a path to a `.npz` / `.npy` file, or a
            numpy array of images.
        split: split, e.g. `"train"`, `"test"`, `"train[:10%]"`, `"test[:500]"`.
            Defaults to `"train"`.
        batch_size: global batch size. Defaults to `128`.
        shuffle: shuffle with `seed`, in a new order on every pass over the
            dataset (e.g. every Keras epoch; the sequence of orders is
            reproducible from `seed`, together with TensorFlow's global seed
            if one is set); defaults to `True` for train splits.
        seed: shuffling seed. Defaults to `0`.
        with_labels: yield `(images, labels)`. Defaults to `False`.
        drop_remainder: drop the last partial batch. Defaults to `False`.
        data_dir: TFDS data directory. Defaults to TFDS's default.
        raw_dir: directory of raw IDX files (MNIST family). Defaults to
            `$KERASAE_RAW_DATA`, then the Debian location.
        source: `"auto"`, `"tfds"` or `"raw"`. Defaults to `"auto"`.
        download: allow a TFDS download. Defaults to `True`.

    Returns:
        A `tf.data.Dataset` of float32 images in [0, 1], shape
        `(batch, H, W, C)`.

    Example:
        >>> import kerasae
        >>> ds = kerasae.data.load("digits", batch_size=32)
        >>> next(iter(ds)).shape
        TensorShape([32, 8, 8, 1])
    """
    src = get_source(name, split, data_dir=data_dir, raw_dir=raw_dir, source=source,
                     download=download)
    if shuffle is None:
        shuffle = src.split.startswith("train")
    return src.dataset(batch_size, shuffle=shuffle, seed=seed, reshuffle_each_iteration=True,
                       with_labels=with_labels, drop_remainder=drop_remainder)


def load_numpy(name, split="test", **kwargs):
    """Returns `(images, labels)` as numpy: float32 images in [0, 1], labels or None."""
    src = get_source(name, split, **kwargs)
    return src.numpy(), src.labels


def get_source(name, split="train", *, data_dir=None, raw_dir=None, source="auto",
               download=True):
    """Resolves `name` to an in-memory `Source` (see the module docstring)."""
    if isinstance(name, Source):
        return name
    if isinstance(name, np.ndarray):
        return from_array(name)
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(
            "Dataset must be a name, a .npz/.npy path or a numpy array. "
            f"Received: dataset={type(name).__name__}"
        )
    name = os.fspath(name)
    if source not in ("auto", "tfds", "raw"):
        raise DataError(f"source must be 'auto', 'tfds' or 'raw'. Received: source={source!r}")
    if name.endswith((".npz", ".npy")):
        return from_file(name)
    if name == "digits":
        return _digits(split)
    return _named(name, split, data_dir, raw_dir, source, download)


def from_array(images, labels=None, name="array"):
    """A `Source` from an image array: uint8 [0, 255] or float in [0, 1].

    `(n, H, W)` gets a channel axis; `(n, D)` stays flat (for dense models).
    """
    x = np.asarray(images)
    if x.dtype == object or x.ndim < 2:
        raise DataError(
            "Images must be a numeric array of shape (n, H, W[, C]) or (n, D). "
            f"Received: shape={x.shape}, dtype={x.dtype}"
        )
    if len(x) == 0:
        raise DataError(f"The image array is empty. Received: shape={x.shape}")
    if x.ndim == 3:
        x = x[..., None]
    if x.dtype != np.uint8:
        x = x.astype("float32")
        lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-6 or hi > 1.0 + 1e-6:
            raise DataError(
                "Float images must lie in [0, 1] (divide uint8 images by 255, or pass "
                f"them as uint8). Received: min={lo:g}, max={hi:g}"
            )
    y = None if labels is None else np.asarray(labels).astype("int64").reshape(-1)
    if y is not None and len(y) != len(x):
        raise DataError(
            f"Got {len(x)} images but {len(y)} labels. Received: labels.shape={y.shape}"
        )
    return Source(x, y, name=name, split="all", route="array")


def from_file(path):
    """A `Source` from `.npz` (arrays `x` or `images`, optional `y` / `labels`) or `.npy`."""
    if not os.path.isfile(path):
        raise DataError(f"No such file: {path!r}. Received: dataset={path!r}")
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataError(
            f"Could not read {path!r} as numpy data without pickles ({e}). Save "
            "plain numeric arrays with np.savez(path, x=images, y=labels)."
        ) from e
    if path.endswith(".npy"):
        return from_array(data, name=os.path.basename(path))
    keys = list(data.keys())
    x_key = next((k for k in ("x", "images", "x_train") if k in keys), None)
    if x_key is None:
        if len(keys) != 1:
            raise DataError(
                f"{path!r} holds arrays {keys}; name the images 'x' (and labels 'y'), "
                "e.g. np.savez(path, x=images, y=labels)."
            )
        x_key = keys[0]
    y_key = next((k for k in ("y", "labels", "y_train") if k in keys), None)
    return from_array(data[x_key], None if y_key is None else data[y_key],
                      name=os.path.basename(path))


# ------------------------------------------------------------------- splits
_SLICE = re.compile(r"^(\w+)(?:\[(-?\d*)(%?):(-?\d*)(%?)\])?$")


def _slice(split, n):
    m = _SLICE.match(split)
    if not m:
        raise DataError(
            "Split must look like 'train', 'test', 'train[:1000]' or 'train[10%:20%]'. "
            f"Received: split={split!r}"
        )
    start, pct_a, end, pct_b = m.group(2), m.group(3), m.group(4), m.group(5)

    def bound(v, pct, default):
        if v in (None, ""):
            return default
        v = int(v)
        return int(round(n * v / 100)) if pct else v

    return m.group(1), slice(bound(start, pct_a, 0), bound(end, pct_b, n))


def _digits(split):
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype("uint8")[..., None]
    # A fixed, documented split: a seed-0 permutation, the first 360 are test.
    perm = np.random.RandomState(0).permutation(len(images))
    parts = {"train": np.sort(perm[360:]), "test": np.sort(perm[:360]),
             "all": np.arange(len(images))}
    base = _SLICE.match(split).group(1) if _SLICE.match(split) else split
    if base not in parts:
        raise DataError(
            f"digits has splits train, test and all. Received: split={split!r}"
        )
    _, sl = _slice(split, len(parts[base]))
    keep = parts[base][sl]
    return Source(images[keep], d.target[keep].astype("int64"), name="digits",
                  split=split, route="embedded", label_names=tuple(map(str, range(10))))


# ---------------------------------------------------------------- raw IDX
def raw_dirs(raw_dir=None, name="fashion_mnist"):
    """Directories searched for raw files, in order."""
    dirs = []
    if raw_dir:
        dirs.append(os.fspath(raw_dir))
    if os.environ.get(RAW_ENV):
        dirs.extend(os.environ[RAW_ENV].split(os.pathsep))
    dirs.extend(RAW_DATASETS[name]["dirs"])
    return dirs


def _find(stem, dirs):
    for d in dirs:
        for candidate in (os.path.join(d, stem), os.path.join(d, stem + ".gz")):
            if os.path.isfile(candidate):
                return candidate
    return None


def read_idx(path, expected_sha256=None):
    """Reads an IDX file (gzipped or not) into a numpy array, verifying its content.

    The sha256 is taken over the decompressed bytes, so any re-compression of
    the original file passes and any change to the data does not.
    """
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            with open(path, "rb") as f:
                raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(
            f"Could not read {path}: {e}. The file is truncated or damaged; "
            "re-download it (or reinstall the package that provides it)."
        ) from e
    if expected_sha256 is not None:
        got = hashlib.sha256(raw).hexdigest()
        if got != expected_sha256:
            raise DataError(
                f"{path} does not hold the original data: sha256 of its content is "
                f"{got[:12]}..., expected {expected_sha256[:12]}.... It is damaged, "
                "truncated or a different file; replace it with the original."
            )
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(dims)):
        raise DataError(
            f"{path} is truncated: its header promises {dims} values but it holds "
            f"{len(raw) - offset} bytes of data. Re-download it."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def tfds_order(split, n):
    """The order TFDS writes a generated split in: keys sorted by md5(split + key).

    TFDS keys MNIST-family examples by their index in the raw file and sorts
    them by an md5 hash salted with the split name (documented as stable in
    `tensorflow_datasets/core/hashing.py`). Applying the same permutation to the
    raw files makes both routes yield identical examples in identical order.
    """
    salt = hashlib.md5(split.encode("utf-8"))

    def key(i):
        h = salt.copy()
        h.update(str(i).encode("utf-8"))
        return int(h.hexdigest(), 16)

    return np.array(sorted(range(n), key=key), dtype="int64")


def load_raw(name, split, raw_dir=None):
    """Reads a raw MNIST-family split from local IDX files, in TFDS order."""
    spec = RAW_DATASETS[name]
    base, sl = _slice(split, 0)
    if base not in spec["files"]:
        raise DataError(
            f"{name} has splits {', '.join(spec['files'])}. Received: split={split!r}"
        )
    dirs = raw_dirs(raw_dir, name)
    (img_stem, img_sha), (lab_stem, lab_sha) = spec["files"][base]
    img_path, lab_path = _find(img_stem, dirs), _find(lab_stem, dirs)
    if img_path is None or lab_path is None:
        missing = img_stem if img_path is None else lab_stem
        raise FileNotFoundError(
            f"Raw file {missing}[.gz] for {name} not found in: {', '.join(dirs)}."
        )
    images = read_idx(img_path, img_sha)
    labels = read_idx(lab_path, lab_sha)
    order = tfds_order(base, len(images))
    _, sl = _slice(split, len(images))
    keep = order[sl]
    return Source(images[keep][..., None], labels[keep].astype("int64"), name=name,
                  split=split, route="raw", label_names=spec["labels"])


# -------------------------------------------------------------------- TFDS
def _tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(
            f"Loading named datasets needs tensorflow-datasets ({e}). "
            "Install it with: pip install tensorflow-datasets importlib_resources"
        ) from e
    return tfds


def _tfds_builder(name, data_dir):
    tfds = _tfds()
    try:
        return tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # TFDS raises its own DatasetNotFoundError
        if type(e).__name__ != "DatasetNotFoundError":
            raise
        import difflib

        names = tfds.list_builders()
        close = difflib.get_close_matches(name, names + ["digits"], n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise DataError(
            f"Unknown dataset {name!r}.{hint} Use a TFDS image dataset name "
            "(see tfds.list_builders()), 'digits', or a path to a .npz file. "
            f"Received: dataset={name!r}"
        ) from None


def _host_reachable(host, port=443, timeout=3.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _download_hosts(builder):
    hosts = {"storage.googleapis.com"}
    for attr in ("URL",):
        url = getattr(type(builder), attr, None)
        if isinstance(url, str) and "://" in url:
            hosts.add(url.split("://", 1)[1].split("/", 1)[0])
    return sorted(hosts)


def _from_tfds(builder, name, split):
    tfds = _tfds()
    features = builder.info.features
    image_key = next(
        (k for k, f in features.items() if isinstance(f, tfds.features.Image)), None
    )
    if image_key is None:
        raise DataError(
            f"TFDS dataset {name!r} has no image feature; kerasae needs images. "
            f"Received: dataset={name!r}"
        )
    shape = features[image_key].shape
    if None in shape:
        raise DataError(
            f"TFDS dataset {name!r} has images of varying size {shape}; resize them "
            "to one size and pass a numpy array or .npz instead."
        )
    label_key = next(
        (k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)), None
    )
    try:
        data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    except Exception as e:
        raise DataError(f"TFDS could not read split {split!r} of {name!r}: {e}") from e
    labels = None if label_key is None else data[label_key].astype("int64")
    names = tuple(features[label_key].names) if label_key else ()
    return Source(data[image_key].astype("uint8"), labels, name=name, split=split,
                  route="tfds", label_names=names)


def _named(name, split, data_dir, raw_dir, source, download):
    if source == "raw" and name not in RAW_DATASETS:
        raise DataError(
            f"Raw files are supported for {', '.join(RAW_DATASETS)} only; use "
            f"source='tfds' for {name!r}. Received: source='raw'"
        )
    problems = []
    builder = None
    if source in ("auto", "tfds"):
        builder = _tfds_builder(name, data_dir)
        if builder.is_prepared():
            return _from_tfds(builder, name, split)
        problems.append(f"no prepared TFDS copy in {builder.data_dir}")
    if source in ("auto", "raw") and name in RAW_DATASETS:
        try:
            return load_raw(name, split, raw_dir)
        except FileNotFoundError as e:
            problems.append(str(e))
    if source in ("auto", "tfds") and download:
        hosts = _download_hosts(builder)
        if all(_host_reachable(h) for h in hosts):
            builder.download_and_prepare()
            return _from_tfds(builder, name, split)
        problems.append(f"TFDS cannot download it (no connection to {', '.join(hosts)})")
    fixes = [
        "connect to the internet and rerun (TFDS downloads and prepares it once)",
        "or prepare it with TFDS on a connected machine and pass its data_dir "
        "(--data-dir)",
    ]
    if name in RAW_DATASETS:
        spec = RAW_DATASETS[name]
        if spec["apt"]:
            fixes.append(f"or install the raw files: {spec['apt']}")
        fixes.append(
            f"or put the original IDX files ({', '.join(s for s, _ in spec['files']['train'])}, "
            f"...; .gz or not) in a directory and pass it as raw_dir (--raw-dir) or "
            f"${RAW_ENV}"
        )
    raise DataError(
        f"Could not load {name!r} split {split!r}: " + "; ".join(problems) + ". To fix: "
        + "; ".join(fixes) + "."
    )


def prepare_tfds_from_raw(name, data_dir, raw_dir=None):
    """Builds a real TFDS dataset of `name` in `data_dir` from local raw IDX files.

    For machines where TFDS cannot download and rejects re-compressed files as a
    manual download (their archive checksums differ): the content is verified
    here instead, then TFDS's own builder writes its usual files, which
    `tfds.load(name, data_dir=data_dir)` reads like any downloaded copy.

    Returns:
        The TFDS builder, prepared.
    """
    tfds = _tfds()
    if name not in RAW_DATASETS:
        raise DataError(
            f"Only {', '.join(RAW_DATASETS)} can be prepared from raw files. "
            f"Received: name={name!r}"
        )
    registered = type(tfds.builder(name, data_dir=data_dir))
    spec = RAW_DATASETS[name]
    dirs = raw_dirs(raw_dir, name)

    paths = {}
    for split, files in spec["files"].items():
        for stem, sha in files:
            path = _find(stem, dirs)
            if path is None:
                raise FileNotFoundError(
                    f"Raw file {stem}[.gz] for {name} not found in: {', '.join(dirs)}."
                )
            read_idx(path, sha)  # verify before handing it to TFDS
            paths[stem] = path

    class _FromRawFiles(registered, skip_registration=True):
        name = registered.name

        def _split_generators(self, dl_manager):
            del dl_manager
            out = []
            for split, ((img, _), (lab, _)) in spec["files"].items():
                out.append(tfds.core.SplitGenerator(
                    name=split,
                    gen_kwargs=dict(num_examples=SPLIT_SIZES[split],
                                    data_path=paths[img], label_path=paths[lab]),
                ))
            return out

    import tempfile

    with tempfile.TemporaryDirectory(prefix="kerasae-idx-") as tmp:
        paths = {stem: _decompressed(path, tmp) for stem, path in paths.items()}
        builder = _FromRawFiles(data_dir=data_dir)
        builder.download_and_prepare()
    return builder


def _decompressed(path, tmp):
    # TFDS's MNIST reader expects extracted files.
    if not path.endswith(".gz"):
        return path
    out = os.path.join(tmp, os.path.basename(path)[:-3])
    with gzip.open(path, "rb") as f, open(out, "wb") as g:
        g.write(f.read())
    return out
