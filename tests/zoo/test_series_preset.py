"""The shipped series preset (a detector for NAB's ec2_request_latency series) and the
publishing of series presets: it loads offline, takes raw values, and its card's numbers
come back from the NAB file through numpy and scikit-learn alone (the NAB tests skip, with
the reason, where the corpus is absent)."""

import csv
import os

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.metrics import average_precision_score, roc_auc_score

import kerasae
from kerasae import zoo
from kerasae._util.errors import InvalidValue
from kerasae.benchmarks import nab
from tests.conftest import check_preset
from tests.helpers import NAB_DIR, run_cli, sha256

NAME = "conv1d_ae_nab_ec2_request_latency"
NAB_FILE = "realKnownCause/ec2_request_latency_system_failure.csv"
NAB_PATH = os.path.join(NAB_DIR, "data", NAB_FILE)
needs_nab = pytest.mark.skipif(
    not (os.path.isfile(NAB_PATH) and os.path.isfile(os.path.join(NAB_DIR, nab.WINDOWS_FILE))),
    reason=f"needs NAB's {NAB_FILE} and labels/combined_windows.json under {NAB_DIR} (set "
           "KERASAE_NAB_DATA to a copy of NAB's data/ and labels/ folders)")
SHIPPED = zoo.shipped_root()

pytestmark = pytest.mark.usefixtures("no_zoo_env")


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    """`(model, metadata)` of the shipped preset, loaded with no cache and no mirror."""
    cache = str(tmp_path_factory.mktemp("cache"))
    model = zoo.load_model(NAME, root=SHIPPED, cache_dir=cache, mirrors=[])
    meta = zoo.get_preset(NAME, root=SHIPPED, cache_dir=cache, mirrors=[]).metadata()
    return model, meta


def _csv_values(path):
    """The `value` column of a `timestamp,value` file, read with the csv module."""
    with open(path, newline="") as f:
        return np.array([float(row["value"]) for row in csv.DictReader(f)])


def _scale(model):
    layer = model.encoder.get_layer("scale")
    return float(layer.center.numpy()[0]), float(layer.scale.numpy()[0])


def test_series_preset_is_shipped_pinned_and_loads_offline(preset):
    model, meta = preset
    entry, _ = check_preset(SHIPPED, NAME)
    assert entry["builder"] == "conv1d_ae" and model.input_kind == "series"
    assert entry["files"][zoo.WEIGHTS_FILE]["bytes"] < 100_000  # a few thousand parameters
    assert "train.sh" in entry["files"]
    d = meta["dataset"]
    assert d["kind"] == "series" and d["name"] == os.path.basename(NAB_FILE)
    assert list(model.image_shape) == [d["window"], 1]
    again = kerasae.Conv1DAE(weights=NAME)  # the builder's weights= route, shipped root
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), again.get_weights()))


@needs_nab
def test_series_preset_scales_as_its_training_steps_and_takes_raw_values(preset):
    model, meta = preset
    values, k = _csv_values(NAB_PATH), meta["evaluation"]["settings"]["train_steps"]
    assert sha256(NAB_PATH) == meta["dataset"]["sha256"]
    # kerasae.fit fits the scaling on the training windows' values (overlapping windows).
    train = sliding_window_view(values[:k], model.image_shape[0])
    center, scale = _scale(model)
    assert center == pytest.approx(train.mean(), rel=1e-5)
    assert scale == pytest.approx(train.std(), rel=1e-5)
    # Raw degrees in, raw degrees out: no scaler outside the model.
    x = train[::50, :, None].astype("float32")
    recon = model.predict(x, verbose=0)
    assert abs(recon.mean() - x.mean()) < 0.05 * scale
    assert np.sqrt(np.mean((recon - x) ** 2)) < 0.5 * scale


def _reference(model, values, y, k, percentile):
    """The card's metrics from numpy and scikit-learn: window errors in the scaled units,
    each step the mean of the windows that hold it, the threshold from the training
    windows, everything else on the steps after them."""
    w = model.image_shape[0]
    x = sliding_window_view(values, w)[..., None].astype("float32")
    _, scale = _scale(model)
    recon = model.predict(x, batch_size=4096, verbose=0)
    err = (((x.astype("float64") - recon) / scale) ** 2).mean(axis=(1, 2))
    n = len(values)
    # Step t is held by windows max(0, t - w + 1) .. min(t, len(err) - 1).
    steps = np.convolve(err, np.ones(w))[:n] / np.convolve(np.ones(len(err)), np.ones(w))[:n]
    threshold = np.percentile(err[:k - w + 1], percentile)
    held, s = y[k:], steps[k:]
    flagged = s > threshold
    labelled = np.array([y[i:i + w].any() for i in range(k, len(err))])
    edges = np.flatnonzero(np.diff(np.concatenate([[0], held, [0]])))
    runs = list(zip(edges[::2], edges[1::2]))
    return {
        "mse": err[k:].mean(), "mse_normal": err[k:][~labelled].mean(),
        "threshold": threshold, "roc_auc": roc_auc_score(held, s),
        "pr_auc": average_precision_score(held, s), "labelled_windows": len(runs),
        "labelled_windows_flagged": sum(flagged[a:b].any() for a, b in runs),
        "recall": flagged[held].mean(), "steps_flagged_outside": int(flagged[~held].sum()),
        "false_positive_rate": flagged[~held].mean(),
    }, [int(flagged[a:b].sum()) for a, b in runs]


