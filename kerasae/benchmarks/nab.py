"""NAB: score an anomaly detector on the Numenta Anomaly Benchmark corpus with NAB's rules.

    python -m kerasae.benchmarks.nab --data /path/to/nab --detector kerasae_conv1d [--json OUT]
    python -m kerasae.benchmarks.nab --data /path/to/nab --keras-io [--json OUT]

`--data` is a copy of NAB's `data/` and `labels/` folders (58 `timestamp,value` CSVs and
`labels/combined_windows.json`). Every file is scored by the detector on its own, then the
corpus by `kerasae.benchmarks.nab_score` (standard, reward_low_FP_rate and
reward_low_FN_rate profiles, one swept threshold per profile, normalised so that the null
detector scores 0 and a perfect one 100). `--keras-io` runs the keras.io example's pair.

Adding a detector: a function `detector(values, timestamps, probationary) -> scores`, where
`values` is the file's float64 array `(N,)`, `timestamps` its N strings and `probationary`
the number of leading records NAB does not score; it returns N scores in [0, 1] (only their
order matters to the threshold sweep). Put it in `DETECTORS` under a name. NAB's rules:
- causal: record i is scored from records 0..i only (no look-ahead); training on the
  probationary prefix `values[:probationary]` of the same file is allowed;
- one set of parameters for every file, and nothing carried from one file to the next.
Set-up shared by the whole run (importing Keras) goes in a `setup()` method of a detector
object, called once before the first file.
"""
import argparse
import dataclasses
import datetime
import json
import os
import random
import sys
import time

import numpy as np
from scipy import special

from kerasae._util.errors import InvalidValue, KerasaeError, MissingFile
from kerasae._util.names import unknown_name_error
from kerasae.benchmarks import nab_score

WINDOWS_FILE = os.path.join("labels", "combined_windows.json")
KERAS_IO_TRAIN = "artificialNoAnomaly/art_daily_small_noise.csv"
KERAS_IO_TEST = "artificialWithAnomaly/art_daily_jumpsup.csv"


@dataclasses.dataclass(frozen=True)
class Series:
    """One NAB file: its name under `data/`, records and labelled windows (inclusive rows)."""

    name: str
    timestamps: list
    values: np.ndarray
    windows: tuple

    @property
    def probationary(self):
        return nab_score.probationary_length(len(self.values))


@dataclasses.dataclass(frozen=True)
class KerasIoPair:
    """The keras.io example's case: train on `train`, flag `test`'s anomaly `window` (rows)."""

    train: Series
    test: Series
    window: tuple


def _when(text):
    # The label file writes "2014-04-11 09:00:00.000000", the CSVs "2014-04-11 09:00:00".
    return datetime.datetime.fromisoformat(text.strip())


def _read_windows(data_dir):
    path = os.path.join(data_dir, WINDOWS_FILE)
    if not os.path.isfile(path):
        raise MissingFile(f"No NAB label file at {path}. Pass the folder that holds NAB's "
                          f"data/ and labels/ folders. Received: data_dir={data_dir!r}")
    with open(path) as f:
        return json.load(f)


def read_series(data_dir, name, windows):
    """One NAB file as a `Series`, its window edges (timestamps) turned into rows."""
    path = os.path.join(data_dir, "data", name)
    if not os.path.isfile(path):
        raise MissingFile(f"The NAB label file names {name}, but {path} does not exist. "
                          f"Pass a complete copy of NAB's data/ folder. Received: name={name!r}")
    with open(path) as f:
        header = f.readline().strip().split(",")
        if header != ["timestamp", "value"]:
            raise InvalidValue(f"{path} must start with the header 'timestamp,value'. "
                               f"Received: header={','.join(header)!r}")
        records = [line.rstrip("\n").split(",") for line in f if line.strip()]
    if not records or any(len(r) != 2 for r in records):
        raise InvalidValue(f"{path} must hold rows of 'timestamp,value' under its header. "
                           f"Received: rows={len(records)}")
    stamps, values = zip(*records)
    row = {_when(t): i for i, t in enumerate(stamps)}
    rows = []
    for first, last in windows:
        if _when(first) not in row or _when(last) not in row:
            raise InvalidValue(f"A window of {name} has an edge that is not a timestamp of "
                               f"the file. Received: window={[first, last]!r}")
        rows.append((row[_when(first)], row[_when(last)]))
    rows.sort()
    if any(b[0] <= a[1] for a, b in zip(rows, rows[1:])):
        raise InvalidValue(f"The windows of {name} overlap; NAB's windows are disjoint. "
                           f"Received: windows={rows!r}")
    return Series(name, list(stamps), np.asarray(values, dtype=np.float64), tuple(rows))


