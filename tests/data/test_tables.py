"""Tables: `.csv` files (streamed), arrays, `.npz` / `.npy` files and DataFrames as records
`(features,)` of any range; columns, labels, missing cells, statistics, bad input."""

import csv
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from kerasae import data
from kerasae._util.errors import KerasaeError
from kerasae.data.source import DataError
from tests.helpers import ADBENCH_DIR, write_csv

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CARDIO = os.path.join(ADBENCH_DIR, "6_cardio.npz")
RNG = np.random.default_rng(0)


def read_csv(path):
    """The reference: Python's csv module, every cell a string."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.fixture
def mixed(tmp_path):
    """An id (text), a time column, three features on very different scales, one of them
    a quoted field holding a comma in a text column, and a text class column."""
    rows = []
    for i in range(300):
        rows.append([f"id-{i}", f"2024-01-01 {i % 24:02d}:00", 1e6 + RNG.normal() * 10,
                     RNG.normal() * 1e-3, -40 + i, f"note {i}, a comma",
                     "anomaly" if i % 7 == 0 else "normal"])
    return write_csv(tmp_path / "mixed.csv",
                     ["id", "timestamp", "big", "tiny", "ramp", "note", "class"], rows)


def test_default_columns_are_the_numeric_ones_less_label_and_time(mixed):
    src = data.table(mixed, label="class")
    header, rows = read_csv(mixed)
    want = np.array([[float(r[2]), float(r[3]), float(r[4])] for r in rows], "float32")
    assert src.kind == "vector" and src.columns == ("big", "tiny", "ramp")
    assert src.image_shape == (3,) and len(src) == 300
    np.testing.assert_array_equal(src.load_batch(np.arange(300)), want)
    # Text classes: the index of the class among the sorted names.
    assert src.label_names == ("anomaly", "normal")
    np.testing.assert_array_equal(src.labels, [0 if r[6] == "anomaly" else 1 for r in rows])
    info = src.info()
    assert info["columns"] == ["big", "tiny", "ramp"] and info["label"] == "class"
    assert info["skipped_columns"] == ["id", "note"] and info["kind"] == "vector"


def test_columns_by_name_and_by_index_read_the_same_rows(mixed):
    _, rows = read_csv(mixed)
    by_name = data.table(mixed, columns=["ramp", "big"])
    by_index = data.table(mixed, columns=[4, "2"])  # "2" is no column name: an index
    idx = np.array([299, 0, 17, 18, 19, 5])
    want = np.array([[float(rows[i][4]), float(rows[i][2])] for i in idx], "float32")
    np.testing.assert_array_equal(by_name.load_batch(idx), want)
    np.testing.assert_array_equal(by_index.load_batch(idx), want)
    assert by_name.labels is None
    # The tf.data pipeline reads the rows of the seeded epoch order.
    got = np.concatenate([b.numpy() for b in by_name.dataset(64, seed=3, epoch=1)])
    order = data.epoch_order(300, 64, seed=3, epoch=1)
    want = np.array([[float(rows[i][4]), float(rows[i][2])] for i in order], "float32")
    np.testing.assert_array_equal(got, want)


def test_a_misspelt_column_is_answered_with_the_closest(mixed):
    with pytest.raises(DataError, match=r"no column 'rmap'. Did you mean 'ramp'\?.*"
                                        r"Received: columns='rmap'"):
        data.table(mixed, columns="rmap")


def test_column_stats_match_numpy_and_a_constant_column_has_std_zero(tmp_path):
    # 10,000 rows: three chunks of the streamed pass, merged; a column near 1e9 whose
    # spread a sum of squares in float64 would lose.
    n = 10_000
    values = np.stack([1e9 + RNG.normal(size=n), RNG.normal(size=n) * 5,
                       np.full(n, 0.1)], axis=1)
    path = write_csv(tmp_path / "stats.csv", ["a", "b", "const"],
                     [[repr(float(v)) for v in row] for row in values])
    stats = data.table(path).column_stats()
    assert sorted(stats) == ["count", "max", "mean", "min", "std"]
    np.testing.assert_array_equal(stats["count"], [n, n, n])
    np.testing.assert_allclose(stats["mean"], values.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats["std"][:2], values.std(axis=0)[:2], rtol=1e-7)
    assert stats["std"][2] == 0.0  # exactly: the scaling layer treats 0 as 1
    np.testing.assert_array_equal(stats["min"], values.min(axis=0))
    np.testing.assert_array_equal(stats["max"], values.max(axis=0))


@pytest.mark.parametrize("rule", ["mean", "median", "zero"])
def test_impute_fills_missing_cells_with_the_columns_statistic(tmp_path, rule):
    rows = [[str(float(i)), str(float(i * i))] for i in range(1, 12)]
    rows[2][0], rows[5][1], rows[7][0], rows[9][1] = "", "NaN", "NA", "inf"
    path = write_csv(tmp_path / "gaps.csv", ["x", "y"], rows)
    src = data.table(path, impute=rule)
    # The reference: numpy over the cells that are numbers.
    cells = np.array([[float(c) if c not in ("", "NA") else np.nan for c in r] for r in rows])
    cells[~np.isfinite(cells)] = np.nan
    fill = {"mean": np.nanmean(cells, axis=0), "median": np.nanmedian(cells, axis=0),
            "zero": np.zeros(2)}[rule]
    want = np.where(np.isnan(cells), fill, cells).astype("float32")
    np.testing.assert_array_equal(src.load_batch(np.arange(11)), want)
    info = src.info()
    assert info["impute"] == rule and info["filled"] == {"x": 2, "y": 2}
    np.testing.assert_array_equal(src.column_stats()["count"], [9, 9])


def test_validation_data_is_filled_with_the_training_statistic(tmp_path):
    train = write_csv(tmp_path / "train.csv", ["x"], [["1"], ["2"], ["6"], [""]])
    val = write_csv(tmp_path / "val.csv", ["x"], [["100"], [""], ["300"]])
    t, v = data.train_and_validation(train, validation=val, impute="mean")
    np.testing.assert_array_equal(v.load_batch(np.arange(3)).ravel(), [100, 3, 300])
    assert "mean of" in v.info()["impute"] and t.info()["impute"] == "mean"


def _bad_csvs(tmp):
    """`{case: (path, label column, phrase)}`: every bad table of the issue, with its
    message's key phrase."""
    w = lambda name, header, rows: write_csv(tmp / f"{name}.csv", header, rows)  # noqa: E731
    ok = [["1", "2", "0"], ["3", "4", "1"]]
    empty = tmp / "empty.csv"
    empty.write_text("")
    return {
        "text": (w("text", ["a", "b", "y"], ok + [["5", "oops", "0"]]), "y",
                 r"column 'b' holds text, not a number: line 4 has 'oops'"),
        "ragged": (w("ragged", ["a", "b", "y"], ok + [["5", "6"]]), "y",
                   r"line 4 has 2 field\(s\) but the header has 3 \(ragged rows\).*"
                   r"fields=2, expected=3"),
        "nan": (w("nan", ["a", "b", "y"], ok + [["nan", "6", "0"]]), "y",
                r"line 4, column 'a' is 'nan', a missing value.*impute='mean', 'median' "
                r"or 'zero'"),
        "inf": (w("inf", ["a", "b", "y"], ok + [["5", "-inf", "0"]]), "y",
                r"line 4, column 'b' is '-inf', a missing value.*impute="),
        "empty-cell": (w("gap", ["a", "b", "y"], [["1", "", "0"]] + ok), "y",
                       r"line 2, column 'b' is empty, a missing value.*impute="),
        "one-class": (w("oneclass", ["a", "b", "y"], [["1", "2", "1"], ["3", "4", "1"]]), "y",
                      r"the label column 'y' holds one class only \(1\) in all 2 rows"),
        "no-numeric": (w("words", ["a", "b"], [["x", "y"], ["z", "w"]]), None,
                       r"has no numeric column to use as features"),
        "empty-file": (str(empty), None, r"is empty: a table needs a header row"),
        "header-only": (w("header", ["a", "b"], []), None, r"holds a header and no rows"),
    }


