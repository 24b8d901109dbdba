"""anomaly: reconstruction error as an anomaly score, with a threshold chosen on training data."""

import re
import time

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from kerasae import plots as _plots
from kerasae._util.errors import InvalidValue
from kerasae.export.bundle import export as export_bundle
from kerasae.metrics import mse_per_image
from kerasae.models import predict
from kerasae.models.resolve import fresh_copy, resolve_model
from kerasae.uses.inputs import check_images, label_name, load_inputs, need_labels
from kerasae.uses.options import DEFAULT_THRESHOLD
from kerasae.uses.result import Output, Result

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


def pca_scores(train_x, x, components, seed=0):
    """Per-image PCA reconstruction MSE (the non-autoencoder baseline)."""
    from sklearn.decomposition import PCA

    flat_train = train_x.reshape(len(train_x), -1)
    k = int(min(components, flat_train.shape[1], len(flat_train)))
    pca = PCA(n_components=k, svd_solver="auto", random_state=0).fit(flat_train)
    flat = x.reshape(len(x), -1)
    recon = pca.inverse_transform(pca.transform(flat))
    return ((flat - recon) ** 2).mean(axis=1), k


def anomaly(model, *, held_out=9, dataset="fashion_mnist", train_split="train",
            test_split="test", train=True, epochs=3, batch_size=128, learning_rate=1e-3,
            threshold=DEFAULT_THRESHOLD, train_limit=None, limit=None, seed=0, out=None,
            export=True, verbose=0):
    """An anomaly detector: train without one class, score by reconstruction error.

    With `train=True` a fresh model of `model`'s architecture is trained for
    `epochs` on `train_split` without class `held_out`; the threshold is chosen
    on the training images' scores (`threshold`: `"percentile:P"`,
    `"mean+Kstd"` or a number, recorded); on `test_split` the held-out class is
    the anomaly. Reported: ROC-AUC, the ROC curve, precision / recall / F1 at
    the threshold, and the same for PCA reconstruction error with as many
    components as the code (the non-autoencoder baseline, fitted on the same
    training images). With `export`, `out/detector/` is an export bundle whose
    metadata carries the threshold and input scaling, for the clients under
    `export/`.

    With `held_out="all"` every class is held out in turn (10 trainings: slow),
    without exports.

    Args:
        model: an `Autoencoder`, a `.keras` path or a zoo preset name; its
            architecture (and, with `train=False`, its weights) is used.
        held_out: class index (or name) treated as the anomaly, or `"all"`.
            Defaults to `9` (Fashion-MNIST "Ankle boot").
        dataset: a labelled dataset. Defaults to `"fashion_mnist"`.
        train_split, test_split: splits. Default to `"train"` and `"test"`.
        train: train a fresh model without the held-out class. With `False`
            the given weights are used as they are (they may have seen the
            anomaly class: the JSON says so). Defaults to `True`.
        epochs, batch_size, learning_rate: training settings. Default to `3`,
            `128`, `1e-3`.
        threshold: the rule. Defaults to `"percentile:99"`.
        train_limit: use the first `train_limit` training images. Defaults to all.
        limit: use the first `limit` test images. Defaults to all.
        seed: training and PCA seed. Defaults to `0`.
        out: directory for `anomaly.json`, `anomaly.png`,
            `anomaly_examples.png` and `detector/`. Defaults to `None`.
        export: write the export bundle. Defaults to `True`.
        verbose: Keras `fit` verbosity. Defaults to `0`.

    Returns:
        A `Result` with arrays `scores`, `is_anomaly`, `train_scores` and, in
        `result.model`, the detector model.
    """
    parse_threshold(threshold)  # fail before any work
    ref = resolve_model(model)
    train_in = load_inputs(None, dataset=dataset, split=train_split, limit=train_limit)
    test_in = load_inputs(None, dataset=dataset, split=test_split, limit=limit)
    need_labels(train_in, "anomaly")
    need_labels(test_in, "anomaly")
    check_images(ref.model, train_in.images, "training images")
    classes = sorted(set(np.unique(train_in.labels).tolist()) | set(np.unique(test_in.labels).tolist()))
    if isinstance(held_out, str) and held_out.lower() == "all":
        return _sweep(ref, train_in, test_in, classes, locals())
    k = _class_index(held_out, classes, test_in)
    with Output(out) as output:
        metrics, arrays, detector = _one(ref, train_in, test_in, k, train, epochs, batch_size,
                                         learning_rate, threshold, seed, verbose)
        if output.enabled:
            if export:
                metrics["export"] = _export(detector, output, metrics, test_in.images)
            _plot(output, test_in, arrays, metrics, ref)
            output.json("anomaly.json", metrics)
        files = output.commit()
    result = Result("anomaly", metrics, arrays, files)
    result.model = detector
    return result


