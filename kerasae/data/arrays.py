"""Arrays and array files as datasets: numpy arrays, `.npz` and `.npy` (no pickles)."""

import os

import numpy as np

from kerasae.data.source import DataError, Source


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

