"""anomaly on records and series: every row / time step scored, the threshold's flags in
scores.csv, labelled windows, and the exported detector flagging the same rows in the
Python client (onnxruntime) as in Keras."""

import csv
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from kerasae._util.errors import InvalidValue, KerasaeError
from kerasae.cli import main
from kerasae.uses import anomaly
from tests.helpers import NODE_HINT, node_client, run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = os.path.join(ROOT, "export", "python", "kerasae_client.py")


def _client():
    spec = importlib.util.spec_from_file_location("kerasae_client", CLIENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def table_csv(tmp_path_factory):
    """Rows near a 3-D subspace of 11-D (values in the hundreds) and a constant column;
    5 % of the rows off the subspace, labelled."""
    rng = np.random.default_rng(0)
    n, k = 600, 30
    z = rng.normal(size=(n, 3))
    x = z @ rng.normal(size=(3, 11)) * 40 + 300 + rng.normal(scale=2.0, size=(n, 11))
    y = np.zeros(n, "int64")
    y[:k] = 1
    x[:k] += rng.normal(scale=60, size=(k, 11))
    path = tmp_path_factory.mktemp("table") / "records.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"f{j}" for j in range(11)] + ["constant", "is_anomaly"])
        for row, label in zip(x, y):
            w.writerow([f"{v:.4f}" for v in row] + ["7.5", int(label)])
    return path, y


@pytest.fixture(scope="module")
def table_run(table_csv, tmp_path_factory):
    path, _ = table_csv
    out = tmp_path_factory.mktemp("run") / "out"
    return anomaly(dataset=str(path), label="is_anomaly", out=out), out  # the "auto" budget


def test_every_row_is_scored_and_flagged_by_the_recorded_threshold(table_csv, table_run):
    _, y = table_csv
    r, out = table_run
    rows = _read(out / "scores.csv")
    assert [int(row["row"]) for row in rows] == list(range(len(y)))
    scores = np.array([float(row["score"]) for row in rows])
    saved = json.loads((out / "anomaly.json").read_text())
    t = saved["threshold"]["value"]
    assert [int(row["flagged"]) for row in rows] == (scores > t).astype(int).tolist()
    assert [int(row["label"]) for row in rows] == y.tolist()
    # The threshold is the rule on the training scores (all rows: no normal part given).
    assert t == pytest.approx(np.percentile(r.arrays["train_scores"], 99))
    assert saved["roc_auc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-4)
    assert saved["roc_auc"] > 0.9, saved["roc_auc"]
    assert {"anomaly.png", "scores.csv", "anomaly.json"} <= {p.name for p in out.iterdir()}
    assert saved["labels_read_as"] == {"rule": "0 is normal, > 0 an anomaly", "classes": [0, 1],
                                       "anomalies": int(y.sum()), "of": len(y)}


def test_the_exported_detector_flags_the_same_rows_from_raw_values(table_csv, table_run,
                                                                   tmp_path):
    path, y = table_csv
    r, out = table_run
    raw = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(12), dtype="float32")
    client = _client().KerasaeExport(str(out / "detector"))
    scores, flags = client.anomaly(raw)
    np.testing.assert_allclose(scores, r.arrays["scores"], rtol=1e-3, atol=1e-6)
    assert flags.tolist() == r.arrays["flagged"].tolist()
    assert flags.sum() > 0
    node = node_client()
    if node is None:
        pytest.skip(NODE_HINT)
    rows = tmp_path / "rows.npy"
    np.save(rows, raw)
    proc = subprocess.run([node, os.path.join(ROOT, "export", "node", "check.js"),
                           str(out / "detector"), "--json", "--images", str(rows)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)["images"]
    np.testing.assert_allclose(report["scores"], r.arrays["scores"], rtol=1e-3, atol=1e-6)
    assert report["flags"] == r.arrays["flagged"].tolist()


def test_the_scaling_inside_the_model_is_fitted_on_the_training_rows(table_csv, table_run):
    path, _ = table_csv
    r, _ = table_run
    raw = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(12), dtype="float64")
    scale = r.model.encoder.get_layer("scale")
    np.testing.assert_allclose(scale.center.numpy(), raw.mean(axis=0), rtol=1e-5)
    # Population std; the constant column keeps a scale of 1 (no division by zero).
    np.testing.assert_allclose(scale.scale.numpy(), np.where(raw.std(axis=0) > 0,
                                                             raw.std(axis=0), 1.0), rtol=1e-4)


def test_normal_label_trains_on_the_rows_labelled_normal(table_csv, tmp_path):
    path, y = table_csv
    r = anomaly(dataset=str(path), label="is_anomaly", normal="label", epochs=2,
                batch_size=64, threshold="mean+3std", export=False)
    assert r["training"]["examples"] == int((y == 0).sum())
    train = r.arrays["train_scores"]
    assert r["threshold"]["value"] == pytest.approx(train.mean() + 3 * train.std())


@pytest.fixture(scope="module")
def series_csv(tmp_path_factory):
    """A daily cycle (24 steps a day) for 40 days with a level jump over steps 700-729."""
    t = np.arange(960)
    v = 50 + 20 * np.sin(2 * np.pi * t / 24) + np.random.default_rng(1).normal(0, 0.5, 960)
    label = ((t >= 700) & (t < 730)).astype(int)
    v[label == 1] += 35
    path = tmp_path_factory.mktemp("series") / "sensor.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value", "label"])
        for i in t:
            w.writerow([f"2024-01-{1 + i // 24:02d} {i % 24:02d}:00:00", f"{v[i]:.3f}",
                        label[i]])
    return path, label


