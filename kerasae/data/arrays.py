"""Arrays and array files as datasets: numpy arrays, `.npz`, and memory-mapped `.npy` (no pickles).

A `.npy` file is memory-mapped (`mmap_mode="r"`) and read by index, batch by
batch, so it never has to fit in memory; an `.npz` file's arrays are read into
memory once (a zip member cannot be mapped). Every array is checked before use:
its shape, its values and its labels. What the rows are (`kind`) is the model's
to say, or follows from the rank: `(n, H, W, C)` (and `(n, H, W)`, given a channel
axis) are images, uint8 or floats in [0, 1], channels last; `(n, D)` are records
and `(n, T, C)` with `kind="series"` windows of a series, floats of any range.
"""

import os
import zipfile

import numpy as np

from kerasae.data.source import ArraySource, DataError

_CHUNK = 4096  # images per step of the value checks: memory-mapped data is scanned, not copied


KINDS = ("image", "vector", "series")
_RANKS = {"image": (3, 4), "vector": (2,), "series": (3,)}


def _describe(name):
    return "the array" if name == "array" else repr(name)


def array_kind(x, kind=None):
    """What the rows of `x` are: `kind` if given (checked against the rank), else by rank."""
    if kind is None:
        return "vector" if x.ndim == 2 else "image"
    if kind not in KINDS:
        raise DataError(f"kind must be one of {', '.join(KINDS)}. Received: kind={kind!r}")
    if x.ndim not in _RANKS[kind]:
        shapes = {"image": "(n, H, W, C)", "vector": "(n, features)",
                  "series": "(n, steps, channels)"}
        hint = ""
        if kind == "image" and x.ndim == 2:  # e.g. StackedAE() left at its image default
            hint = (f" For records, build the model with input_shape=({x.shape[1]},), or pass "
                    f"the builder's name (kerasae.fit('stacked_ae', x)) to size it from the "
                    f"data.")
        raise DataError(
            f"The model takes {kind} inputs, {shapes[kind]}, but the array has shape "
            f"{x.shape}.{hint} Received: shape={x.shape}"
        )
    return kind


def _check_shape(x, name):
    if x.dtype == object or x.ndim < 2:
        raise DataError(
            f"Data must be a numeric array of shape (n, H, W[, C]), (n, features) or (n, "
            f"steps, channels); {_describe(name)} is not. Received: shape={x.shape}, "
            f"dtype={x.dtype}"
        )
    if len(x) == 0:
        raise DataError(f"{_describe(name)} holds no examples. Received: shape={x.shape}")
    if x.ndim == 4 and x.shape[1] in (1, 3, 4) and x.shape[3] > 4:
        raise DataError(
            f"{_describe(name)} looks channels-first: shape {x.shape} reads as "
            f"{x.shape[1]}x{x.shape[2]} images with {x.shape[3]} channels. kerasae expects "
            f"channels last (n, H, W, C): transpose it, e.g. np.transpose(x, (0, 2, 3, 1)). "
            f"Received: shape={x.shape}"
        )


def _check_values(x, name, kind="image"):
    """Floats must be finite, and images in [0, 1]: scanned in chunks (a memory map is
    not copied)."""
    bad, first, lo, hi = 0, None, np.inf, -np.inf
    for start in range(0, len(x), _CHUNK):
        chunk = np.asarray(x[start:start + _CHUNK], dtype="float32")
        finite = np.isfinite(chunk)
        if not finite.all():
            flat = np.flatnonzero(~finite.reshape(len(chunk), -1).all(axis=1))
            bad += int((~finite).sum())
            first = start + int(flat[0]) if first is None else first
        if finite.any():
            lo, hi = min(lo, float(chunk[finite].min())), max(hi, float(chunk[finite].max()))
    if bad:
        raise DataError(
            f"{_describe(name)} holds {bad} NaN or infinite value(s), the first in row "
            f"{first}. Replace or drop those rows (np.isfinite(x.reshape(len(x), -1))"
            f".all(axis=1) finds the good ones). Received: non_finite={bad}, "
            f"first_index={first}"
        )
    if kind == "image" and (lo < -1e-6 or hi > 1.0 + 1e-6):
        raise DataError(
            f"Float images must lie in [0, 1]; {_describe(name)} spans [{lo:g}, {hi:g}]. "
            "Divide 8-bit images by 255 (or pass them as uint8). "
            f"Received: min={lo:g}, max={hi:g}"
        )


