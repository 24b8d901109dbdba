"""reduce: codes as a dimensionality reduction, against PCA at the same size."""

import numpy as np

from kerasae import plots as _plots
from kerasae._util.errors import InvalidValue
from kerasae.metrics import mse_per_image, psnr
from kerasae.models import predict
from kerasae.models.resolve import resolve_model
from kerasae.uses import _pca
from kerasae.uses.inputs import (StreamedImages, blocks, check_applies, check_images,
                                 load_inputs, model_for_images, shuffled_batches)
from kerasae.uses.options import EMBEDDINGS
from kerasae.uses.result import Output, Result, skip


RECON_KEPT = 256  # low-code reconstructions returned for images streamed from files


def knn_accuracy(points, labels, seed=0, k=5):
    """5-nearest-neighbour accuracy on a stratified 25% hold-out of 2-D points."""
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier

    train, test = train_test_split(np.arange(len(labels)), test_size=0.25,
                                   random_state=seed, stratify=labels)
    clf = KNeighborsClassifier(n_neighbors=k).fit(points[train], labels[train])
    return float(np.mean(clf.predict(points[test]) == labels[test]))


def train_bottleneck(model, fit_x, dims, *, epochs=2, batch_size=None, hidden=128, seed=0,
                     verbose=0):
    """Trains a `dims`-D bottleneck between a frozen encoder and decoder.

    `code -> Dense(hidden, relu) -> Dense(dims) -> Dense(hidden, relu) -> code`
    is trained so that `decoder(...)` reconstructs the image (MSE), with the
    model's own weights frozen. The result is a deeper autoencoder with a
    `dims`-D code, made from any pretrained one in a few epochs.

    Returns:
        `(to_low, from_low, history)`: Keras models `code -> low` and
        `low -> image`, and the loss per epoch.
    """
    import keras

    codes = predict.encode(model, fit_x)
    if batch_size is None:  # 128, fewer for large images (`predict.batch_for`)
        batch_size = min(128, predict.batch_for(model.decoder, codes))
    code_shape = tuple(codes.shape[1:])
    d = int(np.prod(code_shape))
    keras.utils.set_random_seed(seed)
    z_in = keras.Input((d,), name="code")
    low = keras.layers.Dense(dims, name="low")(
        keras.layers.Dense(hidden, activation="relu", name="down")(z_in))
    to_low = keras.Model(z_in, low, name="to_low")
    low_in = keras.Input((dims,), name="low")
    back = keras.layers.Dense(d, name="back")(
        keras.layers.Dense(hidden, activation="relu", name="up")(low_in))
    if len(code_shape) > 1:
        back = keras.layers.Reshape(code_shape)(back)
    was_trainable = model.decoder.trainable
    model.decoder.trainable = False  # restored below: the caller's model is not changed
    try:
        from_low = keras.Model(low_in, model.decoder(back), name="from_low")
        full = keras.Model(z_in, from_low(to_low(z_in)))
        full.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        flat = codes.reshape(len(codes), -1)
        if isinstance(fit_x, StreamedImages):  # read a batch at a time, in a new order
            pairs = shuffled_batches(int(batch_size), seed, flat, fit_x)
            fit = full.fit(pairs, epochs=int(epochs), verbose=verbose)
        else:
            fit = full.fit(flat, fit_x, epochs=int(epochs), batch_size=int(batch_size),
                           shuffle=True, verbose=verbose)
    finally:
        model.decoder.trainable = was_trainable
    return to_low, from_low, [float(v) for v in fit.history["loss"]]


def _reconstruction_mse(decoder, codes, x):
    """Per-image MSE of `decoder(codes)` against `x`, a block at a time, and the first
    reconstructions (all of them when `x` is an array in memory)."""
    errors, kept = [], []
    keep = len(x) if isinstance(x, np.ndarray) else RECON_KEPT
    for first, images in blocks(x, _pca.BLOCK):  # float64 errors: 25 MB a block
        recon = np.asarray(predict.run_batched(decoder, codes[first:first + len(images)]),
                           dtype="float32")
        errors.append(mse_per_image(images, recon))
        if first < keep:
            kept.append(recon[:keep - first])
    return np.concatenate(errors), np.concatenate(kept)


