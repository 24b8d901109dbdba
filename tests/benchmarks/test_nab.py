"""NAB's scoring and baseline detectors, checked against hand arithmetic, a plain-Python
reading of NAB's definition, and the scores NAB publishes for its own null, random and
windowed Gaussian detectors on the real corpus (skipped when the corpus is absent)."""

import json
import math
import os
import random
import statistics

import numpy as np
import pytest

from kerasae._util.errors import InvalidValue
from kerasae.benchmarks import nab, nab_score
from kerasae.uses._scores import anomaly_likelihood
from tests.helpers import NAB_DIR

needs_nab = pytest.mark.skipif(
    not os.path.isfile(os.path.join(NAB_DIR, "labels", "combined_windows.json")),
    reason=f"needs the NAB corpus (data/ and labels/combined_windows.json) at {NAB_DIR}; "
           "set KERASAE_NAB_DATA to its folder")
STANDARD = nab_score.PROFILES["standard"]
PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def sigma(y):
    """NAB's scaled sigmoid, by hand."""
    return -1.0 if y > 3 else 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def raw_by_hand(files, threshold, profile):
    """The corpus raw score at one threshold, record by record as NAB's paper defines it."""
    total = 0.0
    for scores, windows in files:
        n = len(scores)
        skip = min(math.floor(0.15 * n), 750)
        best = {w: -profile.fn for w, (a, b) in enumerate(windows) if b >= skip}
        closed = None
        for i, s in enumerate(scores):
            inside = [w for w, (a, b) in enumerate(windows) if a <= i <= b]
            if i >= skip and s >= threshold:
                if inside:
                    a, b = windows[inside[0]]
                    value = profile.tp * sigma(-(b - i + 1) / (b - a + 1)) / sigma(-1.0)
                    best[inside[0]] = max(best[inside[0]], value)
                elif closed is None:
                    total -= profile.fp
                else:
                    a, b = closed
                    total += profile.fp * sigma(abs(b - i) / (b - a))
            if inside and i == windows[inside[0]][1]:
                closed = windows[inside[0]]
        total += sum(best.values())
    return total


def file_raw(scores, windows, profile=STANDARD):
    """One file's raw score with every record at 1 detected."""
    return nab_score.CorpusSweep([np.asarray(scores, float)], [windows], profile).at(1.0)


# One 100-record file (15 probationary records) with one window of 20 rows, 40..59.
N, WINDOW = 100, [(40, 59)]


def detections(*rows):
    scores = np.zeros(N)
    scores[list(rows)] = 1.0
    return scores


@pytest.mark.parametrize("rows, expected", [
    ((40,), 1.0),                                              # left edge: tpWeight
    ((59,), sigma(-1 / 20) / sigma(-1.0)),                     # right edge: 0.126
    ((45, 50), sigma(-15 / 20) / sigma(-1.0)),                 # only the first counts
    ((60,), -1.0 + 0.11 * sigma(1 / 19)),                      # FP just after: -0.014
    ((20,), -1.0 - 0.11),                                      # FP before any window
    ((10,), -1.0),                                             # probationary: not scored
], ids=["left-edge", "right-edge", "first-detection-only", "fp-after-window",
        "fp-before-windows", "probationary"])
def test_a_detection_is_worth_what_nabs_reward_function_gives(rows, expected):
    assert file_raw(detections(*rows), WINDOW) == pytest.approx(expected, abs=1e-12)


def test_scaled_sigmoid_matches_its_published_values():
    y = np.array([-1.0, -0.5, 0.0, 1.0, 3.0, 3.5, 1e6])
    expected = [0.98661, 0.84828, 0.0, -0.98661, sigma(3.0), -1.0, -1.0]
    np.testing.assert_allclose(nab_score.scaled_sigmoid(y), expected, atol=1e-5)


def test_probationary_period_is_15_percent_up_to_750_records():
    assert [nab_score.probationary_length(n) for n in (100, 1127, 4032, 5000, 22695)] == [
        15, 169, 604, 750, 750]