@pytest.mark.parametrize("case", ["text", "ragged", "nan", "inf", "empty-cell", "one-class",
                                  "no-numeric", "empty-file", "header-only"])
def test_bad_tables_are_one_clear_error_and_nothing_is_written(tmp_path, case):
    path, label, phrase = _bad_csvs(tmp_path)[case]
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(DataError, match=phrase) as caught:
        data.table(path, label=label)
    message = str(caught.value)
    assert isinstance(caught.value, KerasaeError) and "\n" not in message
    assert "Received: " in message
    assert sorted(os.listdir(tmp_path)) == before


def test_bad_tables_through_kerasae_train_are_one_line_and_write_no_run(tmp_path, capsys):
    from kerasae.cli import main

    for case, (path, label, phrase) in _bad_csvs(tmp_path).items():
        out = tmp_path / f"run-{case}"
        args = ["train", "stacked_ae", "--dataset", path, "--out", str(out)]
        assert main(args + (["--label", label] if label else [])) == 1, case
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("kerasae train: error: "), (case, err)
        assert re.search(phrase, err[0]), (case, err)
        assert not out.exists(), case


def test_arrays_npy_and_a_label_column_by_index(tmp_path):
    x = np.column_stack([RNG.normal(size=(50, 3)) * 1000, np.arange(50) % 3]).astype("float64")
    src = data.table(x, label=3)
    assert src.columns == ("0", "1", "2") and src.route == "array"
    np.testing.assert_array_equal(src.labels, np.arange(50) % 3)
    np.testing.assert_array_equal(src.load_batch([4, 2]), x[[4, 2], :3].astype("float32"))
    np.save(tmp_path / "x.npy", x)
    mapped = data.table(str(tmp_path / "x.npy"), columns=[2, 0])
    assert mapped.route == "memmap"
    np.testing.assert_array_equal(mapped.load_batch([7, 1]), x[[7, 1]][:, [2, 0]].astype("f4"))
    x[5, 1] = np.nan
    with pytest.raises(DataError, match=r"row 5, column '1' is 'nan'.*impute="):
        data.table(x)


