"""The ADBench benchmark: its split and metrics against their definitions, IsolationForest
and PyOD's PCA against PyOD's published cardio figures, and a whole run on one small set
(skipped when ADBench's files or PyOD and torch are absent)."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from kerasae.benchmarks import adbench
from tests.helpers import ADBENCH_DIR, ENV, REPO

needs_adbench = pytest.mark.skipif(
    not os.path.isfile(os.path.join(ADBENCH_DIR, "6_cardio.npz")),
    reason=f"needs ADBench's Classical *.npz files at {ADBENCH_DIR}; set "
           "KERASAE_ADBENCH_DATA to their folder")
needs_pyod = pytest.mark.skipif(
    not (importlib.util.find_spec("pyod") and importlib.util.find_spec("torch")),
    reason="needs PyOD and the CPU build of torch: pip install pyod torch==2.13.0")


def auc_by_pairs(y, s):
    """ROC-AUC as the share of (anomaly, normal) pairs ranked right, ties counting half."""
    pos, neg = s[y == 1][:, None], s[y == 0][None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def ap_by_definition(y, s):
    """Average precision without ties: the mean, over anomalies, of the precision of the
    top-k rows where k is the anomaly's rank."""
    ranked = y[np.argsort(-s)]
    hits = np.cumsum(ranked)
    return float(np.mean([hits[k] / (k + 1) for k in np.flatnonzero(ranked)]))


def test_metrics_match_their_definitions():
    y = np.array([1, 0, 0, 1, 0, 0, 0, 1])
    s = np.array([0.9, 0.8, 0.3, 0.7, 0.6, 0.1, 0.2, 0.05])
    # By hand: anomalies at ranks 1, 3, 8 beat 5, 4, 0 of the 5 normals; AP is
    # (1/1 + 2/3 + 3/8) / 3.
    assert adbench.metrics(y, s) == pytest.approx({"roc_auc": 9 / 15, "pr_auc": 49 / 72})
    assert adbench.metrics(np.array([1, 0, 0]), np.array([0.5, 0.5, 0.1]))["roc_auc"] == 0.75
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.1).astype(int)
    s = rng.normal(size=300) + y  # continuous: no ties
    assert adbench.metrics(y, s) == pytest.approx(
        {"roc_auc": auc_by_pairs(y, s), "pr_auc": ap_by_definition(y, s)}, abs=1e-12)


def check_split(y, seed):
    train, test = adbench.split(y, seed)
    assert len(np.intersect1d(train, test)) == 0
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(y)))
    assert abs(len(train) - 0.6 * len(y)) < 1  # 60/40 to within one row
    for label in (0, 1):  # each class in the train part's share, to within one row
        share = len(train) * np.mean(y == label)
        assert abs(int(np.sum(y[train] == label)) - share) < 1, (label, seed)
    again = adbench.split(y, seed)
    np.testing.assert_array_equal(train, again[0])
    np.testing.assert_array_equal(test, again[1])
    return train


def test_split_is_stratified_and_reproducible():
    y = np.r_[np.zeros(1001, int), np.ones(37, int)]
    trains = [check_split(y, seed) for seed in range(5)]
    assert not np.array_equal(trains[0], trains[1])  # the seed changes the split


@needs_adbench
def test_split_of_every_adbench_set():
    for name in adbench.SETS:
        _, y = adbench.load_set(ADBENCH_DIR, name)
        for seed in range(5):
            check_split(y, seed)


@needs_adbench
@needs_pyod
def test_iforest_and_pca_on_cardio_near_pyods_published_figures():
    x, y = adbench.load_set(ADBENCH_DIR, "cardio")
    train, test = adbench.split(y, 0)
    runs = {n: adbench.run_one(n, 0, x[train], x[test], y[test]) for n in ("iforest", "pca")}
    # PyOD's benchmark table (10 unstratified 60/40 splits): cardio 0.9213 and 0.9504.
    assert runs["iforest"]["roc_auc"] == pytest.approx(0.92, abs=0.03)
    assert runs["pca"]["roc_auc"] == pytest.approx(0.95, abs=0.03)
    # The reported IForest is scikit-learn's; PyOD's wraps the same forest, so its
    # scores differ by a constant and its figures are the same.
    from pyod.models.iforest import IForest
    scaler = StandardScaler().fit(x[train])
    pyod_scores = IForest(random_state=0).fit(scaler.transform(x[train])).decision_function(
        scaler.transform(x[test]))
    assert adbench.metrics(y[test], pyod_scores) == pytest.approx(
        {k: runs["iforest"][k] for k in ("roc_auc", "pr_auc")}, abs=1e-12)