@pytest.mark.slow
def test_a_series_is_scored_per_step_and_its_window_found(series_csv, tmp_path):
    path, label = series_csv
    out = tmp_path / "series"
    r = anomaly(dataset=str(path), window=24, stride=2, label="label", normal="first:600",
                epochs=10, batch_size=32, out=out)
    rows = _read(out / "scores.csv")
    assert len(rows) == 960 and rows[0]["timestamp"] == "2024-01-01 00:00:00"
    w = r["labelled_windows"]
    assert w["windows"] == 1 and w["flagged"] == 1
    assert r["training"]["examples"] == len(range(0, 600 - 24 + 1, 2))
    assert (out / "scores_over_time.png").stat().st_size > 10_000
    # Steps no window holds (the stride leaves the last one out) are blank, not zero.
    blank = [i for i, row in enumerate(rows) if row["score"] == ""]
    assert blank == ([959] if (960 - 24) % 2 else [])
    # The client scores the windows the Keras model scores.
    client = _client().KerasaeExport(str(out / "detector"))
    windows = np.lib.stride_tricks.sliding_window_view(
        np.loadtxt(path, delimiter=",", skiprows=1, usecols=[1], dtype="float32"), 24)[::2]
    scores, flags = client.anomaly(windows[..., None])
    np.testing.assert_allclose(scores, r.detector.window_scores(windows[..., None]),
                               rtol=1e-3, atol=1e-6)
    assert flags.tolist() == (scores > r["threshold"]["value"]).tolist()
    # The client's command line reads the .csv by the fitted column's name (the timestamp
    # and label columns left out), cuts its windows (stride 2) and scores every step as
    # the detector did (per_step "mean"), flagging what scores.csv flags.
    report = _client_score(out / "detector", path)
    assert [row["row"] for row in report["rows"]] == list(range(960))
    got = np.array([np.nan if row["score"] is None else row["score"] for row in report["rows"]])
    np.testing.assert_allclose(got, r.arrays["scores"], rtol=1e-3, atol=1e-6)
    assert np.isnan(got).tolist() == np.isnan(r.arrays["scores"]).tolist()
    assert [row["anomaly"] for row in report["rows"]] == [int(row["flagged"]) == 1
                                                          for row in rows]


