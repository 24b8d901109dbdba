"""features: images -> codes (`.npy`), scored by a linear probe against pixels and PCA."""

import time

import numpy as np

from kerasae import plots as _plots
from kerasae.models import predict
from kerasae.models.resolve import resolve_model
from kerasae.uses import _pca
from kerasae.uses.inputs import check_applies, load_inputs, model_for_images
from kerasae.uses.result import Output, Result, skip

PROBE_CS = (0.01, 0.1, 1.0)
# The probes are trained on at most this many pixel values (images x pixels; 96 MB of
# float64): all of Fashion-MNIST's test split's training part, 976 colour images of 64x64.
# Beyond it, on training images spread evenly over the part, the same ones for every
# representation, so memory stays flat as the number of images grows.
PROBE_TRAIN_VALUES = 12_000_000


def _fit_logistic(x, y, c, max_iter, seed, standardise=True):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(*([StandardScaler()] if standardise else []),
                        LogisticRegression(C=c, max_iter=max_iter, random_state=seed))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(x, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return clf, converged


def linear_probe(train_x, train_y, test_x, test_y, *, cs=PROBE_CS, max_iter=500, seed=0,
                 standardise=True):
    """Accuracy of a standardised multinomial logistic regression (lbfgs).

    The inverse regularisation `C` is chosen from `cs` on a stratified 20% of
    the training part, then the probe is refitted on all of it, so every
    representation gets its own best regularisation.

    `test_x` may be anything sliced into rows (it is predicted 1,000 rows at a time).
    `standardise=False` leaves out the scaler (for rows already standardised).
    Returns a dict with `accuracy`, `C`, `validation` (accuracy per C),
    `dims`, `seconds` and whether lbfgs `converged`.
    """
    from sklearn.model_selection import train_test_split

    start = time.perf_counter()
    validation = {}
    if len(cs) > 1:
        fit_i, val_i = train_test_split(np.arange(len(train_y)), test_size=0.2,
                                        random_state=seed, stratify=train_y)
        for c in cs:
            clf, _ = _fit_logistic(train_x[fit_i], train_y[fit_i], c, max_iter, seed,
                                   standardise)
            validation[str(c)] = float(np.mean(clf.predict(train_x[val_i]) == train_y[val_i]))
        best = max(cs, key=lambda c: validation[str(c)])
    else:
        best = cs[0]
    clf, converged = _fit_logistic(train_x, train_y, best, max_iter, seed, standardise)
    predicted = np.concatenate([clf.predict(np.asarray(test_x[i:i + 1000]))
                                for i in range(0, len(test_x), 1000)])
    return {"accuracy": float(np.mean(predicted == test_y)), "C": best,
            "validation": validation, "dims": int(train_x.shape[1]),
            "converged": converged, "seconds": round(time.perf_counter() - start, 2)}


def features(model, images=None, labels=None, *, dataset="fashion_mnist", split="auto",
             limit=None, resize="crop", skip_bad=False, max_pixels=None,
             out=None, probe=True, probe_test_fraction=0.25, probe_cs=PROBE_CS,
             seed=0, max_iter=500):
    """Encodes images to codes and scores them with a linear probe.

    The probe is a logistic regression (its `C` picked per representation on
    a validation part) trained on a stratified `1 - probe_test_fraction` of the
    labelled images and scored on the rest. The
    same probe is run on the raw pixels and on PCA (fitted on the probe's
    training part) with as many components as the code has dimensions, the
    obvious non-autoencoder features.

    Args:
        model: an `Autoencoder`, a `.keras` path or a zoo preset name.
        images: images (array, `Source`, or image files/directories); `None`
            uses `dataset`/`split`. Defaults to `None`.
        labels: labels for an array of images. Defaults to `None`.
        dataset: a dataset name, an image folder or a `.npz`/`.npy` file, used
            when `images` is `None`. Defaults to `"fashion_mnist"`.
        split: split of `dataset`; `"auto"` is its test split where it has one,
            else all of it. Defaults to `"auto"`.
        limit: use the first `limit` images (only those are read). Defaults to all.
        resize: how image files and folders are sized to the model's input
            (they are also converted to its channels): `"crop"`, `"pad"` or
            `"stretch"`. Defaults to `"crop"`.
        skip_bad: leave out image files that cannot be read (counted), instead of
            failing. Defaults to `False`.
        max_pixels: the largest image decoded (the decompression-bomb guard).
            Defaults to `$KERASAE_MAX_PIXELS`, else 100 megapixels.
        out: directory for `codes.npy`, `features.json` and `features.png`;
            `None` writes nothing. Defaults to `None`.
        probe: run the linear probe when labels exist. Defaults to `True`.
        probe_test_fraction: held-out fraction for the probe. Defaults to `0.25`.
        probe_cs: inverse regularisations tried (picked on a validation part).
            Defaults to `(0.01, 0.1, 1.0)`.
        seed: split and solver seed. Defaults to `0`.
        max_iter: lbfgs iterations. Defaults to `500`.

    Returns:
        A `Result`; `result.arrays["codes"]` has shape `(n,) + model.code_shape`
        (VAE: `z_mean`).

    Example:
        >>> r = kerasae.uses.features("conv_ae_fashion_mnist", out="runs/features")
        >>> r["probe"]["codes"]["accuracy"], r["probe"]["pixels"]["accuracy"]
    """
    ref = resolve_model(model)
    check_applies("features", ref.model)
    inputs = load_inputs(images, labels, dataset=dataset, split=split, limit=limit,
                         shape=ref.model.image_shape, resize=resize,
                         skip_bad=skip_bad, max_pixels=max_pixels, stream=True)
    model_for_images(ref, inputs.images)
    with Output(out) as output:
        codes = predict.encode(ref.model, inputs.images)
        metrics = {"use": "features", "model": ref.info(), "inputs": inputs.description,
                   "count": len(inputs), "code_shape": list(codes.shape[1:]),
                   "files": inputs.names}
        blocker = "not asked for (--no-probe)" if not probe else _probe_blocker(inputs)
        if blocker is None:
            metrics["probe"] = _probe(codes, inputs, probe_test_fraction, tuple(probe_cs),
                                      seed, max_iter)
        else:
            metrics["probe"] = None
            metrics["probe_skipped"] = blocker
            skip(metrics, "linear probe (features.png)", blocker)
        if output.enabled:
            output.npy("codes.npy", codes)
            if metrics["probe"] is not None:
                _plot(output.path("features.png"), metrics, ref)
            output.json("features.json", metrics)
        files = output.commit()
    return Result("features", metrics, {"codes": codes}, files)


def _probe_blocker(inputs):
    """Why the linear probe cannot run on `inputs`, or `None`."""
    if inputs.labels is None:
        return "the images have no labels (class folders or a labelled dataset have them)"
    counts = np.bincount(inputs.labels)
    counts = counts[counts > 0]
    if len(counts) < 2:
        return "the images hold one class; a probe needs two or more"
    if counts.min() < 4:
        return (f"a class has {int(counts.min())} image(s); the probe's stratified "
                "splits need at least 4 of each")
    return None


class _Pixels:
    """Rows of flattened pixels of `images` at `index`, read when sliced."""

    def __init__(self, images, index):
        self.images, self.index = images, index

    def __len__(self):
        return len(self.index)

    def __getitem__(self, key):
        x = np.asarray(self.images[self.index[key]], dtype="float32")
        return x.reshape(len(x), -1)


class _Projected:
    """Rows standardised by `mean` and `scale`, then projected on `basis` (k, d)."""

    def __init__(self, rows, mean, scale, basis):
        self.rows, self.mean, self.scale, self.basis = rows, mean, scale, basis

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, key):
        return ((np.asarray(self.rows[key], "float64") - self.mean) / self.scale) @ self.basis.T


