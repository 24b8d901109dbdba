"""A dataset argument (a name, a file, an array, a `Source`) -> a `Source` or a `tf.data.Dataset`.

Routes for a name (in this order for `source="auto"`): a TFDS copy already
prepared under `data_dir`; for `mnist` / `fashion_mnist` the raw IDX files
(`kerasae.data.idx`); a TFDS download, tried only when its host answers; then
one error listing the fixes.
"""

import os

import numpy as np

from kerasae._util.errors import InvalidType
from kerasae.data import tfds as tfds_route
from kerasae.data.arrays import from_array, from_file
from kerasae.data.embedded import digits
from kerasae.data.idx import RAW_DATASETS, RAW_ENV, load_raw
from kerasae.data.source import DataError, Source


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
        raise InvalidType(
            "Dataset must be a name, a .npz/.npy path or a numpy array. "
            f"Received: dataset={type(name).__name__}"
        )
    name = os.fspath(name)
    if source not in ("auto", "tfds", "raw"):
        raise DataError(f"source must be 'auto', 'tfds' or 'raw'. Received: source={source!r}")
    if name.endswith((".npz", ".npy")):
        return from_file(name)
    if name == "digits":
        return digits(split)
    return _named(name, split, data_dir, raw_dir, source, download)



def _named(name, split, data_dir, raw_dir, source, download):
    if source == "raw" and name not in RAW_DATASETS:
        raise DataError(
            f"Raw files are supported for {', '.join(RAW_DATASETS)} only; use "
            f"source='tfds' for {name!r}. Received: source='raw'"
        )
    problems = []
    builder = None
    if source in ("auto", "tfds"):
        builder = tfds_route.builder(name, data_dir)
        if builder.is_prepared():
            return tfds_route.from_tfds(builder, name, split)
        problems.append(f"no prepared TFDS copy in {builder.data_dir}")
    if source in ("auto", "raw") and name in RAW_DATASETS:
        try:
            return load_raw(name, split, raw_dir)
        except FileNotFoundError as e:
            problems.append(str(e))
    if source in ("auto", "tfds") and download:
        hosts = tfds_route.download_hosts(builder)
        if all(tfds_route.host_reachable(h) for h in hosts):
            builder.download_and_prepare()
            return tfds_route.from_tfds(builder, name, split)
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



NAMED_ROUTES = ("tfds", "raw", "embedded")


def validation_source(data, validation, *, data_dir=None, raw_dir=None):
    """The validation `Source` of a run on `data`, or `None`: the one rule for it.

    `validation` is a `Source` (used as it is), a split name of the same named
    dataset (`"test"`; also when `data` is a `Source` that came from a name), or
    `None` / `"none"`. Array data and array files have no named splits, so a
    split name there means no validation.
    """
    if validation is None or isinstance(validation, Source):
        return validation
    if isinstance(validation, str) and validation.lower() == "none":
        return None
    if isinstance(data, Source):
        name = data.name if data.route in NAMED_ROUTES else None
    elif isinstance(data, (str, os.PathLike)) and not os.fspath(data).endswith((".npz", ".npy")):
        name = os.fspath(data)
    else:
        name = None
    if name is None or not validation:
        return None
    return get_source(name, validation, data_dir=data_dir, raw_dir=raw_dir)
