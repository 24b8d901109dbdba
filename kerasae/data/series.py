"""Time series as datasets: `series(...)` -> a `SeriesSource` of windows `(window, channels)`
cut from a series `(T, C)`, and `tabular`, the route of tables and series.

The series' values live in memory as float32 `(T, C)`; the windows are a view of them
made by stride tricks (`numpy.lib.stride_tricks.sliding_window_view`), so only a
batch of windows is ever copied. A series is read from a `.csv` file (a time column
and one or more value columns, checked as a table is: `kerasae.data.tables`), an
array `(T, C)` or `(T,)`, a DataFrame, or a `.npz` / `.npy` file holding one.
Scores of windows map back to every time step with `SeriesSource.per_step`.
"""

import os

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from kerasae._util.errors import InvalidValue
from kerasae.data.arrays import npy_array, npz_arrays, npz_shape
from kerasae.data.columns import ColumnStats, given_labels
from kerasae.data.source import DataError, Source
from kerasae.data.tables import (is_frame, describe, fill_values, filled, read_columns,
                                 table)

PER_STEP = ("mean", "last")
MAX_STEPS_BACK = 0.01  # a series whose time goes back at more steps is refused (unsorted)


def _positive(value, arg, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"{arg} is {what}: a whole number of time steps, 1 or more. "
                        f"Received: {arg}={value!r}")
    return int(value)


class SeriesSource(Source):
    """Windows `(window, channels)` of a series `(T, C)` held in memory, float32 of any
    range; window i covers steps `window_starts[i]` to `window_starts[i] + window - 1`.

    Attributes:
        window, stride: steps per window, and between the starts of two windows.
        window_starts: the first step of each window (int64, one per window).
        n_steps: T, the steps of the series.
        columns: the channels' names.
        timestamps: the time column's values, one string per step, or `None`.
        step_labels: int labels per step (`> 0`: a positive step, e.g. an anomaly), or
            `None`; `labels` (per window) is 1 where any step of the window is positive.
        first_step: where step 0 of this series lies in the series it was cut from (the
            start of a held-out tail; 0 otherwise).
    """

    def __init__(self, values, window, stride=1, *, columns=None, timestamps=None,
                 step_labels=None, name="array", route="array", split="all", first_step=0,
                 described=None, impute=None, fill=None, time_column=None):
        super().__init__(name=name, split=split, route=route, kind="series")
        self._values = values
        self.window, self.stride = window, stride
        self.n_steps, channels = values.shape
        self.columns = tuple(columns or (str(j) for j in range(channels)))
        self.window_starts = np.arange(0, self.n_steps - window + 1, stride, dtype="int64")
        # (T - window + 1, window, C): a view; a batch of windows is the only copy made.
        self._windows = sliding_window_view(values, window, axis=0).transpose(0, 2, 1)
        self.dtype, self.image_shape = np.dtype("float32"), (window, channels)
        self.timestamps, self.step_labels = timestamps, step_labels
        self.first_step, self.time_column = first_step, time_column
        self.impute, self.fill = impute, fill
        self._described = dict(described or {"columns": list(self.columns)})
        if step_labels is not None:
            positive = np.concatenate([[0], np.cumsum(step_labels > 0)])
            self.labels = (positive[self.window_starts + window] - positive[self.window_starts]
                           > 0).astype("int64")

    def __len__(self):
        return len(self.window_starts)

    def load_batch(self, indices):
        return self._windows[self.window_starts[np.asarray(indices, "int64")]]

    def values(self):
        """The series, float32 `(T, C)` (missing cells imputed); read-only."""
        return self._values

    def column_stats(self):
        """Per channel, over the T steps (not the overlapping windows): `count`, `mean`,
        `std` (population, exactly 0 for a constant channel), `min`, `max`."""
        stats = ColumnStats(len(self.columns))
        stats.add(self._values.astype("float64"))
        return stats.result()

    def per_step(self, window_scores, how="mean"):
        """Maps one score per window back to every time step, float64 `(T,)`.

        Args:
            window_scores: one score per window, in window order.
            how: `"mean"`: the mean score of the windows covering the step; `"last"`:
                the score of the window ending at the step (causal: with a stride over
                1, the last window ended at or before it). Defaults to `"mean"`.

        Returns:
            The scores per step. Steps no window covers (the last `(T - window) %
            stride` steps; with `"last"`, also the steps before the first window ends)
            get NaN.
        """
        s = np.asarray(window_scores, dtype="float64").reshape(-1)
        if len(s) != len(self):
            raise InvalidValue(f"per_step takes one score per window ({len(self)} windows). "
                               f"Received: len(window_scores)={len(s)}")
        steps = np.arange(self.n_steps)
        # The windows covering step t are a run of window indices: [lo, hi).
        lo = np.searchsorted(self.window_starts, steps - self.window, side="right")
        hi = np.searchsorted(self.window_starts, steps, side="right")
        covered = hi > lo
        if how == "mean":
            prefix = np.concatenate([[0.0], np.cumsum(s)])
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(covered, (prefix[hi] - prefix[lo]) / (hi - lo), np.nan)
        if how == "last":
            last = np.searchsorted(self.window_starts + self.window - 1, steps, side="right")
            return np.where(covered & (last > 0), s[np.maximum(last - 1, 0)], np.nan)
        raise InvalidValue(f"how is one of {', '.join(PER_STEP)}. Received: how={how!r}")

    def split_tail(self, fraction):
        """`(head, tail)`: the series cut before its last `round(T * fraction)` steps, each
        part a `SeriesSource` of its own windows (windows across the cut are dropped: a
        tail of the series, not random windows, since neighbouring windows overlap)."""
        k = int(round(self.n_steps * float(fraction)))
        cut = self.n_steps - k
        if min(k, cut) < self.window:
            raise DataError(
                f"validation={fraction} of a series of {self.n_steps} steps holds out its "
                f"last {k} steps, leaving {cut}; each part needs one window ({self.window} "
                f"steps) at least. Pass a larger or smaller fraction, or a shorter window. "
                f"Received: validation={fraction!r}, window={self.window}")
        head = self.part(0, cut, f"{self.split} (training part: steps 0-{cut - 1})")
        tail = self.part(cut, self.n_steps, f"{self.split} (last {k} steps held out: "
                                             f"a contiguous tail)")
        return head, tail

    def part(self, lo, hi, split):
        """Steps `lo` to `hi - 1` as a series of their own windows, named `split`."""
        return SeriesSource(
            self._values[lo:hi], self.window, self.stride, columns=self.columns,
            timestamps=None if self.timestamps is None else self.timestamps[lo:hi],
            step_labels=None if self.step_labels is None else self.step_labels[lo:hi],
            name=self.name, route=self.route, split=split, first_step=self.first_step + lo,
            described=self._described, impute=self.impute, fill=self.fill,
            time_column=self.time_column)

    def info(self):
        """What `run.json` records: the source, its columns and how it was cut."""
        return dict(super().info(), **self._described, window=self.window, stride=self.stride,
                    steps=self.n_steps, first_step=self.first_step,
                    time_column=self.time_column)


