"""Columns of a table: which columns are features, cells -> floats, labels, statistics.

The pieces every table route shares (`kerasae.data.tables`, `kerasae.data.series`,
`kerasae.data.csvfile`): `pick` chooses the feature, label and time columns (by name or
index; by default the columns whose first value is a number, less the label and a time
column named `timestamp`, `time`, `date` or `datetime`); `to_float` turns cells into
float64 and refuses a text cell or a missing value (empty, `NA`, `NaN`, `inf`) where it
is, unless missing cells are to be imputed; `ColumnStats` keeps per-column statistics
chunk by chunk; `Scan` gathers a first pass into `Columns`, what a route read.
"""

import array
import dataclasses

import numpy as np

from kerasae._util.names import did_you_mean
from kerasae.data.source import DataError
from kerasae.data.stamps import Stamps

TIME_NAMES = ("timestamp", "time", "date", "datetime")
# a numeric column of these names is not taken as a feature unless columns= says so
LABEL_NAMES = ("label", "labels", "anomaly", "is_anomaly", "anomalous", "outlier",
               "is_outlier", "target", "class", "ground_truth")
MISSING = ("", "na", "n/a", "<na>", "nan", "null", "none", "inf", "+inf", "-inf",
           "infinity", "-infinity")
CHUNK = 4096  # rows checked at a time: a file or a memory map is scanned, not copied
_CELLS = 1 << 16  # cells of text parsed at a time (fewer rows for wide tables)
_SAMPLE = 1 << 16  # values per column kept for a median


class ColumnStats:
    """Count, mean, std (population), min and max per column of float rows fed in chunks
    (NaN: missing). Each chunk is merged into the running values by Chan et al.'s form of
    Welford's update, so no sum of squares loses precision on large values. With
    `median=True` a seeded uniform sample of up to 65,536 values per column is kept for
    the median (exact for shorter columns)."""

    def __init__(self, width, median=False):
        self.count = np.zeros(width, "int64")
        self.mean, self.m2 = np.zeros(width), np.zeros(width)
        self.min, self.max = np.full(width, np.inf), np.full(width, -np.inf)
        self._rng = np.random.default_rng(0) if median else None
        self._keys = [np.empty(0)] * width
        self._kept = [np.empty(0)] * width

    def add(self, v):
        ok = ~np.isnan(v)
        n = ok.sum(axis=0)
        if not n.any():
            return
        mean = np.where(ok, v, 0.0).sum(axis=0) / np.maximum(n, 1)
        m2 = (np.where(ok, v - mean, 0.0) ** 2).sum(axis=0)
        total = self.count + n
        share = n / np.maximum(total, 1)
        delta = mean - self.mean
        self.m2 += m2 + delta ** 2 * self.count * share
        self.mean += delta * share
        self.count = total
        self.min = np.fmin(self.min, np.where(ok, v, np.inf).min(axis=0))
        self.max = np.fmax(self.max, np.where(ok, v, -np.inf).max(axis=0))
        for j in range(v.shape[1] if self._rng is not None else 0):
            keys = np.concatenate([self._keys[j], self._rng.random(int(n[j]))])
            kept = np.concatenate([self._kept[j], v[ok[:, j], j]])
            if len(keys) > _SAMPLE:
                keep = np.argpartition(keys, _SAMPLE)[:_SAMPLE]
                keys, kept = keys[keep], kept[keep]
            self._keys[j], self._kept[j] = keys, kept

    def result(self):
        """`{"count", "mean", "std", "min", "max"}` arrays (NaN for a column with no value);
        std is exactly 0 for a constant column, not rounding noise."""
        have = self.count > 0
        std = np.sqrt(self.m2 / np.maximum(self.count, 1))
        std[self.min == self.max] = 0.0
        out = {"count": self.count.copy()}
        for key, value in (("mean", self.mean), ("std", std), ("min", self.min),
                           ("max", self.max)):
            out[key] = np.where(have, value, np.nan)
        return out

    def median(self):
        return np.array([np.median(k) if len(k) else np.nan for k in self._kept])