def test_the_sweep_agrees_with_nabs_definition_at_every_threshold():
    """Random files with several windows and tied scores: the vectorised sweep gives, at
    each candidate threshold, the score counted record by record."""
    rng = np.random.default_rng(0)
    files = []
    for n, windows in [(120, [(30, 41), (70, 90)]), (80, []), (200, [(40, 44), (150, 199)])]:
        files.append((np.round(rng.random(n), 1), windows))   # few values: many ties
    profile = nab_score.PROFILES["reward_low_FN_rate"]
    sweep = nab_score.CorpusSweep([s for s, _ in files], [w for _, w in files], profile)
    thresholds, totals = sweep.candidates()
    assert thresholds[0] == 1.1 and totals[0] == -profile.fn * 4
    assert list(thresholds[1:]) == sorted(set(np.concatenate([s for s, _ in files])),
                                          reverse=True)
    for t, total in zip(thresholds, totals):
        assert total == pytest.approx(raw_by_hand(files, t, profile), abs=1e-9), t


def test_ties_in_score_go_to_the_higher_threshold():
    """A later detection in the same window adds nothing, so 0.9 and 0.8 score alike: the
    sweep keeps the first best, 0.9."""
    scores = np.zeros(N)
    scores[40], scores[50] = 0.9, 0.8
    assert nab_score.CorpusSweep([scores], [WINDOW], STANDARD).best() == (0.9, 1.0)


def test_random_detector_is_pythons_seed_42_stream_per_file():
    state = random.getstate()
    try:
        random.seed(42)
        expected = [random.uniform(0, 1) for _ in range(500)]
    finally:
        random.setstate(state)
    for _ in range(2):   # every file starts the stream afresh
        scores = nab.random_detector(np.zeros(500), [""] * 500, 75)
        assert scores.tolist() == expected
    np.testing.assert_allclose(scores[:2], [0.6394268, 0.0250108], atol=1e-7)


def gaussian_by_hand(values, window, step):
    """NAB's windowed Gaussian, one record at a time with exact statistics."""
    seen, pending, mean, std, out = [], [], 0.0, 1.0, []
    for x in values:
        out.append(1 - 0.5 * math.erfc(abs(x - mean) / std / math.sqrt(2)) if seen else 0.0)
        if len(seen) < window:
            seen.append(x)
        else:
            pending.append(x)
            if len(pending) < step:
                continue
            seen, pending = seen[step:] + pending, []
        mean, std = statistics.fmean(seen), statistics.pstdev(seen) or 1e-6
    return out


def test_windowed_gaussian_follows_its_definition_as_the_window_grows_and_slides():
    rng = np.random.default_rng(1)
    values = np.concatenate([np.full(8, 5.0), [5.3], 1e6 + rng.normal(0, 2, 120), [1e6 + 40]])
    got = nab.windowed_gaussian(values, [""] * len(values), 0, window=30, step=7)
    np.testing.assert_allclose(got, gaussian_by_hand(values, 30, 7), atol=1e-9)
    assert got[0] == 0.0 and got[1] == 0.5 and got[8] == 1.0


@pytest.mark.parametrize("scores, phrase", [
    (np.full(N, 1.5), "must lie in [0, 1]"),
    (np.full(N, np.nan), "must lie in [0, 1]"),
    (np.zeros(N - 1), "one score per record"),
], ids=["above-1", "nan", "short"])
def test_scores_nab_cannot_use_are_refused(scores, phrase):
    with pytest.raises(InvalidValue, match=phrase.replace("[", r"\[").replace("]", r"\]")):
        nab_score.check_scores(scores, N, "x.csv")


def test_a_missing_corpus_is_one_line_and_exit_code_1(tmp_path, capsys):
    assert nab.main(["--data", str(tmp_path), "--detector", "null"]) == 1
    err = capsys.readouterr().err.strip()
    assert "No NAB label file" in err and "\n" not in err


