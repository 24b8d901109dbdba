"""A dataset argument -> a `Source` (`get_source`), a training and a validation `Source`
(`train_and_validation`), or a `tf.data.Dataset` (`load`).

A dataset argument is a `Source`, a `tf.data.Dataset`, an array or `(images,
labels)`, a folder of images, a `.npz` / `.npy` file, a `.csv` file or a DataFrame
(a table, or a series cut into windows: `kerasae.data.series.tabular`), `"digits"`,
or a dataset name. Routes for a name (in this order for `source="auto"`): a TFDS copy already
prepared under `data_dir`; for `mnist` / `fashion_mnist` the raw IDX files
(`kerasae.data.idx`); a TFDS download, tried only when its host answers; then
one error listing the fixes.
"""

import os

import numpy as np

from kerasae._util.errors import InvalidType, MissingFile
from kerasae.data import tfds as tfds_route
from kerasae.data.arrays import from_array, from_file
from kerasae.data.cache import cached
from kerasae.data.embedded import digits
from kerasae.data.folders import SPLIT_DIRS, folder
from kerasae.data.idx import RAW_DATASETS, RAW_ENV, load_raw
from kerasae.data.image_options import read_at
from kerasae.data.series import tabular
from kerasae.data.source import DataError, Source
from kerasae.data.streams import from_tf_dataset

NAMED_ROUTES = ("tfds", "raw", "embedded")
NO_VALIDATION = (None, False, "none", "None", "")


def _is_tf_dataset(data):
    return type(data).__module__.startswith("tensorflow") and hasattr(data, "element_spec")


def _looks_like_path(text):
    return os.sep in text or "/" in text or text.startswith((".", "~"))


def get_source(name, split="train", *, data_dir=None, raw_dir=None, source="auto",
               download=True, image_size=None, color_mode=None, resize="crop",
               skip_bad=False, cache=None, max_pixels=None, kind=None, columns=None,
               label=None, time_column=None, window=None, stride=None, impute=None,
               default_window=None):
    """Resolves a dataset argument (see the module docstring) to a `Source`.

    `image_size`, `color_mode`, `resize`, `skip_bad` and `max_pixels` apply to image
    folders (see `kerasae.data.folder`; `image_size` and `resize` also to TFDS images of
    varying size); `cache` is a directory for the decoded images of a folder
    (see `kerasae.data.cache`). `kind` says what the rows of an array are (`"image"`,
    `"vector"`, `"series"`: the model's input; by default, by the array's rank, see
    `kerasae.data.arrays`). `columns`, `label`, `time_column` and `impute` read a table
    (a `.csv` file, a DataFrame; an array or `.npz` / `.npy` file when one is given: see
    `kerasae.data.table`); `window` and `stride` cut a series into windows (see
    `kerasae.data.series`; a `.csv` file or an array `(T, C)` read for `kind="series"`
    is cut into windows of `default_window`, a series model's input length, when
    `window` is not given). Nothing is read whole: folders, `.csv` and `.npy` files and
    TFDS splits are read batch by batch.
    """
    data, labels = name, None
    if isinstance(name, (tuple, list)) and len(name) == 2 and all(
            isinstance(a, np.ndarray) for a in name):
        data, labels = name
    if isinstance(data, Source):
        src = data
    elif _is_tf_dataset(data):
        src = from_tf_dataset(data)
    elif (tab := tabular(data, kind, labels=labels, window=window, stride=stride,
                         default_window=default_window, columns=columns, label=label,
                         time_column=time_column, impute=impute)) is not None:
        _no_image_options(data, dict(image_size=image_size, color_mode=color_mode))
        src = tab
    elif isinstance(data, np.ndarray):
        src = from_array(data, labels, kind=kind)
    elif isinstance(data, (str, os.PathLike)):
        src = _from_text(os.fspath(data), split, data_dir, raw_dir, source, download,
                         dict(image_size=image_size, color_mode=color_mode, resize=resize,
                              skip_bad=skip_bad, max_pixels=max_pixels), kind)
    else:
        raise InvalidType(
            "A dataset is a name, a folder, a .csv/.npz/.npy path, an array or (images, "
            "labels), a DataFrame, a tf.data.Dataset or a kerasae.data.Source. "
            f"Received: dataset={type(data).__name__}"
        )
    return cached(src, cache) if cache else src


