"""A `.csv` file read as a table, streamed: one checking pass, then rows read by seeking.

The first pass reads the file chunk by chunk: every row's width and cells are checked
(`kerasae.data.columns`), each row's byte offset is kept (8 bytes a row) and so are the
per-column statistics; nothing else of the file stays in memory. A batch is then read
with one positioned read per run of consecutive rows, so memory stays flat in the size
of the file. A header row names the columns; a quoted field may span lines.
"""

import array
import csv
import io
import os

import numpy as np

from kerasae.data.columns import Scan, chunk_rows, is_number, to_float
from kerasae.data.source import DataError


def _records(f):
    """`(byte offset, line number, bytes)` of each record of a CSV file opened in binary;
    a quoted field may span lines (a record ends where its quotes balance)."""
    offset = start = 0
    line = first = 1
    pending, quotes = [], 0
    for raw in f:
        if not pending:
            start, first = offset, line
        pending.append(raw)
        offset, line, quotes = offset + len(raw), line + 1, quotes + raw.count(b'"')
        if quotes % 2 == 0:
            yield start, first, b"".join(pending)
            pending, quotes = [], 0
    if pending:
        yield start, first, b"".join(pending)


def _text(record, where):
    start, line, raw = record
    try:
        return raw.decode("utf-8-sig" if start == 0 else "utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: line {line} is not UTF-8 text ({e.reason} at byte "
                        f"{e.start}). Save the file as UTF-8. Received: line={line}") from None


def _row(record, where):
    try:
        return next(csv.reader([_text(record, where)], strict=True))
    except csv.Error as e:
        raise DataError(f"{where}: line {record[1]} is not valid CSV ({e}). Quote a field "
                        f"that holds commas or quotes (\"a, b\"). Received: "
                        f"line={record[1]}") from None


def _parse(records, width, where):
    """`(cells, texts)` of `records`: the cells a 2-D array of str objects (their
    float() is four times faster than numpy's conversion of a unicode array), every
    row checked for its width."""
    texts = [_text(r, where) for r in records]
    rows = None
    if any('"' in t for t in texts):
        try:
            rows = list(csv.reader(texts, strict=True))
        except csv.Error:
            rows = []
        if len(rows) != len(records):  # parsed again one by one, to name the bad line
            rows = [_row(r, where) for r in records]
    else:  # no quotes: the fields are what lies between commas
        rows = [t.rstrip("\r\n").split(",") for t in texts]
    for (_, line, _), row in zip(records, rows):
        if len(row) != width:
            raise DataError(
                f"{where}: line {line} has {len(row)} field(s) but the header has {width} "
                f"(ragged rows). Give every row one value per column (an empty cell for a "
                f"missing one). Received: line={line}, fields={len(row)}, expected={width}")
    return np.array(rows, dtype=object).reshape(len(rows), width), texts


def _numbers(text, feats, n):
    """The columns `feats` of `n` CSV rows in `text`, parsed in C (numpy's loadtxt), or
    `None` where a cell is not a plain number (the cells are then read one by one, so
    that a missing or bad one is found and named)."""
    if n == 0:
        return np.empty((0, len(feats)))
    try:
        v = np.loadtxt(io.StringIO(text), delimiter=",", quotechar='"', usecols=feats,
                       dtype="float64", ndmin=2, comments=None)
    except ValueError:
        return None
    return v if v.shape == (n, len(feats)) else None


def _check_separator(names, where, path):
    """A header of one column that holds `;`, a tab or `|`: another separator than commas."""
    other = [sep for sep in (";", "\t", "|") if len(names) == 1 and sep in names[0]]
    if other:
        sep = other[0]
        shown = names[0] if len(names[0]) <= 60 else names[0][:57] + "..."
        raise DataError(
            f"{where}'s header is one column, {shown!r}: the file looks separated by "
            f"{sep!r}, and kerasae reads comma-separated .csv files. Convert it (pandas: "
            f"pd.read_csv(path, sep={sep!r}).to_csv(new_path, index=False)) or pass the "
            f"DataFrame itself. Received: separator={sep!r}, dataset={path!r}")