def _array_of(source):
    """The array (and labels) of an array or `.npz` / `.npy` file, or `(source, None)`."""
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
        path = os.fspath(source).lower()
        if path.endswith(".npz"):
            return npz_arrays(os.fspath(source))
        if path.endswith(".npy"):
            return npy_array(os.fspath(source)), None
    if isinstance(source, (list, tuple)):
        return np.asarray(source), None
    return source, None


def series(source, *, window, stride=1, columns=None, time_column=None, label=None,
           labels=None, impute=None, name=None):
    """Windows of a time series as a `Source` of kind `"series"`: examples `(window,
    channels)`, float32 of any range, cut from a series `(T, C)`.

    Args:
        source: a `.csv` path (a header row; a time column and one or more value
            columns), an array `(T, C)` or `(T,)`, a DataFrame, or a `.npz` / `.npy`
            file of one (an `.npz`'s `y`: labels per step).
        window: steps per window (a series model's input length).
        stride: steps between the starts of two windows. Defaults to `1`.
        columns: the value columns (channels), names or indices. Defaults to every
            numeric column, less the time and label columns.
        time_column: name or index of the time column, kept as strings
            (`src.timestamps`). Defaults to a column named `timestamp`, `time`, `date`
            or `datetime`.
        label: name or index of a label column, whole numbers per step (`> 0`: a
            positive step, e.g. an anomaly). Defaults to `None`.
        labels: labels per step as an array of T integers, instead of a label column.
        impute: `"mean"`, `"median"` or `"zero"` fill missing cells with the channel's
            statistic (or a source read with one); see `kerasae.data.table`.
            Defaults to `None`: a missing cell is an error naming its row and column.
        name: the name `info()` records. Defaults to the path (or `"array"`).

    Returns:
        A `SeriesSource`: `window_starts`, `n_steps`, `timestamps`, `values()`,
        `per_step(scores)`, `step_labels`, `labels` (per window: any positive step).

    Example:
        >>> import numpy as np, kerasae
        >>> src = kerasae.data.series(np.arange(10.0), window=4, stride=2)
        >>> len(src), src.image_shape, src.window_starts.tolist()
        (4, (4, 1), [0, 2, 4, 6])
    """
    window = _positive(window, "window", "the steps in one window")
    stride = _positive(stride, "stride", "the steps between two windows")
    if label is not None and labels is not None:
        raise DataError(f"Labels come from the label column or from labels=, not both. "
                        f"Received: label={label!r}, labels=array")
    path = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    array, file_labels = _array_of(source)
    if isinstance(array, np.ndarray):
        if array.ndim == 3:
            raise DataError(f"The array {array.shape} holds windows already (n, steps, "
                            "channels): pass it without window=. Received: "
                            f"shape={array.shape}, window={window}")
        source = array[:, None] if array.ndim == 1 else array
        labels = file_labels if labels is None and label is None else labels
    cols = read_columns(source, (columns, label, time_column, impute), keep=True,
                        name=name or path)
    if cols.label_names:
        raise DataError(f"{cols.where}: the label column {cols.label!r} of a series holds "
                        f"text; give whole numbers per step (> 0: a positive step, e.g. 1 "
                        f"for an anomaly). Received: label={cols.label!r}")
    if cols.n < window:
        raise DataError(f"{cols.where} holds a series of {cols.n} time steps, shorter than "
                        f"one window of {window}. Use a shorter window or a longer series. "
                        f"Received: window={window}, steps={cols.n}")
    back = None if cols.times is None else cols.times.steps_back()
    if back is not None and back[0] > max(1, MAX_STEPS_BACK * cols.n):
        count, i, at, before = back
        raise DataError(
            f"{cols.where}: the time column {cols.time_name!r} goes back in time at {count} "
            f"of {cols.n} steps, first at step {i} ({at!r} after {before!r}); a series' "
            f"windows need its steps in time order. Sort the rows by time first. "
            f"Received: steps={cols.n}, steps_back={count}")
    rule, fill = fill_values(cols, impute)
    values = filled(cols.values, fill)
    values.flags.writeable = False
    step_labels = cols.labels if labels is None else given_labels(labels, cols.n, cols.where)
    described = describe(cols, rule)
    if back is not None:  # a clock's glitch, kept in order of the file and said
        described["time_goes_back"] = {"steps": back[0], "first_at_step": back[1]}
    return SeriesSource(values, window, stride, columns=cols.names, timestamps=cols.times,
                        step_labels=step_labels, name=cols.name, route=cols.route,
                        described=described, impute=rule, fill=fill,
                        time_column=cols.time_name)