def _no_image_options(name, options):
    """Image sizing options given with arrays or a table: refused, they would do nothing."""
    given = [k for k in ("image_size", "color_mode") if options.get(k) is not None]
    if given:
        what = repr(name) if isinstance(name, (str, os.PathLike)) else "the data"
        raise DataError(
            f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} to image "
            f"folders (and TFDS images); {what} holds arrays, used as they are. "
            f"Resize them before saving, or put the images in a folder. Received: "
            f"{given[0]}={options[given[0]]!r}"
        )


def _from_text(name, split, data_dir, raw_dir, source, download, options, kind=None):
    if source not in ("auto", "tfds", "raw"):
        raise DataError(f"source must be 'auto', 'tfds' or 'raw'. Received: source={source!r}")
    if os.path.isdir(os.path.expanduser(name)):
        return folder(os.path.expanduser(name), split, **options)
    if name.endswith((".npz", ".npy")) or name == "digits":
        _no_image_options(name, options)
    if name.endswith((".npz", ".npy")):
        return from_file(name, kind=kind)
    if os.path.isfile(os.path.expanduser(name)):
        raise DataError(
            f"{name!r} is a single file. A dataset is a folder of images, a .npz, .npy or "
            ".csv file, 'digits' or a dataset name: to train on image files, put them in a "
            "folder and pass the folder. Received: dataset=" + repr(name))
    if _looks_like_path(name):
        raise MissingFile(
            f"No such file or folder: {name!r}. A dataset is a folder of images, a .npz, "
            f".npy or .csv file, 'digits' or a dataset name. Received: dataset={name!r}"
        )
    if name == "digits":
        return digits(split)
    return _named(name, split, data_dir, raw_dir, source, download, options)


def _split_fraction(value):
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if isinstance(value, bool) or not 0.0 < f < 1.0:
        return None
    return f


def _check_number(validation):
    """A number that is not a fraction in (0, 1) is a mistake, not a split name."""
    if isinstance(validation, bool) or _split_fraction(validation) is not None:
        return
    try:
        value = float(validation)
    except (TypeError, ValueError):
        return
    raise DataError(
        "A validation fraction must lie between 0 and 1 (exclusive), e.g. 0.1 holds out a "
        f"tenth of the training data. Received: validation={validation!r} ({value:g})"
    )


def train_and_validation(data, split="train", validation="auto", *, seed=0, **options):
    """The training `Source` and the validation `Source` (or `None`) of a run.

    `validation` is a split name of the same dataset (`"test"`), a fraction of the
    training data held out by a seeded draw (`0.1`; of a series, its last tenth of
    time steps: neighbouring windows overlap, so random windows would leak into
    training), a path, an array, a `Source` or a `tf.data.Dataset`, `"auto"` (the
    dataset's `test` split where it has one, else none), or `None` / `"none"`. One
    that cannot be used is an error, never dropped silently. Validation tables and
    series have their missing cells filled with the training data's statistics.
    """
    _check_number(validation)
    train = get_source(data, split, **options)
    if _split_fraction(validation):
        return _held_out(train, validation, seed)
    if options.get("impute") is not None and getattr(train, "fill", None) is not None:
        options = dict(options, impute=train)
    if isinstance(validation, str) and validation == "auto" and not _from_split_folder(train):
        return train, None
    at = read_at(train.image_shape)
    if train.route in ("folder", "cache") and options.get("image_size") is None and \
            at and isinstance(validation, str) and (
                os.path.isdir(os.path.expanduser(validation)) or not (
                    _looks_like_path(validation) or validation.endswith((".npz", ".npy")))):
        # Validation images are read as the training images are: same size and channels.
        options = dict(options, image_size=at["image_size"],
                       color_mode=options.get("color_mode") or at["color_mode"])
    val = validation_source(data, validation, **options)
    if val is not None and tuple(val.image_shape) != tuple(train.image_shape):
        raise DataError(
            f"The validation images of {val.name!r} have shape {tuple(val.image_shape)} but "
            f"the training images {tuple(train.image_shape)}; a model takes one shape. Pass "
            f"validation data of the training shape (or size folders with image_size, "
            f"--image-size). Received: validation={validation!r}"
        )
    return train, val


def _from_split_folder(src):
    """Whether `src` may be one split of a folder with split folders (always, for the
    other routes). The training files of such a folder all lie in its `train/` (or
    another split) folder; files listed anywhere else say it has no `test/` folder,
    so `validation="auto"` does not list the folder a second time to find out."""
    src = getattr(src, "origin", src)  # a cache keeps the source it was made from
    if src.route != "folder" or not getattr(src, "files", None):
        return True
    tops = {os.path.relpath(f, src.name).split(os.sep, 1)[0].lower() for f in src.files}
    return len(tops) == 1 and tops <= set(SPLIT_DIRS)


