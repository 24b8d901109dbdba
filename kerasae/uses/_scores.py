"""Anomaly scores and thresholds: the rules, ROC metrics (scikit-learn), the PCA baseline
and Numenta's anomaly likelihood of a stream of scores."""

import re

import numpy as np
from scipy import special
from sklearn.metrics import (
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)
from sklearn.metrics import roc_curve as sk_roc_curve

from kerasae._util.errors import InvalidValue
from kerasae.uses import _pca

_PERCENTILE = re.compile(r"^percentile:(\d+(?:\.\d+)?)$")
_MEAN_STD = re.compile(r"^mean\+(\d+(?:\.\d+)?)std$")


def parse_threshold(spec):
    """`"percentile:99"`, `"mean+3std"` or a number -> a dict describing the rule."""
    if isinstance(spec, dict):
        return dict(spec)
    if isinstance(spec, (int, float, np.floating)) and not isinstance(spec, bool):
        return {"method": "fixed", "value": float(spec)}
    text = str(spec).strip().replace(" ", "").lower()
    m = _PERCENTILE.match(text)
    if m and 0 < float(m.group(1)) < 100:
        return {"method": "percentile", "percentile": float(m.group(1))}
    m = _MEAN_STD.match(text)
    if m:
        return {"method": "mean+kstd", "k": float(m.group(1))}
    try:  # a number typed as text (the command line's --threshold 2.5)
        value = float(text)
    except ValueError:
        value = None
    if value is not None and np.isfinite(value):
        return {"method": "fixed", "value": value}
    raise InvalidValue(
        "threshold must be 'percentile:P' (0 < P < 100, e.g. 'percentile:99'), "
        f"'mean+Kstd' (e.g. 'mean+3std') or a number. Received: threshold={spec!r}"
    )


def choose_threshold(train_scores, spec):
    """The threshold of rule `spec` on training scores, and the rule with its value."""
    rule = parse_threshold(spec)
    s = np.asarray(train_scores, dtype="float64")
    if rule["method"] == "percentile":
        value = float(np.percentile(s, rule["percentile"]))
    elif rule["method"] == "mean+kstd":
        value = float(s.mean() + rule["k"] * s.std())
    else:
        value = float(rule["value"])
    rule.update(value=value, train_mean=float(s.mean()), train_std=float(s.std()),
                train_count=int(len(s)),
                train_flagged_fraction=float(np.mean(s > value)))
    return value, rule


def roc_auc(is_anomaly, scores):
    """Area under the ROC curve (scikit-learn's `roc_auc_score`; ties count half)."""
    y = np.asarray(is_anomaly, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise InvalidValue(
            "ROC-AUC needs both anomalies and normal images. "
            f"Received: anomalies={n_pos}, normal={n_neg}"
        )
    return float(roc_auc_score(y, np.asarray(scores, dtype="float64")))


def roc_curve(is_anomaly, scores):
    """`(fpr, tpr)` at every distinct score, highest first, from (0, 0) (scikit-learn)."""
    fpr, tpr, _ = sk_roc_curve(np.asarray(is_anomaly, dtype=bool),
                               np.asarray(scores, dtype="float64"), drop_intermediate=False)
    return fpr, tpr


def flag_metrics(is_anomaly, scores, threshold):
    """Precision, recall, F1 and false-positive rate of `score > threshold` (scikit-learn)."""
    y = np.asarray(is_anomaly, dtype=bool)
    flagged = np.asarray(scores) > threshold
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, flagged, labels=[False, True]).ravel())
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, flagged, average="binary", pos_label=True, zero_division=0)
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1),
            "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
            "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def pca_scores(train_x, sets, components):
    """The non-autoencoder baseline: PCA with `components` components (at most as many as
    the fitting images allow) fitted on `train_x`, an array or `StreamedImages`, without
    holding them (`kerasae.uses._pca`), and the per-image reconstruction MSE of each image
    set in `sets`. Returns `(scores per set, components, solver)`."""
    pca = _pca.fit_pca(train_x, components)
    k = len(pca.components_)
    return [_pca.errors(pca, x, k) for x in sets], k, pca.solver


