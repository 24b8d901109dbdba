"""Tables as datasets: `table(...)` -> a `TableSource` of records `(features,)`, float32
of any range.

A table is a `.csv` file with a header row (streamed, never read whole:
`kerasae.data.csvfile`), a `.npz` file (arrays `x` / `X`, optional `y`) or a
memory-mapped `.npy` file of shape `(n, D)`, a numpy array `(n, D)`, or a DataFrame
(read by duck typing, through `df.columns` and `df[name]`: kerasae does not depend on
pandas). Which columns are features, labels and a time column, how cells become
numbers and which are missing: `kerasae.data.columns`.
"""

import os

import numpy as np

from kerasae._util.errors import InvalidType, MissingFile
from kerasae.data.arrays import NpyFileSource, npy_array, npz_arrays
from kerasae.data.columns import Scan, chunk_rows, given_labels, is_number, time_strings
from kerasae.data.csvfile import scan_csv
from kerasae.data.source import DataError, Source

IMPUTE = ("mean", "median", "zero")


def is_frame(x):
    """A DataFrame (pandas, polars, ...): named columns, each read as `x[name]`."""
    return hasattr(x, "columns") and hasattr(x, "__getitem__") and not isinstance(
        x, (np.ndarray, str, bytes, Source))


def check_impute(impute):
    """`impute` is `None`, one of `IMPUTE`, or a source read with one (its fill values)."""
    if impute is None or (isinstance(impute, str) and impute in IMPUTE):
        return
    if getattr(impute, "fill", None) is not None:
        return
    raise DataError(f"impute must be one of {', '.join(IMPUTE)} (or a table or series read "
                    f"with one, whose fill values are reused). Received: impute={impute!r}")


def read_columns(source, spec, *, labels=None, keep=False, name=None):
    """`Columns` of a table (`source` and `spec` = `(columns, label, time_column, impute)`
    as for `table`); `keep` keeps every feature value in memory (float32, NaN where
    missing)."""
    check_impute(spec[3])
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise MissingFile(f"No such file: {path!r}. A table is a .csv file (with a header "
                              f"row), a .npz or a .npy file. Received: dataset={path!r}")
        low = path.lower()
        if low.endswith(".csv"):
            cols = scan_csv(path, spec, keep)
        elif low.endswith(".npz"):
            x, y = npz_arrays(path)
            y = y if labels is None and spec[1] is None else None
            cols = _from_array(x, spec, keep, repr(path), path, "npz", y)
        elif low.endswith(".npy"):
            cols = _from_array(npy_array(path), spec, keep, repr(path), path, "memmap", None,
                               path=path)
        else:
            raise DataError(f"A table is a .csv file (with a header row), a .npz or a .npy "
                            f"file. Received: dataset={path!r}")
    elif is_frame(source):
        cols = _from_frame(source, spec, keep)
    elif isinstance(source, (np.ndarray, list, tuple)):
        cols = _from_array(np.asarray(source), spec, keep, "the array", "array", "array", None)
    else:
        raise InvalidType("A table is a .csv / .npz / .npy path, a numpy array (rows, "
                          f"columns) or a DataFrame. Received: {type(source).__name__}")
    if labels is not None:
        if cols.label is not None:
            raise DataError(f"Labels come from the label column or from labels=, not both. "
                            f"Received: label={cols.label!r}, labels=array")
        cols.labels = given_labels(labels, cols.n, cols.where)
    cols.name = name or cols.name
    return cols


def _from_array(x, spec, keep, where, name, route, labels, path=None):
    if x.dtype.kind not in "biuf":  # text or objects: checked cell by cell, as a frame is
        if x.ndim != 2:
            raise DataError(f"A table is a 2-D array (rows, columns); {where} has shape "
                            f"{x.shape}. Received: shape={x.shape}")
        return _from_cells([str(j) for j in range(x.shape[1])],
                           [x[:, j] for j in range(x.shape[1])], spec, keep, where, name, route)
    if x.ndim != 2 or len(x) == 0 or x.shape[1] == 0:
        raise DataError(f"A table is a 2-D array of rows and columns, with a row at least; "
                        f"{where} has shape {x.shape}. Received: shape={x.shape}")
    scan = Scan([str(j) for j in range(x.shape[1])], [True] * x.shape[1], spec, keep, where)
    step = chunk_rows(x.shape[1])
    for start in range(0, len(x), step):  # a memory map is scanned, not copied
        scan.add(np.asarray(x[start:start + step]), numbers=np.arange(start, start + step))
    if path is not None and x.flags.c_contiguous:
        # Positioned reads: mapped pages would count in the process's memory.
        read = NpyFileSource(path, x, None, name=name, kind="vector").load_batch
    else:
        read = x.__getitem__
    feats = scan.feats
    cols = scan.columns(name=name, route=route, n=len(x),
                        rows=lambda idx: np.asarray(read(idx), "float64")[:, feats])
    if labels is not None:
        cols.labels = given_labels(labels, len(x), where)
    return cols


def _from_frame(df, spec, keep):
    names = [str(c) for c in df.columns]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"The DataFrame has columns of the same name ({', '.join(twice)}); "
                        f"rename them. Received: columns={names}")
    return _from_cells(names, [np.asarray(df[c]) for c in df.columns], spec, keep,
                       "the DataFrame", "dataframe", "dataframe")


