"""anomaly on records and series: a `Detector` trained on (mostly) normal data scores
every row of a table or every time step of a series.

The data are a table (`.csv`, `.npz` / `.npy`, an array or a DataFrame: one score per
row) or, with a window, a series (one score per time step, from the windows that hold
it). The detector trains on all of it (anomalies are assumed rare) or on its `normal`
part; the threshold is a rule on the training scores. Written: `scores.csv`,
`anomaly.json`, `anomaly.png` (score histograms), `scores_over_time.png` (a series:
values and scores, labelled windows shaded) and `detector/` (the export: scaling, model
and threshold in one bundle, for the clients in `export/`).
"""

import csv
import os
import time

import numpy as np

from kerasae import plots as _plots
from kerasae._util.errors import InvalidValue
from kerasae.data.series import SeriesSource, tabular
from kerasae.data.source import Subset
from kerasae.data.tables import table
from kerasae.uses._scores import flag_metrics, roc_auc
from kerasae.uses.detector import Detector, _named_columns
from kerasae.uses.options import DEFAULT_THRESHOLD
from kerasae.uses.result import Output, Result, skip

SCORES = {
    "mse": ("mse: reconstruction MSE per row (a series: per window, then per time step), "
            "in the model's scaled units (each feature standardised on the training data)"),
    "robust": ("robust: reconstruction MSE per row (a series: per window, then per time "
               "step), each feature's error divided by max(1.4826 * MAD, 0.1 * std) of its "
               "training values"),
}


def _read(dataset, kind, opts):
    if kind != "series" and opts.get("window") is None:  # records: every table route
        keep = ("columns", "label", "time_column", "impute")
        return table(dataset, **{k: opts[k] for k in keep})
    src = tabular(dataset, kind, **opts)
    if src is None:
        raise InvalidValue(
            "anomaly on a series reads a .csv file, a .npz / .npy file, an array (T, C) or a "
            f"DataFrame. Received: dataset={dataset!r}")
    return src


def _check_label_names(src, label):
    """Anomaly labels are numbers (0 normal, > 0 an anomaly): classes named by text would be
    numbered by their sorted names, which says nothing about which one is the anomaly."""
    names = tuple(getattr(src, "label_names", ()) or ())
    if names:
        shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
        raise InvalidValue(
            f"The label column {label!r} holds text ({shown}); anomaly labels are numbers: 0 "
            "for a normal row, 1 (or > 0) for an anomaly. Recode the column (e.g. 1 where it "
            f"says the anomaly's name), or leave out --label. Received: label={label!r}")


def _normal_file_options(src, opts):
    """How a file of normal data is read: by the data's own feature columns where they
    have names (a label column, the data's or its own, is no feature), and with no label
    (every row of it is normal)."""
    options = dict(opts, label=None)
    named = _named_columns(src)
    if named:
        options["columns"] = list(named)
    return options


def _normal_part(src, normal, kind, opts):
    """`(training source, what it is)`: the part of `src` the detector trains on."""
    if normal is None:
        return src, "all of the data (anomalies assumed rare)"
    if isinstance(normal, str) and normal == "label":
        labels = src.step_labels if isinstance(src, SeriesSource) else src.labels
        if labels is None:
            raise InvalidValue("normal='label' trains on the rows labelled 0, but the data "
                               "have no labels: give the label column (--label). "
                               "Received: normal='label'")
        keep = np.flatnonzero(np.asarray(src.labels) == 0)
        if not len(keep):
            raise InvalidValue("normal='label' trains on the rows labelled 0 (normal), but no "
                               "row is: anomaly labels are 0 for normal and 1 (or > 0) for an "
                               "anomaly. Recode the label column, or pass normal='first:N'. "
                               f"Received: labels={sorted(set(np.asarray(labels).tolist()))}")
        return Subset(src, keep, split="normal"), f"the {len(keep)} examples labelled normal (0)"
    if isinstance(normal, str) and normal.startswith("first:"):
        n = _first(normal, src)
        if isinstance(src, SeriesSource):
            return src.part(0, n, f"first {n} steps"), f"the first {n} time steps"
        return Subset(src, np.arange(n), split=f"first {n}"), f"the first {n} rows"
    if isinstance(normal, (str, os.PathLike)) and os.path.isfile(normal):
        return _read(normal, kind, _normal_file_options(src, opts)), \
            f"the file {os.fspath(normal)!r}"
    raise InvalidValue(
        "normal is 'label' (the rows labelled 0), 'first:N' or 'first:P%' (the first rows "
        "or time steps), or a file of normal data. Received: normal=" + repr(normal))