def load_corpus(data_dir):
    """Every file of the label file as a `Series`, sorted by name."""
    windows = _read_windows(data_dir)
    return [read_series(data_dir, name, windows[name]) for name in sorted(windows)]


def keras_io_pair(data_dir):
    """The keras.io "Timeseries anomaly detection using an Autoencoder" example's data.

    It trains on `artificialNoAnomaly/art_daily_small_noise.csv` and tests on
    `artificialWithAnomaly/art_daily_jumpsup.csv`, whose one NAB window (rows 2787-3189)
    holds the jump. This case is not NAB's protocol (it trains on another, clean file).

    Returns:
        A `KerasIoPair` `(train, test, window)`; `window` is `(first_row, last_row)`.
    """
    windows = _read_windows(data_dir)
    train = read_series(data_dir, KERAS_IO_TRAIN, windows[KERAS_IO_TRAIN])
    test = read_series(data_dir, KERAS_IO_TEST, windows[KERAS_IO_TEST])
    return KerasIoPair(train, test, test.windows[0])


def null_detector(values, timestamps, probationary):
    """NAB's null detector: a constant 0.5 (it never detects at the best threshold)."""
    return np.full(len(values), 0.5)


def random_detector(values, timestamps, probationary):
    """NAB's random detector: `random.seed(42)` per file, then `random.uniform(0, 1)` per record."""
    rng = random.Random(42)   # the same stream as NAB's global random.seed(42), kept local
    return np.array([rng.uniform(0, 1) for _ in range(len(values))])


