"""What a use runs on: a dataset split, an array, a `Source`, or image files and folders.

Every form becomes `Inputs`: float32 images in [0, 1], `(n, H, W, C)`, with
optional labels, class names and file names.
"""

import dataclasses
import os

import numpy as np

from kerasae import data as data_lib
from kerasae._util.errors import InvalidType, InvalidValue, MissingFile

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
    """Files and directories -> a sorted list of files (non-recursive, no hidden files)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            found = sorted(
                os.path.join(p, n) for n in os.listdir(p)
                if not n.startswith(".") and os.path.isfile(os.path.join(p, n))
            )
            if not found:
                raise InvalidValue(
                    f"The directory {p!r} holds no image files. Point to a folder of "
                    f"PNG/JPEG images. Received: images={p!r}"
                )
            files.extend(found)
        elif os.path.isfile(p):
            files.append(p)
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


def read_images(paths):
    """Image files (or directories of them) -> `Inputs` with file names."""
    files = expand_files(paths)
    arrays = [read_image(f) for f in files]
    first = arrays[0].shape
    for f, a in zip(files, arrays):
        if a.shape != first:
            raise InvalidValue(
                f"All images must have the same size and channels; {files[0]!r} is "
                f"{_shape_text(first)} but {f!r} is {_shape_text(a.shape)}. "
                f"Received: shape={a.shape}"
            )
    names = [os.path.basename(f) for f in files]
    return Inputs(np.stack(arrays).astype("float32"), None, names,
                  description={"files": len(files), "from": _common_dir(files)})


def _common_dir(files):
    dirs = {os.path.dirname(os.path.abspath(f)) for f in files}
    return dirs.pop() if len(dirs) == 1 else None


def _shape_text(shape):
    return "x".join(str(int(d)) for d in shape)


def load_inputs(images=None, labels=None, *, dataset="fashion_mnist", split="test",
                limit=None):
    """Resolves what a use runs on.

    Args:
        images: `None` (use `dataset`/`split`), a numpy array of images (uint8 or
            float in [0, 1]), a `kerasae.data.Source`, or image files/directories.
        labels: int labels for an array of images. Defaults to `None`.
        dataset: dataset name or `.npz`/`.npy` path used when `images` is `None`.
            Defaults to `"fashion_mnist"`.
        split: split of `dataset`. Defaults to `"test"`.
        limit: keep the first `limit` images. Defaults to all.

    Returns:
        `Inputs`.
    """
    if images is None:
        src = data_lib.get_source(dataset, split)
        inputs = Inputs(src.numpy(), src.labels, None, tuple(src.label_names or ()),
                        {"dataset": os.fspath(dataset), "split": src.split, "route": src.route})
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
        inputs = read_images(images)
    elif isinstance(images, (str, os.PathLike)):
        images = os.fspath(images)
        src = data_lib.get_source(images, split)
        inputs = Inputs(src.numpy(), src.labels, None, tuple(src.label_names or ()),
                        {"dataset": images, "split": src.split, "route": src.route})
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
        limit = int(limit)
        if limit < 1:
            raise InvalidValue(f"limit must be a positive integer. Received: limit={limit}")
        inputs = inputs.subset(np.arange(min(limit, len(inputs))))
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
