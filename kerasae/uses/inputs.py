"""What a use runs on: a dataset split, an array, a `Source`, or image files and folders.

Every form becomes `Inputs`: float32 images in [0, 1], `(n, H, W, C)`, with
optional labels, class names and file names.
"""

import dataclasses
import os

import numpy as np

from kerasae import data as data_lib
from kerasae._util.backend import require_tensorflow_backend
from kerasae._util.errors import InvalidType, InvalidValue
from kerasae.data.folders import has_split_folders
from kerasae.data.image_options import IMAGE_SUFFIXES, read_at, shape_fits
from kerasae.data.source import to_float
from kerasae.models import registry

BLOCK = 1000  # images read at a time by the uses that stream


class StreamedImages:
    """A dataset's first `n` images, read from its `Source` when indexed.

    Array-like enough for the uses that stream (`features`, `reduce`, `anomaly`): `len`,
    `shape`, `dtype`, `ndim`, and indexing by an int, a slice or an index array returns
    float32 numpy in [0, 1]. Nothing is kept between reads, so memory does not grow with
    `n`; `np.asarray` reads them all (only where that is meant). `subset` is a view of
    some of them (the source's images at `index`), read the same way.
    """

    dtype = np.dtype("float32")

    def __init__(self, source, n, index=None):
        self.source = source
        self.index = None if index is None else np.asarray(index, dtype="int64")
        count = int(n) if index is None else len(self.index)
        self.shape = (count,) + tuple(int(d) for d in source.image_shape)
        self.ndim = len(self.shape)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self[[range(len(self))[key]]][0]
        if isinstance(key, slice):
            idx = np.arange(len(self), dtype="int64")[key]
        else:
            idx = np.asarray(key)
            idx = np.nonzero(idx)[0] if idx.dtype == bool else idx.astype("int64").ravel()
        if self.index is not None:
            idx = self.index[idx]
        return to_float(self.source.load_batch(idx))

    def subset(self, index):
        """A view of the images at `index` (an index or boolean array); none is read."""
        idx = np.arange(len(self), dtype="int64")[np.asarray(index)]
        return StreamedImages(self.source, len(idx),
                              idx if self.index is None else self.index[idx])

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def blocks(self, size=BLOCK):
        """Yields `(first index, float32 images)`, `size` images at a time."""
        return blocks(self, size)


def blocks(images, size=BLOCK):
    """`(first index, float32 images)` of an array or `StreamedImages`, a block at a time."""
    for first in range(0, len(images), size):
        yield first, np.asarray(images[first:first + size], dtype="float32")


