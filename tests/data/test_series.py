"""Time series: windows `(window, channels)` cut from a series `(T, C)` (a `.csv` file, an
array, a DataFrame), scores mapped back to every step, a contiguous validation tail."""

import csv
import os

import numpy as np
import pytest

from kerasae import data
from kerasae._util.errors import KerasaeError
from kerasae.data.source import DataError
from tests.helpers import NAB_DIR, write_csv

NYC_TAXI = os.path.join(NAB_DIR, "data", "realKnownCause", "nyc_taxi.csv")


@pytest.fixture
def sensors(tmp_path):
    """200 steps of two channels (a sine in the thousands, a ramp) and a label per step."""
    t = np.arange(200)
    rows = [[f"2024-01-01T{i // 60:02d}:{i % 60:02d}", 1000 + 500 * np.sin(i / 7), -3 + 0.01 * i,
             int(90 <= i < 95)] for i in t]
    return write_csv(tmp_path / "sensors.csv", ["time", "load", "temp", "anomaly"], rows)


@pytest.mark.skipif(not os.path.exists(NYC_TAXI), reason=f"{NYC_TAXI} is absent (NAB's "
                    "nyc_taxi series; set KERASAE_SHARED_DATA to the folder that holds nab/)")
def test_nab_nyc_taxi_as_windows_of_48():
    with open(NYC_TAXI, newline="") as f:
        rows = list(csv.reader(f))[1:]
    values = np.array([float(r[1]) for r in rows], "float32")
    src = data.series(NYC_TAXI, window=48)
    assert src.kind == "series" and src.n_steps == len(values) == 10320
    assert len(src) == 10320 - 48 + 1 and src.image_shape == (48, 1)
    assert src.timestamps[0] == rows[0][0] and src.timestamps[-1] == rows[-1][0]
    assert src.columns == ("value",) and src.time_column == "timestamp"
    np.testing.assert_array_equal(src.values()[:, 0], values)
    np.testing.assert_array_equal(src.window_starts, np.arange(10273))
    batch = src.load_batch([0, 5000, 10272])
    for got, start in zip(batch, (0, 5000, 10272)):
        np.testing.assert_array_equal(got[:, 0], values[start:start + 48])
    # The windows are a view of the series: reading a batch copies that batch only.
    assert np.shares_memory(src._windows, src.values())
    first = next(iter(src.dataset(32, shuffle=False))).numpy()
    np.testing.assert_array_equal(first[3, :, 0], values[3:51])


def test_per_step_against_a_hand_computed_example():
    # T = 8, window 3, stride 2: windows start at 0, 2, 4 (steps 0-2, 2-4, 4-6); step 7
    # lies in no window.
    src = data.series(np.arange(8.0), window=3, stride=2)
    np.testing.assert_array_equal(src.window_starts, [0, 2, 4])
    scores = [1.0, 2.0, 6.0]
    mean = src.per_step(scores)
    np.testing.assert_array_equal(mean[:7], [1, 1, 1.5, 2, 4, 6, 6])
    assert np.isnan(mean[7])
    # "last": the window ended at or before the step (causal); none ended before step 2.
    last = src.per_step(scores, how="last")
    np.testing.assert_array_equal(last[2:7], [1, 1, 2, 2, 6])
    assert np.isnan(last[[0, 1, 7]]).all()
    # Stride 1: each step gets the score of the window ending at it.
    one = data.series(np.arange(5.0), window=2)
    np.testing.assert_array_equal(one.per_step([10, 20, 30, 40], how="last")[1:], [10, 20, 30, 40])
    np.testing.assert_array_equal(one.per_step([10, 20, 30, 40]), [10, 15, 25, 35, 40])
    with pytest.raises(KerasaeError, match=r"one score per window \(4 windows\)"):
        one.per_step([1, 2])


def test_a_label_column_gives_step_and_window_labels(sensors):
    src = data.series(sensors, window=10, stride=5, label="anomaly")
    assert src.columns == ("load", "temp") and src.image_shape == (10, 2)
    step = np.array([int(90 <= i < 95) for i in range(200)])
    np.testing.assert_array_equal(src.step_labels, step)
    # A window is positive when any of its steps is.
    want = [int(step[s:s + 10].any()) for s in range(0, 191, 5)]
    np.testing.assert_array_equal(src.labels, want)
    again = data.series(np.stack([np.arange(200.0), np.ones(200)], 1), window=10, stride=5,
                        labels=step)
    np.testing.assert_array_equal(again.labels, want)
    info = src.info()
    assert (info["window"], info["stride"], info["steps"], info["label"]) == (10, 5, 200,
                                                                              "anomaly")