def _from_cells(names, cols, spec, keep, where, name, route):
    """A table of named columns in memory (a DataFrame's, or an array of text or objects)."""
    n = len(cols[0]) if cols else 0
    if n == 0:
        raise DataError(f"{where} holds no rows. Received: columns={names}, rows=0")
    cols = [np.array(time_strings(c), dtype=object) if c.dtype.kind == "M" else c
            for c in cols]
    numeric = [c.dtype.kind in "biuf" or is_number(c[0]) for c in cols]
    scan = Scan(names, numeric, spec, True, where)
    step = chunk_rows(len(cols))
    for start in range(0, n, step):
        cells = np.empty((min(step, n - start), len(cols)), dtype=object)
        for j, c in enumerate(cols):
            cells[:, j] = c[start:start + step]
        scan.add(cells, numbers=np.arange(start, start + step))
    cols = scan.columns(name=name, route=route, n=n, rows=None)
    values = cols.values
    cols.rows, cols.values = (lambda idx: values[idx]), (values if keep else None)
    return cols


def fill_values(cols, impute):
    """`(rule, per-column fill values)` for `impute` (see `table`); `(None, None)` without."""
    if impute is None:
        return None, None
    if not isinstance(impute, str):  # a source read with a rule: its values, by column
        if tuple(impute.columns) != tuple(cols.names):
            raise DataError(f"impute= is a source of other columns ({list(impute.columns)}) "
                            f"than {cols.where}'s ({list(cols.names)}). Received: "
                            f"impute={impute.name!r}")
        return f"{impute.impute} of {impute.name}", np.array(impute.fill)
    stats = cols.stats
    empty = [n for n, c in zip(cols.names, stats["count"]) if c == 0]
    if empty and impute != "zero":
        raise DataError(f"{cols.where}: column {empty[0]!r} has no value at all, so it has no "
                        f"{impute} to fill it with. Leave it out (columns=[...]) or pass "
                        f"impute='zero'. Received: impute={impute!r}")
    fill = {"mean": stats["mean"], "median": cols.median,
            "zero": np.zeros(len(cols.names))}[impute]
    return impute, np.asarray(fill, "float64")


def filled(v, fill):
    """float32 rows with their missing cells (NaN) set to `fill`."""
    if fill is not None:
        v = np.where(np.isnan(v), fill, v)
    return np.asarray(v, dtype="float32")


def describe(cols, impute):
    """What `info()` adds for a table's columns (and a series')."""
    info = {"columns": list(cols.names), "label": cols.label, "impute": impute}
    if impute is not None:
        info["filled"] = {n: int(c) for n, c in zip(cols.names, cols.missing)}
    if cols.skipped:
        info["skipped_columns"] = list(cols.skipped)
    return info


class TableSource(Source):
    """Records `(features,)` of a table, read by row, float32 of any range (see `table`).

    Attributes:
        columns: the feature columns' names, in order (`"0"`, `"1"`, ... for arrays).
        labels: int labels `(n,)` or `None`; `label_names` the class names when the label
            column holds text.
        impute: the rule that fills missing cells (`"mean"`, ...) or `None`.
        fill: the value each column's missing cells get, or `None`.
    """

    def __init__(self, cols, impute=None):
        super().__init__(name=cols.name, split="all", route=cols.route,
                         label_names=cols.label_names, kind="vector")
        self._cols = cols
        self.columns, self.labels = tuple(cols.names), cols.labels
        self.dtype, self.image_shape = np.dtype("float32"), (len(cols.names),)
        self.impute, self.fill = fill_values(cols, impute)

    def __len__(self):
        return self._cols.n

    def load_batch(self, indices):
        return filled(self._cols.rows(np.asarray(indices, "int64").reshape(-1)), self.fill)

    def column_stats(self):
        """Per feature column, over every row read (missing cells left out): `count`,
        `mean`, `std` (population, exactly 0 for a constant column), `min`, `max`
        (float64 arrays; NaN for a column with no value)."""
        return {k: v.copy() for k, v in self._cols.stats.items()}

    def info(self):
        """What `run.json` records: the source's reading and its columns (and imputation)."""
        return dict(super().info(), **describe(self._cols, self.impute))


def table(source, *, columns=None, label=None, impute=None, labels=None, time_column=None,
          name=None):
    """Records of a table as a `Source` of kind `"vector"`: rows `(features,)`, float32 of
    any range, read batch by batch.

    Args:
        source: a `.csv` path (a header row, then one record per row; streamed, never read
            whole), a `.npz` (`x` / `X`, optional labels `y`) or `.npy` path, a numpy array
            `(n, D)` or a DataFrame.
        columns: the feature columns, names or indices (a name that is not a column but
            reads as a number is an index). Defaults to every column whose first value is
            a number (or missing), less the label and time columns.
        label: name or index of a label column: whole numbers, or class names (labels are
            then their index in sorted order, `src.label_names`). A column of one class is
            refused. Defaults to `None` (an `.npz`'s `y` array is its labels).
        impute: `"mean"`, `"median"` or `"zero"`: fill missing cells (empty, `NA`, `NaN`,
            `inf`) with the column's statistic over this table's rows (the median from a
            sample of 65,536 values per column), or a source read with one, whose fill
            values are reused (validation data filled as the training data). Defaults to
            `None`: a missing cell is an error naming its row and column.
        labels: int labels, one per row, instead of a label column. Defaults to `None`.
        time_column: name or index of a time column to leave out of the features.
            Defaults to a column named `timestamp`, `time`, `date` or `datetime`.
        name: the name `info()` records. Defaults to the path (`"array"`, `"dataframe"`).

    Returns:
        A `TableSource`: `columns`, `labels`, `column_stats()`, `info()`, `load_batch`.

    Example:
        >>> import numpy as np, kerasae
        >>> src = kerasae.data.table(np.array([[1.0, 20.0], [3.0, 20.0]]))
        >>> src.image_shape, src.column_stats()["std"].tolist()
        ((2,), [1.0, 0.0])
    """
    cols = read_columns(source, (columns, label, time_column, impute), labels=labels,
                        name=name)
    return TableSource(cols, impute)
