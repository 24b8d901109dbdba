"""anomaly without labels: score every image, flag those above the threshold, beside PCA.

With no image known to be an anomaly there is no ROC-AUC, precision or
recall; what a user of their own folder gets is the score of every image
(`scores.csv`), the images the threshold flags, the same from PCA
reconstruction error, how well the two rankings agree, and the detector
export. Also the parts the labelled `anomaly` shares: training the detector,
the export, the scores file.
"""

import csv
import time

import numpy as np

from kerasae import plots as _plots
from kerasae.export.bundle import export as export_bundle
from kerasae.metrics import mse_per_image
from kerasae.models import predict
from kerasae.models.resolve import fresh_copy
from kerasae.uses import _pca
from kerasae.uses._scores import choose_threshold, pca_scores, rank_correlation
from kerasae.uses.inputs import StreamedImages, blocks, label_name, shuffled_batches
from kerasae.uses.result import Output, Result, skip

SCORE = "mse: reconstruction MSE per image, averaged over pixels, inputs in [0, 1]"


def train_detector(ref, train_x, settings, fine_tune=False):
    """`(detector, training record)`: a fresh copy of `ref`'s architecture (with
    `fine_tune`, of its weights too) trained on `train_x`, or `ref`'s own model when
    `settings["train"]` is false."""
    import keras

    if not settings["train"]:
        return ref.model, {"retrained": False, "note": "given weights used as they are"}
    start = time.perf_counter()
    keras.utils.set_random_seed(settings["seed"])
    detector = fresh_copy(ref.model)
    if fine_tune:
        detector.set_weights(ref.model.get_weights())
    detector.compile(optimizer=keras.optimizers.Adam(settings["learning_rate"]))
    epochs, batch_size = int(settings["epochs"]), int(settings["batch_size"])
    if isinstance(train_x, StreamedImages):  # read a batch at a time, in a new order
        fit = detector.fit(shuffled_batches(batch_size, settings["seed"], train_x),
                           epochs=epochs, verbose=settings["verbose"])
    else:
        fit = detector.fit(train_x, epochs=epochs, batch_size=batch_size, shuffle=True,
                           verbose=settings["verbose"])
    return detector, {
        "retrained": True, "from": "the given weights (fine-tuned)" if fine_tune else
        "fresh weights", "epochs": int(settings["epochs"]),
        "batch_size": int(settings["batch_size"]), "learning_rate": settings["learning_rate"],
        "seed": settings["seed"], "images": int(len(train_x)),
        "seconds": round(time.perf_counter() - start, 1),
        "history": {k: [float(v) for v in vs] for k, vs in fit.history.items()}}


def image_scores(detector, images):
    """Each image's reconstruction MSE (the score), a block at a time (`images`: an array
    or `StreamedImages`)."""
    return np.concatenate([mse_per_image(x, predict.reconstruct(detector, x))
                           for _, x in blocks(images, _pca.BLOCK)])


def same_images(a, b):
    """Whether `Inputs` `a` and `b` hold the same images (a dataset without a test split
    scores its training images), without reading streamed ones: the same files (or, for
    a dataset without file names, split) of one dataset read the same way."""
    if len(a) != len(b):
        return False
    streamed = [isinstance(i.images, StreamedImages) for i in (a, b)]
    if not any(streamed):
        return bool(np.array_equal(a.images, b.images))
    if not all(streamed) or a.images.index is not None or b.images.index is not None:
        return False
    if any(a.description.get(k) != b.description.get(k) for k in ("dataset", "route", "sized")):
        return False
    if a.names is not None or b.names is not None:
        return a.names == b.names
    return a.description.get("split") == b.description.get("split")


def export_detector(detector, output, metrics, reference_images):
    """Writes `detector/`, an export bundle whose metadata carries the threshold."""
    block = {
        "score": "mse",
        "threshold": metrics["threshold"]["value"],
        "threshold_rule": {k: v for k, v in metrics["threshold"].items() if k != "value"},
        "scaling": {"input": "pixel / 255 (uint8 images to [0, 1])", "input_scale": 1.0 / 255,
                    "input_offset": 0.0, "score_reduction": "mean over all pixels and channels"},
        "held_out_class": metrics.get("held_out_class"),
        "held_out_name": metrics.get("held_out_name"),
        "roc_auc": metrics.get("roc_auc"),
        "dataset": metrics.get("dataset"),
    }
    # Real images as the export's reference inputs, so the clients' conformance
    # check covers real scores and flags, not only noise.
    reference = reference_images[:16]
    export_bundle(detector, output.path("detector"), metadata={"anomaly": block},
                  reference_inputs=reference if len(reference) >= 7 else None)
    return {"dir": "detector", "metadata": {"anomaly": block},
            "clients": "export/python/kerasae_client.py score, export/node/check.js"}