def reduce(model, images=None, labels=None, *, dataset="fashion_mnist", split="auto",
           limit=None, resize="crop", skip_bad=False, max_pixels=None,
           dims=2, embedding="bottleneck", bottleneck_epochs=2, pca_fit="auto",
           fit_split="train", out=None, seed=0, max_components=None):
    """Codes as reduced dimensions: MSE against PCA at the same size, and a 2-D picture.

    Two sizes are measured. The model's own code (`d` dimensions): its
    reconstruction MSE against PCA keeping `d` components, and the whole PCA
    curve. And a `dims`-D code (default 2-D): the model's code if it is that
    small, else (`embedding="bottleneck"`) a small MLP bottleneck trained
    through the frozen encoder and decoder (`train_bottleneck`), so the 2-D
    codes are real autoencoder codes with a reconstruction MSE to set against
    PCA with `dims` components. `embedding="pca"` / `"tsne"` instead only
    project the `d`-D codes for the picture (no MSE). PCA and the bottleneck
    are fitted on `fit_split` of the dataset when the images come from a named
    dataset, else on the images themselves (in-sample, which favours PCA).

    The scatter shows the `dims`-D codes (first two) beside PCA-2 of the pixels,
    coloured by class; with labels a 5-NN accuracy in each view says how well
    the classes separate.

    Args:
        model: an `Autoencoder`, a `.keras` path or a zoo preset name.
        images, labels, dataset, split, limit, resize, skip_bad, max_pixels:
            what to reduce (see `features`).
        dims: size of the low-dimensional code. Defaults to `2`.
        embedding: `"bottleneck"`, `"pca"` or `"tsne"`. Defaults to `"bottleneck"`.
        bottleneck_epochs: training epochs of the bottleneck. Defaults to `2`.
        pca_fit: `"auto"`, `"same"` (the images), or an array of images.
            Defaults to `"auto"`.
        fit_split: split PCA and the bottleneck are fitted on for `"auto"`.
            Defaults to `"train"`.
        out: directory for `codes.npy`, `codes_2d.npy`, `reduce.json`,
            `reduce_scatter.png`, `reduce_mse.png`. Defaults to `None`.
        seed: seed of the bottleneck, t-SNE and the k-NN split. Defaults to `0`.
        max_components: longest PCA curve. Defaults to all pixels (at most the number
            of images PCA is fitted on; see `kerasae.uses._pca` for the two solvers).

    Returns:
        A `Result` with arrays `codes`, `codes_2d` (the `dims`-D codes),
        `pixels_2d` and, with a bottleneck, `reconstruction_low` (of every image given
        as an array; of the first 256 of images read from files or a dataset, which are
        streamed a block at a time so that memory does not grow with their number).
    """
    if embedding not in EMBEDDINGS:
        raise InvalidValue(
            f"embedding must be one of {', '.join(EMBEDDINGS)}. Received: embedding={embedding!r}"
        )
    if isinstance(dims, bool) or not isinstance(dims, (int, np.integer)) or dims < 1:
        raise InvalidValue(f"dims must be a positive integer. Received: dims={dims!r}")
    ref = resolve_model(model)
    check_applies("reduce", ref.model)
    inputs = load_inputs(images, labels, dataset=dataset, split=split, limit=limit,
                         shape=ref.model.image_shape, resize=resize,
                         skip_bad=skip_bad, max_pixels=max_pixels, stream=True)
    model_for_images(ref, inputs.images)
    fit_x, fit_note = _fit_images(pca_fit, inputs, fit_split, ref.model)
    with Output(out) as output:
        x = inputs.images
        codes = predict.encode(ref.model, x)
        flat = codes.reshape(len(codes), -1)
        d, pixels = flat.shape[1], int(np.prod(x.shape[1:]))
        ae_mse, _ = _reconstruction_mse(ref.model.decoder, codes, x)
        kmax = int(max_components or pixels)
        kmax = max(kmax, min(d, pixels), dims, 2)
        pca = _pca.fit_pca(fit_x, kmax)
        curve = _pca.mse_curve(pca, x)
        fit_note += f"; PCA by the {pca.solver}"
        k_same = min(d, len(curve))
        k_low = min(dims, len(curve))
        table = [
            {"method": "autoencoder", "dims": d, "mse": float(ae_mse.mean()),
             "psnr_db": psnr(float(ae_mse.mean()))},
            {"method": "pca", "dims": k_same, "mse": float(curve[k_same - 1]),
             "psnr_db": _pca.psnr_at(pca, x, k_same)},
        ]
        low, how, bottleneck = _low_codes(ref.model, flat, x, fit_x, dims, embedding,
                                          bottleneck_epochs, seed, fit_note)
        arrays = {"codes": codes, "codes_2d": low}
        if bottleneck is not None:
            arrays["reconstruction_low"] = bottleneck.pop("reconstruction")
            table.append({"method": "autoencoder + bottleneck", "dims": dims,
                          "mse": bottleneck.pop("mse"), "psnr_db": bottleneck.pop("psnr_db")})
        elif d == dims:
            table.append(dict(table[0], method="autoencoder"))
        table.append({"method": "pca", "dims": k_low, "mse": float(curve[k_low - 1]),
                      "psnr_db": _pca.psnr_at(pca, x, k_low)})
        # Components PCA needs to match the autoencoder's MSE (None: not within kmax).
        match = np.nonzero(curve <= ae_mse.mean())[0]
        pixels_2d = _pca.transform(pca, x, 2)
        view = low if low.shape[1] >= 2 else np.pad(low, ((0, 0), (0, 2 - low.shape[1])))
        metrics = {
            "use": "reduce", "model": ref.info(), "inputs": inputs.description,
            "count": len(x), "code_dims": d, "low_dims": dims, "pca_fit": fit_note,
            "table": table,
            "ae_mse_over_pca_mse": float(ae_mse.mean() / curve[k_same - 1]),
            "pca_components_to_match_ae": int(match[0] + 1) if len(match) else None,
            "low_codes": how, "bottleneck": bottleneck,
            "pca_mse_curve": [float(v) for v in curve],
        }
        blocker = _knn_blocker(inputs)
        if blocker is None:
            metrics["knn5_accuracy_2d"] = {
                "codes": knn_accuracy(view[:, :2], inputs.labels[:len(view)], seed),
                "pca_pixels": knn_accuracy(pixels_2d, inputs.labels, seed),
            }
        else:
            skip(metrics, "5-NN accuracy of the 2-D views (and colours by class)", blocker)
        if output.enabled:
            output.npy("codes.npy", codes)
            output.npy("codes_2d.npy", low)
            _plot_scatter(output.path("reduce_scatter.png"), view, pixels_2d, inputs,
                          how, ref, metrics)
            _plot_curve(output.path("reduce_mse.png"), curve, table, ref, fit_note)
            output.json("reduce.json", metrics)
        files = output.commit()
    arrays["pixels_2d"] = pixels_2d
    return Result("reduce", metrics, arrays, files)