def test_a_dataframe_is_read_by_its_column_names():
    pd = pytest.importorskip("pandas", reason="pandas is not installed (kerasae does not need "
                                              "it; pip install pandas to run this test)")
    df = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=4, freq="h"),
                       "a": [1.0, 2.0, 3.0, 4.0], "b": [10, 20, 30, 40],
                       "kind": ["x", "y", "x", "y"]})
    src = data.table(df, label="kind")
    assert src.columns == ("a", "b") and src.route == "dataframe"
    np.testing.assert_array_equal(src.load_batch([3, 0]), [[4, 40], [1, 10]])
    np.testing.assert_array_equal(src.labels, [0, 1, 0, 1])


@pytest.mark.skipif(not os.path.exists(CARDIO), reason=f"{CARDIO} is absent (ADBench's cardio "
                    "set; set KERASAE_SHARED_DATA to the folder that holds adbench/)")
def test_adbench_cardio_npz_loads_with_its_labels():
    with np.load(CARDIO) as f:
        x, y = f["X"], f["y"]
    for src in (data.table(CARDIO), data.get_source(CARDIO, kind="vector"),
                data.from_file(CARDIO)):  # ADBench's keys are X and y: found in any case
        assert len(src) == 1831 and src.image_shape == (21,) and src.kind == "vector"
        np.testing.assert_array_equal(src.labels, y)
        np.testing.assert_allclose(src.load_batch(np.arange(1831)), x.astype("float32"))
    assert int(y.sum()) == 176