@pytest.fixture(scope="module")
def corpus():
    return nab.load_corpus(NAB_DIR)


def nab_scores(corpus, detector):
    scores = nab.run_detector(detector, corpus)
    return nab_score.score_corpus(scores, [s.windows for s in corpus])


@needs_nab
def test_corpus_and_keras_io_pair(corpus):
    assert (len(corpus), sum(len(s.values) for s in corpus),
            sum(len(s.windows) for s in corpus)) == (58, 365558, 116)
    pair = nab.keras_io_pair(NAB_DIR)
    assert pair.window == (2787, 3189)
    assert pair.test.timestamps[2988] == "2014-04-11 09:00:00"   # the labelled jump
    assert (len(pair.train.values), len(pair.test.values), pair.train.windows) == (
        4032, 4032, ())


@needs_nab
def test_null_detector_scores_0_from_nabs_published_raw_scores(corpus):
    result = nab_scores(corpus, nab.null_detector)
    assert [result[p].raw for p in PROFILE_NAMES] == [-116.0, -116.0, -232.0]
    assert [result[p].score for p in PROFILE_NAMES] == [0.0, 0.0, 0.0]


@needs_nab
def test_perfect_detector_scores_100(corpus):
    """One detection on the first row of every window, nothing else."""
    scores = []
    for series in corpus:
        scores.append(np.zeros(len(series.values)))
        scores[-1][[a for a, _ in series.windows]] = 1.0
    result = nab_score.score_corpus(scores, [s.windows for s in corpus])
    for p in PROFILE_NAMES:
        assert (result[p].raw, result[p].score) == pytest.approx((116.0, 100.0)), p


@needs_nab
def test_random_detector_gives_nabs_seed_42_scores(corpus):
    """Swept: 17.66 / 7.48 / 27.57; at the published (twiddle) thresholds NAB's
    results/final_results.json numbers 16.83 / 5.76 / 25.88."""
    scores = nab.run_detector(nab.random_detector, corpus)
    windows = [s.windows for s in corpus]
    result = nab_score.score_corpus(scores, windows)
    assert [round(result[p].score, 2) for p in PROFILE_NAMES] == [17.66, 7.48, 27.57]
    twiddle = dict(standard=0.99845, reward_low_FP_rate=0.999512, reward_low_FN_rate=0.99845)
    for p, threshold in twiddle.items():
        raw = nab_score.CorpusSweep(scores, windows, nab_score.PROFILES[p]).at(threshold)
        score = 100 * (raw - result[p].null) / (result[p].perfect - result[p].null)
        assert score == pytest.approx({"standard": 16.83, "reward_low_FP_rate": 5.76,
                                       "reward_low_FN_rate": 25.88}[p], abs=0.005), p


@needs_nab
def test_windowed_gaussian_gives_nabs_published_scores(corpus, tmp_path):
    """The scoreboard's 39.6 / 20.9 / 47.4 (raw -24.013 / -67.586 / -67.013), through the
    command line and its JSON."""
    out = tmp_path / "nab.json"
    assert nab.main(["--data", NAB_DIR, "--detector", "windowed_gaussian",
                     "--json", str(out)]) == 0
    result = json.loads(out.read_text())["profiles"]
    assert [round(result[p]["score"], 2) for p in PROFILE_NAMES] == [39.65, 20.87, 47.41]
    assert [round(result[p]["raw"], 3) for p in PROFILE_NAMES] == [-24.013, -67.586, -67.013]


