"""Image folders as datasets: flat, class sub-folders, or `train/` + `test/` (or `val/`) splits.

Layouts, as `keras.utils.image_dataset_from_directory` reads them:

- flat: `DIR/*.png` -- no labels;
- classes: `DIR/<class>/**/*.png` -- labels are the indices of the sorted class names;
- splits: `DIR/train/...` and `DIR/test/...` (or `val/`, `validation/`), each flat or
  with classes (the class names of all splits together, sorted).

Files are listed in sorted order and decoded inside the `tf.data` pipeline (see
`kerasae.data.images`). Without `image_size` every image must have one size
(checked from the file headers, naming two files that differ); with it, images
are sized by the `resize` rule. A file that does not decode is named with the fix
(`skip_bad=True` / `--skip-bad` leaves such files out, counted).
"""

import concurrent.futures
import os

import numpy as np

from kerasae._util.errors import MissingFile
from kerasae.data import images as image_ops
from kerasae.data.source import DataError, Source
from kerasae.data.splits import SPLIT_PATTERN, slice_split

SPLIT_DIRS = {"train": ("train",), "test": ("test", "val", "validation"),
              "val": ("val", "validation", "test"), "validation": ("validation", "val", "test")}
_HEADER_THREADS = 8


def _is_image(name):
    return not name.startswith(".") and name.lower().endswith(image_ops.IMAGE_SUFFIXES)


def _images_below(folder):
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [os.path.join(root, f) for f in sorted(files) if _is_image(f)]
    return out


def _subdirs(folder):
    return sorted(d for d in os.listdir(folder)
                  if not d.startswith(".") and os.path.isdir(os.path.join(folder, d)))


def _layout(folder):
    """`(files, class names or None)` of one flat or class-structured folder."""
    top = sorted(f for f in os.listdir(folder)
                 if _is_image(f) and os.path.isfile(os.path.join(folder, f)))
    classes = [d for d in _subdirs(folder) if _images_below(os.path.join(folder, d))]
    if top and classes:
        raise DataError(
            f"{folder!r} holds both image files and class folders ({', '.join(classes[:3])}"
            f"...). Put every image in a class folder, or point at a flat folder. "
            f"Received: dataset={folder!r}"
        )
    if classes:
        return {c: _images_below(os.path.join(folder, c)) for c in classes}, classes
    return {None: [os.path.join(folder, f) for f in top]}, None


def has_split_folders(root):
    """Whether the folder `root` holds `train/` and a `test/` (or `val/`) folder."""
    present = {d.lower() for d in _subdirs(root)}
    return "train" in present and bool(present & {"test", "val", "validation"})


def scan(root, split):
    """`(files, labels or None, class names)` of `split` of the folder `root`."""
    base = SPLIT_PATTERN.match(split).group(1) if SPLIT_PATTERN.match(split) else split
    present = {d.lower(): d for d in _subdirs(root)}
    split_dirs = [present[d] for d in ("train", "test", "val", "validation") if d in present]
    if "train" in present and len(split_dirs) > 1:
        wanted = next((present[d] for d in SPLIT_DIRS.get(base, (base,)) if d in present), None)
        if wanted is None:
            raise DataError(
                f"{root!r} has the split folders {', '.join(split_dirs)}, none for split "
                f"{split!r}. Received: split={split!r}"
            )
        by_class, classes = _layout(os.path.join(root, wanted))
        all_classes = sorted({c for d in split_dirs
                              for c in (_layout(os.path.join(root, d))[1] or [])}) or None
    elif base in ("train", "all"):
        by_class, classes = _layout(root)
        all_classes = classes
    else:
        raise DataError(
            f"{root!r} has no {base}/ folder, so it has no split {split!r}: it is one "
            "split. Hold out a fraction instead (validation=0.1, --validation 0.1), or add "
            f"train/ and test/ folders. Received: split={split!r}"
        )
    files, labels = [], []
    for cls, names in by_class.items():
        files += names
        labels += [0 if cls is None else all_classes.index(cls)] * len(names)
    if not files:
        raise DataError(
            f"{root!r} holds no image files ({', '.join(image_ops.IMAGE_SUFFIXES)}). Point "
            f"at a folder of images or of class folders. Received: dataset={root!r}"
        )
    _, sl = slice_split(split, len(files))
    keep = np.arange(len(files))[sl]
    files = [files[i] for i in keep]
    labels = None if classes is None else np.asarray(labels, dtype="int64")[keep]
    return files, labels, tuple(all_classes or ())


def _header(path):
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0], im.mode
    except Exception:  # noqa: BLE001 - any unreadable header counts as a bad file
        return None


def read_headers(files):
    """`[(height, width, PIL mode) or None]` of every file, read in threads (headers only)."""
    with concurrent.futures.ThreadPoolExecutor(_HEADER_THREADS) as pool:
        return list(pool.map(_header, files, chunksize=256))


def _channels(headers, color_mode):
    if color_mode is not None:
        return image_ops.COLOR_MODES[color_mode]
    modes = {h[2] for h in headers if h is not None}
    return 1 if modes <= {"L", "1", "I", "I;16", "I;16B", "I;16L", "F"} else 3


def _common_size(files, headers):
    sizes = {}
    for path, h in zip(files, headers):
        if h is not None:
            sizes.setdefault(h[:2], path)
        if len(sizes) > 1:
            (s1, f1), (s2, f2) = list(sizes.items())[:2]
            raise DataError(
                f"The images have different sizes: {f1!r} is {s1[0]}x{s1[1]} but {f2!r} is "
                f"{s2[0]}x{s2[1]} (height x width). Pass image_size (--image-size 64, or "
                f"64x48) to size them all, by center crop (the default), pad or stretch "
                f"(--resize). Received: image_size=None"
            )
    return next(iter(sizes))