def write_scores(path, inputs, scores, threshold, pca):
    """`scores.csv`: one row per scored image (index, file, class, score, flagged, PCA score)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["index", "file", "class", "score", "flagged", "pca_score"])
        for i, score in enumerate(scores):
            out.writerow([i, "" if inputs.names is None else inputs.names[i],
                          "" if inputs.labels is None else label_name(inputs, int(inputs.labels[i])),
                          f"{float(score):.6g}", int(score > threshold), f"{float(pca[i]):.6g}"])


def outliers(ref, train_in, test_in, reason, settings, out, export):
    """The unlabelled `anomaly`: see the module docstring; `reason` says why there are
    no labels to score against."""
    same = same_images(train_in, test_in)
    with Output(out) as output:
        train_x, x = train_in.images, test_in.images
        # No class is held out, so the given weights may have seen everything: fine-tune
        # them on these images rather than train from scratch on (often few) images.
        detector, training = train_detector(ref, train_x, settings, fine_tune=True)
        train_scores = image_scores(detector, train_x)
        value, rule = choose_threshold(train_scores, settings["threshold"])
        scores = train_scores if same else image_scores(detector, x)
        pca_sets, k, solver = pca_scores(train_x, [train_x] if same else [train_x, x],
                                         detector.latent_dim)
        pca_train, pca_test = pca_sets[0], pca_sets[-1]
        pca_value, pca_rule = choose_threshold(pca_train, settings["threshold"])
        flagged, pca_flagged = scores > value, pca_test > pca_value
        metrics = {
            "use": "anomaly", "model": ref.info(), "labels": False,
            "dataset": train_in.description.get("dataset"), "inputs": test_in.description,
            "training": training, "score": SCORE, "threshold": rule,
            "scored": ("the training images themselves (the dataset has no test split)"
                       if same else f"{len(x)} test images"),
            "test": {"images": int(len(x)), "flagged": int(flagged.sum()),
                     "flagged_fraction": float(flagged.mean())},
            "most_anomalous": [_who(test_in, int(i), scores) for i in np.argsort(-scores)[:10]],
            "pca_baseline": {"components": k, "solver": solver, "threshold": pca_rule,
                             "flagged": int(pca_flagged.sum()),
                             "flagged_by_both": int((flagged & pca_flagged).sum()),
                             "rank_correlation_with_autoencoder": rank_correlation(scores,
                                                                                   pca_test)},
        }
        skip(metrics, "ROC-AUC, precision and recall", reason)
        if output.enabled:
            if export:
                metrics["export"] = export_detector(detector, output, metrics, x)
            _plot(output, test_in, scores, pca_test, value, pca_value, metrics, ref, k)
            write_scores(output.path("scores.csv"), test_in, scores, value, pca_test)
            output.json("anomaly.json", metrics)
        files = output.commit()
    result = Result("anomaly", metrics, {"scores": scores, "flagged": flagged,
                                         "train_scores": train_scores, "pca_scores": pca_test},
                    files)
    result.model = detector
    return result


def _who(inputs, i, scores):
    return {"index": i, "file": None if inputs.names is None else inputs.names[i],
            "score": float(scores[i])}


def _name(inputs, i):
    return inputs.names[i] if inputs.names is not None else f"#{i}"


def _plot(output, inputs, scores, pca, value, pca_value, metrics, ref, k):
    flagged = metrics["test"]["flagged"]
    _plots.score_histogram(
        output.path("anomaly.png"), scores, value,
        baseline=(pca, pca_value, f"PCA-{k} reconstruction MSE"),
        title=(f"Anomaly scores without labels (model {ref.name}): {flagged} of "
               f"{len(scores)} images above the threshold; rank correlation with PCA "
               f"{metrics['pca_baseline']['rank_correlation_with_autoencoder']:.3f}"),
    )
    order = np.argsort(-scores)
    n = min(10, len(scores))
    picks = [order[:n], order[::-1][:n]]
    cells = [[f"{_name(inputs, int(i))[-14:]}\n{scores[i]:.4f}" for i in idx] for idx in picks]
    _plots.image_rows(
        output.path("anomaly_examples.png"), [inputs.images[idx] for idx in picks],
        title=f"Highest and lowest anomaly scores (threshold {value:.4f}; titles: image, score)",
        row_labels=["highest scores", "lowest scores"], cell_labels=cells,
    )