def rank_correlation(a, b):
    """Spearman rank correlation of two score lists (scipy; ties share their mean rank)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def anomaly_likelihood(raw, probationary, *, short=10, history=8640, every=100):
    """Numenta's anomaly likelihood of a stream of raw anomaly scores, as a score in [0, 1].

    Step t's short-term mean `m_t` (of the last `short` raw scores) meets a Gaussian of
    earlier short-term means: their mean and std over the last `history` steps before
    the latest re-estimation (at the end of the probationary period, then at every
    multiple of `every`), leaving out the first half of the probationary period. The
    tail `q_t = Q(|m_t - mean| / std)` becomes 1e-3 when it and `m_{t-1}`'s tail (same
    Gaussian) are both under 1e-5 (a run is "red" once); the likelihood `1 - q_t` (0.5
    in the probationary period) gives NAB's Numenta score
    `log(1.0000000001 - likelihood) / log(1e-10)`, so a score over 0.5 is a likelihood
    over about `1 - 1e-5`, Numenta's alarm.

    This is nupic's `AnomalyLikelihood` with NAB's settings, written from its source,
    changed for raw scores that are not HTM's [0, 1] ones: no floors on the mean (0.03)
    and variance (3e-4), no null distribution for a near-constant metric, and one moving
    average through the stream (nupic restarts it at its 8640-step buffer's start).

    Args:
        raw: the raw scores, finite, one per step in time order `(T,)`.
        probationary: the leading steps that only feed the first estimate (at least 1).
        short: steps of the short-term mean. Defaults to `10`.
        history: steps of short-term means one estimate uses at most. Defaults to `8640`.
        every: the estimate is renewed at the steps that are multiples of it. Defaults
            to `100`.

    Returns:
        float64 `(T,)`: the likelihood scores, causal (step t's from steps 0..t only).

    Reference: Ahmad et al., "Unsupervised real-time anomaly detection for streaming
    data", Neurocomputing 262 (2017); nupic `algorithms/anomaly_likelihood.py`.
    """
    raw = np.asarray(raw, dtype="float64").reshape(-1)
    if not np.all(np.isfinite(raw)):
        raise InvalidValue("anomaly_likelihood takes finite raw scores; fill or drop the "
                           "NaN / infinite ones first. Received: non-finite="
                           f"{int(np.count_nonzero(~np.isfinite(raw)))} of {len(raw)}")
    if isinstance(probationary, bool) or not isinstance(probationary, (int, np.integer)) \
            or probationary < 1:
        raise InvalidValue("probationary is the count of leading steps the first estimate "
                           f"is made from, at least 1. Received: probationary={probationary!r}")
    n, learn = len(raw), probationary // 2
    total = np.concatenate(([0.0], np.cumsum(raw)))
    t = np.arange(n)
    first = np.maximum(t - short + 1, 0)
    m = (total[t + 1] - total[first]) / (t + 1 - first)
    mean, std = np.zeros(n), np.ones(n)
    starts = [k for k in range(probationary, n) if k == probationary or k % every == 0]
    for k, end in zip(starts, starts[1:] + [n]):
        oldest = max(0, k - history)
        past = m[oldest + min(k, max(0, learn - oldest)):k]
        # The smallest positive std keeps z finite; a perfectly flat past flags any change.
        mean[k:end], std[k:end] = past.mean(), max(past.std(), np.finfo(float).tiny)
    q = 0.5 * special.erfc(np.abs(m - mean) / std / np.sqrt(2.0))
    before = 0.5 * special.erfc(np.abs(np.roll(m, 1) - mean) / std / np.sqrt(2.0))
    # Step 0 has no predecessor, but it is probationary: its wrapped `before` is unused.
    q = np.where((q <= 1e-5) & (before <= 1e-5), 1e-3, q)
    q[:probationary] = 0.5
    return np.clip(np.log(q + 1e-10) / np.log(1e-10), 0.0, 1.0)


MAD_SAMPLE = 100_000  # raw values per feature behind a robust spread
MAD_FLOOR = 0.1  # a robust spread is at least this fraction of the model's scale


def robust_spread(src, scale):
    """Per last-axis feature, `max(1.4826 * MAD, MAD_FLOOR * scale)` of the raw values of
    `src` (a strided sample of at most MAD_SAMPLE rows of features); the model's `scale`
    itself for a feature that is constant there."""
    features = src.image_shape[-1]
    rows_each = int(np.prod(src.image_shape[:-1]))  # a window holds T rows of features
    every = max(1, -(-len(src) * rows_each // MAD_SAMPLE))
    parts, seen = [], 0
    for _, batch in src.batches(4096):
        flat = np.asarray(batch, dtype="float64").reshape(-1, features)
        parts.append(flat[(-seen) % every::every])
        seen += len(flat)
    x = np.concatenate(parts)
    mad = 1.4826 * np.median(np.abs(x - np.median(x, axis=0)), axis=0)
    own = np.ones(features) if scale is None else np.asarray(scale, "float64")
    # A constant feature has no spread of its own: its error counts in the model's units
    # (a floor of a tenth of a placeholder scale would weigh it 100 times).
    return np.where(x.std(axis=0) > 0, np.maximum(mad, MAD_FLOOR * own), own)


def fill_gaps(steps):
    """Step scores with each NaN replaced by the next finite score (the last one after
    the last finite score): a NaN step is one no window has scored yet."""
    finite = np.flatnonzero(np.isfinite(steps))
    if not len(finite):
        raise InvalidValue("The series has no scored step: it needs at least one full "
                           f"window. Received: steps={len(steps)}")
    after = np.minimum(np.searchsorted(finite, np.arange(len(steps))), len(finite) - 1)
    return steps[finite[after]]
