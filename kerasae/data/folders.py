"""Image folders as datasets: flat, class sub-folders, or `train/` + `test/` (or `val/`) splits.

Layouts, as `keras.utils.image_dataset_from_directory` reads them:

- flat: `DIR/*.png` -- no labels;
- classes: `DIR/<class>/**/*.png` -- labels are the indices of the sorted class names;
- splits: `DIR/train/...` and `DIR/test/...` (or `val/`, `validation/`), each flat or
  with classes (the class names of all splits together, sorted).

Files are listed in sorted order and read by `kerasae.data.images` (one decoder
for every route) as the `tf.data` pipeline runs. Without `image_size` every image
must have one size (checked from the file headers, naming two files that differ);
with it, images are sized by the `resize` rule. Files that cannot be read are
named, all of them, with the reason and the fix (`skip_bad=True` / `--skip-bad`
leaves them out, counted). `image_files` reads a list of files and folders the
same way (the uses' `--images`).
"""

import concurrent.futures
import os

import numpy as np

from kerasae._util.errors import MissingFile
from kerasae.data import image_options as opts
from kerasae.data import images as image_ops
from kerasae.data.source import DataError, Source
from kerasae.data.splits import SPLIT_PATTERN, slice_split

SPLIT_DIRS = {"train": ("train",), "test": ("test", "val", "validation"),
              "val": ("val", "validation", "test"), "validation": ("validation", "val", "test")}
_HEADER_THREADS = 8
_DECODE_THREADS = 4
_DECODE_CHECK = 20_000  # files decoded to list every bad one once some header is bad


def _is_image(folder, name):
    # lstat: a broken link or a fifo named .png is listed (and then named as a bad file),
    # a directory named .png is not.
    return opts.is_image_name(name) and not os.path.isdir(os.path.join(folder, name))


def _images_below(folder):
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [os.path.join(root, f) for f in sorted(files) if _is_image(root, f)]
    return out


def _subdirs(folder):
    return sorted(d for d in os.listdir(folder)
                  if not d.startswith(".") and os.path.isdir(os.path.join(folder, d))
                  and not _loops_back(folder, d))


def _loops_back(folder, name):
    """A link to the folder itself or to a folder above it (`ln -s . all`), not a class."""
    path = os.path.join(folder, name)
    if not os.path.islink(path):
        return False
    target, here = os.path.realpath(path), os.path.realpath(folder)
    return here == target or here.startswith(target.rstrip(os.sep) + os.sep)


def _layout(folder):
    """`(files, class names or None)` of one flat or class-structured folder."""
    top = sorted(f for f in os.listdir(folder) if _is_image(folder, f))
    below = {d: _images_below(os.path.join(folder, d)) for d in _subdirs(folder)}
    classes = [d for d, found in below.items() if found]
    if top and classes:
        raise DataError(
            f"{folder!r} holds both image files and class folders ({', '.join(classes[:3])}"
            f"...). Put every image in a class folder, or point at a flat folder. "
            f"Received: dataset={folder!r}"
        )
    if classes:
        return {c: below[c] for c in classes}, classes
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
            f"{root!r} holds no image files ({', '.join(opts.IMAGE_SUFFIXES)}). Point "
            f"at a folder of images or of class folders. Received: dataset={root!r}"
        )
    _, sl = slice_split(split, len(files))
    keep = np.arange(len(files))[sl]
    files = [files[i] for i in keep]
    labels = None if classes is None else np.asarray(labels, dtype="int64")[keep]
    return files, labels, tuple(all_classes or ())


def read_headers(files, max_pixels):
    """`[Header or BadImageFile]` of every file, read in threads (headers only)."""
    def header(path):
        try:
            return image_ops.probe(path, max_pixels)
        except image_ops.BadImageFile as e:
            return e

    with concurrent.futures.ThreadPoolExecutor(_HEADER_THREADS) as pool:
        return list(pool.map(header, files, chunksize=256))


def _channels(headers, color_mode):
    if color_mode is not None:
        return opts.COLOR_MODES[color_mode]
    return 1 if {h.mode for h in headers} <= image_ops.GRAY_MODES else 3


def _common_size(files, headers):
    sizes = {}
    for path, h in zip(files, headers):
        sizes.setdefault((h.height, h.width), path)
        if len(sizes) > 1:
            (s1, f1), (s2, f2) = list(sizes.items())[:2]
            raise DataError(
                f"The images have different sizes: {f1!r} is {s1[0]}x{s1[1]} but {f2!r} is "
                f"{s2[0]}x{s2[1]} (height x width). Pass image_size (--image-size 64, or "
                f"64x48) to size them all, by center crop (the default), pad or stretch "
                f"(--resize). Received: image_size=None"
            )
    return next(iter(sizes))


