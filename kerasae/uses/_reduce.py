"""reduce: codes as a dimensionality reduction, against PCA at the same size."""

import numpy as np

from kerasae.uses import _common, _plots

EMBEDDINGS = ("pca", "tsne")


def pca_mse_curve(fit_x, x, max_components, seed=0):
    """Reconstruction MSE of `x` by PCA fitted on `fit_x`, for 1..max_components.

    Unclipped linear reconstructions, MSE averaged over pixels and images. Uses
    `||x - mu||^2 - sum_j (v_j . (x - mu))^2` per image, which is exact for the
    orthonormal components `v_j`.
    """
    from sklearn.decomposition import PCA

    fit_x = fit_x.reshape(len(fit_x), -1).astype("float64")
    x = x.reshape(len(x), -1).astype("float64")
    k = int(min(max_components, fit_x.shape[1], len(fit_x)))
    pca = PCA(n_components=k, svd_solver="auto", random_state=0).fit(fit_x)
    centred = x - pca.mean_
    proj = centred @ pca.components_.T
    total = (centred ** 2).sum(axis=1)
    residual = total[:, None] - np.cumsum(proj ** 2, axis=1)
    mse = np.maximum(residual, 0).mean(axis=0) / x.shape[1]
    return pca, mse


def knn_accuracy(points, labels, seed=0, k=5):
    """5-nearest-neighbour accuracy on a stratified 25% hold-out of 2-D points."""
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier

    train, test = train_test_split(np.arange(len(labels)), test_size=0.25,
                                   random_state=seed, stratify=labels)
    clf = KNeighborsClassifier(n_neighbors=k).fit(points[train], labels[train])
    return float(np.mean(clf.predict(points[test]) == labels[test]))


def reduce(model, images=None, labels=None, *, dataset="fashion_mnist", split="test",
           limit=None, pca_fit="auto", fit_split="train", embedding="pca", out=None,
           seed=0, max_components=None):
    """Codes as reduced dimensions: MSE against PCA, and a 2-D picture by class.

    The reconstruction MSE of the autoencoder (code size `d`) is compared with
    PCA keeping `d` components (and the whole PCA curve 1..`max_components`).
    PCA is fitted on `fit_split` of the dataset (the data the autoencoder was
    trained on) when the images come from a named dataset, else on the images
    themselves (in-sample, which favours PCA).

    The 2-D view is the codes themselves for a 2-D code, else the first two
    principal components of the codes (`embedding="pca"`) or t-SNE of the codes
    (`"tsne"`, on at most 3000 images), beside PCA-2 of the pixels. With labels,
    a 5-NN accuracy in each 2-D view says how well classes separate.

    Args:
        model: an `Autoencoder`, a `.keras` path or a zoo preset name.
        images, labels, dataset, split, limit: what to reduce (see `features`).
        pca_fit: `"auto"`, `"same"` (the images), or an array of images.
            Defaults to `"auto"`.
        fit_split: split PCA is fitted on for `"auto"`. Defaults to `"train"`.
        embedding: `"pca"` or `"tsne"`. Defaults to `"pca"`.
        out: directory for `codes.npy`, `codes_2d.npy`, `reduce.json`,
            `reduce_scatter.png`, `reduce_mse.png`. Defaults to `None`.
        seed: seed of PCA, t-SNE and the k-NN split. Defaults to `0`.
        max_components: longest PCA curve. Defaults to all pixels.

    Returns:
        A `Result` with arrays `codes`, `codes_2d`, `pixels_2d`.
    """
    if embedding not in EMBEDDINGS:
        raise ValueError(
            f"embedding must be one of {', '.join(EMBEDDINGS)}. Received: embedding={embedding!r}"
        )
    ref = _common.resolve_model(model)
    inputs = _common.load_inputs(images, labels, dataset=dataset, split=split, limit=limit)
    _common.check_images(ref.model, inputs.images)
    fit_x, fit_note = _fit_images(pca_fit, inputs, fit_split, ref.model)
    with _common.Output(out) as output:
        x = inputs.images
        codes = _common.encode(ref.model, x)
        recon = _common.decode(ref.model, codes)
        flat = codes.reshape(len(codes), -1)
        d = flat.shape[1]
        ae_mse = _common.mse_per_image(x, recon)
        kmax = int(max_components or x[0].size)
        kmax = max(kmax, min(d, x[0].size), 2)
        pca, curve = pca_mse_curve(fit_x, x, kmax, seed)
        k_same = min(d, len(curve))
        table = [
            {"method": "autoencoder", "dims": d, "mse": float(ae_mse.mean()),
             "psnr_db": _common.psnr(x, recon)},
            {"method": "pca", "dims": k_same, "mse": float(curve[k_same - 1]),
             "psnr_db": _pca_psnr(pca, x, k_same)},
            {"method": "pca", "dims": 2, "mse": float(curve[1]),
             "psnr_db": _pca_psnr(pca, x, 2)},
        ]
        # Components PCA needs to match the autoencoder's MSE (None: not within kmax).
        match = np.nonzero(curve <= ae_mse.mean())[0]
        codes_2d, how = _two_d(flat, embedding, seed)
        pixels_2d = pca.transform(x.reshape(len(x), -1).astype("float64"))[:, :2]
        metrics = {
            "use": "reduce", "model": ref.info(), "inputs": inputs.description,
            "count": len(x), "code_dims": d, "pca_fit": fit_note,
            "table": table,
            "ae_mse_over_pca_mse": float(ae_mse.mean() / curve[k_same - 1]),
            "pca_components_to_match_ae": int(match[0] + 1) if len(match) else None,
            "pca_mse_curve": [float(v) for v in curve],
            "two_d": {"codes": how, "pixels": "PCA of the pixels, 2 components"},
        }
        if inputs.labels is not None and len(np.unique(inputs.labels)) > 1 and len(x) >= 40:
            metrics["knn5_accuracy_2d"] = {
                "codes": knn_accuracy(codes_2d, inputs.labels[:len(codes_2d)], seed),
                "pca_pixels": knn_accuracy(pixels_2d, inputs.labels, seed),
            }
        if output.enabled:
            output.npy("codes.npy", codes)
            output.npy("codes_2d.npy", codes_2d)
            _plot_scatter(output.path("reduce_scatter.png"), codes_2d, pixels_2d, inputs,
                          how, ref, metrics)
            _plot_curve(output.path("reduce_mse.png"), curve, table[0], ref, fit_note)
            output.json("reduce.json", metrics)
        files = output.commit()
    return _common.Result("reduce", metrics, {"codes": codes, "codes_2d": codes_2d,
                                              "pixels_2d": pixels_2d}, files)