def likelihood_by_hand(raw, probationary, short=10, history=8640, every=100):
    """nupic's `AnomalyLikelihood.anomalyProbability`, one record at a time, with NAB's
    settings (learning period half the probationary period) and kerasae's stated changes
    (no mean / variance floors, no constant-metric null distribution)."""
    learn, averages, dist, out = probationary // 2, [], None, []
    for t in range(len(raw)):
        averages.append(statistics.fmean(raw[max(0, t - short + 1):t + 1]))
        if t < probationary:
            likelihood = 0.5
        else:
            if dist is None or t % every == 0:
                shifted_out = max(0, t - history)
                skip = min(t, max(0, learn - shifted_out))
                past = averages[shifted_out:t][skip:]
                dist = statistics.fmean(past), statistics.pstdev(past) or 1e-300
            mean, std = dist
            tail = [0.5 * math.erfc(abs(a - mean) / std / math.sqrt(2)) for a in averages[-2:]]
            red = 1e-5
            likelihood = 1.0 - (1e-3 if tail[1] <= red and tail[0] <= red else tail[1])
        out.append(math.log(1.0000000001 - likelihood) / -23.02585084720009)
    return out


def test_anomaly_likelihood_is_nupics_record_by_record():
    """Noise with spikes, a run of high scores and a level shift; a history shorter than
    the file, so the estimate slides and the learning period leaves it."""
    rng = np.random.default_rng(3)
    raw = rng.gamma(2.0, 0.05, 1500)
    raw[[400, 401, 900]] += [3.0, 3.0, 0.6]
    raw[1100:1130] += 2.0
    raw[1300:] += 0.3
    got = anomaly_likelihood(raw, 150, history=400, every=50)
    expected = likelihood_by_hand(raw.tolist(), 150, history=400, every=50)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert got[400] > 0.5 and got[401] == pytest.approx(0.3, abs=1e-6)  # red once, then 1e-3
    assert np.all(got[:150] == got[0]) and 0.0 < got[0] < 0.05          # probationary: 0.5


@pytest.fixture(scope="module")
def short_file(corpus):
    """NAB's shortest file (1127 records, 169 probationary, 4 windows)."""
    return next(s for s in corpus if s.name == "realTraffic/speed_7578.csv")


@needs_nab
@pytest.mark.slow
def test_kerasae_detector_is_causal_and_scores_in_unit_range(short_file):
    """Records after row 700 changed (scaled up and shifted): the scores of rows 0..699
    stay exactly as they were, and later ones move."""
    detector = nab.KerasaeConv1D(steps=20)
    detector.setup()
    values, p = short_file.values, short_file.probationary
    scores = detector(values.copy(), list(short_file.timestamps), p)
    changed = values.copy()
    changed[700:] = 3.0 * changed[700:] + 50.0
    after = detector(changed, list(short_file.timestamps), p)
    assert scores.shape == after.shape == (len(values),)
    assert np.all((scores >= 0) & (scores <= 1)) and np.all((after >= 0) & (after <= 1))
    np.testing.assert_array_equal(scores[:700], after[:700])
    assert np.max(np.abs(scores[700:] - after[700:])) > 0.1
    assert np.all(scores[:detector.window - 1] == 0.0)   # before the first full window


def test_keras_io_flag_with_a_missing_corpus_is_one_line_and_exit_code_1(tmp_path, capsys):
    assert nab.main(["--data", str(tmp_path), "--keras-io"]) == 1
    err = capsys.readouterr().err.strip()
    assert "No NAB label file" in err and "\n" not in err


@needs_nab
@pytest.mark.slow
def test_keras_io_pair_flags_the_jump_window_and_nothing_outside_it():
    """One epoch of the keras.io model; keras.io's rule (every window holding a record
    above the largest training error) flags the labelled window only."""
    case = nab.keras_io_case(NAB_DIR, epochs=1, batch_size=64)
    assert case["window"] == [2787, 3189, "2014-04-10 16:15:00", "2014-04-12 01:45:00"]
    strict, mean = case["rules"]["all_windows"], case["rules"]["mean"]
    assert strict["inside"] > 0 and strict["outside"] == 0
    assert mean["inside"] > 0 and mean["flagged"] == mean["inside"] + mean["outside"]
    first, last, _ = strict["runs"][0]
    assert first <= "2014-04-11 09:00:00" <= last   # the labelled jump
