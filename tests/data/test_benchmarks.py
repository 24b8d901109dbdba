"""The data benchmarks run end to end on tiny sizes (they are scripts, not timed tests)."""

import pytest


@pytest.mark.slow
def test_data_memory_benchmark_reports_each_route_and_its_targets(tmp_path, capsys):
    from kerasae.benchmarks import data_memory

    report = data_memory.main(["--sizes", "300,600", "--routes", "folder,npy", "--steps", "2",
                               "--workdir", str(tmp_path)])
    rows = {(r["route"], r["images"]): r for r in report["rows"]}
    assert set(rows) == {(route, n) for route in ("folder", "npy") for n in (300, 600)}
    for r in rows.values():
        assert r["raw_mib"] == pytest.approx(r["images"] * 64 * 64 * 3 / 2 ** 20)
        assert r["above_baseline_mib"] == pytest.approx(r["peak_mib"] - report["baseline_mib"])
    growth = rows[("npy", 600)]["peak_mib"] - rows[("npy", 300)]["peak_mib"]
    assert report["targets"][1]["measured"] == pytest.approx(growth)
    assert "peak MiB" in capsys.readouterr().out


@pytest.mark.slow
def test_data_throughput_benchmark_reports_ratios_to_the_in_memory_route(tmp_path):
    from kerasae.benchmarks import data_throughput

    report = data_throughput.main(["--images", "256", "--epochs", "2", "--rounds", "1",
                                   "--batch-size", "64", "--workdir", str(tmp_path)])
    assert set(report["later_epochs"]) == {"memory", "png", "jpeg", "png+cache"}
    for route, speed in report["later_epochs"].items():
        assert report["ratio_to_memory"][route] == pytest.approx(
            speed / report["later_epochs"]["memory"])
        assert speed > 0 and report["pipeline_alone"][route] > 0
