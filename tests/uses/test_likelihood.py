"""Numenta's anomaly likelihood (`kerasae.uses._scores.anomaly_likelihood`) against a hand
computation and a plain-Python loop, and `Detector(postprocess="likelihood")`: a spike in a
series continuing the training one is flagged there and nowhere else; records and export
are refused."""

import math

import numpy as np
import pytest

from kerasae._util.errors import InvalidValue
from kerasae.uses._scores import anomaly_likelihood
from kerasae.uses.detector import Detector

LOG_1E10 = math.log(1e-10)


def nab_score(likelihood):
    return math.log(1.0000000001 - likelihood) / LOG_1E10


def likelihood_loop(raw, probationary, short, history, every):
    """The likelihood step by step, from the definition: short-term means, a Gaussian of
    earlier ones renewed at the end of probation and at multiples of `every` (last
    `history` means before it, the first half of probation left out), and the red rule."""
    averages, out, gauss = [], [], None
    for t, _ in enumerate(raw):
        window = raw[max(0, t - short + 1):t + 1]
        averages.append(sum(window) / len(window))
        if t < probationary:
            out.append(nab_score(0.5))
            continue
        if t == probationary or t % every == 0:
            past = [averages[i] for i in range(max(0, t - history), t)
                    if i >= probationary // 2]
            mu = sum(past) / len(past)
            sd = math.sqrt(sum((a - mu) ** 2 for a in past) / len(past))
            gauss = (mu, sd)
        mu, sd = gauss

        def tail(a):
            return 0.5 * math.erfc(abs(a - mu) / sd / math.sqrt(2.0))

        q = tail(averages[t])
        if q <= 1e-5 and tail(averages[t - 1]) <= 1e-5:
            q = 1e-3
        out.append(nab_score(1.0 - q))
    return out


def test_likelihood_of_a_tiny_stream_by_hand():
    """Short-term mean of 1 step; the Gaussian of steps 3..5 (2, 0, 2): mean 4/3, std
    sqrt(8/9); step 6 (4) lies 2*sqrt(2) std away, so q = erfc(2) / 2."""
    got = anomaly_likelihood([0.0, 2.0, 0.0, 2.0, 0.0, 2.0, 4.0], 6, short=1)
    q = 0.5 * math.erfc(2.0)                       # 0.0023389
    assert got[6] == pytest.approx(math.log(q + 1e-10) / LOG_1E10, abs=1e-12)   # 0.2631
    assert got[:6] == pytest.approx([math.log(0.5) / LOG_1E10] * 6, abs=1e-9)  # 0.0301


def test_likelihood_follows_its_definition_step_by_step():
    """Noise, a spike, a run of high scores (red once, then 1e-3) and a level shift; a
    history shorter than the stream, so the Gaussian slides past the learning period."""
    rng = np.random.default_rng(7)
    raw = rng.gamma(2.0, 0.1, 160)
    raw[60] += 3.0
    raw[100:110] += 2.0
    raw[140:] += 0.5
    got = anomaly_likelihood(raw, 30, short=4, history=40, every=15)
    expected = likelihood_loop(raw.tolist(), 30, short=4, history=40, every=15)
    # atol: NAB's log(1.0000000001 - (1 - q)) loses q under about 1e-16 to rounding.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-8)
    red_again = math.log(1e-3 + 1e-10) / LOG_1E10                      # 0.3
    assert got[60] > 0.5 and got[61:64] == pytest.approx([red_again] * 3, abs=1e-9)
    assert np.all(got[:30] == got[0])                                    # probation


def test_likelihood_refuses_nan_scores():
    with pytest.raises(InvalidValue, match="finite raw scores"):
        anomaly_likelihood([0.1, np.nan, 0.2], 1)


def spiky_series():
    """A noisy sine of period 24: 480 steps to train on, then 240 that continue it with
    one spike at step 150 of the continuation."""
    rng = np.random.default_rng(0)
    t = np.arange(720)
    x = np.sin(2 * np.pi * t / 24) + rng.normal(scale=0.05, size=720)
    x[480 + 150] += 4.0
    return x[:480, None], x[480:, None]


@pytest.fixture(scope="module")
def fitted():
    train, test = spiky_series()
    det = Detector("conv1d_ae", window=16, per_step="last", postprocess="likelihood",
                   filters=(8, 4), kernel_size=5, latent_dim=4, epochs=8, batch_size=32)
    return det.fit(train), train, test


def test_a_spike_is_flagged_there_and_nowhere_else(fitted):
    det, _, test = fitted
    flags = det.predict(test)
    assert det.threshold_ == 0.5 and det.threshold_rule_["method"] == "fixed"
    # The spike, as the 10-step short-term means of the windows holding it see it.
    assert flags[150:166].any()
    assert np.flatnonzero(flags).tolist() == [i for i in range(150, 176) if flags[i]]


def test_scores_are_the_likelihood_of_the_training_stream_then_xs(fitted):
    """Rebuilt from the public raw window scores: per_step="last" puts window j's score
    at step j + 15; the 15 unscored steps of each series take its first score."""
    det, train, test = fitted
    w = 16
    train_windows, test_windows = det.train_scores_, det.window_scores(test)
    stream = np.concatenate([np.full(w - 1, train_windows[0]), train_windows,
                             np.full(w - 1, test_windows[0]), test_windows])
    expected = anomaly_likelihood(stream, len(train))[len(train):]
    got = det.decision_function(test)
    assert np.all(np.isnan(got[:w - 1]))
    np.testing.assert_allclose(got[w - 1:], expected[w - 1:], rtol=0, atol=1e-12)


def test_the_threshold_rule_reads_the_likelihood_of_the_training_series(fitted):
    """The rule's training scores are the training series' likelihood scores, the series
    replayed after itself (in [0, 1]), not its reconstruction errors."""
    det, train, _ = fitted
    replay = det.decision_function(train)
    replay = replay[~np.isnan(replay)]
    rule = det.threshold_rule_
    assert rule["train_count"] == len(replay) == len(train) - 15
    assert rule["train_mean"] == pytest.approx(replay.mean(), abs=1e-12)
    assert 0.0 < rule["train_mean"] < 0.5


@pytest.mark.parametrize("model", ["stacked_ae", "dense_vae"])
def test_records_refuse_the_likelihood_in_one_line(model):
    with pytest.raises(InvalidValue, match="is for series") as e:
        Detector(model, postprocess="likelihood")
    assert "\n" not in str(e.value) and "Received: postprocess='likelihood'" in str(e.value)


def test_an_unknown_postprocess_is_refused():
    with pytest.raises(InvalidValue, match="postprocess is None or 'likelihood'"):
        Detector("conv1d_ae", postprocess="likelyhood")


def test_export_of_a_likelihood_detector_is_refused_and_writes_nothing(fitted, tmp_path):
    det, _, _ = fitted
    out = tmp_path / "export"
    with pytest.raises(InvalidValue, match="cannot be exported") as e:
        det.export(str(out))
    assert "do not compute the anomaly likelihood" in str(e.value)
    assert not out.exists()


def test_the_likelihoods_defaults_are_causal_and_short():
    stream = Detector("conv1d_ae", postprocess="likelihood")
    assert (stream.per_step, stream.default_window()) == ("last", 16)
    plain = Detector("conv1d_ae")
    assert (plain.per_step, plain.default_window()) == ("mean", 48)
    assert Detector("conv1d_ae", postprocess="likelihood", per_step="mean").per_step == "mean"