@needs_nab
def test_series_preset_reproduces_its_card_on_the_nab_file(preset):
    model, meta = preset
    series = nab.load_corpus(NAB_DIR)
    series = next(s for s in series if s.name == NAB_FILE)  # windows from NAB's label file
    y = np.zeros(len(series.values), bool)
    for a, b in series.windows:
        y[a:b + 1] = True
    evaluation = meta["evaluation"]
    settings = evaluation["settings"]
    expected, flagged_steps = _reference(model, series.values, y, settings["train_steps"],
                                         settings["threshold_percentile"])
    recorded = evaluation["metrics"]
    assert set(recorded) == set(expected)
    assert recorded == pytest.approx(expected, rel=1e-4)
    assert [w["flagged_steps"] for w in evaluation["labelled_windows"]] == flagged_steps
    assert [(w["first"], w["last"]) for w in evaluation["labelled_windows"]] == [
        (series.timestamps[a], series.timestamps[b]) for a, b in series.windows]
    # `kerasae zoo evaluate NAME --dataset FILE` (its Python call) repeats the card.
    again = zoo.evaluate_preset(NAME, dataset=NAB_PATH, root=SHIPPED, mirrors=[])
    assert again["same_data"] and again["examples"] == evaluation["examples"]
    assert again["metrics"] == pytest.approx(recorded, rel=1e-6)


def test_series_preset_without_a_dataset_is_one_line(tmp_path):
    with pytest.raises(InvalidValue, match=r"ships no series: give the one to measure .*"
                                           r"ec2_request_latency_system_failure\.csv"):
        zoo.evaluate_preset(NAME, root=SHIPPED, mirrors=[])
    with pytest.raises(InvalidValue, match="measures a whole series. Received: limit=10"):
        zoo.evaluate_preset(NAME, dataset="x.csv", limit=10, root=SHIPPED, mirrors=[])
    proc = run_cli(["zoo", "evaluate", NAME], tmp_path, check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "ships no series" in proc.stderr
    assert "Traceback" not in proc.stderr


def _write_series(path, values, labels, start=0):
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["timestamp", "value", "label"])
        for i, (v, lab) in enumerate(zip(values, labels)):
            out.writerow([f"t{start + i:05d}", f"{v:.6f}", int(lab)])


def test_publish_series_model_records_windows_and_evaluate_repeats_the_card(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(400)
    values = 20 + 5 * np.sin(2 * np.pi * t / 32) + rng.normal(0, 0.1, len(t))
    labels = (t >= 300) & (t < 312)
    values[labels] += 15  # a jump, labelled
    data = tmp_path / "series.csv"
    _write_series(data, values, labels)
    model = kerasae.Conv1DAE(filters=(4, 2), kernel_size=3, input_shape=(16, 1), seed=1)
    model.adapt(sliding_window_view(values[:200], 16)[..., None].astype("float32"))
    root = str(tmp_path / "zoo")
    folder = zoo.publish(model, "conv1d_ae_tiny_series", version=1, description="A test.",
                         dataset=str(data), recipe={"command": "kerasae train conv1d_ae"},
                         evaluation={"train_steps": 200}, data_kwargs={"label": "label"},
                         root=root)
    entry, meta = check_preset(root, "conv1d_ae_tiny_series")
    assert (entry["dataset"], entry["split"], entry["eval_split"]) == (
        "series.csv", "steps 0-199", "steps 200-399")
    assert meta["dataset"]["sha256"] == sha256(data) and meta["dataset"]["window"] == 16
    assert meta["evaluation"]["labelled_windows"] == [
        {"first": "t00300", "last": "t00311", "steps": 12,
         "flagged_steps": meta["evaluation"]["labelled_windows"][0]["flagged_steps"]}]
    with open(os.path.join(folder, "README.md"), encoding="utf-8") as f:
        card = f.read()
    assert "## Labelled windows" in card and "| t00300 | t00311 | 12 |" in card
    assert "kerasae zoo evaluate conv1d_ae_tiny_series --dataset series.csv" in card
    expected, _ = _reference(model, values, labels, 200, 99.0)
    assert meta["evaluation"]["metrics"] == pytest.approx(expected, rel=1e-4)
    # The recorded windows (by timestamp) label the file again, without its label column.
    again = zoo.evaluate_preset("conv1d_ae_tiny_series", dataset=str(data), root=root)
    assert again["same_data"]
    assert again["metrics"] == pytest.approx(meta["evaluation"]["metrics"], rel=1e-6)
    other = tmp_path / "other.csv"
    _write_series(other, values, labels, start=1000)
    with pytest.raises(InvalidValue, match="has no step with timestamp 't00300'"):
        zoo.evaluate_preset("conv1d_ae_tiny_series", dataset=str(other), root=root)