def _first(spec, src):
    total = src.n_steps if isinstance(src, SeriesSource) else len(src)
    text = spec[len("first:"):]
    try:
        n = (round(total * float(text[:-1]) / 100) if text.endswith("%") else int(text))
    except ValueError:
        n = 0
    least = src.window if isinstance(src, SeriesSource) else 2
    if not least <= n <= total:
        raise InvalidValue(
            f"normal={spec!r} must keep {least} to {total} of the {total} "
            f"{'time steps' if isinstance(src, SeriesSource) else 'rows'} (e.g. first:15%). "
            f"Received: normal={spec!r}")
    return n


def records_anomaly(model=None, dataset=None, *, normal=None, window=None, stride=None,
                    columns=None, label=None, time_column=None, impute=None,
                    threshold="percentile:99", contamination=None, per_step="mean",
                    score="mse", epochs="auto", batch_size="auto", learning_rate=1e-3, seed=0, out=None,
                    export=True, verbose=0):
    """Anomaly detection on a table or a series (see the module docstring and
    `kerasae.uses.anomaly`, which calls this for tables and series)."""
    kind = "series" if window is not None else None
    series_only = {k: v for k, v in (("stride", stride), ("per_step", per_step))
                   if v is not None and (k, v) != ("per_step", "mean")}
    if kind is None and series_only:
        shown = ", ".join(f"{k}={v!r}" for k, v in series_only.items())
        raise InvalidValue(
            f"{' and '.join(series_only)} cut and score the windows of a series: give its "
            f"window (--window N) to read the data as a series, or leave them out for a "
            f"table. Received: {shown}, window=None")
    model = model or ("conv1d_ae" if kind == "series" else "stacked_ae")
    if contamination is not None and threshold == DEFAULT_THRESHOLD:
        threshold = None  # the default rule gives way to the contamination
    det = Detector(model, window=window, stride=stride or 1, threshold=threshold,
                   contamination=contamination, score=score, per_step=per_step, epochs=epochs,
                   batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                   verbose=verbose)
    kind = det._kind()
    opts = dict(columns=columns, label=label, time_column=time_column, impute=impute,
                window=window, stride=stride, default_window=det._model_window() or 48)
    src = _read(dataset, kind, opts)
    _check_label_names(src, label)
    train_src, trained_on = _normal_part(src, normal, kind, opts)
    start = time.perf_counter()
    det.fit(train_src)
    seconds = time.perf_counter() - start
    scores = det.decision_function(src)
    series = isinstance(src, SeriesSource)
    labels = src.step_labels if series else src.labels
    metrics = {
        "use": "anomaly", "labels": labels is not None, "input": "series" if series else "records",
        "model": det.model_.builder_name, "data": src.info(),
        "training": {"on": trained_on, "examples": len(train_src), "epochs": det.epochs_,
                     "batch_size": det.batch_size_, "seconds": round(seconds, 1),
                     "seed": seed},
        "score": SCORES[score], "threshold": det.threshold_rule_,
        "scored": {"steps" if series else "rows": int(len(scores)),
                   "flagged": int(np.sum(scores > det.threshold_))},
    }
    if series:
        metrics["per_step"] = per_step
    _label_metrics(metrics, labels, scores, det.threshold_, series)
    with Output(out) as output:
        if output.enabled:
            if export:
                det.export(output.path("detector"))
                metrics["export"] = {"dir": "detector",
                                     "clients": "export/python/kerasae_client.py score, "
                                                "export/node/check.js"}
            _write_scores(output.path("scores.csv"), src, scores, det.threshold_, labels)
            _plot(output, src, scores, det, labels, metrics)
            output.json("anomaly.json", metrics)
        files = output.commit()
    result = Result("anomaly", metrics, {"scores": scores,
                                         "flagged": np.nan_to_num(scores, nan=-np.inf)
                                         > det.threshold_,
                                         "train_scores": det.train_scores_}, files)
    result.model, result.detector = det.model_, det
    return result


