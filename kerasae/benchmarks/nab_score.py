"""The Numenta Anomaly Benchmark's scoring rules (NAB v1.1), written from its published definition.

A file's records carry a weight: inside a labelled window a detection is worth
`tp * sigma(pos) / sigma(-1)` (`pos` runs from -1 at the window's left edge to `-1/W` at its
right edge, `sigma(y) = 2 / (1 + exp(5 y)) - 1`, and `sigma(y) = -1` beyond `y = 3`); only
the earliest detection in a window counts, and a window without one costs `-fn`. Outside the
windows a detection costs `fp * sigma(|R - i| / (W - 1))` after the last closed window (right
edge `R`, width `W`), or the full `-fp` before any window. The first
`min(floor(0.15 N), 750)` records of each file (the probationary period) are not scored.

One threshold per profile is chosen for the whole corpus by an exhaustive sweep over the
score values (NAB's optimiser since 2019): the corpus score is computed at every distinct
score, highest first, and the first best wins. Scores are normalised to 0-100 between the
null detector's raw score and the perfect one (`tp` per labelled window).

The published scoreboard was computed from results files that held 12 significant digits
(Python 2's `str(float)`), so scores within 5e-13 of 1 became exactly 1 and tied at the
top. `score_corpus` rounds the same way by default (`digits=12`): NAB's windowed Gaussian
then scores its published 39.65 / 20.87 / 47.41, against 40.13 / 23.94 / 47.73 at full
precision.

Reference: Lavin and Ahmad, "Evaluating Real-time Anomaly Detection Algorithms - the
Numenta Anomaly Benchmark", ICMLA 2015; https://github.com/numenta/NAB (`nab/sweeper.py`).
"""

import math
from typing import NamedTuple

import numpy as np

from kerasae._util.errors import InvalidValue


class Profile(NamedTuple):
    """The weights of one application profile (NAB's `tnWeight` is never used, so absent)."""

    tp: float
    fp: float
    fn: float


PROFILES = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Profile(tp=1.0, fp=0.11, fn=2.0),
}

# The sweep starts above every score, where nothing is detected.
START_THRESHOLD = 1.1


class ProfileScore(NamedTuple):
    """One profile's result: its corpus threshold, raw scores and the 0-100 NAB score."""

    threshold: float
    raw: float
    null: float
    perfect: float
    score: float


def probationary_length(n):
    """The number of leading records of an `n`-record file that are not scored."""
    # NAB's own float expression, so its rounding (0.15 * n) is kept as well.
    return int(min(math.floor(0.15 * n), 0.15 * 5000))


def scaled_sigmoid(y):
    """`2 / (1 + exp(5 y)) - 1`, and exactly -1 for `y > 3` (a far false positive)."""
    y = np.asarray(y, dtype=np.float64)
    value = 2.0 / (1.0 + np.exp(5.0 * np.minimum(y, 3.0))) - 1.0
    return np.where(y > 3.0, -1.0, value)


def row_weights(n, windows, profile):
    """Every record's worth when detected, and the index of its window (-1: outside).

    Args:
        n: the number of records in the file.
        windows: sorted, disjoint `(first_row, last_row)` pairs, both rows inclusive.
        profile: a `Profile`.

    Returns:
        `(weights, window_index)`: float64 and int64 arrays of length `n`.
    """
    rows = np.arange(n)
    if not windows:
        return np.full(n, -profile.fp), np.full(n, -1, dtype=np.int64)
    left, right = (np.asarray(edge, dtype=np.int64) for edge in zip(*windows))
    width = (right - left + 1).astype(np.float64)
    last = np.searchsorted(left, rows, side="right") - 1   # the last window begun by row i
    j = np.maximum(last, 0)
    inside = (last >= 0) & (rows <= right[j])
    tp = profile.tp * scaled_sigmoid(-(right[j] - rows + 1) / width[j]) / scaled_sigmoid(-1.0)
    with np.errstate(divide="ignore"):   # a 1-row window: every later FP is far, sigma = -1
        past = np.abs(right[j] - rows) / (width[j] - 1.0)
    fp = profile.fp * np.where(last >= 0, scaled_sigmoid(past), -1.0)
    return np.where(inside, tp, fp), np.where(inside, j, -1)


