"""ADBench's classical tabular sets under PyOD's protocol: kerasae's detectors beside
IsolationForest, PCA and PyOD's AutoEncoder, on the same splits.

    python -m kerasae.benchmarks.adbench --data DIR [--seeds 5] [--sets cardio,...]
        [--detectors iforest,pca,pyod_ae,stacked_ae,dense_vae,ensemble] [--json OUT]
        [--table]

`DIR` holds ADBench's `<n>_<name>.npz` files (`X`, `y`; y = 1 marks an anomaly). For
each set and each seed 0..S-1: a stratified 60/40 train/test split
(`train_test_split(stratify=y, random_state=seed)`); every detector is fitted on the
training part with its anomalies, labels unused (PyOD's unsupervised protocol), and
scores the test part (higher = more anomalous); ROC-AUC and PR-AUC (average precision)
per run, mean and population std over seeds. IsolationForest and PCA see values
standardised on the training part, as PyOD's benchmark feeds them; PyOD's AutoEncoder
standardises inside (`preprocessing=True`) and kerasae's detectors scale inside the
model, so both take raw values. Every detector runs at its defaults, the same on every
set. Seconds are wall time on this machine, in this run, every library on `--threads`
threads (default 1): `fit` includes the standardisation a detector needs, `score` is the
test part; each detector first fits a few rows untimed (process start-up costs).

Detectors: `iforest` is scikit-learn's IsolationForest (PyOD's IForest wraps the same
forest with the same arguments, so its scores differ by a constant and its metrics are
identical), `pca` is PyOD's PCA (weighted distances to the principal axes; full SVD), `pyod_ae`
PyOD's AutoEncoder (PyTorch, d-64-32-64-d, 10 epochs), `stacked_ae` and `dense_vae`
kerasae's `Detector`, `ensemble` kerasae's `Ensemble` (a `dense_vae` and PyOD's
AutoEncoder's architecture in Keras, robust scores). A detector whose package is missing is skipped with the reason.

PyOD and torch are benchmark dependencies, not kerasae's:
`pip install pyod torch==2.13.0` (the CPU build of torch).
"""

import argparse
import contextlib
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from kerasae._util.errors import InvalidValue, KerasaeError, MissingFile
from kerasae._util.names import unknown_name_error

SETS = ("annthyroid", "cardio", "mammography", "mnist", "satimage-2", "shuttle", "thyroid",
        "vowels")
TEST_SIZE = 0.4
PYOD_INSTALL = "pip install pyod torch==2.13.0"


def load_set(folder, name):
    """`(X, y)` of ADBench's `<n>_<name>.npz` in `folder`, X as float64, y as 0/1 ints."""
    found = sorted(Path(folder).glob(f"*_{name}.npz"))
    if len(found) != 1:
        have = sorted(p.name for p in Path(folder).glob("*.npz"))
        raise MissingFile(
            f"Expected one ADBench file '<n>_{name}.npz' in {folder}, found {len(found)}. "
            f"Point --data at ADBench's Classical folder (files there: "
            f"{', '.join(have) or 'none'}). Received: data={str(folder)!r}, set={name!r}")
    with np.load(found[0]) as f:
        return f["X"].astype(np.float64), f["y"].astype(np.int64).ravel()


def split(y, seed):
    """Train and test row indices: a stratified 60/40 split, reproducible from `seed`."""
    # lazy: scikit-learn is a dependency, but --help stays instant without it
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(y)), test_size=TEST_SIZE, stratify=y,
                            random_state=seed)


def metrics(y_true, scores):
    """`{"roc_auc", "pr_auc"}` of anomaly scores (higher = more anomalous) against 0/1 labels."""
    # lazy: as in split
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {"roc_auc": float(roc_auc_score(y_true, scores)),
            "pr_auc": float(average_precision_score(y_true, scores))}