def test_validation_of_a_series_is_its_contiguous_tail(sensors):
    train, val = data.train_and_validation(sensors, validation=0.1, window=10, label="anomaly")
    with open(sensors, newline="") as f:
        load = np.array([float(r[1]) for r in list(csv.reader(f))[1:]], "float32")
    # The last 20 of 200 steps are held out; no window crosses step 180.
    assert (train.n_steps, val.n_steps, val.first_step) == (180, 20, 180)
    assert train.window_starts[-1] + 10 <= 180 and len(val) == 11
    np.testing.assert_array_equal(val.load_batch([0])[0, :, 0], load[180:190])
    np.testing.assert_array_equal(val.values()[:, 0], load[180:])
    assert val.timestamps == data.series(sensors, window=10, label="anomaly").timestamps[180:]
    assert "contiguous tail" in val.split and val.info()["first_step"] == 180
    with pytest.raises(DataError, match=r"holds out its last 2 steps, leaving 198; each part "
                                        r"needs one window \(10 steps\)"):
        data.train_and_validation(sensors, validation=0.01, window=10, label="anomaly")


@pytest.mark.parametrize("kwargs, phrase", [
    ({"window": 0}, r"window is the steps in one window: a whole number of time steps, 1 "
                    r"or more. Received: window=0"),
    ({"window": -3}, r"Received: window=-3"),
    ({"window": 5, "stride": 0}, r"stride is the steps between two windows.*Received: "
                                 r"stride=0"),
    ({"window": 201}, r"holds a series of 200 time steps, shorter than one window of 201.*"
                      r"Received: window=201, steps=200"),
], ids=["window-0", "window-negative", "stride-0", "shorter-than-a-window"])
def test_bad_windows_are_one_clear_error(sensors, kwargs, phrase):
    with pytest.raises(DataError, match=phrase) as caught:
        data.series(sensors, label="anomaly", **kwargs)
    assert "\n" not in str(caught.value)


def test_a_series_with_bad_cells_is_refused_or_imputed(tmp_path):
    rows = [[str(i), str(float(i))] for i in range(10)]
    rows[4][1] = ""
    path = write_csv(tmp_path / "gap.csv", ["time", "v"], rows)
    with pytest.raises(DataError, match=r"line 6, column 'v' is empty.*impute="):
        data.series(path, window=3)
    src = data.series(path, window=3, impute="mean")
    want = np.arange(10.0)
    want[4] = np.delete(np.arange(10.0), 4).mean()
    np.testing.assert_array_equal(src.values()[:, 0], want.astype("float32"))
    assert src.info()["filled"] == {"v": 1}
    with pytest.raises(DataError, match=r"holds windows already"):
        data.series(np.zeros((4, 5, 1)), window=2)


def test_routes_of_a_series(sensors, tmp_path):
    x = np.stack([np.arange(30.0), np.arange(30.0) * -2], axis=1)
    src = data.get_source(x, window=6, stride=3)
    assert isinstance(src, data.SeriesSource) and src.image_shape == (6, 2) and len(src) == 9
    # A series model's input length cuts a csv (or a (T, C) array) when no window is given.
    src = data.get_source(sensors, kind="series", default_window=12, label="anomaly")
    assert isinstance(src, data.SeriesSource) and src.window == 12
    assert isinstance(data.get_source(sensors, label="anomaly"), data.TableSource)
    with pytest.raises(DataError, match=r"give the window to cut it with"):
        data.get_source(x, kind="series")
    with pytest.raises(DataError, match=r"window cuts a series, but the model takes records"):
        data.get_source(x, kind="vector", window=4)
    # Windows cut already keep their route, with or without a model's length.
    windows = np.zeros((7, 6, 2), "float32")
    for got in (data.get_source(windows, kind="series"),
                data.get_source(windows, kind="series", default_window=6)):
        assert got.image_shape == (6, 2) and len(got) == 7
    np.save(tmp_path / "s.npy", x)
    src = data.get_source(str(tmp_path / "s.npy"), window=10)
    np.testing.assert_array_equal(src.values(), x.astype("float32"))


def test_a_dataframe_series_keeps_its_time_column():
    pd = pytest.importorskip("pandas", reason="pandas is not installed (kerasae does not need "
                                              "it; pip install pandas to run this test)")
    df = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=6, freq="D"),
                       "v": [1.0, 2.0, None, 4.0, 5.0, 6.0]})
    src = data.series(df, window=2, impute="zero")
    assert src.timestamps[0].startswith("2024-01-01") and len(src.timestamps) == 6
    np.testing.assert_array_equal(src.values()[:, 0], [1, 2, 0, 4, 5, 6])
