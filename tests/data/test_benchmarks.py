"""The data benchmarks run end to end on small sizes (they are scripts, not timed tests), and
their figures are checked against what the test knows on its own: the wall clock of the
call, and how much memory the data it reads must take."""

import time

import pytest

pytestmark = pytest.mark.slow


def test_data_memory_benchmark_sees_the_npz_held_whole_and_the_npy_not(tmp_path, capsys):
    """An `.npz` route holds its array in memory (a zip cannot be mapped), an `.npy` route
    reads by row: their peaks must differ by about the array's size, 70 MiB here."""
    from kerasae.benchmarks import data_memory

    report = data_memory.main(["--sizes", "6000", "--routes", "npy,npz", "--steps", "1",
                               "--workdir", str(tmp_path)])
    rows = {r["route"]: r for r in report["rows"]}
    raw = 6000 * 64 * 64 * 3 / 2 ** 20
    assert rows["npz"]["raw_mib"] == pytest.approx(raw)
    held = rows["npz"]["peak_mib"] - rows["npy"]["peak_mib"]
    assert 0.8 * raw < held < 2.5 * raw, (held, raw)
    assert "peak MiB" in capsys.readouterr().out


def test_data_throughput_figures_fit_in_the_time_the_run_took(tmp_path):
    """Every reported epoch happened inside this call: the sum of images / (images/s) over
    the reported epochs cannot exceed the call's wall time."""
    from kerasae.benchmarks import data_throughput

    start = time.perf_counter()
    report = data_throughput.main(["--images", "256", "--epochs", "2", "--rounds", "1",
                                   "--batch-size", "64", "--workdir", str(tmp_path)])
    wall = time.perf_counter() - start
    assert set(report["later_epochs"]) == {"memory", "png", "jpeg", "png+cache"}
    spent = sum(report["images"] / s for speeds in report["later_epochs_all"].values()
                for s in speeds)
    assert 0 < spent < wall, (spent, wall)


def test_data_memory_benchmark_reads_a_csv_table_of_the_rows_asked(tmp_path, capsys):
    """The csv route trains stacked_ae on a table of the rows asked: 10x the rows is about
    10x the file, and a table under 1 MiB adds next to nothing over its own baseline (the
    same builder on 256 rows: 20 MiB would mean a baseline of another model)."""
    from kerasae.benchmarks import data_memory

    report = data_memory.main(["--routes", "csv", "--rows", "1000,10000", "--steps", "1",
                               "--workdir", str(tmp_path)])
    rows = {r["n"]: r for r in report["rows"]}
    assert set(rows) == {1000, 10000} and {r["route"] for r in rows.values()} == {"csv"}
    assert set(report["baselines_mib"]) == {"stacked_ae"}
    # 32 columns of "%.4g" numbers and commas: 3 to 12 bytes a cell.
    assert 1000 * 32 * 3 < rows[1000]["raw_mib"] * 2 ** 20 < 1000 * 32 * 12
    assert 9 < rows[10000]["raw_mib"] / rows[1000]["raw_mib"] < 11
    assert abs(rows[1000]["above_baseline_mib"]) < 20, rows[1000]
    assert "csv: peak growth from 1000 to 10000 rows" in capsys.readouterr().out


def test_fit_throughput_series_figures_fit_in_the_time_the_run_took(tmp_path, capsys):
    """The conv1d_ae case trains on the windows asked (a whole number of batches), each
    trainer reports its timed epochs only, and every reported epoch happened inside this
    call: the sum of windows / (windows/s) over them cannot exceed the call's wall time."""
    import json

    from kerasae.benchmarks import fit_throughput

    out = tmp_path / "f.json"
    start = time.perf_counter()
    ratio = fit_throughput.main(["--model", "conv1d_ae", "--images", "300", "--window", "48",
                                 "--epochs", "2", "--rounds", "1", "--batch-size", "64",
                                 "--steps-per-execution", "1", "--json", str(out)])
    wall = time.perf_counter() - start
    report = json.loads(out.read_text())
    assert report["model"] == "conv1d_ae" and report["examples"] == 256  # 4 batches of 64
    assert set(report["runs"]) == {"kerasae.fit", "model.fit"}
    assert all(len(v) == 2 for v in report["runs"].values()), report["runs"]
    spent = sum(256 / s for v in report["runs"].values() for s in v)
    assert 0 < spent < wall, (spent, wall)
    assert ratio == pytest.approx(report["images_per_second"]["kerasae.fit"]
                                  / report["images_per_second"]["model.fit"])
    assert "windows of (48, 1)" in capsys.readouterr().out