class _Wrapped:
    """One fit/score interface over the peers' detectors; `standardize` fits a
    StandardScaler on the training part first, as PyOD's benchmark does."""

    def __init__(self, detector, score, standardize):
        self.detector, self._score, self.standardize = detector, score, standardize
        self.scaler = None

    def _prepare(self, x):
        return self.scaler.transform(x) if self.scaler is not None else x

    def fit(self, x):
        if self.standardize:
            from sklearn.preprocessing import StandardScaler  # lazy: as in split
            self.scaler = StandardScaler().fit(x)
        self.detector.fit(self._prepare(x))
        return self

    def score(self, x):
        return np.asarray(self._score(self.detector, self._prepare(x)), dtype=np.float64)


def _iforest(seed):
    from sklearn.ensemble import IsolationForest  # lazy: as in split
    # score_samples is higher for normal rows: negate so anomalies score high.
    return _Wrapped(IsolationForest(random_state=seed), lambda d, x: -d.score_samples(x),
                    standardize=True)


def _pca(seed):
    from pyod.models.pca import PCA  # lazy: a benchmark-only dependency
    # PyOD's defaults but svd_solver="full", which is what "auto" chose for these shapes
    # when PyOD published its figures. Since scikit-learn 1.5 "auto" picks
    # "covariance_eigh", which clips the null directions of rank-deficient data (cardio,
    # mnist) to exactly zero variance, and PyOD's score divides by it: inf everywhere.
    return _Wrapped(PCA(svd_solver="full"), lambda d, x: d.decision_function(x),
                    standardize=True)


def _pyod_ae(seed):
    from pyod.models.auto_encoder import AutoEncoder  # lazy: a benchmark-only dependency
    return _Wrapped(AutoEncoder(random_state=seed, verbose=0),
                    lambda d, x: d.decision_function(x), standardize=False)


def _kerasae(builder):
    def make(seed):
        # lazy: TensorFlow loads only when kerasae's rows run
        from kerasae.uses.detector import Detector
        return Detector(builder, seed=seed, verbose=0)
    return make


def _ensemble(seed):
    # lazy: TensorFlow loads only when kerasae's rows run
    from kerasae.uses.ensemble import Ensemble
    return Ensemble(seed=seed, verbose=0)


# name -> (label for the table, factory(seed) -> object with fit(x) / score(x),
#          the module whose absence skips the detector, what to do about it)
DETECTORS = {
    "iforest": ("IForest", _iforest, "sklearn.ensemble", "pip install scikit-learn"),
    "pca": ("PCA (PyOD)", _pca, "pyod.models.pca", PYOD_INSTALL),
    "pyod_ae": ("AutoEncoder (PyOD)", _pyod_ae, "pyod.models.auto_encoder", PYOD_INSTALL),
    "stacked_ae": ("kerasae stacked_ae", _kerasae("stacked_ae"), "kerasae.uses.detector",
                   "kerasae's Detector (issue 21) is not written yet"),
    "dense_vae": ("kerasae dense_vae", _kerasae("dense_vae"), "kerasae.uses.detector",
                  "kerasae's Detector (issue 21) is not written yet"),
    "ensemble": ("kerasae Ensemble", _ensemble, "kerasae.uses.ensemble",
                 "kerasae's Ensemble is not written yet"),
}


def unavailable(name):
    """Why detector `name` cannot run here (a missing package), or None when it can."""
    module, fix = DETECTORS[name][2], DETECTORS[name][3]
    try:
        # lazy: probes an optional dependency (kerasae.uses.detector loads TensorFlow)
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        # Only the probed module (or a package above it) missing means "skip"; a module
        # missing deeper down is a real fault and propagates.
        if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
            raise
        return f"no module {e.name!r} ({fix})"
    return None


def run_one(name, seed, x_train, x_test, y_test):
    """Fit detector `name` on `x_train`, score `x_test`: metrics and seconds."""
    t0 = time.perf_counter()
    detector = DETECTORS[name][1](seed).fit(x_train)
    t1 = time.perf_counter()
    scores = np.asarray(detector.score(x_test), dtype=np.float64).ravel()
    t2 = time.perf_counter()
    if scores.shape != (len(x_test),) or not np.isfinite(scores).all():
        raise InvalidValue(f"Detector {name!r} returned {scores.shape} scores "
                           f"(finite: {bool(np.isfinite(scores).all())}) for "
                           f"{len(x_test)} test rows; expected one finite score per row. "
                           f"Received: detector={name!r}, seed={seed}")
    return {**metrics(y_test, scores), "fit_s": t1 - t0, "score_s": t2 - t1}