def _pca_psnr(pca, x, k):
    flat = x.reshape(len(x), -1).astype("float64")
    comps = pca.components_[:k]
    recon = (flat - pca.mean_) @ comps.T @ comps + pca.mean_
    return _common.psnr(flat.reshape(x.shape), recon.reshape(x.shape))


def _fit_images(pca_fit, inputs, fit_split, model):
    if isinstance(pca_fit, np.ndarray):
        fit = _common.load_inputs(pca_fit).images
        _common.check_images(model, fit, "PCA fitting images")
        return fit, f"given array of {len(fit)} images"
    if pca_fit == "same" or (pca_fit == "auto" and "dataset" not in inputs.description):
        return inputs.images, "the same images (in-sample, favours PCA)"
    if pca_fit == "auto":
        if inputs.description.get("split") == "all":
            return inputs.images, "the same images (in-sample, favours PCA)"
        name = inputs.description["dataset"]
        fit = _common.load_inputs(None, dataset=name, split=fit_split).images
        _common.check_images(model, fit, "PCA fitting images")
        return fit, f"{name} {fit_split} split ({len(fit)} images)"
    raise ValueError(
        "pca_fit must be 'auto', 'same' or an array of images. "
        f"Received: pca_fit={pca_fit!r}"
    )


def _two_d(flat, embedding, seed):
    if flat.shape[1] == 2:
        return flat.astype("float32"), "the 2-D codes themselves"
    if embedding == "tsne":
        from sklearn.manifold import TSNE

        n = min(len(flat), 3000)
        z = TSNE(n_components=2, random_state=seed, init="pca").fit_transform(flat[:n])
        return z.astype("float32"), f"t-SNE of the {flat.shape[1]}-D codes ({n} images)"
    from sklearn.decomposition import PCA

    k = min(2, len(flat), flat.shape[1])
    z = PCA(n_components=k, svd_solver="auto", random_state=0).fit_transform(flat)
    if k < 2:  # a 1-D code: plot it against zeros
        z = np.pad(z, ((0, 0), (0, 2 - k)))
    return z.astype("float32"), f"PCA of the {flat.shape[1]}-D codes, 2 components"


def _plot_scatter(path, codes_2d, pixels_2d, inputs, how, ref, metrics):
    labels = inputs.labels
    knn = metrics.get("knn5_accuracy_2d")
    note_c = f"\n5-NN accuracy {knn['codes']:.3f}" if knn else ""
    note_p = f"\n5-NN accuracy {knn['pca_pixels']:.3f}" if knn else ""
    n = len(codes_2d)
    panels = [
        (pixels_2d[:n], f"PCA of raw pixels{note_p}", "principal component 1",
         "principal component 2"),
        (codes_2d, f"autoencoder: {how}{note_c}", "dimension 1", "dimension 2"),
    ]
    return _plots.scatter_panels(
        path, panels, None if labels is None else labels[:n], inputs.label_names,
        title=f"2-D views of {n} images coloured by class (model {ref.name})",
    )


def _plot_curve(path, curve, ae_row, ref, fit_note):
    ks = np.arange(1, len(curve) + 1)
    return _plots.curves(
        path, [(ks, curve, f"PCA (fitted on {fit_note})")],
        points=[(ae_row["dims"], ae_row["mse"],
                 f"autoencoder {ref.name} ({ae_row['dims']}-D code)")],
        notes=[(ae_row["dims"], ae_row["mse"], f"AE MSE {ae_row['mse']:.4f}"),
               (min(ae_row["dims"], len(curve)), curve[min(ae_row["dims"], len(curve)) - 1],
                f"PCA MSE {curve[min(ae_row['dims'], len(curve)) - 1]:.4f}")],
        logx=True, logy=True,
        xlabel="code size: PCA components / latent dimensions (log scale)",
        ylabel="reconstruction MSE per pixel (log scale)",
        title="Reconstruction error: autoencoder vs PCA at the same size",
    )
