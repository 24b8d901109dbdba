"""An HDF5 weights file checked against a model's own layout before Keras reads a byte of it.

A Keras `.weights.h5` file is plain datasets under plain groups, one per
variable. A hostile or damaged file can declare far more than it stores
(gzip-compressed zeros, fill-value datasets that were never written, a chunk
larger than its dataset), point outside itself (external and soft links,
external storage, virtual datasets), or carry NaN. Keras guards only datasets
over 4 GiB, so this module compares every dataset's path, shape and dtype with
the model's own file (written by `model.save_weights`) from metadata alone,
refuses what does not match, and only then reads the (now bounded) data, one
dataset at a time, into a fresh copy that Keras loads. Keras never opens the
file it was given.

Imports stdlib, numpy and h5py only.
"""

import math

import h5py
import numpy as np

# Where Keras keeps a compiled model's optimizer state (`optimizer/vars/N`).
OPTIMIZER = "optimizer/"
# Optimizer state the model does not expect (a file saved from a compiled model,
# loaded into an uncompiled one) may hold per-variable slots: Adam keeps two, AMSGrad
# three. Four times the model's own bytes bounds any optimizer Keras ships.
OPTIMIZER_SLOTS = 4
SLACK_BYTES = 1 << 20


class Refused(ValueError):
    """A weights file that is not loaded; `kind` is "unsafe", "mismatch" or "nonfinite"."""

    def __init__(self, kind, detail):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _size(shape, dtype):
    return math.prod(shape) * np.dtype(dtype).itemsize


def _bytes(n):
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000


def _describe(entry):
    shape, dtype = entry
    return f"shape {shape} {np.dtype(dtype).name} ({_bytes(_size(shape, dtype))})"


def _dataset_entry(name, ds):
    """`(shape, dtype)` of a dataset, read from its metadata; refuses unsafe storage."""
    if ds.external:
        raise Refused("unsafe", f"dataset {name!r} keeps its data in another file "
                                f"({ds.external[0][0]!r}: external storage)")
    if ds.is_virtual:
        raise Refused("unsafe", f"dataset {name!r} is a virtual dataset (its data lives "
                                "in other files)")
    shape = tuple(int(n) for n in ds.shape) if ds.shape is not None else None
    if shape is None:
        raise Refused("unsafe", f"dataset {name!r} has no shape (an empty HDF5 dataspace)")
    # Reading any element decompresses its whole chunk: a chunk larger than its
    # dataset is a bomb that a matching shape would not catch.
    if ds.chunks is not None and math.prod(ds.chunks) > max(math.prod(shape), 1):
        raise Refused("unsafe", f"dataset {name!r} of shape {shape} is stored in chunks "
                                f"of shape {tuple(ds.chunks)}, larger than the dataset "
                                f"(reading it would decompress "
                                f"{_bytes(_size(ds.chunks, ds.dtype))})")
    return shape, ds.dtype


def read_layout(h5, max_links):
    """`{dataset path: (shape, dtype)}` of an open `h5py.File`, from metadata only.

    Refuses links that are not hard links, named datatypes, external or
    virtual datasets, oversized chunks, and more than `max_links` links.
    """
    layout, seen = {}, [0]

    def visit(name, link):
        seen[0] += 1
        if seen[0] > max_links:
            raise Refused("unsafe", f"the file holds more than {max_links:,} groups and "
                                    "datasets; this model's weights need far fewer")
        if isinstance(link, h5py.ExternalLink):
            raise Refused("unsafe", f"{name!r} is an external link to "
                                    f"{link.filename!r}:{link.path!r}")
        if isinstance(link, h5py.SoftLink):
            raise Refused("unsafe", f"{name!r} is a soft link to {link.path!r}")
        if not isinstance(link, h5py.HardLink):
            raise Refused("unsafe", f"{name!r} is a {type(link).__name__}, not a dataset "
                                    "or group")
        kind = h5.get(name, getclass=True)
        if kind is h5py.Dataset:
            layout[name] = _dataset_entry(name, h5[name])
        elif kind is not h5py.Group:
            raise Refused("unsafe", f"{name!r} is a {getattr(kind, '__name__', kind)}, "
                                    "not a dataset or group")

    def stop_at_refusal(name, link):
        # h5py's visit cannot carry an exception out of its callback: a non-None
        # return value stops the walk and is handed back instead.
        try:
            visit(name, link)
        except Refused as e:
            return e
        return None

    refused = h5.visititems_links(stop_at_refusal)
    if refused is not None:
        raise refused
    return layout