def _summary(runs):
    """Per-seed lists plus mean and population std of each figure."""
    out = {}
    for key in ("roc_auc", "pr_auc", "fit_s", "score_s"):
        values = [r[key] for r in runs]
        out[key] = values
        out[key + "_mean"] = float(np.mean(values))
        out[key + "_std"] = float(np.std(values))
    return out


def run_set(x, y, names, seeds, log=print):
    """Every detector in `names` on the same `seeds` splits of one set: its summaries."""
    runs = {n: [] for n in names}
    for seed in range(seeds):
        train, test = split(y, seed)
        for n in names:  # interleaved, so load on the machine hits every detector alike
            runs[n].append(run_one(n, seed, x[train], x[test], y[test]))
    results = {n: _summary(r) for n, r in runs.items()}
    for n, s in results.items():
        log(f"  {n:<11} ROC-AUC {s['roc_auc_mean']:.4f} ± {s['roc_auc_std']:.4f}   "
            f"PR-AUC {s['pr_auc_mean']:.4f} ± {s['pr_auc_std']:.4f}   "
            f"fit {s['fit_s_mean']:.2f} s   score {s['score_s_mean']:.2f} s")
    return results


def _environment():
    env = {"python": platform.python_version(), "cpus": os.cpu_count()}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("model name")]
        env["cpu"] = models[0] if models else platform.machine()
    for module in ("numpy", "sklearn", "pyod", "torch", "keras", "tensorflow"):
        if module in sys.modules:
            env[module] = getattr(sys.modules[module], "__version__", "?")
    if "torch" in sys.modules:
        env["torch_threads"] = sys.modules["torch"].get_num_threads()
    return env


@contextlib.contextmanager
def _threads(n, names):
    """Every library on `n` threads (0: their own defaults) while the benchmark runs.

    On this shared 2-core machine torch at its default 2 threads fit PyOD's AutoEncoder
    13x slower than on one (its OpenMP workers spin waiting for descheduled ones), so the
    default is one thread for every detector alike."""
    if n < 1:
        yield "library defaults"
        return
    # lazy: threadpoolctl comes with scikit-learn; only a run needs it
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")  # imported by the probe when PyOD's AE runs
    before = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(n)
    note = f"{n} (torch, BLAS, OpenMP"
    if any(DETECTORS[k][2].startswith("kerasae.") for k in names):
        import tensorflow as tf  # lazy: only kerasae's rows need TensorFlow
        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(n)
            note += ", TensorFlow"
        except RuntimeError:  # TensorFlow already started in this process
            note += "; TensorFlow already running, at its own setting"
    try:
        with threadpool_limits(limits=n):
            yield note + ")"
    finally:
        if torch:
            torch.set_num_threads(before)


def _warm_up(names, x):
    """Fit and score each detector once on a few rows, untimed, so one-offs of the
    process (numba compiling PyOD's distance function, about 6 s here; TensorFlow
    starting) count as no set's training time. Returns their seconds."""
    seconds = {}
    for n in names:
        t = time.perf_counter()
        DETECTORS[n][1](0).fit(x[:256]).score(x[:256])
        seconds[n] = time.perf_counter() - t
    return seconds