def bad_files_error(bad, what, total):
    """One `DataError` listing the bad files (`[BadImageFile]`) with their reasons."""
    shown = "; ".join(f"{e.path!r} {e.reason}" for e in bad[:10])
    more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
    bombs = opts.BOMB_FIX if any(e.bomb for e in bad) else ""
    return DataError(
        f"{len(bad)} image file(s) of {_what(what)} cannot be used: {shown}{more}.{bombs} "
        f"Replace or remove them, or pass skip_bad=True (--skip-bad) to leave them out. "
        f"Received: files={total}"
    )


def _what(name):
    return repr(name) if os.path.isdir(name) else name


def _skipped_line(bad, name, left):
    """The one line a skip prints: how many, the first few with their reasons."""
    shown = "; ".join(f"{os.path.basename(e.path)!r} {e.reason}" for e in bad[:3])
    more = f"; and {len(bad) - 3} more" if len(bad) > 3 else ""
    return (f"kerasae: skipped {len(bad)} image file(s) of {_what(name)} that cannot be "
            f"read ({shown}{more}); {left} left.")


class FolderSource(Source):
    """Image files decoded (and sized) as they are read; labels from class folders, if any.

    Every file is read by `kerasae.data.images.read` (Pillow), in the `tf.data`
    pipeline through a `numpy_function` that holds only the sizing options.
    """

    def __init__(self, files, labels, *, image_shape, resize, image_size, name, split,
                 label_names=(), max_pixels=None):
        super().__init__(name=name, split=split, route="folder", label_names=label_names)
        self.files, self.labels = list(files), labels
        self.image_shape, self.resize, self.image_size = tuple(image_shape), resize, image_size
        self.max_pixels = max_pixels

    def __len__(self):
        return len(self.files)

    def info(self):
        return dict(super().info(), image_size=None if self.image_size is None
                    else list(self.image_size), resize=self.resize)

    def _reader(self):
        """`path -> uint8 image` with this folder's options (a few numbers, no file list)."""
        channels, size, mode = self.image_shape[-1], self.image_size, self.resize
        shape, budget = self.image_shape, self.max_pixels

        def read(path):
            path = os.fsdecode(path)
            x = image_ops.read(path, channels, size, mode, budget)
            if x.shape != shape:
                raise image_ops.BadImageFile(
                    path, f"is {x.shape[0]}x{x.shape[1]}, not {shape[0]}x{shape[1]} as the "
                    "other images (it changed since the folder was listed)")
            return x

        return read

    def element_fn(self):
        """The TensorFlow function `index -> uint8 image` of this folder."""
        import tensorflow as tf

        # Bytes, not text: file names need not be UTF-8.
        paths = tf.constant([os.fsencode(f) for f in self.files], dtype=tf.string)
        read, shape = self._reader(), list(self.image_shape)

        def load(i):
            x = tf.numpy_function(read, [tf.gather(paths, i)], tf.uint8, stateful=False)
            return tf.ensure_shape(x, shape)

        return load

    def load_batch(self, indices):
        idx = np.asarray(indices, dtype="int64")
        out = np.zeros((len(idx),) + self.image_shape, "uint8")
        read, bad = self._reader(), []

        def one(k):
            try:
                out[k] = read(self.files[idx[k]])
            except image_ops.BadImageFile as e:
                bad.append(e)

        with concurrent.futures.ThreadPoolExecutor(_DECODE_THREADS) as pool:
            list(pool.map(one, range(len(idx))))
        if bad:
            raise bad_files_error(sorted(bad, key=lambda e: e.path), self.name, len(self))
        return out

    def bad_files(self, indices=None):
        """`[BadImageFile]` of the files (of `indices`, default all) that cannot be read."""
        idx = np.arange(len(self)) if indices is None else np.asarray(indices)
        read = self._reader()

        def check(i):
            try:
                read(self.files[i])
            except image_ops.BadImageFile as e:
                return i, e
            return None

        with concurrent.futures.ThreadPoolExecutor(_DECODE_THREADS) as pool:
            found = [r for r in pool.map(check, idx.tolist()) if r is not None]
        return sorted(found, key=lambda r: r[0])

    def explain_error(self, error, indices=None):
        """A `DataError` naming every file that cannot be read (the cause of `error`)."""
        bad = self.bad_files(indices)
        if not bad:
            return error
        return bad_files_error([e for _, e in bad], self.name, len(self))