class FolderSource(Source):
    """Image files decoded (and sized) in the pipeline; labels from class folders, if any."""

    def __init__(self, files, labels, *, image_shape, resize, image_size, name, split,
                 label_names=()):
        super().__init__(name=name, split=split, route="folder", label_names=label_names)
        self.files, self.labels = list(files), labels
        self.image_shape, self.resize, self.image_size = tuple(image_shape), resize, image_size

    def __len__(self):
        return len(self.files)

    def info(self):
        return dict(super().info(), image_size=None if self.image_size is None
                    else list(self.image_size), resize=self.resize)

    def element_fn(self):
        """The TensorFlow function `index -> uint8 image` of this folder."""
        import tensorflow as tf

        paths = tf.constant(self.files)
        channels, size, mode = self.image_shape[-1], self.image_size, self.resize
        shape = list(self.image_shape)

        def load(i):
            x = image_ops.decode(tf.io.read_file(tf.gather(paths, i)), channels)
            x = image_ops.fit(x, size, mode) if size is not None else x
            return tf.ensure_shape(x, shape)

        return load

    def load_batch(self, indices):
        import tensorflow as tf

        load = self.element_fn()
        idx = np.asarray(indices, dtype="int64")
        if len(idx) == 0:
            return np.zeros((0,) + self.image_shape, "uint8")
        ds = tf.data.Dataset.from_tensor_slices(idx).map(
            load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        try:
            return np.stack([x.numpy() for x in ds])
        except tf.errors.OpError as e:
            raise self.explain_error(e, idx) from None

    def bad_files(self, indices=None):
        """The indices (of `indices`, default all) whose files do not decode."""
        import tensorflow as tf

        load = self.element_fn()
        idx = np.arange(len(self)) if indices is None else np.asarray(indices)
        ds = tf.data.Dataset.from_tensor_slices(idx.astype("int64"))
        ds = ds.map(lambda i: (i, load(i)), num_parallel_calls=tf.data.AUTOTUNE)
        good = ds.map(lambda i, x: i).ignore_errors()
        return sorted(set(idx.tolist()) - {int(i) for i in good.as_numpy_iterator()})

    def explain_error(self, error, indices=None):
        """A `DataError` naming the files that do not decode (the cause of `error`)."""
        bad = self.bad_files(indices)
        if not bad:
            return error
        names = ", ".join(repr(self.files[i]) for i in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        return DataError(
            f"{len(bad)} image file(s) of {self.name!r} could not be decoded (damaged, "
            f"truncated or not an image): {names}{more}. Replace or remove them, or pass "
            f"skip_bad=True (--skip-bad) to leave them out. Received: files={len(self)}"
        )


def folder(path, split="train", *, image_size=None, color_mode=None, resize="crop",
           skip_bad=False):
    """A `Source` of an image folder (see the module docstring for the layouts).

    Args:
        path: the folder.
        split: `"train"`, `"test"` (also `val/`, `validation/` folders), a slice such
            as `"train[:80%]"`, or `"all"`. A folder without split folders is one
            split, `"train"` (or `"all"`). Defaults to `"train"`.
        image_size: `None` (every image has one size), `64`, or `(height, width)`.
        color_mode: `"grayscale"`, `"rgb"`, `"rgba"`, or `None`: grayscale if every
            file is, else RGB. Defaults to `None`.
        resize: `"crop"`, `"pad"` or `"stretch"` (see `kerasae.data.images`), for
            images whose size is not `image_size`. Defaults to `"crop"`.
        skip_bad: leave out files that do not decode (found by decoding every file
            once), instead of failing on the first batch that holds one.

    Returns:
        A `FolderSource`.
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        hint = (" Read an array file with kerasae.data.get_source(path) (or from_file)."
                if path.endswith((".npz", ".npy")) else "")
        raise DataError(f"{path!r} is a file, not a folder of images.{hint} "
                        f"Received: path={path!r}")
    if not os.path.isdir(path):
        raise MissingFile(f"No such folder: {path!r}. Received: dataset={path!r}")
    size = image_ops.parse_image_size(image_size)
    image_ops.check_modes(color_mode, resize)
    files, labels, classes = scan(path, split)
    headers = read_headers(files)
    unreadable = [f for f, h in zip(files, headers) if h is None]
    if unreadable and not skip_bad:
        raise DataError(
            f"{len(unreadable)} file(s) of {path!r} are not images that can be read: "
            f"{', '.join(map(repr, unreadable[:5]))}. Remove them, or pass skip_bad=True "
            f"(--skip-bad). Received: files={len(files)}"
        )
    keep = [i for i, h in enumerate(headers) if h is not None]
    files, headers = [files[i] for i in keep], [headers[i] for i in keep]
    labels = None if labels is None else labels[keep]
    channels = _channels(headers, color_mode)
    hw = size if size is not None else _common_size(files, headers)
    src = FolderSource(files, labels, image_shape=hw + (channels,), resize=resize,
                       image_size=size, name=path, split=split, label_names=classes)
    if skip_bad:
        bad = set(src.bad_files())
        left = [i for i in range(len(src)) if i not in bad]
        skipped = len(unreadable) + len(bad)
        if skipped:
            print(f"kerasae: skipped {skipped} image file(s) of {path!r} that do not "
                  f"decode; {len(left)} left.")
        if not left:
            raise DataError(f"No image of {path!r} decodes. Received: files={len(files)}")
        src = FolderSource([src.files[i] for i in left],
                           None if labels is None else labels[left], image_shape=src.image_shape,
                           resize=resize, image_size=size, name=path, split=split,
                           label_names=classes)
    return src