def benchmark(data, names=tuple(DETECTORS), seeds=5, threads=1, log=print):
    """The whole benchmark on `data` (`{set name: (X, y)}`) as a JSON-ready dict (see
    the module docstring)."""
    skipped = {n: why for n in names if (why := unavailable(n))}
    for n, why in skipped.items():
        log(f"{n}: skipped, {why}")
    ran = [n for n in names if n not in skipped]
    sets = list(data)
    start = time.perf_counter()
    per_set = {}
    with _threads(threads, ran) as thread_note:
        warm_up = _warm_up(ran, next(iter(data.values()))[0])
        for name, (x, y) in data.items():
            log(f"{name}: {x.shape[0]} rows x {x.shape[1]} features, "
                f"{int(y.sum())} anomalies")
            per_set[name] = {"rows": int(x.shape[0]), "features": int(x.shape[1]),
                             "anomalies": int(y.sum()),
                             "detectors": run_set(x, y, ran, seeds, log)}
        environment = {**_environment(), "threads": thread_note, "warm_up_s": warm_up}
    means = {n: {key: float(np.mean([per_set[s]["detectors"][n][key + "_mean"]
                                      for s in sets]))
                 for key in ("roc_auc", "pr_auc")} for n in ran}
    for n in ran:
        means[n]["fit_s_total"] = float(sum(per_set[s]["detectors"][n]["fit_s_mean"]
                                            for s in sets))
    return {"protocol": {"split": f"stratified {1 - TEST_SIZE:.0%}/{TEST_SIZE:.0%} "
                                  "train_test_split(stratify=y, random_state=seed)",
                         "seeds": list(range(seeds)), "fit_on": "train part, with its "
                         "anomalies (unsupervised)", "std": "population (ddof=0) over seeds",
                         "seconds": "wall time per seed, mean over seeds"},
            "environment": environment, "labels": {n: DETECTORS[n][0] for n in names},
            "skipped": skipped, "sets": per_set, "mean_over_sets": means,
            "total_s": time.perf_counter() - start}


def _cell(s, key, digits):
    return f"{s[key + '_mean']:.{digits}f} ± {s[key + '_std']:.{digits}f}"


def table(result):
    """Markdown tables for README: ROC-AUC, PR-AUC and fit seconds, set by detector."""
    ran = list(result["mean_over_sets"])
    labels = [result["labels"][n] for n in ran]
    head = "| set | " + " | ".join(labels) + " |\n|---|" + "---|" * len(ran)
    seeds = len(result["protocol"]["seeds"])
    blocks = []
    for key, title, digits in (("roc_auc", "ROC-AUC", 3), ("pr_auc", "PR-AUC", 3),
                               ("fit_s", "fit seconds (train part, one seed)", 2)):
        rows = [f"**{title}**, mean ± std over {seeds} seeds", "", head]
        for name, s in result["sets"].items():
            rows.append(f"| {name} | " + " | ".join(
                _cell(s["detectors"][n], key, digits) for n in ran) + " |")
        if key == "fit_s":
            last = [f"{result['mean_over_sets'][n]['fit_s_total']:.1f}" for n in ran]
            rows.append("| **total** | " + " | ".join(last) + " |")
        else:
            last = [f"**{result['mean_over_sets'][n][key]:.3f}**" for n in ran]
            rows.append("| **mean** | " + " | ".join(last) + " |")
        blocks.append("\n".join(rows))
    notes = [f"{result['labels'][n]}: {why}" for n, why in result["skipped"].items()]
    return "\n\n".join(blocks + (["Not run: " + "; ".join(notes)] if notes else []))


def _names(text, valid, what):
    """The names in a comma-separated argument, each checked against `valid`."""
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    if not names:
        raise InvalidValue(f"--{what} names none; give one or more of "
                           f"{', '.join(valid)}, comma-separated. Received: {what}={text!r}")
    for n in names:
        if n not in valid:
            raise unknown_name_error(what[:-1], n, valid, arg=what)
    return names


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder of ADBench's *.npz files")
    parser.add_argument("--seeds", type=int, default=5, help="splits per set, seeds 0..S-1")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for every library (0: their own defaults)")
    parser.add_argument("--json", default=None, help="also write every figure here")
    parser.add_argument("--table", action="store_true", help="print markdown tables")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        if args.seeds < 1:
            raise InvalidValue(f"--seeds must be at least 1. Received: seeds={args.seeds}")
        names = _names(args.detectors, tuple(DETECTORS), "detectors")
        # Every set is read before any detector runs, so a missing file fails at once.
        data = {s: load_set(args.data, s) for s in _names(args.sets, SETS, "sets")}
    except KerasaeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    result = benchmark(data, names, args.seeds, args.threads,
                       log=lambda line: print(line, flush=True))
    print("mean over sets: " + "   ".join(
        f"{n} ROC-AUC {m['roc_auc']:.4f} PR-AUC {m['pr_auc']:.4f}"
        for n, m in result["mean_over_sets"].items()))
    print(f"total {result['total_s']:.0f} s")
    if args.table:
        print("\n" + table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