def shuffled_batches(batch_size, seed, *arrays):
    """A Keras `PyDataset` of the same rows of `arrays` (numpy or `StreamedImages`), in
    batches of `batch_size` in a new random order each epoch (one array: its batches;
    several: tuples), so that streamed images are read a batch at a time."""
    import keras  # lazy: TensorFlow only when training

    n = len(arrays[0])

    class Shuffled(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(n)

        def __len__(self):
            return -(-n // batch_size)

        def __getitem__(self, i):
            idx = np.sort(self.order[i * batch_size:(i + 1) * batch_size])
            parts = tuple(a[idx] for a in arrays)
            return parts[0] if len(parts) == 1 else parts

        def on_epoch_end(self):
            self.order = self.rng.permutation(n)

    return Shuffled()


def _images_of(src, n, stream):
    """`src`'s first `n` images: streamed when asked and `src` reads by index at one size."""
    fixed = all(d is not None for d in tuple(src.image_shape))
    if stream and fixed and src.random_access and len(src.image_shape) == 3:
        return StreamedImages(src, n)
    return src.take(n)


@dataclasses.dataclass
class Inputs:
    """Images as float32 in [0, 1], shape `(n, H, W, C)`, with optional labels and names."""

    images: np.ndarray
    labels: np.ndarray = None
    names: list = None
    label_names: tuple = ()
    description: dict = dataclasses.field(default_factory=dict)

    def __len__(self):
        return len(self.images)

    def subset(self, index):
        index = np.asarray(index)
        images = self.images
        return Inputs(
            images.subset(index) if isinstance(images, StreamedImages) else images[index],
            None if self.labels is None else self.labels[index],
            None if self.names is None else [self.names[i] for i in index],
            self.label_names, dict(self.description, subset=int(len(index))),
        )


def _is_pathlike_input(value):
    if isinstance(value, (list, tuple)):
        return len(value) > 0 and all(isinstance(v, (str, os.PathLike)) for v in value)
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if text.lower().endswith((".npz", ".npy")):
            return False  # an array file: a dataset, read by kerasae.data
        return os.path.exists(text) or text.lower().endswith(IMAGE_SUFFIXES) or "/" in text
    return False


def _sized_note(sizing):
    if "image_size" not in sizing:  # a model of any size: the images keep theirs
        return f"{sizing['color_mode']} at their own size (the model takes any size)"
    h, w = sizing["image_size"]
    return f"{h}x{w} {sizing['color_mode']} (the model's input), {sizing['resize']}"


def read_images(paths, *, shape=None, resize="crop", limit=None, skip_bad=False,
                max_pixels=None, stream=False):
    """Image files (or folders of them) -> `Inputs` with file names.

    Files are read by `kerasae.data.image_files` (the decoder of every route): with
    `shape` (a model's input), each image is converted to its channels and sized to
    it by `resize` (`"crop"`, `"pad"` or `"stretch"`) as it is read, so a large photo
    is never held at full size; without, every image must have one size.
    """
    sizing = read_at(shape, resize)
    src = data_lib.image_files(paths, skip_bad=skip_bad, max_pixels=max_pixels, **sizing)
    n = len(src) if limit is None else min(_positive_limit(limit), len(src))
    description = {"files": n, "from": src.name if os.path.isdir(src.name) else None}
    if sizing:
        description.update(sized=_sized_note(sizing), resize=resize)
    return Inputs(_images_of(src, n, stream), None, src.names[:n], description=description)


def _shape_text(shape):
    return "x".join("any" if d is None else str(int(d)) for d in shape)


def _positive_limit(limit):
    limit = int(limit)
    if limit < 1:
        raise InvalidValue(f"limit must be a positive integer. Received: limit={limit}")
    return limit


def default_split(dataset):
    """The split a use reads when none is named: the test split where the dataset has
    one (named datasets, folders with train/ + test/), else all of it."""
    text = os.path.expanduser(os.fspath(dataset))
    if os.path.isdir(text):
        return "test" if has_split_folders(text) else "all"
    return "all" if text.endswith((".npz", ".npy")) else "test"


def _from_dataset(dataset, split, limit, sizing, reading, stream=False):
    """A dataset's split as `Inputs`; a folder is read at the model's size (`sizing`)."""
    text = os.fspath(dataset)
    is_folder = os.path.isdir(os.path.expanduser(text))
    if split in (None, "auto"):
        split = default_split(text)
    src = data_lib.get_source(text, split, **(dict(sizing, **reading) if is_folder else {}))
    n = len(src) if limit is None else min(_positive_limit(limit), len(src))
    description = {"dataset": text, "split": src.split, "route": src.route}
    if is_folder and sizing:
        description.update(sized=_sized_note(sizing), resize=sizing["resize"])
    labels = None if src.labels is None else np.asarray(src.labels)[:n]
    files = getattr(src, "files", None)  # a folder's images, named by their path in it
    names = None if files is None else [os.path.relpath(f, text) for f in files[:n]]
    return Inputs(_images_of(src, n, stream), labels, names, tuple(src.label_names or ()),
                  description)


def load_inputs(images=None, labels=None, *, dataset="fashion_mnist", split="auto",
                limit=None, shape=None, resize="crop", skip_bad=False, max_pixels=None,
                stream=False):
    """Resolves what a use runs on.

    Args:
        images: `None` (use `dataset`/`split`), a numpy array of images (uint8 or
            float in [0, 1]), a `kerasae.data.Source`, or image files/directories.
        labels: int labels for an array of images. Defaults to `None`.
        dataset: dataset name, folder or `.npz`/`.npy` path used when `images`
            is `None`. Defaults to `"fashion_mnist"`.
        split: split of `dataset`; `"auto"` is the test split where there is
            one, else the whole dataset (see `default_split`). Defaults to `"auto"`.
        limit: keep the first `limit` images (only those are read). Defaults to all.
        shape: the model's input shape: image folders and files are read at it
            (converted to its channels, sized by `resize`). Defaults to `None`.
        resize: `"crop"`, `"pad"` or `"stretch"`. Defaults to `"crop"`.
        skip_bad: leave out image files that cannot be read. Defaults to `False`.
        max_pixels: the largest image decoded. Defaults to `$KERASAE_MAX_PIXELS`, else
            100 megapixels.
        stream: images read from files or a dataset stay there (`StreamedImages`,
            read a block at a time) instead of being loaded. Defaults to `False`.

    Returns:
        `Inputs`.
    """
    require_tensorflow_backend("kerasae's uses")
    sizing = read_at(shape, resize)
    reading = {"skip_bad": skip_bad, "max_pixels": max_pixels}
    if images is None:
        inputs = _from_dataset(dataset, split, limit, sizing, reading, stream)
        limit = None
    elif isinstance(images, Inputs):
        inputs = images
    elif isinstance(images, data_lib.Source):
        inputs = Inputs(images.numpy(), images.labels, None, tuple(images.label_names or ()),
                        {"source": images.name, "split": images.split})
    elif isinstance(images, np.ndarray):
        src = data_lib.from_array(images, labels,
                                  kind=None if shape is None else registry.input_kind(shape))
        inputs = Inputs(src.numpy(), src.labels, None, (), {"array": list(images.shape)})
        labels = None
    elif _is_pathlike_input(images):
        inputs = read_images(images, shape=shape, resize=resize, limit=limit, stream=stream,
                             **reading)
        limit = None
    elif isinstance(images, (str, os.PathLike)):
        inputs = _from_dataset(images, split, limit, sizing, reading, stream)  # a folder, an array
        limit = None
    else:
        raise InvalidType(
            "images must be None, a numpy array, a kerasae.data.Source, or image "
            f"file/directory paths. Received: images={type(images).__name__}"
        )
    if labels is not None:
        labels = np.asarray(labels).astype("int64").reshape(-1)
        if len(labels) != len(inputs):
            raise InvalidValue(
                f"Got {len(inputs)} images but {len(labels)} labels. "
                f"Received: labels.shape={labels.shape}"
            )
        inputs = dataclasses.replace(inputs, labels=labels)
    if limit is not None:
        inputs = inputs.subset(np.arange(min(_positive_limit(limit), len(inputs))))
    return inputs


def model_for_images(ref, images, what="images"):
    """`ref`'s model for `images`: a model of any size is fixed to their size first
    (`ModelRef.at_size`); raises a clear ValueError unless they fit it."""
    ref.at_size(np.shape(images)[1:])
    check_images(ref.model, images, what)
    return ref.model


def check_images(model, images, what="images"):
    """Raises a clear ValueError unless `images` fit `model`'s input shape."""
    expected = tuple(None if d is None else int(d) for d in model.image_shape)
    shape = tuple(images.shape[1:])
    if not shape_fits(expected, shape):
        hint = ""
        if len(shape) == len(expected) and shape[:-1] == expected[:-1]:
            hint = (f" The channels differ ({shape[-1]} vs {expected[-1]}): convert the "
                    f"images, e.g. PIL's .convert('{'L' if expected[-1] == 1 else 'RGB'}').")
        elif len(shape) == len(expected):
            hint = f" Resize the images to {expected[0]}x{expected[1]}."
        raise InvalidValue(
            f"The {what} are {_shape_text(shape)} but {model.name} expects "
            f"{_shape_text(expected)} (height x width x channels).{hint} "
            f"Received: shape={tuple(images.shape)}"
        )


def need_labels(inputs, use):
    if inputs.labels is None:
        raise InvalidValue(
            f"{use} needs class labels; use a labelled dataset (e.g. fashion_mnist) or "
            f"pass labels=. Received: labels=None"
        )


def label_name(inputs, k):
    names = inputs.label_names
    return names[k] if names and 0 <= k < len(names) else str(k)


def check_applies(use, model):
    """Raises a clear ValueError unless `use` applies to `model` (its family's contract;
    for a model of no registered family, the uses for its kind of input)."""
    name = getattr(model, "builder_name", None)
    uses = (registry.get_contract(name).applies() if name in registry.list_builders()
            else registry.USES_BY_KIND[model.input_kind])
    if use not in uses:
        raise InvalidValue(
            f"{use} does not apply to {model.name}, a model of {model.input_kind} inputs "
            f"{tuple(model.image_shape)}: it applies to {', '.join(uses)}. "
            f"Received: model={model.name!r}"
        )
