"""anomaly: reconstruction error as an anomaly score, with a threshold chosen on training data."""

import os

import numpy as np

from kerasae import plots as _plots
from kerasae._util.errors import InvalidValue
from kerasae.data.series import array_rank
from kerasae.data.tables import is_frame
from kerasae.models import registry
from kerasae.models.resolve import resolve_model
from kerasae.uses._outliers import (
    SCORE,
    export_detector,
    image_scores,
    outliers,
    same_images,
    train_detector,
    write_scores,
)
from kerasae.uses._records import records_anomaly
from kerasae.uses._scores import (
    choose_threshold,
    flag_metrics,
    parse_threshold,
    pca_scores,
    roc_auc,
    roc_curve,
)
from kerasae.uses.inputs import (check_applies, check_images, label_name, load_inputs,
                                 model_for_images)
from kerasae.uses.options import DEFAULT_THRESHOLD
from kerasae.uses.result import Output, Result


def anomaly(model=None, *, held_out="auto", dataset="fashion_mnist", train_split="train",
            test_split="auto", train=True, epochs=None, batch_size=None, learning_rate=1e-3,
            threshold=DEFAULT_THRESHOLD, train_limit=None, limit=None, resize="crop",
            skip_bad=False, max_pixels=None, seed=0, out=None, export=True, verbose=0,
            **records):
    """An anomaly detector: train without one class, score by reconstruction error.

    Records and series (a table or series `dataset`: a `.csv` file, a DataFrame, a
    2-D array or `.npz` / `.npy` file, or any data for a model of vector or series
    input) go to `kerasae.uses._records.records_anomaly`: a `Detector` trains on all
    of the data (or its `normal` part: `"label"`, `"first:N"`, `"first:P%"` or a file),
    scores every row or time step and flags those above the threshold. Its own
    arguments, passed through `**records`: `normal`, `window`, `stride`, `columns`,
    `label`, `time_column`, `impute`, `contamination`, `per_step`, `score`; `epochs` and
    `batch_size` default to `"auto"` there (about 500 training steps).

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

    Without labels (a folder of photos), no image is known to be an anomaly:
    the model is trained on all training images, every image is scored and
    flagged by the threshold, beside PCA (`scores.csv`; see
    `kerasae.uses._outliers`), and ROC-AUC, precision and recall are skipped
    (`result["skipped"]` says so).

    With `held_out="all"` every class is held out in turn (one training per
    class: slow), without exports.

    Images from a folder or a dataset split are streamed (`StreamedImages`): the
    detector trains on batches read from the source, the images are scored and
    PCA fitted a block at a time (`kerasae.uses._pca`; `pca_baseline.solver` in the
    JSON says how), and the example PNG reads only the images it draws, so memory
    does not grow with their number.

    Args:
        model: an `Autoencoder`, a `.keras` path or a zoo preset name; its
            architecture (and, with `train=False`, its weights) is used.
        held_out: class index or name treated as the anomaly, `"all"`, or
            `"auto"`: the last class (Fashion-MNIST: 9, "Ankle boot"). Defaults
            to `"auto"`.
        dataset: a dataset name, an image folder or a `.npz`/`.npy` file.
            Defaults to `"fashion_mnist"`.
        train_split, test_split: splits; `"auto"` is the test split where the
            dataset has one, else the training images themselves. Default to
            `"train"` and `"auto"`.
        train: train a fresh model without the held-out class. With `False`
            the given weights are used as they are (they may have seen the
            anomaly class: the JSON says so). Defaults to `True`.
        epochs, batch_size, learning_rate: training settings. Default to `3`,
            `128`, `1e-3`.
        threshold: the rule. Defaults to `"percentile:99"`.
        train_limit: use the first `train_limit` training images. Defaults to all.
        limit: use the first `limit` test images. Defaults to all.
        resize: how folder images are sized to the model's input (see
            `features`). Defaults to `"crop"`.
        skip_bad: leave out image files that cannot be read (counted), instead of
            failing. Defaults to `False`.
        max_pixels: the largest image decoded (the decompression-bomb guard).
            Defaults to `$KERASAE_MAX_PIXELS`, else 100 megapixels.
        seed: training and PCA seed. Defaults to `0`.
        out: directory for `anomaly.json`, `anomaly.png`, `anomaly_examples.png`,
            `scores.csv` and `detector/`. Defaults to `None`.
        export: write the export bundle. Defaults to `True`.
        verbose: Keras `fit` verbosity. Defaults to `0`.

    Returns:
        A `Result` with arrays `scores`, `is_anomaly` (labelled) or `flagged`,
        `train_scores` and, in `result.model`, the detector model.
    """
    parse_threshold(threshold)  # fail before any work
    if records.get("window") is not None or _records_data(model, dataset):
        if held_out != "auto" or not train:
            raise InvalidValue("held_out and train=False apply to image classes; records "
                               "and series train a detector on their normal part (normal=). "
                               f"Received: held_out={held_out!r}, train={train!r}")
        return records_anomaly(model, dataset, threshold=threshold,
                               epochs=epochs or "auto", batch_size=batch_size or "auto",
                               learning_rate=learning_rate, seed=seed, out=out, export=export,
                               verbose=verbose, **records)
    if records:
        raise InvalidValue(f"{sorted(records)[0]} applies to tables and series, but "
                           f"{dataset!r} is read as images. Received: "
                           f"{sorted(records)[0]}={records[sorted(records)[0]]!r}")
    if model is None:
        raise InvalidValue("anomaly on images needs a model: a zoo preset, a .keras file or "
                           "an Autoencoder. Received: model=None")
    epochs, batch_size = epochs or 3, batch_size or 128
    ref = resolve_model(model)
    check_applies("anomaly", ref.model)
    shape = ref.model.image_shape
    # Streamed where the source reads by index: images are read a block (or a training
    # batch) at a time, so memory does not grow with their number.
    reading = {"shape": shape, "resize": resize, "skip_bad": skip_bad,
               "max_pixels": max_pixels, "stream": True}
    train_in = load_inputs(None, dataset=dataset, split=train_split, limit=train_limit,
                           **reading)
    test_in = load_inputs(None, dataset=dataset, split=test_split, limit=limit, **reading)
    model_for_images(ref, train_in.images, "training images")
    check_images(ref.model, test_in.images, "test images")
    settings = {"train": train, "epochs": epochs, "batch_size": batch_size,
                "learning_rate": learning_rate, "threshold": threshold, "seed": seed,
                "verbose": verbose, "same": same_images(train_in, test_in)}
    reason = _no_classes(train_in, test_in)
    if reason is not None:
        if held_out != "auto":
            raise InvalidValue(
                f"held_out={held_out!r} names a class, but {reason}. Leave held_out at "
                f"'auto' to score the images without labels. Received: held_out={held_out!r}"
            )
        return outliers(ref, train_in, test_in, reason, settings, out, export)
    classes = sorted(set(np.unique(train_in.labels).tolist())
                     | set(np.unique(test_in.labels).tolist()))
    if isinstance(held_out, str) and held_out.lower() == "all":
        return _sweep(ref, train_in, test_in, classes, dict(settings, out=out))
    k = classes[-1] if held_out == "auto" else _class_index(held_out, classes, test_in)
    with Output(out) as output:
        metrics, arrays, detector = _one(ref, train_in, test_in, k, settings)
        if settings["same"]:
            metrics.setdefault("notes", []).append(
                "the dataset has no test split: the detector was trained on its normal "
                "images and scores those same images (in-sample; the anomaly class was held "
                "out of training)")
        if output.enabled:
            if export:
                metrics["export"] = export_detector(detector, output, metrics, test_in.images)
            _plot(output, test_in, arrays, metrics, ref)
            write_scores(output.path("scores.csv"), test_in, arrays["scores"],
                         metrics["threshold"]["value"], arrays["pca_scores"])
            output.json("anomaly.json", metrics)
        files = output.commit()
    result = Result("anomaly", metrics, arrays, files)
    result.model = detector
    return result


