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