def _class_index(held_out, classes, inputs):
    if isinstance(held_out, str) and not held_out.lstrip("-").isdigit():
        names = list(inputs.label_names)
        if held_out in names:
            return names.index(held_out)
        raise InvalidValue(
            f"Unknown class {held_out!r}. Available: {', '.join(names) or classes}. "
            f"Received: held_out={held_out!r}"
        )
    k = int(held_out)
    if k not in classes:
        raise InvalidValue(
            f"held_out must be one of the classes {classes} (or a class name, or 'all'). "
            f"Received: held_out={held_out!r}"
        )
    return k


def _one(ref, train_in, test_in, k, train, epochs, batch_size, learning_rate, threshold, seed,
         verbose):
    import keras

    normal = train_in.labels != k
    train_x = train_in.images[normal]
    history = None
    start = time.perf_counter()
    if train:
        keras.utils.set_random_seed(seed)
        detector = fresh_copy(ref.model)
        detector.compile(optimizer=keras.optimizers.Adam(learning_rate))
        fit = detector.fit(train_x, epochs=int(epochs), batch_size=int(batch_size),
                           shuffle=True, verbose=verbose)
        history = {name: [float(v) for v in values] for name, values in fit.history.items()}
    else:
        detector = ref.model
    train_seconds = time.perf_counter() - start
    train_scores = mse_per_image(train_x, predict.reconstruct(detector, train_x))
    value, rule = choose_threshold(train_scores, threshold)
    x, y = test_in.images, test_in.labels == k
    scores = mse_per_image(x, predict.reconstruct(detector, x))
    auc = roc_auc(y, scores)
    pca_train = pca_scores(train_x, train_x, detector.latent_dim, seed)[0]
    pca_test, pca_k = pca_scores(train_x, x, detector.latent_dim, seed)
    pca_value, pca_rule = choose_threshold(pca_train, threshold)
    name = label_name(test_in, k)
    metrics = {
        "use": "anomaly", "model": ref.info(),
        "dataset": train_in.description.get("dataset"),
        "held_out_class": k, "held_out_name": name,
        "training": ({"retrained": True, "epochs": int(epochs), "batch_size": int(batch_size),
                      "learning_rate": learning_rate, "seed": seed,
                      "images": int(len(train_x)), "seconds": round(train_seconds, 1),
                      "history": history}
                     if train else
                     {"retrained": False, "note": "given weights used as they are; they may "
                      "have seen the held-out class"}),
        "score": "mse: reconstruction MSE per image, averaged over pixels, inputs in [0, 1]",
        "threshold": rule,
        "test": {"images": int(len(x)), "anomalies": int(y.sum()), "normal": int((~y).sum())},
        "roc_auc": auc,
        "at_threshold": flag_metrics(y, scores, value),
        "pca_baseline": {"components": pca_k, "roc_auc": roc_auc(y, pca_test),
                         "threshold": pca_rule,
                         "at_threshold": flag_metrics(y, pca_test, pca_value)},
    }
    metrics["roc_auc_minus_pca"] = auc - metrics["pca_baseline"]["roc_auc"]
    arrays = {"scores": scores, "is_anomaly": y, "train_scores": train_scores,
              "pca_scores": pca_test}
    return metrics, arrays, detector


def _export(detector, output, metrics, test_images):
    block = {
        "score": "mse",
        "threshold": metrics["threshold"]["value"],
        "threshold_rule": {k: metrics["threshold"][k] for k in metrics["threshold"]
                           if k not in ("value",)},
        "scaling": {"input": "pixel / 255 (uint8 images to [0, 1])", "input_scale": 1.0 / 255,
                    "input_offset": 0.0, "score_reduction": "mean over all pixels and channels"},
        "held_out_class": metrics["held_out_class"],
        "held_out_name": metrics["held_out_name"],
        "roc_auc": metrics["roc_auc"],
        "dataset": metrics["dataset"],
    }
    folder = output.path("detector")
    # Real test images as the export's reference inputs, so the clients' conformance
    # check covers real scores and flags, not only noise.
    reference = test_images[: max(16, 7)]
    export_bundle(detector, folder, metadata={"anomaly": block},
                      reference_inputs=reference if len(reference) >= 7 else None)
    return {"dir": "detector", "metadata": {"anomaly": block},
            "clients": "export/python/kerasae_client.py score, export/node/check.js"}