def test_csv_routes_through_get_source_and_train_and_validation(mixed):
    src = data.get_source(mixed, label="class")
    assert isinstance(src, data.TableSource) and src.columns == ("big", "tiny", "ramp")
    train, val = data.train_and_validation(mixed, validation=0.1, label="class")
    # A table's validation fraction: random rows, disjoint from the training rows.
    assert len(train) == 270 and len(val) == 30
    assert not set(val.indices) & set(train.indices)
    assert np.any(np.diff(val.indices) > 1)
    with pytest.raises(DataError, match=r"image_size applies to image folders"):
        data.get_source(mixed, image_size=8)
    with pytest.raises(DataError, match=r"columns applies to tables and series.*'digits'"):
        data.get_source("digits", columns=["a"])


_PEAK = r"""
import sys
import numpy as np
from kerasae.data import epoch_order, table

src = table(sys.argv[1], label="y")
order = epoch_order(len(src), 256, seed=0)
total = sum(float(src.load_batch(order[i:i + 256]).sum()) for i in range(0, len(src), 256))
peak = [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(len(src), int(peak))
"""


def _big_csv(path, n, block=10_000):
    """`n` rows of 64 float columns and a label (a block of 10,000 rows written n / 10,000
    times: the reader sees as many rows and bytes)."""
    rng = np.random.default_rng(1)
    header = ",".join([f"f{j}" for j in range(64)] + ["y"]) + "\n"
    text = "".join(",".join(f"{v:.4f}" for v in row) + f",{i % 2}\n"
                   for i, row in enumerate(rng.normal(size=(block, 64)) * 1000))
    with open(path, "w") as f:
        f.write(header)
        for _ in range(n // block):
            f.write(text)
    return str(path)


@pytest.mark.slow
def test_a_csv_is_streamed_with_flat_memory(tmp_path):
    """A 10x larger CSV (200k vs 20k rows of 65 columns, 119 MB vs 12 MB) read whole in
    shuffled batches: the peak RSS (VmHWM of a fresh process) grows by the row offsets
    and labels only (3.2 MB), not by the table (104 MB as float64)."""
    peaks = {}
    for n in (20_000, 200_000):
        path = _big_csv(tmp_path / f"big{n}.csv", n)
        out = subprocess.run([sys.executable, "-c", _PEAK, path], cwd=REPO, check=True,
                             capture_output=True, text=True, timeout=600).stdout.split()
        assert int(out[0]) == n
        peaks[n] = int(out[1]) / 1024
        print(f"{n} rows, {os.path.getsize(path) / 2**20:.0f} MB file: peak RSS "
              f"{peaks[n]:.0f} MB")
        os.remove(path)
    assert peaks[200_000] - peaks[20_000] < 50, peaks


def test_cli_parses_the_table_and_series_options():
    from kerasae.cli import build_parser

    args = build_parser().parse_args(
        ["train", "conv1d_ae", "--dataset", "x.csv", "--columns", "a, b,3", "--label", "y",
         "--time-column", "when", "--window", "48", "--stride", "2", "--impute", "median"])
    assert (args.columns, args.label, args.time_column) == (["a", "b", "3"], "y", "when")
    assert (args.window, args.stride, args.impute) == (48, 2, "median")
    args = build_parser().parse_args(["train", "stacked_ae"])
    assert (args.columns, args.window, args.stride, args.impute) == (None, None, None, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "stacked_ae", "--impute", "mode"])


def test_a_semicolon_separated_file_is_named_so(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("a;b;label\n1,5;2;0\n3;4;1\n")
    with pytest.raises(DataError, match=r"looks separated by ';'.*sep=';'"):
        data.table(str(path))
    with pytest.raises(DataError, match=r"looks separated by '\\t'"):
        (tmp_path / "tab.csv").write_text("a\tb\n1\t2\n")
        data.table(str(tmp_path / "tab.csv"))