@needs_adbench
@needs_pyod
@pytest.mark.slow  # about 20 s: numba compiles PyOD's distance function first
def test_whole_run_on_one_set(tmp_path, capsys):
    out = tmp_path / "vowels.json"
    assert adbench.main(["--data", ADBENCH_DIR, "--sets", "vowels", "--seeds", "2",
                         "--detectors", "iforest,pca,pyod_ae", "--json", str(out),
                         "--table"]) == 0
    result = json.loads(out.read_text())
    assert list(result["sets"]) == ["vowels"]
    ran = result["sets"]["vowels"]["detectors"]
    assert list(ran) == ["iforest", "pca", "pyod_ae"] and result["skipped"] == {}
    for name, s in ran.items():
        assert len(s["roc_auc"]) == len(s["pr_auc"]) == len(s["fit_s"]) == 2
        assert s["roc_auc_mean"] == pytest.approx(np.mean(s["roc_auc"]))
        assert s["pr_auc_std"] == pytest.approx(np.std(s["pr_auc"]))
        assert all(0 <= v <= 1 for v in s["roc_auc"] + s["pr_auc"]), name
        assert all(v > 0 for v in s["fit_s"]), name
        assert result["mean_over_sets"][name]["roc_auc"] == pytest.approx(s["roc_auc_mean"])
    # Every detector saw the same splits: seed 0's PCA, rerun alone, gives the same figure.
    x, y = adbench.load_set(ADBENCH_DIR, "vowels")
    train, test = adbench.split(y, 0)
    alone = adbench.run_one("pca", 0, x[train], x[test], y[test])
    assert ran["pca"]["roc_auc"][0] == pytest.approx(alone["roc_auc"], abs=1e-12)
    printed = capsys.readouterr().out
    assert "**ROC-AUC**, mean ± std over 2 seeds" in printed
    assert "| set | IForest | PCA (PyOD) | AutoEncoder (PyOD) |" in printed
    assert "| vowels | " in printed and "| **mean** | " in printed


@needs_adbench
@pytest.mark.slow
def test_kerasae_rows_run_through_the_harness():
    x, y = adbench.load_set(ADBENCH_DIR, "vowels")
    s = adbench.run_set(x, y, ["stacked_ae"], seeds=1, log=lambda line: None)["stacked_ae"]
    assert 0.5 < s["roc_auc"][0] <= 1 and 0 < s["pr_auc"][0] <= 1


def test_a_missing_optional_module_skips_its_detector(tmp_path, monkeypatch):
    entry = ("probe", None, "kerasae.uses.no_such_detector", "not written yet")
    monkeypatch.setitem(adbench.DETECTORS, "probe", entry)
    assert adbench.unavailable("probe") == \
        "no module 'kerasae.uses.no_such_detector' (not written yet)"
    # A module that exists but fails on a missing import of its own is a fault: it raises.
    (tmp_path / "broken_detector.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(adbench.DETECTORS, "probe", ("probe", None, "broken_detector", ""))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        adbench.unavailable("probe")


def test_bad_arguments_are_one_line_and_exit_1(tmp_path):
    for args, phrase in ((["--data", str(tmp_path), "--sets", "cardoi"],
                          "Unknown set 'cardoi'. Did you mean 'cardio'?"),
                         (["--data", str(tmp_path), "--sets", "cardio"],
                          "Expected one ADBench file '<n>_cardio.npz'"),
                         (["--data", str(tmp_path), "--detectors", "iforest,ocsvm"],
                          "Unknown detector 'ocsvm'")):
        done = subprocess.run([sys.executable, "-m", "kerasae.benchmarks.adbench", *args],
                              cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith("error: " + phrase), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
