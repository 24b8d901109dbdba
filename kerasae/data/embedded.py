"""`digits`: the 8x8 handwritten digits that ship with scikit-learn (no download)."""

import numpy as np

from kerasae.data.source import ArraySource, DataError
from kerasae.data.splits import SPLIT_PATTERN, slice_split


def digits(split):
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype("uint8")[..., None]
    # A fixed, documented split: a seed-0 permutation, the first 360 are test.
    perm = np.random.RandomState(0).permutation(len(images))
    parts = {"train": np.sort(perm[360:]), "test": np.sort(perm[:360]),
             "all": np.arange(len(images))}
    base = SPLIT_PATTERN.match(split).group(1) if SPLIT_PATTERN.match(split) else split
    if base not in parts:
        raise DataError(
            f"digits has splits train, test and all. Received: split={split!r}"
        )
    _, sl = slice_split(split, len(parts[base]))
    keep = parts[base][sl]
    return ArraySource(images[keep], d.target[keep].astype("int64"), name="digits",
                  split=split, route="embedded", label_names=tuple(map(str, range(10))))

