"""Split strings: `"train"`, `"test[:1000]"`, `"train[10%:20%]"`."""

import re

from kerasae.data.source import DataError

SPLIT_PATTERN = re.compile(r"^(\w+)(?:\[(-?\d*)(%?):(-?\d*)(%?)\])?$")


def slice_split(split, n):
    m = SPLIT_PATTERN.match(split)
    if not m:
        raise DataError(
            "Split must look like 'train', 'test', 'train[:1000]' or 'train[10%:20%]'. "
            f"Received: split={split!r}"
        )
    start, pct_a, end, pct_b = m.group(2), m.group(3), m.group(4), m.group(5)

    def bound(v, pct, default):
        if v in (None, ""):
            return default
        v = int(v)
        return int(round(n * v / 100)) if pct else v

    return m.group(1), slice(bound(start, pct_a, 0), bound(end, pct_b, n))