def _plot(output, test_in, arrays, metrics, ref):
    scores, y = arrays["scores"], arrays["is_anomaly"]
    fpr, tpr = roc_curve(y, scores)
    t = metrics["threshold"]["value"]
    rule = metrics["threshold"]
    how = (f"{rule['percentile']:g}th percentile" if rule["method"] == "percentile"
           else f"mean + {rule['k']:g} std" if rule["method"] == "mean+kstd" else "fixed")
    pca = metrics["pca_baseline"]
    pfpr, ptpr = roc_curve(y, arrays["pca_scores"])
    _plots.anomaly_panels(
        output.path("anomaly.png"), scores[~y], scores[y], t, fpr, tpr, metrics["roc_auc"],
        anomaly_name=metrics["held_out_name"],
        baseline=(pfpr, ptpr, pca["roc_auc"], f"PCA-{pca['components']} reconstruction error"),
        title=(f"Anomaly detection: {metrics['held_out_name']} held out of training "
               f"(model {ref.name})\nthreshold = {how} of training scores; precision "
               f"{metrics['at_threshold']['precision']:.3f}, recall "
               f"{metrics['at_threshold']['recall']:.3f}; PCA-{pca['components']} baseline "
               f"AUC {pca['roc_auc']:.3f}"),
    )
    order = np.argsort(-scores)
    k = min(10, len(scores))
    x = test_in.images
    picks = [order[:k], order[::-1][:k]]
    cells = [[f"{label_name(test_in, int(test_in.labels[i]))}\n{scores[i]:.4f}"
              for i in idx] for idx in picks]
    _plots.image_rows(
        output.path("anomaly_examples.png"), [x[idx] for idx in picks],
        title=(f"Highest and lowest anomaly scores on the test split "
               f"({metrics['held_out_name']} is the anomaly; threshold {t:.4f}; "
               f"titles: class and score)"),
        row_labels=["highest scores", "lowest scores"], cell_labels=cells,
    )


def _sweep(ref, train_in, test_in, classes, args):
    rows = []
    with Output(args["out"]) as output:
        for k in classes:
            metrics, _, _ = _one(ref, train_in, test_in, k, args["train"], args["epochs"],
                                 args["batch_size"], args["learning_rate"],
                                 args["threshold"], args["seed"], args["verbose"])
            rows.append({"held_out_class": k, "held_out_name": metrics["held_out_name"],
                         "roc_auc": metrics["roc_auc"],
                         "pca_roc_auc": metrics["pca_baseline"]["roc_auc"],
                         **{f"{m}": metrics["at_threshold"][m]
                            for m in ("precision", "recall", "f1")},
                         "threshold": metrics["threshold"]["value"],
                         "training": metrics["training"]})
        summary = {
            "use": "anomaly", "model": ref.info(), "sweep": True,
            "dataset": train_in.description.get("dataset"),
            "threshold_rule": parse_threshold(args["threshold"]),
            "per_class": rows,
            "mean_roc_auc": float(np.mean([r["roc_auc"] for r in rows])),
            "mean_pca_roc_auc": float(np.mean([r["pca_roc_auc"] for r in rows])),
            "export": "not written in a sweep; run one held-out class to export a detector",
        }
        if output.enabled:
            names = [r["held_out_name"] for r in rows]
            _grouped_bars(output.path("anomaly_sweep.png"), names,
                          [r["roc_auc"] for r in rows], [r["pca_roc_auc"] for r in rows], ref)
            output.json("anomaly.json", summary)
        files = output.commit()
    return Result("anomaly", summary, {}, files)


def _grouped_bars(path, names, ae, pca, ref):
    return _plots.grouped_bars(
        path, names, [(ae, f"autoencoder ({ref.name} architecture)"),
                      (pca, "PCA reconstruction error (same size)")],
        hline=(0.5, "chance"), ylim=(0, 1), xlabel="class held out of training",
        ylabel="ROC-AUC (held-out class = anomaly)",
        title=(f"Anomaly detection ROC-AUC per held-out class (test split); mean: "
               f"autoencoder {np.mean(ae):.3f}, PCA {np.mean(pca):.3f}"),
    )