def windowed_gaussian(values, timestamps, probationary, *, window=6400, step=100):
    """NAB's windowed Gaussian detector: the two-sided tail of a Gaussian of past values.

    Record i scores `1 - Q(|x_i - mean| / std)` (Q: the normal tail probability) with the
    mean and population std of the values before it: all of them while there are at most
    `window`, then the last full window, moved forward `step` records at a time. The first
    record scores 0; a std of 0 counts as 1e-6.
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    mean, std = np.zeros(n), np.ones(n)
    grow = min(n - 1, window - 1)           # records 1..grow see every earlier value
    if grow > 0:
        d = x[:grow] - x[0]                 # shifted, so a constant start stays exact
        count = np.arange(1, grow + 1)
        mu = np.cumsum(d) / count
        prior = np.concatenate(([d[0]], mu[:-1]))
        # Welford's update, vectorised: no cancellation of large sums of squares.
        m2 = np.cumsum((d - prior) * (d - mu))
        mean[1:grow + 1] = x[0] + mu
        std[1:grow + 1] = np.sqrt(np.maximum(m2, 0.0) / count)
    for start in range(0, max(n - window, 0), step):   # records window.. see a full window
        block = x[start:start + window]
        at = slice(window + start, window + start + step)
        mean[at], std[at] = np.mean(block), np.std(block)
    std[std == 0.0] = 1e-6
    mirrored = np.where(x < mean, 2 * mean - x, x)
    score = 1.0 - 0.5 * special.erfc((mirrored - mean) / std / np.sqrt(2.0))
    score[:1] = 0.0
    return score


class _LibraryDetector:
    """A kerasae `Detector` with `postprocess="likelihood"` as a NAB detector: per file,
    `detector(probationary)` is fitted afresh on the probationary prefix, and the rest of
    the file is scored from `window - 1` records before it, so its first record ends a
    full window; its scores are the Detector's likelihood scores, the prefix's raw
    scores their history. The prefix, which NAB does not score, scores 0."""

    def setup(self):
        from kerasae.uses.detector import Detector  # lazy: Keras loads for these detectors only

        self._detector = Detector

    def __call__(self, values, timestamps, probationary):
        if not hasattr(self, "_detector"):
            self.setup()
        x = np.asarray(values, dtype=np.float64)[:, None]
        det = self.detector(probationary).fit(x[:probationary])
        start = max(0, probationary - det.model_.image_shape[0] + 1)
        rest = det.decision_function(x[start:])[probationary - start:]
        return np.concatenate([np.zeros(probationary), rest])


class KerasaeConv1D(_LibraryDetector):
    """kerasae's Conv1D autoencoder as a NAB detector, `kerasae_conv1d`.

    Per file, a `kerasae.uses.detector.Detector("conv1d_ae", postprocess="likelihood")`
    (scaling fitted inside the model; a dense code of `latent_dim`) is trained on the
    probationary prefix only, about `steps` optimizer steps on windows of `window`
    records. Record i's raw score is the error of the window ending at i
    (`per_step="last"`: causal); the Detector's Numenta anomaly likelihood of them is
    the NAB score. The same settings serve every file.
    """

    __name__ = "kerasae_conv1d"

    def __init__(self, *, window=16, latent_dim=4, steps=300, batch_size=32, seed=0):
        self.window, self.latent_dim, self.steps = window, latent_dim, steps
        self.batch_size, self.seed = batch_size, seed

    def detector(self, probationary):
        """The file's unfitted `Detector`."""
        batches = -(-(probationary - self.window + 1) // self.batch_size)
        return self._detector("conv1d_ae", window=self.window, per_step="last",
                              postprocess="likelihood", latent_dim=self.latent_dim,
                              filters=(16, 8), kernel_size=5,
                              epochs=-(-self.steps // batches), batch_size=self.batch_size,
                              seed=self.seed)


class KerasaeDefault(_LibraryDetector):
    """`Detector("conv1d_ae", postprocess="likelihood")`, every other argument at its
    default, as a NAB detector, `kerasae_default`: with the likelihood the defaults are a
    stream's, causal (`per_step="last"`) on windows of 16 records."""

    __name__ = "kerasae_default"

    def detector(self, probationary):
        """The file's unfitted `Detector`."""
        return self._detector("conv1d_ae", postprocess="likelihood")


DETECTORS = {
    "null": null_detector,
    "random": random_detector,
    "windowed_gaussian": windowed_gaussian,
    "kerasae_conv1d": KerasaeConv1D(),
    "kerasae_default": KerasaeDefault(),
}


def _runs(rows, stamps):
    """Consecutive flagged rows as `[first_timestamp, last_timestamp, count]` runs."""
    cuts = np.flatnonzero(np.diff(rows) > 1) + 1
    return [[stamps[r[0]], stamps[r[-1]], len(r)] for r in np.split(rows, cuts) if len(r)]


def keras_io_case(data_dir, *, epochs="auto", batch_size="auto", seed=0):
    """The keras.io example's pair with kerasae: which records of art_daily_jumpsup it flags.

    `Detector("conv1d_ae", window=288)` (the keras.io model: filters 32 and 16, kernel
    7, windows of 288 records, stride 1; kerasae's default training budget) is trained on
    art_daily_small_noise; as in keras.io, the threshold is the largest training window
    error. A record of art_daily_jumpsup is flagged under two rules: `"mean"` (kerasae's
    `per_step="mean"`: the mean error of the windows holding it is above the threshold)
    and `"all_windows"` (keras.io's: every window holding it is above).

    Returns:
        A JSON-ready dict: the threshold, the labelled `window` (first and last row and
        timestamp), and per rule the flagged runs and counts inside and outside it.
    """
    from kerasae import data  # lazy: the Keras routes load only for this case
    from kerasae.uses.detector import Detector  # lazy: as above

    pair = keras_io_pair(data_dir)
    det = Detector("conv1d_ae", window=288, epochs=epochs, batch_size=batch_size,
                   seed=seed).fit(pair.train.values[:, None])
    threshold = float(np.max(det.train_scores_))
    src = data.series(pair.test.values[:, None], window=288)
    scores = det.window_scores(src)
    count = np.concatenate(([0], np.cumsum(scores > threshold)))
    t = np.arange(src.n_steps)
    lo, hi = np.maximum(t - 287, 0), np.minimum(t, len(scores) - 1) + 1
    flags = {"mean": src.per_step(scores, "mean") > threshold,
             "all_windows": count[hi] - count[lo] == hi - lo}
    (a, b), stamps = pair.window, pair.test.timestamps
    out = {"threshold": threshold, "threshold_rule": "max training window error",
           "epochs": len(det.history_), "window": [a, b, stamps[a], stamps[b]], "rules": {}}
    for rule, flagged in flags.items():
        rows = np.flatnonzero(flagged)
        inside = int(np.count_nonzero((rows >= a) & (rows <= b)))
        out["rules"][rule] = {"flagged": len(rows), "inside": inside,
                              "outside": len(rows) - inside, "runs": _runs(rows, stamps)}
    return out


def run_detector(detector, corpus):
    """The detector's checked scores for every file of the corpus (a list of arrays)."""
    setup = getattr(detector, "setup", None)
    if callable(setup):
        setup()
    out = []
    for series in corpus:
        scores = detector(series.values.copy(), list(series.timestamps), series.probationary)
        out.append(nab_score.check_scores(scores, len(series.values), series.name))
    return out


def benchmark(data_dir, detector="windowed_gaussian", digits=12):
    """Detect and score the corpus: a JSON-ready dict with every profile's result and timings.

    Args:
        data_dir: the folder holding NAB's `data/` and `labels/`.
        detector: a name in `DETECTORS`, or a detector itself.
        digits: significant digits the scores keep, as in NAB's results files (`None`:
            all). Defaults to `12`, the precision behind the published scoreboard.
    """
    name = detector if isinstance(detector, str) else getattr(detector, "__name__", "custom")
    if isinstance(detector, str):
        if detector not in DETECTORS:
            raise unknown_name_error("NAB detector", detector, DETECTORS, arg="detector")
        detector = DETECTORS[detector]
    corpus = load_corpus(data_dir)
    t0, cpu = time.perf_counter(), time.process_time()
    scores = run_detector(detector, corpus)
    t1, cpu = time.perf_counter(), time.process_time() - cpu
    result = nab_score.score_corpus(scores, [s.windows for s in corpus], digits=digits)
    t2 = time.perf_counter()
    return {"detector": name, "digits": digits, "files": len(corpus),
            "records": sum(len(s.values) for s in corpus),
            "windows": sum(len(s.windows) for s in corpus),
            "detect_seconds": t1 - t0, "detect_cpu_seconds": cpu, "score_seconds": t2 - t1,
            "profiles": {p: r._asdict() for p, r in result.items()}}


def format_table(result):
    lines = [(f"NAB, detector {result['detector']}: {result['files']} files, "
              f"{result['records']} records, {result['windows']} windows, scores at "
              f"{result['digits'] or 'full'}{' digits' if result['digits'] else ' precision'}"
              f"; detection {result['detect_seconds']:.1f} s (CPU "
              f"{result.get('detect_cpu_seconds', 0):.1f} s), scoring "
              f"{result['score_seconds']:.1f} s"), "",
             f"{'profile':20s} {'NAB score':>9s} {'raw':>10s} {'null':>8s} {'threshold':>12s}"]
    for p, r in result["profiles"].items():
        lines.append(f"{p:20s} {r['score']:9.2f} {r['raw']:10.3f} {r['null']:8.1f} "
                     f"{r['threshold']:12.6g}")
    return "\n".join(lines)


def format_keras_io(case):
    a, b, first, last = case["window"]
    lines = [(f"keras.io pair: threshold {case['threshold']:.6g} ({case['threshold_rule']}, "
              f"{case['epochs']} epochs); labelled window rows {a}-{b}, {first} to {last}")]
    for rule, r in case["rules"].items():
        lines.append(f"rule {rule}: {r['flagged']} flagged, {r['inside']} inside the window, "
                     f"{r['outside']} outside; runs: {r['runs']}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m kerasae.benchmarks.nab",
                                description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True,
                   help="folder holding NAB's data/ and labels/combined_windows.json")
    p.add_argument("--detector", default="windowed_gaussian", choices=sorted(DETECTORS))
    p.add_argument("--keras-io", action="store_true",
                   help="run the keras.io example's pair (train on art_daily_small_noise, "
                        "flag art_daily_jumpsup) instead of the corpus")
    p.add_argument("--full-precision", action="store_true",
                   help="score the detector's scores as they are, not rounded to the 12 "
                        "significant digits of NAB's published results files")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the result here")
    args = p.parse_args(argv)
    try:
        result = (keras_io_case(args.data) if args.keras_io else
                  benchmark(args.data, args.detector, None if args.full_precision else 12))
    except KerasaeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_keras_io(result) if args.keras_io else format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