def _label_metrics(metrics, labels, scores, threshold, series):
    if labels is None:
        skip(metrics, "ROC-AUC, precision and recall", "the data have no label column")
        return
    classes = np.unique(np.asarray(labels))
    y = np.asarray(labels) > 0
    metrics["labels_read_as"] = {
        "rule": "0 is normal, > 0 an anomaly", "classes": [int(c) for c in classes[:20]],
        "anomalies": int(y.sum()), "of": int(len(y))}
    ok = ~np.isnan(scores)
    if y[ok].all() or not y[ok].any():
        which = "every label is > 0 (an anomaly)" if y[ok].all() else "no label is > 0"
        skip(metrics, "ROC-AUC, precision and recall",
             f"the labels hold one class: {which}; 0 marks a normal row, > 0 an anomaly")
        return
    from sklearn.metrics import average_precision_score  # lazy: as in _scores

    metrics["roc_auc"] = roc_auc(y[ok], scores[ok])
    metrics["pr_auc"] = float(average_precision_score(y[ok], scores[ok]))
    metrics["at_threshold"] = flag_metrics(y[ok], scores[ok], threshold)
    if series:  # labelled steps come in windows: was each one found, and what else?
        runs = _runs(y)
        flagged = np.nan_to_num(scores, nan=-np.inf) > threshold
        metrics["labelled_windows"] = {
            "windows": len(runs),
            "flagged": int(sum(flagged[a:b + 1].any() for a, b in runs)),
            "flagged_outside": int(np.sum(flagged & ~y)),
            "each": [{"first": int(a), "last": int(b),
                      "flagged_steps": int(flagged[a:b + 1].sum())} for a, b in runs],
        }


def _runs(y):
    """`[(first, last), ...]`: the runs of true values (inclusive)."""
    edges = np.diff(np.concatenate([[0], y.astype("int8"), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


def _write_scores(path, src, scores, threshold, labels):
    series = isinstance(src, SeriesSource)
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        head = ["step", "timestamp"] if series else ["row"]
        out.writerow(head + ["score", "flagged"] + ([] if labels is None else ["label"]))
        for i, score in enumerate(scores):
            lead = [i, "" if src.timestamps is None else src.timestamps[i]] if series else [i]
            text = "" if np.isnan(score) else f"{float(score):.6g}"
            out.writerow(lead + [text, int(score > threshold)]
                         + ([] if labels is None else [int(labels[i])]))


def _plot(output, src, scores, det, labels, metrics):
    t = det.threshold_
    ok = ~np.isnan(scores)
    y = None if labels is None else np.asarray(labels)[ok] > 0
    what = "time steps" if isinstance(src, SeriesSource) else "rows"
    title = (f"Anomaly scores ({metrics['model']}, trained on {metrics['training']['on']}): "
             f"{metrics['scored']['flagged']} of {int(ok.sum())} {what} above the threshold")
    _plots.score_histogram(output.path("anomaly.png"), scores[ok], t, title=title,
                           what=what, labels=y)
    if isinstance(src, SeriesSource):
        _plots.series_scores(
            output.path("scores_over_time.png"), src.values(), scores, t,
            windows=_runs(np.asarray(labels) > 0) if labels is not None else [],
            columns=src.columns,
            title=f"Series, scores per time step and threshold ({metrics['model']})")
