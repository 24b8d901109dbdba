"""What a use runs on: a dataset split, an array, a `Source`, or image files and folders.

Every form becomes `Inputs`: float32 images in [0, 1], `(n, H, W, C)`, with
optional labels, class names and file names.
"""

import dataclasses
import os

import numpy as np

from kerasae import data as data_lib
from kerasae._util.errors import InvalidType, InvalidValue, MissingFile
from kerasae.data.folders import has_split_folders
from kerasae.data.images import read_at

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm",
                  ".ppm", ".pbm", ".pnm")


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
        return Inputs(
            self.images[index],
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


def expand_files(paths):
    """Files and directories -> `[(file, name)]`: a directory's image files, found in it
    and below it (sorted, hidden ones skipped), named by their path inside it; a file
    named directly by its base name."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            found = []
            for root, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found += [os.path.join(root, n) for n in sorted(names)
                          if not n.startswith(".") and n.lower().endswith(IMAGE_SUFFIXES)]
            if not found:
                raise InvalidValue(
                    f"The directory {p!r} holds no image files ({', '.join(IMAGE_SUFFIXES)}). "
                    f"Point to a folder of images. Received: images={p!r}"
                )
            files += [(f, os.path.relpath(f, p)) for f in found]
        elif os.path.isfile(p):
            files.append((p, os.path.basename(p)))
        else:
            raise MissingFile(f"No such file or directory: {p!r}. Received: images={p!r}")
    if not files:
        raise InvalidValue("No image files were given. Received: images=[]")
    return files


_GRAY_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "F"}


def read_image(path):
    """One image file -> float32 `(H, W, C)` in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                mode = im.mode
            if mode in _GRAY_MODES:
                arr = np.asarray(im)
                if mode == "1":
                    arr = arr.astype("float32")
                elif mode.startswith("I;16") or mode == "I":
                    arr = arr.astype("float32") / 65535.0
                elif mode == "F":
                    arr = arr.astype("float32")
                else:
                    arr = arr.astype("float32") / 255.0
                arr = arr[..., None]
            elif mode in ("LA", "RGB", "RGBA"):
                arr = np.asarray(im).astype("float32") / 255.0
            else:
                arr = np.asarray(im.convert("RGB")).astype("float32") / 255.0
    except UnidentifiedImageError:
        raise InvalidValue(
            f"{path!r} is not an image file Pillow can read. Remove it or pass only "
            f"image files. Received: file={path!r}"
        ) from None
    except OSError as e:
        raise InvalidValue(
            f"Could not read the image {path!r} ({e}). Received: file={path!r}"
        ) from e
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise InvalidValue(
            f"Pixel values of {path!r} fall outside [0, 1] after scaling. "
            f"Received: min={arr.min():g}, max={arr.max():g}"
        )
    return arr


def _sized_note(sizing):
    h, w = sizing["image_size"]
    return f"{h}x{w} {sizing['color_mode']} (the model's input), {sizing['resize']}"


def to_channels(image, channels):
    """A float `(H, W, C)` image with `channels` channels: grey from RGB by the ITU-R 601
    weights (as `tf.image.rgb_to_grayscale`), grey repeated for RGB, alpha dropped or opaque."""
    c = image.shape[-1]
    if c == channels:
        return image
    rgb = image[..., :3] if c >= 3 else np.repeat(image[..., :1], 3, axis=-1)
    if channels == 1:
        grey = rgb @ np.asarray([0.2989, 0.5870, 0.1140], "float32") if c >= 3 else image[..., 0]
        return grey[..., None].astype("float32")
    if channels == 3:
        return rgb.astype("float32")
    alpha = image[..., -1:] if c in (2, 4) else np.ones(image.shape[:2] + (1,), "float32")
    return np.concatenate([rgb, alpha], axis=-1).astype("float32")


def _fit_image(image, shape, resize):
    # lazy: TensorFlow's resizing, only for files not already of the model's size
    from kerasae.data import images as image_ops

    image = to_channels(image, int(shape[-1]))
    if image.shape[:2] == tuple(shape[:2]):
        return image
    return np.asarray(image_ops.fit_float(image, tuple(shape[:2]), resize), dtype="float32")


def read_images(paths, *, shape=None, resize="crop", limit=None):
    """Image files (or directories of them) -> `Inputs` with file names.

    With `shape` (a model's input), each image is converted to its channels and
    sized to it by `resize` (`"crop"`, `"pad"` or `"stretch"`, as for folders);
    without, every image must have one size.
    """
    pairs = expand_files(paths)
    if limit is not None:
        pairs = pairs[:_positive_limit(limit)]
    files = [f for f, _ in pairs]
    arrays = [read_image(f) for f in files]
    description = {"files": len(files), "from": _common_dir(files)}
    if shape is not None:
        changed = sum(a.shape != tuple(shape) for a in arrays)
        arrays = [_fit_image(a, shape, resize) for a in arrays]
        if changed:
            description["sized"] = {"images": changed, "to": list(shape), "resize": resize}
    first = arrays[0].shape
    for f, a in zip(files, arrays):
        if a.shape != first:
            raise InvalidValue(
                f"All images must have the same size and channels; {files[0]!r} is "
                f"{_shape_text(first)} but {f!r} is {_shape_text(a.shape)}. "
                f"Received: shape={a.shape}"
            )
    names = [name for _, name in pairs]
    return Inputs(np.stack(arrays).astype("float32"), None, names, description=description)


def _common_dir(files):
    dirs = {os.path.dirname(os.path.abspath(f)) for f in files}
    return dirs.pop() if len(dirs) == 1 else None


def _shape_text(shape):
    return "x".join(str(int(d)) for d in shape)


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


def _from_dataset(dataset, split, limit, sizing):
    """A dataset's split as `Inputs`; a folder is read at the model's size (`sizing`)."""
    text = os.fspath(dataset)
    is_folder = os.path.isdir(os.path.expanduser(text))
    if split in (None, "auto"):
        split = default_split(text)
    src = data_lib.get_source(text, split, **(sizing if is_folder else {}))
    n = len(src) if limit is None else min(_positive_limit(limit), len(src))
    description = {"dataset": text, "split": src.split, "route": src.route}
    if is_folder and sizing:
        description.update(sized=_sized_note(sizing), resize=sizing["resize"])
    labels = None if src.labels is None else np.asarray(src.labels)[:n]
    files = getattr(src, "files", None)  # a folder's images, named by their path in it
    names = None if files is None else [os.path.relpath(f, text) for f in files[:n]]
    return Inputs(src.take(n), labels, names, tuple(src.label_names or ()), description)


def load_inputs(images=None, labels=None, *, dataset="fashion_mnist", split="auto",
                limit=None, shape=None, resize="crop"):
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

    Returns:
        `Inputs`.
    """
    sizing = read_at(shape, resize)
    if images is None:
        inputs = _from_dataset(dataset, split, limit, sizing)
        limit = None
    elif isinstance(images, Inputs):
        inputs = images
    elif isinstance(images, data_lib.Source):
        inputs = Inputs(images.numpy(), images.labels, None, tuple(images.label_names or ()),
                        {"source": images.name, "split": images.split})
    elif isinstance(images, np.ndarray):
        src = data_lib.from_array(images, labels)
        inputs = Inputs(src.numpy(), src.labels, None, (), {"array": list(images.shape)})
        labels = None
    elif _is_pathlike_input(images):
        inputs = read_images(images, shape=shape if sizing else None, resize=resize,
                             limit=limit)
        limit = None
    elif isinstance(images, (str, os.PathLike)):
        inputs = _from_dataset(images, split, limit, sizing)  # a folder or an array file
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


def check_images(model, images, what="images"):
    """Raises a clear ValueError unless `images` fit `model`'s input shape."""
    expected = tuple(int(d) for d in model.image_shape)
    shape = tuple(images.shape[1:])
    if shape != expected:
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