def _knn_blocker(inputs):
    """Why the 5-NN accuracy of the 2-D views cannot be measured, or `None`."""
    if inputs.labels is None:
        return "the images have no labels (class folders or a labelled dataset have them)"
    counts = np.bincount(inputs.labels)
    counts = counts[counts > 0]
    if len(counts) < 2 or counts.min() < 4 or len(inputs) < 40:
        return "it needs two or more classes, at least 4 images of each and 40 in all"
    return None


def _low_codes(model, flat, x, fit_x, dims, embedding, epochs, seed, fit_note):
    d = flat.shape[1]
    if d <= dims:
        return flat.astype("float32"), f"the {d}-D codes themselves", None
    if embedding == "bottleneck":
        to_low, from_low, history = train_bottleneck(model, fit_x, dims, epochs=epochs,
                                                     seed=seed)
        low = np.asarray(predict.run_batched(to_low, flat), dtype="float32")
        errors, recon = _reconstruction_mse(from_low, low, x)
        info = {"architecture": f"code({d}) -> 128 relu -> {dims} -> 128 relu -> code, "
                                "encoder and decoder frozen",
                "trained_on": fit_note.split("; PCA by")[0], "epochs": int(epochs),
                "loss": history, "mse": float(np.mean(errors)),
                "reconstructions_returned": (
                    "all" if len(recon) == len(x) else
                    f"the first {len(recon)} of {len(x)} (the images were streamed from "
                    "files; the MSE is over all of them)"),
                "psnr_db": psnr(float(np.mean(errors))), "reconstruction": recon}
        return low, f"{dims}-D bottleneck trained on the {d}-D codes", info
    if embedding == "tsne":
        from sklearn.manifold import TSNE

        n = min(len(flat), 3000)
        z = TSNE(n_components=min(dims, 3), random_state=seed, init="pca").fit_transform(flat[:n])
        return z.astype("float32"), f"t-SNE of the {d}-D codes ({n} images)", None
    from sklearn.decomposition import PCA

    k = min(dims, len(flat), d)
    z = PCA(n_components=k, svd_solver="auto", random_state=0).fit_transform(flat)
    return z.astype("float32"), f"PCA of the {d}-D codes, {k} components", None


