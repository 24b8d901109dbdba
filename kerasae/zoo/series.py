"""The numbers of a series preset's card: a detector of anomalies in one time series.

A model of series windows (e.g. `conv1d_ae`) is published with the series it was
trained on: trained on its first `train_steps` steps, measured on the steps after
them (`evaluate_series`); `kerasae zoo evaluate NAME --dataset FILE.csv` repeats it
(`evaluate_series_preset`). No series ships with kerasae, so the data are always
given; the card records the file's sha256 and its labelled windows (by timestamp).
"""

import os

import numpy as np

from kerasae import data as data_lib
from kerasae._util.errors import InvalidType, InvalidValue
from kerasae._util.files import sha256_file
from kerasae.models import scaling

CHUNK = 8192  # windows scored at a time: a series of any length in bounded memory
SERIES_SETTINGS = {"batch_size": 1024, "threshold_percentile": 99.0}
SERIES_METRIC_DOCS = {
    "mse": "mean squared error per value of the held-out windows, in the model's scaled "
           "units (the training run's val_loss)",
    "mse_normal": "the same, over the held-out windows that hold no labelled step",
    "threshold": "threshold on the scores: the threshold_percentile of the training "
                 "windows' scores",
    "roc_auc": "ROC-AUC of the per-step scores against the labelled steps (held-out part)",
    "pr_auc": "PR-AUC (average precision) of the per-step scores, held-out part",
    "labelled_windows": "labelled anomaly windows in the held-out part",
    "labelled_windows_flagged": "of them, windows with a step above the threshold",
    "recall": "labelled held-out steps above the threshold, as a fraction of them",
    "steps_flagged_outside": "held-out steps above the threshold outside every window",
    "false_positive_rate": "steps_flagged_outside over the held-out steps outside windows",
}