def _from_files(files, labels, classes, *, name, split, image_size, color_mode, resize,
                skip_bad, max_pixels):
    """A `FolderSource` of listed files: headers read, bad ones named or skipped."""
    size = opts.parse_image_size(image_size)
    opts.check_modes(color_mode, resize)
    max_pixels = opts.pixel_budget(max_pixels)
    headers = read_headers(files, max_pixels)
    unreadable = [h for h in headers if isinstance(h, image_ops.BadImageFile)]
    keep = [i for i, h in enumerate(headers) if not isinstance(h, image_ops.BadImageFile)]
    if not keep:
        raise (bad_files_error(unreadable, name, len(files)) if not skip_bad else
               DataError(f"No image of {_what(name)} can be read. Received: files={len(files)}"))
    files, headers = [files[i] for i in keep], [headers[i] for i in keep]
    labels = None if labels is None else labels[keep]
    channels = _channels(headers, color_mode)
    hw = size if size is not None else _common_size(files, headers)
    options = dict(image_shape=hw + (channels,), resize=resize, image_size=size, name=name,
                   split=split, label_names=classes, max_pixels=max_pixels)
    src = FolderSource(files, labels, **options)
    if unreadable and not skip_bad:  # all of them in one message (decoded up to a limit)
        found = src.bad_files(np.arange(min(len(src), _DECODE_CHECK)))
        raise bad_files_error(unreadable + [e for _, e in found], name,
                              len(files) + len(unreadable))
    if skip_bad:
        found = src.bad_files()  # decoded once: what the headers did not show
        bad = {i for i, _ in found}
        left = [i for i in range(len(src)) if i not in bad]
        skipped = unreadable + [e for _, e in found]
        if skipped:
            print(_skipped_line(skipped, name, len(left)))
        if not left:
            raise DataError(f"No image of {_what(name)} can be read. "
                            f"Received: files={len(files)}")
        if bad:
            src = FolderSource([src.files[i] for i in left],
                               None if labels is None else labels[left], **options)
    return src


def folder(path, split="train", *, image_size=None, color_mode=None, resize="crop",
           skip_bad=False, max_pixels=None):
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
        skip_bad: leave out files that cannot be read (found by decoding every file
            once), instead of failing on the first batch that holds one.
        max_pixels: the largest image (height x width) that is decoded; a larger one
            is refused as a decompression bomb. Defaults to `$KERASAE_MAX_PIXELS`,
            else 100 megapixels.

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
    files, labels, classes = scan(path, split)
    opts.note_other_files(path)
    return _from_files(files, labels, classes, name=path, split=split, image_size=image_size,
                       color_mode=color_mode, resize=resize, skip_bad=skip_bad,
                       max_pixels=max_pixels)


def expand_files(paths):
    """Files and folders -> `[(file, name)]`: a folder's image files, found in it and
    below it (sorted, hidden ones skipped), named by their path inside it; a file named
    directly by its base name."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    pairs = []
    for p in paths:
        p = os.fsdecode(p)
        if os.path.isdir(p):
            found = _images_below(p)
            opts.note_other_files(p)
            if not found:
                raise DataError(
                    f"The folder {p!r} holds no image files "
                    f"({', '.join(opts.IMAGE_SUFFIXES)}). Point at a folder of images. "
                    f"Received: images={p!r}"
                )
            pairs += [(f, os.path.relpath(f, p)) for f in found]
        elif os.path.lexists(p):
            pairs.append((p, os.path.basename(p)))
        else:
            raise MissingFile(f"No such file or folder: {p!r}. Received: images={p!r}")
    if not pairs:
        raise DataError("No image files were given. Received: images=[]")
    return pairs


def image_files(paths, *, image_size=None, color_mode=None, resize="crop", skip_bad=False,
                max_pixels=None):
    """A `Source` of image files and folders (see `expand_files`), in the order given,
    read as `folder` reads its files; `.names` holds each file's name."""
    pairs = expand_files(paths)
    files = [f for f, _ in pairs]
    dirs = {os.path.dirname(os.path.abspath(f)) for f in files}
    name = dirs.pop() if len(dirs) == 1 else f"the {len(files)} image files given"
    src = _from_files(files, None, (), name=name, split="all", image_size=image_size,
                      color_mode=color_mode, resize=resize, skip_bad=skip_bad,
                      max_pixels=max_pixels)
    named = dict(pairs)
    src.names = [named[f] for f in src.files]
    return src