def compare(found, expected):
    """Checks `found` against the model's `expected` layout; returns the paths to read.

    Every model dataset must be there with its exact shape and dtype, and
    nothing else may be, except optimizer state: scalars or slots shaped like
    a model variable, bounded in total (Keras decides whether it fits the
    model's own optimizer).
    """
    model = {p: e for p, e in expected.items() if not p.startswith(OPTIMIZER)}
    shapes = {shape for shape, _ in model.values()}
    budget = OPTIMIZER_SLOTS * sum(_size(*e) for e in model.values()) + SLACK_BYTES
    extra = 0
    for path in sorted(found):
        got, want = found[path], expected.get(path)
        if want is not None and got[0] != want[0]:
            raise Refused("mismatch", f"dataset {path!r} declares {_describe(got)}, the "
                                      f"model's variable has {_describe(want)}")
        if want is not None and got[1] != want[1]:
            raise Refused("mismatch", f"dataset {path!r} holds {np.dtype(got[1]).str}, the "
                                      f"model's variable is {np.dtype(want[1]).name}")
        if want is not None:
            continue
        if not path.startswith(OPTIMIZER):
            raise Refused("mismatch", f"dataset {path!r} ({_describe(got)}) matches no "
                                      "variable of the model (an extra dataset)")
        if (got[0] != () and got[0] not in shapes) or got[1].kind not in "fiu":
            raise Refused("mismatch", f"optimizer dataset {path!r} declares "
                                      f"{_describe(got)}, neither a number nor shaped "
                                      "like a variable of the model")
        extra += _size(*got)
        if extra > budget:
            raise Refused("mismatch", f"the optimizer datasets declare more than "
                                      f"{_bytes(budget)}, more optimizer state than "
                                      "this model can have")
    missing = sorted(p for p in model if p not in found)
    if missing:
        raise Refused("mismatch", f"the model's variable {missing[0]!r} "
                                  f"({_describe(model[missing[0]])}) is missing from the "
                                  f"file ({len(missing)} missing)")
    return sorted(found)


def file_budget(expected, expected_file_bytes):
    """The most bytes a weights file for `expected` may take: the model's own file, any
    optimizer state `compare` admits, and HDF5's bookkeeping."""
    model = sum(_size(*e) for p, e in expected.items() if not p.startswith(OPTIMIZER))
    return 2 * expected_file_bytes + OPTIMIZER_SLOTS * model + SLACK_BYTES


def max_links(expected):
    """How many links a file for `expected` may hold (groups, datasets, optimizer slots)."""
    return 16 * len(expected) + 256


def copy_checked(source, paths, expected_h5, out):
    """Reads `paths` of `source` one dataset at a time into the new file `out`, refusing
    non-finite values; each copy keeps the attributes of the model's own dataset."""
    for path in paths:
        try:
            values = source[path][()]
        except (OSError, ValueError, TypeError) as e:
            raise Refused("unsafe", f"dataset {path!r} could not be read ({e})") from None
        if values.dtype.kind in "fc":
            bad = int(values.size - np.count_nonzero(np.isfinite(values)))
            if bad:
                raise Refused("nonfinite", f"dataset {path!r} holds {bad:,} NaN or infinite "
                                           f"value(s) of {values.size:,}")
        target = out.create_dataset(path, data=values)
        if path in expected_h5:
            for key, value in expected_h5[path].attrs.items():
                target.attrs[key] = value