# ------------------------------------------------------------------ columns and cells
def chunk_rows(width):
    """Rows of a table `width` columns wide checked at a time: a chunk of text stays small
    (its strings are several times the size of its numbers)."""
    return max(64, min(CHUNK, _CELLS // max(int(width), 1)))


def _listing(names):
    shown = ", ".join(map(str, names[:20]))
    return shown + (f", ... ({len(names)} in all)" if len(names) > 20 else "")


def _column(ref, names, arg, where):
    """The index of column `ref` (a name, or an index; a name that is not a column but
    reads as a number is an index) among `names`."""
    if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
        if 0 <= ref < len(names):
            return int(ref)
        raise DataError(f"{where} has {len(names)} columns (0 to {len(names) - 1}); there "
                        f"is no column {ref}. Received: {arg}={ref!r}")
    hits = [j for j, n in enumerate(names) if n == str(ref).strip()]
    if len(hits) > 1:
        raise DataError(f"{where} has {len(hits)} columns named {ref!r}: name one by its "
                        f"index ({', '.join(map(str, hits))}). Received: {arg}={ref!r}")
    if hits:
        return hits[0]
    if str(ref).strip().isdigit():
        return _column(int(ref), names, arg, where)
    raise DataError(f"{where} has no column {ref!r}. {did_you_mean(ref, names)}Columns: "
                    f"{_listing(names)}. Received: {arg}={ref!r}")


def is_number(value):
    text = str(value).strip()
    if text.lower() in MISSING:
        return True
    try:
        float(text)
        return True
    except ValueError:
        return False


def pick(names, numeric, columns, label, time_column, where):
    """`(feature indices, label index, time index, skipped names)`: `numeric[j]` says
    whether column j's first value is a number (or missing)."""
    lab = None if label is None else _column(label, names, "label", where)
    if time_column is not None:
        tim = _column(time_column, names, "time_column", where)
    else:
        tim = next((j for j, n in enumerate(names)
                    if n.strip().lower() in TIME_NAMES and j != lab), None)
    if columns is None:
        rest = [j for j in range(len(names)) if j not in (lab, tim)]
        feats = [j for j in rest if numeric[j]]
        skipped = tuple(names[j] for j in rest if not numeric[j])
        looks = [names[j] for j in feats if names[j].strip().lower() in LABEL_NAMES]
        if looks:
            raise DataError(
                f"{where}: column {looks[0]!r} looks like labels, not a feature. Name it as "
                f"the label (label={looks[0]!r}, --label {looks[0]}) to leave it out of the "
                f"features, or list the features (columns=[...], --columns a,b) to keep it "
                f"as one. Received: columns=None, label={label!r}")
    else:
        refs = [columns] if isinstance(columns, (str, int, np.integer)) else list(columns)
        feats, skipped = [_column(r, names, "columns", where) for r in refs], ()
        if len(set(feats)) != len(feats) or lab in feats:
            twice = "the label column" if lab in feats else "a column twice"
            raise DataError(f"columns= names {twice}; name each feature once, the label "
                            f"apart (label=). Received: columns={columns!r}, label={label!r}")
    if not feats:
        raise DataError(
            f"{where} has no numeric column to use as features (columns: {_listing(names)}). "
            f"Name the columns of numbers with columns=[...] (--columns a,b). "
            f"Received: columns={columns!r}")
    return feats, lab, tim, skipped


def _cell(value, name, where, unit, number):
    text = str(value).strip()
    if text.lower() in MISSING:
        return np.nan
    try:
        return float(text)
    except ValueError:
        raise DataError(
            f"{where}: column {name!r} holds text, not a number: {unit} {number} has "
            f"{text!r}. Leave the column out of the features (columns=[...], --columns) or "
            f"fix the cell. Received: column={name!r}, {unit}={number}, text={text!r}"
        ) from None


def to_float(cells, names, where, impute, unit="row", numbers=None):
    """float64 of a 2-D array of cells (strings, objects or numbers); a missing cell
    (empty, NA, NaN, inf) is NaN when `impute`, else refused where it is. `numbers[i]`
    is how messages name row i (`unit` `"line"` in a file)."""
    numbers = np.arange(len(cells)) if numbers is None else numbers
    try:
        v = np.asarray(cells).astype("float64")
    except (ValueError, TypeError):
        v = np.array([[_cell(c, names[j], where, unit, numbers[i]) for j, c in enumerate(row)]
                      for i, row in enumerate(cells)], dtype="float64").reshape(cells.shape)
    bad = ~np.isfinite(v)
    if bad.any() and not impute:
        i, j = np.argwhere(bad)[0]
        text = str(cells[i, j]).strip()
        raise DataError(
            f"{where}: {unit} {numbers[i]}, column {names[j]!r} is "
            f"{'empty' if not text else repr(text)}, a missing value. Fill or drop it, or "
            f"pass impute='mean', 'median' or 'zero' (--impute) to fill missing cells with "
            f"the column's statistic. Received: {unit}={numbers[i]}, column={names[j]!r}")
    v[bad] = np.nan
    return v


class _Labels:
    """Integer labels of a label column, read chunk by chunk: whole numbers as they are,
    text as the index of its class among the sorted class names."""

    def __init__(self, name, where):
        self.name, self.where = name, where
        self.codes, self.seen = array.array("q"), {}

    def add(self, cells, unit="row", numbers=None):
        texts = np.char.strip(np.asarray(cells).astype(str))
        uniq, inverse = np.unique(texts, return_inverse=True)
        for u in uniq:
            if u.lower() in MISSING:
                i = int(np.flatnonzero(texts == u)[0])
                number = i if numbers is None else numbers[i]
                raise DataError(f"{self.where}: {unit} {number} has no label ({u!r} in column "
                                f"{self.name!r}). Every row needs one. Received: "
                                f"{unit}={number}, label={self.name!r}")
            self.seen.setdefault(str(u), len(self.seen))
        self.codes.extend(np.array([self.seen[str(u)] for u in uniq], "int64")[inverse])

    def result(self):
        """`(labels, label names)`; a column of one class is refused."""
        names = list(self.seen)
        try:
            values = np.array([float(t) for t in names])
            whole = bool(np.all(values == np.round(values)))
        except ValueError:
            whole = False
        if whole:
            mapping, label_names = values.astype("int64"), ()
        else:
            label_names = tuple(sorted(names))
            mapping = np.array([label_names.index(t) for t in names], "int64")
        if len(set(mapping.tolist())) < 2:
            raise DataError(
                f"{self.where}: the label column {self.name!r} holds one class only "
                f"({names[0] if names else 'none'}) in all {len(self.codes)} rows; labels "
                f"tell classes apart (e.g. 1 marks an anomaly). Drop label= (--label) or "
                f"name a column with two classes or more. Received: label={self.name!r}")
        return mapping[np.frombuffer(self.codes, "int64")], label_names


def given_labels(labels, n, where):
    """`labels=` given as an array: `n` integers."""
    if labels is None:
        return None
    y = np.asarray(labels)
    if y.dtype.kind not in "iub" or y.size != n:
        raise DataError(f"labels must be {n} integers, one per row of {where}. "
                        f"Received: labels.shape={y.shape}, dtype={y.dtype}")
    return y.astype("int64").reshape(-1)


@dataclasses.dataclass
class Columns:
    """What `read_columns` found. `rows(indices)` reads feature rows as float64 (NaN:
    missing); `values` holds them all, float32, when asked for (a series)."""

    where: str
    name: str
    route: str
    names: tuple
    n: int
    rows: object
    stats: dict
    median: object = None
    missing: object = None
    labels: object = None
    label_names: tuple = ()
    label: object = None
    times: object = None
    time_name: object = None
    skipped: tuple = ()
    values: object = None


class Scan:
    """A first pass over a table, chunk by chunk: it picks the columns (`pick`; `numeric[j]`:
    whether column j's first value is a number) and gathers statistics, missing cells,
    labels, times and, with `keep`, the feature values."""

    def __init__(self, names, numeric, spec, keep, where):
        columns, label, time_column, impute = spec
        self.feats, self.lab, self.tim, self.skipped = pick(names, numeric, columns, label,
                                                            time_column, where)
        self.names, self.impute, self.keep, self.where = names, impute, keep, where
        self.stats = ColumnStats(len(self.feats), median=isinstance(impute, str)
                                 and impute == "median")
        self.missing = np.zeros(len(self.feats), "int64")
        self.labels = None if self.lab is None else _Labels(names[self.lab], where)
        self.times = [] if keep and self.tim is not None else None
        self.parts = []

    def add(self, cells, unit="row", numbers=None, values=None):
        """A chunk of rows: a 2-D array of every column's cells (`values`: the features
        as finite floats, when they were parsed already)."""
        v = values if values is not None else to_float(
            cells[:, self.feats], [self.names[j] for j in self.feats], self.where,
            self.impute is not None, unit, numbers)
        self.stats.add(v)
        self.missing += np.isnan(v).sum(axis=0)
        if self.labels is not None:
            self.labels.add(cells[:, self.lab], unit, numbers)
        if self.times is not None:  # bytes per chunk: a str per step costs 4x more
            self.times.append(Stamps(time_strings(cells[:, self.tim])))
        if self.keep:
            self.parts.append(v.astype("float32"))

    def columns(self, **fields):
        labels, label_names = (None, ()) if self.labels is None else self.labels.result()
        stats = self.stats.result()
        if np.nanmax(np.abs(np.r_[stats["min"], stats["max"], 0.0])) > np.finfo("float32").max:
            raise DataError(f"{self.where} holds values beyond float32's range (about 3.4e38): "
                            "rescale them. Received: max_abs="
                            f"{np.nanmax(np.abs(np.r_[stats['min'], stats['max']])):g}")
        values = None
        if self.keep:
            width = len(self.feats)
            values = np.concatenate(self.parts) if self.parts else np.empty((0, width), "f4")
        return Columns(where=self.where, names=tuple(self.names[j] for j in self.feats),
                       stats=stats, median=self.stats.median() if self.stats._rng is not None
                       else None, skipped=self.skipped, missing=self.missing, labels=labels,
                       label_names=label_names,
                       label=None if self.lab is None else self.names[self.lab],
                       times=None if self.times is None else Stamps.join(self.times),
                       time_name=None if self.tim is None else self.names[self.tim],
                       values=values, **fields)


def time_strings(cells):
    cells = np.asarray(cells)
    if cells.dtype.kind == "M":
        return [str(t) for t in np.datetime_as_string(cells)]
    return [str(t).strip() for t in cells.tolist()]