def scan_csv(path, spec, keep=False):
    """`Columns` of the `.csv` file at `path`; `spec`: `(columns, label, time_column,
    impute)` (see `kerasae.data.table`); `keep` keeps the feature values (a series)."""
    where = repr(path)
    offsets, scan = array.array("q"), None
    with open(path, "rb") as f:
        records = (r for r in _records(f) if r[2].strip())
        header = next(records, None)
        if header is None:
            raise DataError(f"{where} is empty: a table needs a header row (the column names) "
                            f"and rows of values. Received: dataset={path!r}")
        names = [n.strip() for n in _row(header, where)]
        _check_separator(names, where, path)
        step, chunk = chunk_rows(len(names)), []
        for record in records:
            if scan is None:  # the first row decides which columns are numbers
                first = _parse([record], len(names), where)[0][0]
                scan = Scan(names, [is_number(c) for c in first], spec, keep, where)
            chunk.append(record)
            if len(chunk) == step:
                _scan_chunk(scan, chunk, names, offsets, where)
                chunk = []
        if chunk:
            _scan_chunk(scan, chunk, names, offsets, where)
        end = f.tell()
        stamp = os.fstat(f.fileno())
    if scan is None:
        raise DataError(f"{where} holds a header and no rows: a table needs rows of values. "
                        f"Received: dataset={path!r}")
    offsets.append(end)
    offsets = np.frombuffer(offsets, "int64")
    rows = _CsvRows(path, offsets, [names[j] for j in scan.feats], len(names), scan.feats,
                    (stamp.st_size, stamp.st_mtime_ns))
    return scan.columns(name=path, route="csv", n=len(offsets) - 1, rows=rows)


def _scan_chunk(scan, chunk, names, offsets, where):
    cells, texts = _parse(chunk, len(names), where)
    values = _numbers("".join(texts), scan.feats, len(chunk))
    if values is not None and not np.isfinite(values).all():
        values = None  # a NaN or inf cell: found and named (or imputed) cell by cell
    scan.add(cells, "line", [line for _, line, _ in chunk], values)
    offsets.extend(start for start, _, _ in chunk)


class _CsvRows:
    """Feature rows of a checked CSV file, read by seeking: one positioned read per run of
    consecutive rows (a file changed since its check is refused)."""

    def __init__(self, path, offsets, names, width, feats, stamp):
        self.path, self.offsets, self.names, self.width = path, offsets, names, width
        self.feats, self.stamp = feats, stamp
        self._fd = os.open(path, os.O_RDONLY)

    def __call__(self, idx):
        n = len(self.offsets) - 1
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        st = os.fstat(self._fd)
        # Runs of consecutive rows: rows [first, last] are the bytes [lo, hi).
        breaks = np.flatnonzero(np.diff(idx) != 1)
        first = idx[np.r_[0, breaks + 1]] if len(idx) else idx
        last = idx[np.r_[breaks, len(idx) - 1]] if len(idx) else idx
        texts = []
        for lo, hi in zip(self.offsets[first].tolist(), self.offsets[last + 1].tolist()):
            text = os.pread(self._fd, hi - lo, lo).decode("utf-8-sig" if lo == 0 else "utf-8")
            texts.append(text if text.endswith("\n") else text + "\n")
        if (st.st_size, st.st_mtime_ns) != self.stamp:
            raise self._changed()
        v = _numbers("".join(texts), self.feats, len(idx))
        if v is None:  # missing cells (to be imputed): read cell by cell
            rows = [r for t in texts for r in csv.reader(io.StringIO(t)) if r]
            if len(rows) != len(idx) or any(len(r) != self.width for r in rows):
                raise self._changed()
            cells = np.array(rows, dtype=object).reshape(len(rows), self.width)
            v = to_float(cells[:, self.feats], self.names, repr(self.path), True)
        v[~np.isfinite(v)] = np.nan  # missing: the source fills them
        return v

    def _changed(self):
        return DataError(f"{self.path!r} has changed since it was checked; read it again "
                         f"(kerasae.data.table or series). Received: dataset={self.path!r}")

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