def _client_score(export_dir, path):
    proc = subprocess.run([sys.executable, CLIENT, "score", str(export_dir), str(path), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_the_python_client_scores_a_csv_by_the_fitted_column_names(table_csv, table_run,
                                                                  tmp_path):
    path, _ = table_csv
    r, out = table_run
    manifest = json.loads((out / "detector" / "manifest.json").read_text())
    assert manifest["anomaly"]["columns"] == [f"f{j}" for j in range(11)] + ["constant"]
    # The same rows with their columns reversed, the label first: read by name.
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    shuffled = tmp_path / "reversed.csv"
    with open(shuffled, "w", newline="") as f:
        csv.writer(f).writerows([row[::-1] for row in table])
    report = _client_score(out / "detector", shuffled)
    assert [row["row"] for row in report["rows"]] == list(range(len(table) - 1))
    np.testing.assert_allclose([row["score"] for row in report["rows"]], r.arrays["scores"],
                               rtol=1e-3, atol=1e-6)
    assert [row["anomaly"] for row in report["rows"]] == r.arrays["flagged"].tolist()
    missing = tmp_path / "missing.csv"
    missing.write_text("f0,f1\n1,2\n")
    proc = subprocess.run([sys.executable, CLIENT, "score", str(out / "detector"), str(missing)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "lacks the column(s)" in proc.stderr


def test_bad_requests_are_one_line_and_write_nothing(table_csv, tmp_path, capsys):
    path, _ = table_csv
    unlabelled = tmp_path / "u.csv"
    unlabelled.write_text("a,b\n1,2\n3,4\n5,7\n")
    cases = [(["--dataset", str(unlabelled), "--normal", "label"], "--label"),
             (["--dataset", str(path), "--label", "is_anomaly", "--normal", "first:1"],
              "first:15%"),
             (["--dataset", str(path), "--held-out", "2"], "held_out"),
             (["--dataset", str(path)], "--label is_anomaly"),
             (["--dataset", str(path), "--stride", "4"], "give its window (--window N)"),
             (["--dataset", str(path), "--per-step", "last"], "per_step='last', window=None")]
    for args, words in cases[1:]:  # in this process: the CLI's own error handling
        assert main(["anomaly", *args, "--out", str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
    args, words = cases[0]  # and one as a user runs it
    p = run_cli(["anomaly", *args, "--out", tmp_path / "out"], tmp_path, check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr and words in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "out").exists()


def test_a_threshold_typed_as_a_number_is_a_fixed_threshold():
    """The command line passes --threshold as text: '2.5' is the number 2.5, as in Python;
    a word or a non-finite number is refused with the rules it may be."""
    from kerasae.uses._scores import choose_threshold, parse_threshold

    scores = np.array([1.0, 2.0, 3.0, 4.0])
    for spec in ("2.5", " 2.5 ", 2.5):
        value, rule = choose_threshold(scores, spec)
        assert (value, rule["method"], rule["train_flagged_fraction"]) == (2.5, "fixed", 0.5)
    for bad in ("nan", "inf", "high"):
        with pytest.raises(InvalidValue, match="or a number"):
            parse_threshold(bad)


def test_labels_that_do_not_say_which_rows_are_anomalies_are_refused(tmp_path):
    """Text classes were numbered by their sorted names ('anomaly' became 0, normal);
    labels {1, 2} left normal='label' nothing to train on (a batch size of 0)."""
    from tests.helpers import write_csv

    rng = np.random.default_rng(0)
    rows = [[f"{a:.3f}", f"{b:.3f}", "anomaly" if i < 5 else "normal"]
            for i, (a, b) in enumerate(rng.normal(size=(60, 2)))]
    text = write_csv(tmp_path / "text.csv", ["a", "b", "kind"], rows)
    with pytest.raises(InvalidValue, match=r"holds text \('anomaly', 'normal'\).*Recode"):
        anomaly(dataset=text, label="kind", export=False)
    ones_twos = write_csv(tmp_path / "12.csv", ["a", "b", "kind"],
                          [[r[0], r[1], 2 if r[2] == "anomaly" else 1] for r in rows])
    with pytest.raises(InvalidValue, match=r"no row is.*Received: labels=\[1, 2\]"):
        anomaly(dataset=ones_twos, label="kind", normal="label", export=False)
    assert sorted(os.listdir(tmp_path)) == ["12.csv", "text.csv"]


def test_a_normal_file_is_read_by_the_datas_columns_without_its_label(tmp_path):
    """--normal FILE beside --label: the file of normal rows may lack the label column or
    hold it (all 0); either way it is read by the data's feature columns (it was read with
    the label option: missing column, or 'one class only')."""
    from tests.helpers import write_csv

    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 3))
    data = write_csv(tmp_path / "data.csv", ["a", "b", "c", "is_anomaly"],
                     [[*map(float, r), int(i < 4)] for i, r in enumerate(x)])
    bare = write_csv(tmp_path / "normal.csv", ["c", "a", "b"],  # other order, no label
                     [[float(r[2]), float(r[0]), float(r[1])] for r in x[4:]])
    labelled = write_csv(tmp_path / "normal_l.csv", ["a", "b", "c", "is_anomaly"],
                         [[*map(float, r), 0] for r in x[4:]])
    for normal in (bare, labelled):
        r = anomaly(dataset=data, label="is_anomaly", normal=normal, epochs=1, batch_size=16,
                    export=False)
        assert r["training"]["examples"] == 76
        assert r["data"]["columns"] == ["a", "b", "c"]


def test_a_detector_scores_dataframes_by_the_columns_it_was_fitted_on():
    """Reordered columns gave other scores, silently; a missing one a Keras shape error."""
    pd = pytest.importorskip("pandas")
    from kerasae.uses.detector import Detector

    rng = np.random.default_rng(2)
    df = pd.DataFrame(rng.normal(size=(64, 3)) * [1, 10, 100], columns=["a", "b", "c"])
    det = Detector("stacked_ae", epochs=1, batch_size=16).fit(df)
    assert det.columns_ == ("a", "b", "c")
    want = det.decision_function(df)
    np.testing.assert_array_equal(det.decision_function(df[["c", "a", "b"]]), want)
    np.testing.assert_array_equal(det.decision_function(df.assign(extra=1.0)), want)
    with pytest.raises(KerasaeError, match="'c'"):
        det.decision_function(df[["a", "b"]])


@pytest.mark.slow
def test_the_command_line_takes_the_robust_score(table_csv, tmp_path):
    path, y = table_csv
    out = tmp_path / "robust"
    assert main(["anomaly", "--dataset", str(path), "--label", "is_anomaly", "--score",
                 "robust", "--out", str(out)]) == 0
    saved = json.loads((out / "anomaly.json").read_text())
    assert saved["score"].startswith("robust:") and saved["roc_auc"] > 0.9
    raw = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(12), dtype="float64")
    mad = 1.4826 * np.median(np.abs(raw - np.median(raw, axis=0)), axis=0)
    scale = json.loads((out / "detector" / "manifest.json").read_text())["anomaly"]["scale"]
    # the spread is the MAD's where the data spread, a tenth of the std's floor elsewhere
    np.testing.assert_allclose(np.asarray(scale)[:11], mad[:11], rtol=1e-5)
    assert scale[11] == 1.0  # the constant column: the model's own scale