def _fit_images(pca_fit, inputs, fit_split, model):
    if isinstance(pca_fit, np.ndarray):
        fit = load_inputs(pca_fit).images
        check_images(model, fit, "PCA fitting images")
        return fit, f"given array of {len(fit)} images"
    if pca_fit == "same" or (pca_fit == "auto" and "dataset" not in inputs.description):
        return inputs.images, "the same images (in-sample, favours PCA)"
    if pca_fit == "auto":
        if inputs.description.get("split") == "all":
            return inputs.images, "the same images (in-sample, favours PCA)"
        name = inputs.description["dataset"]
        fit = load_inputs(None, dataset=name, split=fit_split, shape=model.image_shape,
                          resize=inputs.description.get("resize", "crop"), stream=True).images
        check_images(model, fit, "PCA fitting images")
        return fit, f"{name} {fit_split} split ({len(fit)} images)"
    raise InvalidValue(
        "pca_fit must be 'auto', 'same' or an array of images. "
        f"Received: pca_fit={pca_fit!r}"
    )


def _plot_scatter(path, codes_2d, pixels_2d, inputs, how, ref, metrics):
    labels = inputs.labels
    knn = metrics.get("knn5_accuracy_2d")
    note_c = f"\n5-NN accuracy {knn['codes']:.3f}" if knn else ""
    note_p = f"\n5-NN accuracy {knn['pca_pixels']:.3f}" if knn else ""
    low = metrics["low_dims"]
    rows = [r for r in metrics["table"] if r["dims"] == low]
    ae_rows = [r for r in rows if r["method"].startswith("autoencoder")]
    pca_rows = [r for r in rows if r["method"] == "pca"]
    if ae_rows:
        note_c += f", reconstruction MSE {ae_rows[0]['mse']:.4f}"
    if pca_rows and low == 2:
        note_p += f", reconstruction MSE {pca_rows[0]['mse']:.4f}"
    n = len(codes_2d)
    panels = [
        (pixels_2d[:n], f"PCA of raw pixels{note_p}", "principal component 1",
         "principal component 2"),
        (codes_2d, f"autoencoder: {how}{note_c}", "dimension 1", "dimension 2"),
    ]
    how_coloured = "coloured by class" if labels is not None else "(no labels: one colour)"
    return _plots.scatter_panels(
        path, panels, None if labels is None else labels[:n], inputs.label_names,
        title=f"2-D views of {n} images {how_coloured} (model {ref.name})",
    )


def _plot_curve(path, curve, table, ref, fit_note):
    ae_rows = [r for r in table if r["method"].startswith("autoencoder")]
    # The full curve falls to ~0 at 784 components; the interesting part is near the codes.
    shown = min(len(curve), max(256, 4 * max(r["dims"] for r in ae_rows)))
    ks = np.arange(1, shown + 1)
    points = [(r["dims"], r["mse"], f"{r['method']} {ref.name} ({r['dims']}-D code)")
              for r in ae_rows]
    notes = []
    for r in ae_rows:
        k = min(r["dims"], len(curve))
        notes += [(r["dims"], r["mse"], f"AE {r['mse']:.4f}", (8, -12)),
                  (k, curve[k - 1], f"PCA {curve[k - 1]:.4f}", (4, 8))]
    return _plots.curves(
        path, [(ks, curve[:shown], f"PCA (fitted on {fit_note})")], points=points, notes=notes,
        logx=True, logy=True,
        xlabel="code size: PCA components / latent dimensions (log scale)",
        ylabel="reconstruction MSE per pixel (log scale)",
        title="Reconstruction error: autoencoder vs PCA at the same size",
    )