def _labels(labels, n, name):
    if labels is None:
        return None
    y = np.asarray(labels)
    if y.dtype.kind not in "iub" or y.size != n:
        raise DataError(
            f"Labels must be {n} integers, one per image of {_describe(name)}. "
            f"Received: labels.shape={y.shape}, dtype={y.dtype}"
        )
    return y.astype("int64").reshape(-1)


def npy_file(path, images, labels=None, name=None, kind=None):
    """A `NpyFileSource` of the memory-mapped `.npy` array `images` (checked like any array)."""
    name = name or os.path.basename(path)
    _check_shape(images, name)
    kind = array_kind(images, kind)
    if images.dtype not in (np.uint8, np.float32) or (kind == "image" and images.ndim == 3) \
            or not images.flags.c_contiguous:
        # a view, read by index
        return from_array(images, labels, name=name, route="memmap", kind=kind)
    if images.dtype != np.uint8 or kind != "image":
        _check_values(images, name, kind)
    return NpyFileSource(path, images, _labels(labels, len(images), name), name=name,
                         split="all", route="memmap", kind=kind)


def from_array(images, labels=None, name="array", route="array", split="all", kind=None):
    """A `Source` from an array: images (uint8 [0, 255] or float in [0, 1]), records or
    windows of a series (any finite floats); see the module docstring for `kind`.

    `(n, H, W)` images get a channel axis. A `np.memmap` stays mapped: it is read
    batch by batch. Other float types are read as float32, other integer types are
    converted (in memory) to float32; records and series are always float32.
    """
    x = images if isinstance(images, np.ndarray) else np.asarray(images)
    _check_shape(x, name)
    kind = array_kind(x, kind)
    if kind == "image" and x.ndim == 3:
        x = x[..., None]  # a view: a memory map stays mapped
    if x.dtype != np.uint8 or kind != "image":
        if x.dtype.kind != "f" and not isinstance(x, np.memmap):
            x = x.astype("float32")
        _check_values(x, name, kind)
    plain = x.dtype == np.float32 or (x.dtype == np.uint8 and kind == "image")
    cls = ArraySource if plain else _FloatArraySource
    return cls(x, _labels(labels, len(x), name), name=name, split=split, route=route,
               kind=kind)


class _FloatArraySource(ArraySource):
    """Float arrays of another width (e.g. float64): read as float32, batch by batch."""

    def __init__(self, images, labels=None, **kwargs):
        super().__init__(images, labels, **kwargs)
        self.dtype = np.dtype("float32")

    def load_batch(self, indices):
        return np.asarray(self.images[np.asarray(indices)], dtype="float32")


class NpyFileSource(ArraySource):
    """A `.npy` file read by row with `pread`: only the rows of a batch come into memory.

    The file is memory-mapped for its shape and for the value checks, but batches are
    read with positioned reads into a fresh array: mapped pages of a file count in a
    process's resident memory (whole large folios at a time on current kernels), read
    pages stay in the page cache, where they belong.
    """

    def __init__(self, path, images, labels=None, **kwargs):
        super().__init__(images, labels, **kwargs)
        self.path, self.offset = path, images.offset
        self.row_bytes = int(np.prod(self.image_shape, dtype="int64")) * images.dtype.itemsize
        self._fd = None

    def load_batch(self, indices):
        idx = np.asarray(indices, dtype="int64").reshape(-1)
        out = np.empty((len(idx),) + self.image_shape, dtype=self.images.dtype)
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        flat = out.reshape(len(idx), -1).view("uint8")
        for row, i in enumerate(idx):
            if not 0 <= i < len(self):
                raise IndexError(f"index {i} is out of range for {len(self)} images")
            got = os.preadv(self._fd, [memoryview(flat[row])], self.offset + int(i) * self.row_bytes)
            if got != self.row_bytes:
                raise DataError(f"{self.path!r} is shorter than its header says; rewrite it.")
        return out if self.dtype == self.images.dtype else out.astype(self.dtype)

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)