def _series_settings(settings, src):
    known = set(SERIES_SETTINGS) | {"train_steps"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise InvalidType(f"Unknown evaluation setting(s) {', '.join(unknown)} of a series "
                          f"model. Valid: {', '.join(sorted(known))}. "
                          f"Received: {unknown[0]}={settings[unknown[0]]!r}")
    s = dict(SERIES_SETTINGS, **settings)
    k = s.get("train_steps")
    if isinstance(k, bool) or not isinstance(k, int) or not (
            src.window <= k <= src.n_steps - src.window):
        raise InvalidValue(
            f"train_steps is the number of leading steps of the series the model was trained "
            f"on; the threshold comes from their windows and the metrics from the steps after "
            f"them, so it lies between one window ({src.window}) and {src.n_steps} steps less "
            f"one window. Received: train_steps={k!r}")
    return s


def _window_rows(src, windows):
    """Rows `(first, last)` of labelled windows given by their first and last timestamps."""
    stamps = () if src.timestamps is None else src.timestamps
    row = {str(t).strip(): i for i, t in enumerate(stamps)}
    rows = []
    for first, last in windows:
        if first not in row or last not in row:
            raise InvalidValue(
                f"{src.name} has no step with timestamp {first if first not in row else last!r}"
                f", an edge of a labelled window: is it the series the preset was measured on "
                f"(with its time column)? Received: window={[first, last]!r}")
        rows.append((row[first], row[last]))
    return rows


def _runs(y):
    """`[(first, last), ...]`: the runs of true values of `y` (inclusive)."""
    edges = np.diff(np.concatenate([[0], y.astype("int8"), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


def _label_metrics(src, k, window_scores, steps, threshold, y):
    """The card's label metrics of the held-out steps `k..` and the labelled windows."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    held, ok = y[k:], ~np.isnan(steps)
    if held[ok].all() or not held[ok].any():
        return {}, []
    positive = np.concatenate([[0], np.cumsum(y)])
    starts = src.window_starts[src.window_starts >= k]
    normal = positive[starts + src.window] == positive[starts]
    flagged = np.nan_to_num(steps, nan=-np.inf) > threshold
    runs = _runs(held)
    stamps = src.timestamps
    each = [{"first": str(stamps[k + a]) if stamps is not None else int(k + a),
             "last": str(stamps[k + b]) if stamps is not None else int(k + b),
             "steps": int(b - a + 1), "flagged_steps": int(flagged[a:b + 1].sum())}
            for a, b in runs]
    outside = int(np.sum(flagged & ~held))
    metrics = {
        "mse_normal": float(window_scores[src.window_starts >= k][normal].mean()),
        "roc_auc": float(roc_auc_score(held[ok], steps[ok])),
        "pr_auc": float(average_precision_score(held[ok], steps[ok])),
        "labelled_windows": len(runs),
        "labelled_windows_flagged": sum(w["flagged_steps"] > 0 for w in each),
        "recall": float(np.sum(flagged & held) / held.sum()),
        "steps_flagged_outside": outside,
        "false_positive_rate": outside / int(np.sum(~held)),
    }
    return metrics, each


def evaluate_series(model, src, *, windows=None, **settings):
    """Measures a model of series windows on a series: the numbers of a series card.

    The model was trained on the first `train_steps` steps; the threshold is the
    `threshold_percentile` of the scores of their windows, and everything else is
    measured on the steps after them (the held-out part). A window's score is its
    mean squared reconstruction error in the model's scaled units
    (`kerasae.models.scaling.scores`), a step's the mean score of the windows that
    hold it (`Detector`'s `per_step="mean"`). With labels (the series' label
    column, or `windows`), ROC-AUC and PR-AUC per step, and which labelled windows
    have a step above the threshold: see `SERIES_METRIC_DOCS`.

    Args:
        model: a model of series windows (e.g. `conv1d_ae`).
        src: a `kerasae.data.SeriesSource` cut at the model's window.
        windows: labelled anomaly windows as `(first, last)` timestamps of the
            series, inclusive; instead of the source's step labels.
        **settings: `train_steps` (required), `batch_size` (1024),
            `threshold_percentile` (99).

    Returns:
        `{"examples": held-out steps, "metrics": {...}, "settings": {...},
        "labelled_windows": [{first, last, steps, flagged_steps}, ...]}`.
    """
    if tuple(src.image_shape) != tuple(model.image_shape):
        raise InvalidValue(
            f"{model.name} takes windows of shape {tuple(model.image_shape)} (steps, channels), "
            f"and the series {src.name} was cut into {tuple(src.image_shape)}: pick the value "
            f"columns it was trained on (columns=). Received: shape={tuple(src.image_shape)}")
    s = _series_settings(settings, src)
    k, starts = s["train_steps"], src.window_starts
    scores = np.concatenate([scaling.scores(model, b, int(s["batch_size"]))
                             for _, b in src.batches(CHUNK)])
    threshold = float(np.percentile(scores[starts + src.window <= k],
                                    s["threshold_percentile"]))
    steps = src.per_step(scores)[k:]
    metrics = {"mse": float(scores[starts >= k].mean()), "threshold": threshold}
    y = src.step_labels
    if windows is not None:
        y = np.zeros(src.n_steps, "int64")
        for a, b in _window_rows(src, windows):
            y[a:b + 1] = 1
    labelled, each = ({}, []) if y is None else _label_metrics(
        src, k, scores, steps, threshold, np.asarray(y) > 0)
    metrics.update(labelled)
    metrics = {key: metrics[key] for key in SERIES_METRIC_DOCS if key in metrics}  # card order
    return {"examples": int(src.n_steps - k), "metrics": metrics, "settings": s,
            "labelled_windows": each}


def _recorded_windows(preset, evaluation):
    """The labelled windows' `(first, last)` timestamps a series card was measured with."""
    each = evaluation.get("labelled_windows") or []
    if not isinstance(each, list) or not all(
            isinstance(w, dict) and isinstance(w.get("first"), str)
            and isinstance(w.get("last"), str) for w in each):
        raise InvalidValue(
            f"metadata.json of preset {preset.label} has 'evaluation.labelled_windows' that "
            f"is not a list of {{'first': timestamp, 'last': timestamp, ...}}; republish it "
            f"or give the labels as a column (label=, --label). "
            f"Received: labelled_windows={each!r}"[:400])
    return [(w["first"], w["last"]) for w in each] or None


def evaluate_series_preset(ref, dataset, *, label=None, settings=None):
    """Evaluates a series preset (`ref`: its `kerasae.models.resolve.ModelRef`) on the
    series `dataset` (see `kerasae.zoo.evaluate_preset`): the recorded settings, the
    labels of `label` (a column) or else the card's labelled windows.

    Returns:
        The `evaluate_series` dict plus `preset`, `version`, `dataset`, `split`,
        `dataset_sha256` (of a file) and `same_data` (whether it is the card's file).
    """
    preset, metadata = ref.preset, ref.metadata()
    recorded = metadata["dataset"]
    if dataset is None:
        raise InvalidValue(
            f"Preset {preset.label} detects anomalies in a time series, and kerasae ships no "
            f"series: give the one to measure (dataset=, --dataset), e.g. the card's "
            f"{recorded['name']!r}. Received: dataset=None")
    columns = recorded.get("columns")  # the card's channels, so a label column is no channel
    if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
        columns = None
    model = ref.model
    src = data_lib.series(dataset, window=model.image_shape[0], columns=columns, label=label)
    evaluation = metadata["evaluation"]
    windows = None if label is not None else _recorded_windows(preset, evaluation)
    result = evaluate_series(model, src, windows=windows,
                             **dict(evaluation.get("settings") or {}, **(settings or {})))
    k = result["settings"]["train_steps"]
    path = os.fspath(dataset) if isinstance(dataset, (str, os.PathLike)) else None
    sha = sha256_file(path) if path is not None and os.path.isfile(path) else None
    return {"preset": preset.name, "version": preset.version, "dataset": src.name,
            "split": f"steps {k}-{src.n_steps - 1}", "dataset_sha256": sha,
            "same_data": sha is not None and sha == recorded.get("sha256"), **result}