def array_rank(data, path):
    """The rank of an array or of the array an `.npz` / `.npy` file holds."""
    if path is None:
        return data.ndim
    if path.lower().endswith(".npy"):
        return npy_array(path).ndim  # a memory map: nothing read
    return len(npz_shape(path))


def tabular(data, kind=None, *, labels=None, window=None, stride=None, default_window=None,
            columns=None, label=None, time_column=None, impute=None):
    """The `Source` of `data` read as a table or a series, or `None` for another route.

    A `.csv` file or a DataFrame is a table (`table`), or a series (`series`) when a
    window is given or the model takes series (`kind="series"`; `default_window`, the
    model's input length, is the window then). An array or `.npz` / `.npy` file is a
    series when a window is given (or it is a series `(T, C)` for a series model), a
    table when a table option is (`columns`, `label`, `time_column`, `impute`), and
    otherwise left to the array route (`kerasae.data.arrays`). `labels`: one per row
    (a table) or per time step (a series).
    """
    options = dict(columns=columns, label=label, time_column=time_column, impute=impute)
    values = dict(options, window=window, stride=stride)
    given = [k for k, v in values.items() if v is not None]
    path = os.fspath(data) if isinstance(data, (str, os.PathLike)) else None
    low = (path or "").lower()
    csv_like = low.endswith(".csv") or is_frame(data)
    arrayish = isinstance(data, np.ndarray) or (low.endswith((".npz", ".npy"))
                                                and os.path.isfile(path))
    what = repr(path) if path is not None else f"a {type(data).__name__}"
    if not (csv_like or arrayish):
        if given:
            raise DataError(f"{given[0]} applies to tables and series (.csv, .npz and .npy "
                            f"files, arrays, DataFrames); {what} is not one. "
                            f"Received: {given[0]}={values[given[0]]!r}")
        return None
    if kind == "image" and (csv_like or given):
        raise DataError(f"{what} is read as a table of numbers, but the model takes images. "
                        f"Use a model of vector or series input. Received: dataset={what}")
    cut = window if window is not None else default_window if kind == "series" else None
    if cut is not None and not (window is None and arrayish and array_rank(data, path) == 3):
        if kind == "vector":
            raise DataError(f"window cuts a series, but the model takes records (features,). "
                            f"Received: window={window!r}")
        return series(data, window=cut, stride=1 if stride is None else stride,
                      labels=labels, **options)
    if stride is not None:
        raise DataError(f"stride applies to a series cut into windows: give window too. "
                        f"Received: stride={stride!r}, window=None")
    if kind == "series" and (csv_like or array_rank(data, path) < 3):
        raise DataError(f"{what} is read as a series (T, C) for a series model: give the "
                        f"window to cut it with (window=, --window). Received: window=None")
    return table(data, labels=labels, **options) if csv_like or given else None