class CorpusSweep:
    """The corpus score of one detector and profile at every candidate threshold.

    Args:
        scores: one array of anomaly scores in [0, 1] per file.
        windows: one list of `(first_row, last_row)` windows per file, in the same order.
        profile: a `Profile`.
    """

    def __init__(self, scores, windows, profile):
        parts, weights, ids, offset = [], [], [], 0
        for file_scores, file_windows in zip(scores, windows):
            n = len(file_scores)
            w, k = row_weights(n, file_windows, profile)
            keep = slice(probationary_length(n), n)
            parts.append(np.asarray(file_scores, dtype=np.float64)[keep])
            weights.append(w[keep])
            ids.append(np.where(k[keep] >= 0, k[keep] + offset, -1))
            offset += len(file_windows)
        score, weight, window = (np.concatenate(a) if a else np.zeros(0)
                                 for a in (parts, weights, ids))
        window = window.astype(np.int64)
        # Windows with no scored record are not in the sum (as in NAB's sweeper).
        self.windows_scored = len(np.unique(window[window >= 0]))
        self.base = -profile.fn * self.windows_scored
        order = np.argsort(-score, kind="stable")
        self.sorted_scores = score[order]
        gain = _gains(weight, window, order, profile.fn)
        self.cumulative = np.cumsum(gain)

    def at(self, threshold):
        """The raw corpus score when every record scoring `>= threshold` is a detection."""
        count = np.searchsorted(-self.sorted_scores, -threshold, side="right")
        return self.base + (self.cumulative[count - 1] if count else 0.0)

    def candidates(self):
        """`(thresholds, raw scores)`: the start (1.1, nothing detected), then each score value."""
        s = self.sorted_scores
        ends = np.flatnonzero(np.append(s[1:] != s[:-1], True)) if len(s) else np.zeros(0, int)
        thresholds = np.concatenate(([START_THRESHOLD], s[ends]))
        totals = np.concatenate(([self.base], self.base + self.cumulative[ends]))
        return thresholds, totals

    def best(self):
        """`(threshold, raw score)` of the highest score; ties go to the higher threshold."""
        thresholds, totals = self.candidates()
        i = int(np.argmax(totals))
        return float(thresholds[i]), float(totals[i])


def _gains(weight, window, order, fn_weight):
    """What each record adds to the corpus score as the sweep reaches it (in sweep order).

    A record outside the windows adds its (negative) weight. Inside a window only the
    earliest detected record counts, and weights fall along a window, so a window's value
    is the weight of the lowest row detected so far: a record adds the rise of that value.
    """
    window = window[order]
    gain = np.where(window < 0, weight[order], 0.0)
    at = np.flatnonzero(window >= 0)                 # sweep positions of window records
    if not len(at):
        return gain
    at = at[np.argsort(window[at], kind="stable")]   # grouped by window, sweep order kept
    group = window[at]
    row = order[at]
    # Running minimum of the row within each group: shifting every later group below all
    # earlier ones (integers, so exact) makes one accumulate restart at each group.
    span = len(order) + 1
    lowest = np.minimum.accumulate(row - group * span) + group * span
    value = weight[lowest]
    first = np.append(True, group[1:] != group[:-1])
    before = np.where(first, -fn_weight, np.roll(value, 1))
    gain[at] = value - before
    return gain


def check_scores(scores, n, name):
    """The detector output for a file of `n` records as float64, or an `InvalidValue`."""
    out = np.asarray(scores, dtype=np.float64)
    if out.shape != (n,):
        raise InvalidValue(f"The detector returned scores of shape {out.shape} for {name}, "
                           f"which has {n} records; return one score per record. "
                           f"Received: shape={out.shape}")
    bad = np.flatnonzero(~((out >= 0.0) & (out <= 1.0)))   # NaN fails both
    if len(bad):
        raise InvalidValue(f"NAB scores must lie in [0, 1], but record {bad[0]} of {name} "
                           f"scored {out[bad[0]]!r} ({len(bad)} records out of range); squash "
                           f"them with a monotone map. Received: score={out[bad[0]]!r}")
    return out


def as_results_file(scores, digits=12):
    """The scores as NAB's published results files held them: `digits` significant digits."""
    spec = f".{digits}g"
    return np.array([float(format(v, spec)) for v in scores.tolist()], dtype=np.float64)


def score_corpus(scores, windows, profiles=None, digits=12):
    """The NAB result of one detector on a corpus, per profile.

    Args:
        scores: one array of anomaly scores in [0, 1] per file.
        windows: one list of `(first_row, last_row)` windows per file (the label file's
            windows, all files of the corpus).
        profiles: `{name: Profile}`. Defaults to `PROFILES`.
        digits: round the scores to this many significant digits first, as the results
            files behind NAB's scoreboard did, or `None` for full precision. Defaults to `12`.

    Returns:
        `{profile name: ProfileScore}`; the null baseline is the null detector (a constant
        0.5) swept the same way, the perfect score `tp` times the number of windows.
    """
    profiles = PROFILES if profiles is None else profiles
    if digits is not None:
        scores = [as_results_file(np.asarray(s, dtype=np.float64), digits) for s in scores]
    null_scores = [np.full(len(s), 0.5) for s in scores]
    n_windows = sum(len(w) for w in windows)
    out = {}
    for name, profile in profiles.items():
        threshold, raw = CorpusSweep(scores, windows, profile).best()
        _, null = CorpusSweep(null_scores, windows, profile).best()
        perfect = profile.tp * n_windows
        out[name] = ProfileScore(threshold, raw, null, perfect,
                                 100.0 * (raw - null) / (perfect - null))
    return out