def _held_out(train, validation, seed):
    if not train.random_access:
        raise DataError(
            f"A fraction of {train.name!r} cannot be held out: it is read as a stream. "
            f"Pass a validation dataset instead. Received: validation={validation!r}"
        )
    if hasattr(train, "split_tail"):
        return train.split_tail(_split_fraction(validation))
    n = len(train)
    k = int(round(n * _split_fraction(validation)))
    if not 0 < k < n:
        raise DataError(
            f"validation={validation!r} of {n} examples leaves no validation or no training "
            f"example. Received: validation={validation!r}"
        )
    order = np.random.default_rng([int(seed), 104729]).permutation(n)
    return (train.subset(np.sort(order[k:]), split=f"{train.split} (training part)"),
            train.subset(np.sort(order[:k]), split=f"{train.split} ({validation} held out)"))


def validation_source(data, validation, **options):
    """The validation `Source` of a run on `data` given `validation` (see
    `train_and_validation`), except a fraction, which needs the training data."""
    if validation is None or validation is False or (
            isinstance(validation, str) and validation in NO_VALIDATION):
        return None
    if _split_fraction(validation):
        raise DataError(
            "A fraction is held out of the training data: use train_and_validation. "
            f"Received: validation={validation!r}"
        )
    if not isinstance(validation, str) or os.path.exists(os.path.expanduser(validation)) or \
            validation.endswith((".npz", ".npy", ".csv")) or _looks_like_path(validation):
        return get_source(validation, "all", **options)
    name = _split_name_of(data)
    auto = validation == "auto"
    if name is None:
        if auto:
            return None
        named = getattr(data, "name", None) or (
            os.fspath(data) if isinstance(data, (str, os.PathLike)) else None)
        what = repr(named) if named else "The given data"
        raise DataError(
            f"{what} has no named splits, so it has no "
            f"split {validation!r}. Pass a fraction to hold out (0.1), a dataset, or none. "
            f"Received: validation={validation!r}"
        )
    try:
        return get_source(name, "test" if auto else validation, **options)
    except DataError:
        if auto:
            return None
        raise


def _split_name_of(data):
    """The name whose splits a split-name validation refers to, or `None`."""
    if isinstance(data, Source):
        if data.route in NAMED_ROUTES or data.route in ("folder", "cache"):
            return data.name
        return None
    if isinstance(data, (str, os.PathLike)) and not os.fspath(data).lower().endswith(
            (".npz", ".npy", ".csv")):
        return os.fspath(data)
    return None


def load(name, split="train", *, batch_size=128, shuffle=None, seed=0,
         with_labels=False, drop_remainder=False, data_dir=None, raw_dir=None,
         source="auto", download=True, **options):
    """Loads a dataset as a batched, shuffled, prefetched `tf.data.Dataset`.

    Args:
        name: a dataset argument (see `get_source`): a TFDS image dataset name
            (`"fashion_mnist"`, `"mnist"`, `"cifar10"`, ...), `"digits"`, a folder
            of images, a path to a `.npz` / `.npy` file, or a numpy array.
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
        **options: `image_size`, `color_mode`, `resize`, `skip_bad`, `cache`
            (image folders; see `get_source`).

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
                     download=download, **options)
    if shuffle is None:
        shuffle = src.split.startswith("train")
    return src.dataset(batch_size, shuffle=shuffle, seed=seed,
                       reshuffle_each_iteration=src.random_access,
                       with_labels=with_labels, drop_remainder=drop_remainder)


def load_numpy(name, split="test", **kwargs):
    """Returns `(images, labels)` as numpy: float32 images in [0, 1], labels or None.

    For data that fits in memory; larger data is read with `get_source(...).batches()`.
    """
    src = get_source(name, split, **kwargs)
    return src.numpy(), src.labels


def _named(name, split, data_dir, raw_dir, source, download, options):
    if source == "raw" and name not in RAW_DATASETS:
        raise DataError(
            f"Raw files are supported for {', '.join(RAW_DATASETS)} only; use "
            f"source='tfds' for {name!r}. Received: source='raw'"
        )
    problems = []
    builder = None
    if source in ("auto", "tfds"):
        builder = tfds_route.builder(name, data_dir)
        if tfds_route.is_prepared(builder):
            return tfds_route.from_tfds(builder, name, split, image_size=options["image_size"],
                                         resize=options["resize"])
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
            return tfds_route.from_tfds(builder, name, split, image_size=options["image_size"],
                                         resize=options["resize"])
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