def _records_data(model, dataset):
    """Whether `dataset` (or `model`'s input) is records or series, not images."""
    if isinstance(model, str) and model in registry.list_builders():
        if registry.get_contract(model).input_kind != "image":
            return True
    elif model is not None and not isinstance(model, str):
        if getattr(model, "input_kind", "image") != "image":
            return True
    if is_frame(dataset):
        return True
    if isinstance(dataset, np.ndarray):
        return dataset.ndim == 2
    low = str(dataset).lower()
    if low.endswith(".csv"):
        return True
    if low.endswith((".npz", ".npy")) and os.path.isfile(dataset):
        return model is None and array_rank(None, os.fspath(dataset)) == 2
    return False


def _no_classes(train_in, test_in):
    """Why there is no class to hold out as the anomaly, or `None`."""
    if train_in.labels is None or test_in.labels is None:
        return "the images have no labels, so no image is known to be an anomaly"
    if len(set(np.unique(train_in.labels).tolist()) | set(np.unique(test_in.labels).tolist())) < 2:
        return "the images hold one class, so no class can be held out as the anomaly"
    return None


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


def _one(ref, train_in, test_in, k, settings):
    normal = train_in.labels != k
    train_x = train_in.subset(np.flatnonzero(normal)).images  # streamed: a view, none read
    detector, training = train_detector(ref, train_x, settings)
    if not settings["train"]:
        training["note"] += "; they may have seen the held-out class"
    x, y = test_in.images, test_in.labels == k
    scores = image_scores(detector, x)
    # Without a test split the test images are the training ones: scored once.
    train_scores = scores[normal] if settings["same"] else image_scores(detector, train_x)
    value, rule = choose_threshold(train_scores, settings["threshold"])
    pca_sets, pca_k, solver = pca_scores(train_x, [x] if settings["same"] else [x, train_x],
                                         detector.latent_dim)
    pca_test = pca_sets[0]
    pca_train = pca_test[normal] if settings["same"] else pca_sets[1]
    pca_value, pca_rule = choose_threshold(pca_train, settings["threshold"])
    auc = roc_auc(y, scores)
    metrics = {
        "use": "anomaly", "model": ref.info(), "labels": True,
        "dataset": train_in.description.get("dataset"), "inputs": test_in.description,
        "held_out_class": k, "held_out_name": label_name(test_in, k),
        "training": training, "score": SCORE, "threshold": rule,
        "test": {"images": int(len(x)), "anomalies": int(y.sum()), "normal": int((~y).sum())},
        "roc_auc": auc,
        "at_threshold": flag_metrics(y, scores, value),
        "pca_baseline": {"components": pca_k, "solver": solver,
                         "roc_auc": roc_auc(y, pca_test),
                         "threshold": pca_rule,
                         "at_threshold": flag_metrics(y, pca_test, pca_value)},
    }
    metrics["roc_auc_minus_pca"] = auc - metrics["pca_baseline"]["roc_auc"]
    arrays = {"scores": scores, "is_anomaly": y, "train_scores": train_scores,
              "pca_scores": pca_test}
    return metrics, arrays, detector


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
            metrics, _, _ = _one(ref, train_in, test_in, k, args)
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