def _pixel_probe_rows(train_pixels, test_rows):
    """The pixels as the probe sees them: standardised (as `StandardScaler`), and with
    more pixels than training images, projected on the span of the standardised training
    images (`x V`, `V` from their thin SVD). An L2-regularised logistic regression's
    weights lie in that span (`w = V a`, `||w|| = ||a||`), so the probe on the
    projection is the same probe, fitted on as many columns as images: minutes faster on
    64x64 colour images."""
    x = np.asarray(train_pixels, "float64")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    if x.shape[1] <= len(x):
        return train_pixels, test_rows, True
    _, s, vt = np.linalg.svd((x - mean) / scale, full_matrices=False)
    basis = vt[s > s[0] * 1e-10]
    return (_Projected(x, mean, scale, basis)[:], _Projected(test_rows, mean, scale, basis),
            False)


def _train_part(train, y, pixels):
    """The probe's training images within `PROBE_TRAIN_VALUES`: evenly spaced in each
    class (all of them if they fit)."""
    most = max(2, PROBE_TRAIN_VALUES // max(1, pixels))
    if len(train) <= most:
        return train
    share = most / len(train)
    return np.sort(np.concatenate([
        members[_pca.evenly_spaced(len(members), max(2, int(round(share * len(members)))))]
        for members in (train[y[train] == c] for c in np.unique(y[train]))]))


def _probe(codes, inputs, test_fraction, cs, seed, max_iter):
    from sklearn.model_selection import train_test_split

    y, x = inputs.labels, inputs.images
    index = np.arange(len(y))
    train, test = train_test_split(index, test_size=test_fraction, random_state=seed,
                                   stratify=y)
    pixels = int(np.prod(x.shape[1:]))
    part = _train_part(train, y, pixels)
    flat_codes = codes.reshape(len(codes), -1)
    train_pixels = _Pixels(x, part)[:]
    dims = flat_codes.shape[1]
    k = min(dims, len(part), pixels)
    pca = _pca.fit_pca(train_pixels, k)
    pca_train = _pca.transform(pca, train_pixels, k)
    pca_test = _pca.transform(pca, _Pixels(x, test), k)
    used = "" if len(part) == len(train) else (
        f"; trained on {len(part)} of the {len(train)} training images, spread evenly "
        f"within each class (PROBE_TRAIN_VALUES, 12M values: memory stays flat)")
    result = {
        "protocol": (f"standardised logistic regression (lbfgs; C in {list(cs)} "
                     f"picked on 20% of the training part) on a stratified "
                     f"{1 - test_fraction:.0%} of the images, accuracy on the other "
                     f"{test_fraction:.0%}; PCA fitted on the probe's training part{used}"),
        "train_examples": int(len(part)), "test_examples": int(len(test)),
        "train_subset": used[2:] if used else None,
        "chance": float(np.max(np.bincount(y[test])) / len(test)),
    }
    pixel_train, pixel_test, scaled = _pixel_probe_rows(train_pixels, _Pixels(x, test))
    for name, tr, te, scale in (("codes", flat_codes[part], flat_codes[test], True),
                                ("pca", pca_train, pca_test, True),
                                ("pixels", pixel_train, pixel_test, scaled)):
        result[name] = linear_probe(tr, y[part], te, y[test], cs=cs, max_iter=max_iter,
                                    seed=seed, standardise=scale)
    if not scaled:
        result["pixels"].update(dims=pixels, solved_on=(
            f"the span of the {len(part)} standardised training images "
            f"({pixel_train.shape[1]} columns; the same L2-regularised probe)"))
    result["pca"]["explained_variance"] = float(pca.explained_variance_ratio_.sum())
    result["codes_minus_pca"] = result["codes"]["accuracy"] - result["pca"]["accuracy"]
    result["codes_minus_pixels"] = result["codes"]["accuracy"] - result["pixels"]["accuracy"]
    return result


def _plot(path, metrics, ref):
    p = metrics["probe"]
    names = [f"autoencoder codes\n({p['codes']['dims']} dims)",
             f"PCA\n({p['pca']['dims']} dims)", f"raw pixels\n({p['pixels']['dims']} dims)"]
    values = [p["codes"]["accuracy"], p["pca"]["accuracy"], p["pixels"]["accuracy"]]
    return _plots.bars(
        path, names, values, ylim=(0.0, 1.08),
        hline=(p["chance"], f"majority class ({p['chance']:.3f})"),
        title=(f"Linear probe accuracy on {p['test_examples']} held-out images\n"
               f"model {ref.name} (logistic regression on each representation)"),
        ylabel="test accuracy", annotations=[f"{v:.3f}" for v in values],
    )