def _load(path, **kwargs):
    if path.endswith(".npz") and not zipfile.is_zipfile(path):
        raise DataError(
            f"{path!r} is not a .npz archive (a zip file): it is damaged, truncated or another "
            f"kind of file. Save arrays with np.savez(path, x=images). Received: dataset={path!r}"
        )
    try:
        return np.load(path, allow_pickle=False, **kwargs)
    except (OSError, EOFError) as e:
        raise DataError(
            f"Could not read {path!r} as numpy data ({e}): it is damaged or truncated. Save it "
            f"again with np.save / np.savez. Received: dataset={path!r}"
        ) from e
    except ValueError as e:
        ragged = "Object arrays" in str(e) or "pickle" in str(e)
        hint = (" Images of different sizes cannot share one array: resize them to one size "
                "first, or put them in a folder and pass --image-size." if ragged else "")
        raise DataError(
            f"Could not read {path!r} as numpy data without pickles ({e}).{hint} Save "
            "plain numeric arrays with np.savez(path, x=images, y=labels)."
        ) from e


def npy_array(path):
    """The array of a `.npy` file, memory-mapped (read-only, no pickles)."""
    return _load(path, mmap_mode="r")


def _npz_keys(path):
    """`(NpzFile, x key, y key or None)`: which arrays of a `.npz` file are the data."""
    data = _load(path)
    keys = list(data.keys())
    by_lower = {}
    for k in keys:
        by_lower.setdefault(k.lower(), k)
    x_key = next((by_lower[k] for k in ("x", "images", "x_train") if k in by_lower), None)
    if x_key is None:
        if len(keys) != 1:
            raise DataError(
                f"{path!r} holds arrays {keys}; name the images 'x' (and labels 'y'), "
                "e.g. np.savez(path, x=images, y=labels)."
            )
        x_key = keys[0]
    y_key = next((by_lower[k] for k in ("y", "labels", "y_train") if k in by_lower), None)
    return data, x_key, y_key


def npz_shape(path):
    """The shape of a `.npz` file's data array (see `npz_arrays`), read from its header
    without loading the array."""
    data, x_key, _ = _npz_keys(path)
    try:
        with data.zip.open(x_key + ".npy") as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            return tuple(read(f)[0])
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as e:
        raise DataError(f"Could not read the header of array {x_key!r} of {path!r} ({e}). "
                        f"Save it again with np.savez. Received: dataset={path!r}") from e


def npz_arrays(path):
    """`(features or images, labels or None)` of a `.npz` file: the arrays `x` / `images` /
    `x_train` and `y` / `labels` / `y_train`, names in any case (ADBench writes `X`, `y`),
    or its only array."""
    data, x_key, y_key = _npz_keys(path)
    try:
        return data[x_key], (None if y_key is None else data[y_key])
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise DataError(
            f"Could not read array {x_key!r} of {path!r} without pickles ({e}). Images of "
            "different sizes cannot share one array: resize them to one size first, or put "
            "them in a folder and pass --image-size. Received: dataset=" + repr(path)
        ) from e


def from_file(path, kind=None):
    """A `Source` from `.npz` (arrays `x` or `images`, optional `y` / `labels`; names in
    any case) or `.npy`."""
    if not os.path.isfile(path):
        raise DataError(f"No such file: {path!r}. Received: dataset={path!r}")
    name = os.path.basename(path)
    if path.endswith(".npy"):
        return npy_file(path, npy_array(path), name=name, kind=kind)
    images, labels = npz_arrays(path)
    return from_array(images, labels, name=name, kind=kind)
