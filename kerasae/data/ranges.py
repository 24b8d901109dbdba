"""Pixel range: kerasae models take images in [0, 1]; a warning, once, when they are not.

8-bit images passed as they are (0..255) train without an error but on values
255 times too large (a loss in the thousands, a sigmoid output that can never
match). Arrays are checked on the host (the first `SAMPLE` images); a
`tf.data.Dataset` of integers is flagged from its element spec, and one of
floats gets a check inside its own pipeline (a `map` that costs one
min / max per batch and calls Python only when a batch is out of range), so
nothing is read twice.
"""

import warnings

import numpy as np

SAMPLE = 4096  # images of an array that are checked
TOLERANCE = 1e-3  # rounding of [0, 1] images (e.g. resizing) stays quiet
_warned = set()


def warn_out_of_range(where, what, stacklevel=3):
    """Warns (once per `where`) that `where` got `what` ("images spanning [0, 255]")."""
    if where in _warned:
        return
    _warned.add(where)
    warnings.warn(
        f"{where} got {what}, but kerasae models take pixels in [0, 1]: the loss and the "
        "reconstructions will be meaningless. Divide 8-bit images by 255 (x / 255.0), or "
        "give kerasae.fit uint8 arrays, folders or datasets, which it scales itself.",
        UserWarning, stacklevel=stacklevel)


def _span(lo, hi, dtype=None):
    kind = f"{dtype} " if dtype is not None else ""
    return f"{kind}images spanning [{float(lo):g}, {float(hi):g}]"


def out_of_range(lo, hi):
    return lo < -TOLERANCE or hi > 1.0 + TOLERANCE


def _finite_span(sample, chunk=1 << 20):
    """`(min, max)` of the finite values of `sample` (`(None, None)` if there are none),
    read a million values at a time: no copy of a large photo."""
    flat, lo, hi = sample.reshape(-1), None, None
    for start in range(0, flat.size, chunk):
        part = flat[start:start + chunk]
        if part.dtype.kind == "f":
            part = part[np.isfinite(part)]
        if part.size:
            a, b = part.min(), part.max()
            lo, hi = (a, b) if lo is None else (min(lo, a), max(hi, b))
    return lo, hi


def check_array(x, where):
    """Warns once if the first `SAMPLE` images of an array-like `x` leave [0, 1].

    Symbolic tensors (inside a traced function) are not checked.
    """
    try:
        sample = np.asarray(x[:SAMPLE])
    except Exception:  # noqa: BLE001 - symbolic or exotic inputs: nothing to check here
        return
    if sample.size == 0 or sample.dtype == object or sample.dtype.kind not in "iufb":
        return
    lo, hi = _finite_span(sample)
    if lo is None:
        return
    if out_of_range(float(lo), float(hi)):
        warn_out_of_range(where, _span(lo, hi, sample.dtype if sample.dtype.kind in "iub"
                                       else None), stacklevel=4)


def check_dataset(ds, where):
    """`ds`, checked: a dataset of integer images warns now; one of float images is
    returned with the in-pipeline check (see the module docstring)."""
    import tensorflow as tf

    spec = ds.element_spec
    first = spec[0] if isinstance(spec, tuple) else spec
    if not isinstance(first, tf.TensorSpec) or first.shape.rank is None or \
            first.shape.rank < 2:
        return ds
    if first.dtype.is_integer:
        if first.dtype != tf.bool:
            warn_out_of_range(where, f"a dataset of {first.dtype.name} images (integers, "
                              f"e.g. 0..255)", stacklevel=4)
        return ds
    if not first.dtype.is_floating:
        return ds

    def report(lo, hi):
        if out_of_range(float(lo), float(hi)):
            warn_out_of_range(where, _span(lo, hi) + " (in a batch of the dataset)",
                              stacklevel=2)
        return True

    def check(*element):
        x = element[0]
        lo, hi = tf.reduce_min(x), tf.reduce_max(x)
        bad = tf.logical_or(lo < -TOLERANCE, hi > 1.0 + TOLERANCE)
        done = tf.cond(bad, lambda: tf.py_function(report, [lo, hi], tf.bool),
                       lambda: tf.constant(True))
        with tf.control_dependencies([done]):
            x = tf.identity(x)
        return (x,) + element[1:] if len(element) > 1 else x

    return ds.map(check, deterministic=True) if isinstance(spec, tuple) else ds.map(check)
