"""generate (VAE): samples, latent interpolation and latent arithmetic, against pixel-space baselines."""

import numpy as np

from kerasae import plots as _plots
from kerasae._util.errors import InvalidType, InvalidValue
from kerasae.models import predict
from kerasae.models.resolve import resolve_model
from kerasae.uses._judge import _Judge, frechet_distance, pca_gaussian_sampler  # noqa: F401
from kerasae.uses._samplers import check_sampler, chosen_sampler, latent_draws, sampler_record
from kerasae.uses.inputs import (check_applies, label_name, load_inputs, model_for_images,
                                 need_labels)
from kerasae.uses.options import DEFAULT_ARITHMETIC, SAMPLED_FROM
from kerasae.uses.result import Output, Result, skip


def require_vae(model):
    if not getattr(model, "variational", False):
        raise InvalidType(
            f"generate needs a variational autoencoder (an encoder that returns z_mean and "
            f"z_log_var), such as one trained with `kerasae train conv_vae` or the preset "
            f"conv_vae_fashion_mnist; "
            f"{model.name!r} "
            f"({getattr(model, 'builder_name', None) or type(model).__name__}) is not one. "
            f"Received: model={model.name!r}"
        )


def _class_id(value, inputs, arg):
    names = [n.lower() for n in inputs.label_names]
    if isinstance(value, str) and not value.isdigit():
        if value.lower() in names:
            return names.index(value.lower())
        raise InvalidValue(
            f"Unknown class {value!r}. Available: {', '.join(inputs.label_names) or 'indices'}. "
            f"Received: {arg}={value!r}"
        )
    k = int(value)
    if inputs.labels is None or k not in set(inputs.labels.tolist()):
        raise InvalidValue(f"No images of class {k} in the inputs. Received: {arg}={value!r}")
    return k


def generate(model, images=None, labels=None, *, dataset="fashion_mnist", split="auto",
             limit=None, resize="crop", skip_bad=False, max_pixels=None,
             grid=8, pairs=4, between=None, steps=9, arithmetic="auto",
             eval_samples=2500, sampler="auto", seed=0, out=None):
    """Samples a VAE, interpolates and does latent arithmetic, with numbers.

    Numbers need labelled images (a dataset): a judge MLP (256 hidden units) is
    trained on one half of the images; the other half is the real reference.

    - samples: Fréchet distance of the judge's hidden features (an FID-like
      number, not FID) of `eval_samples` samples (at most half the real half)
      against real images,
      beside the obvious non-autoencoder generator, a Gaussian in the top-`d`
      PCA subspace of the pixels (`d` = latent size), and real vs real images
      as the floor; plus the judge's mean confidence.
    - interpolation: in-between frames of latent interpolation vs a pixel
      cross-fade: mean squared distance to the nearest real image and judge
      confidence.
    - arithmetic: `a + (b - c)` with class-mean codes (default sneaker +
      (ankle boot - sandal)) on every image of class `a`; the fraction the
      judge calls class `b`, beside the same arithmetic on pixels.

    Args:
        model: a VAE (`Autoencoder` with `variational=True`), a `.keras` path
            or a zoo preset name. Anything else raises `TypeError`.
        images, labels, dataset, split, limit, resize, skip_bad, max_pixels:
            real images (see `features`).
        grid: the sample grid is `grid` x `grid`. Defaults to `8`.
        pairs: random interpolation pairs (of different classes when labelled).
            Defaults to `4`.
        between: indices `(i, j)` of two images to interpolate between, or a
            list of such pairs; replaces the random pairs. With two image
            files, `between=(0, 1)`. Defaults to `None`.
        steps: frames per interpolation, ends included. Defaults to `9`.
        arithmetic: class names or indices `(a, b, c)`, `None`, or `"auto"`:
            sneaker + (ankle boot - sandal) where those classes exist, else the
            first three classes, else (no labels) skipped. Defaults to `"auto"`.
        eval_samples: samples for the Fréchet distance. Defaults to `2500`.
        sampler: where the sampled codes come from: `"prior"` (N(0, I)),
            `"fitted"` (a Gaussian fitted to the codes of the images, as the
            PCA-Gaussian is to their PCA coefficients; see `latent_draws`) or
            `"auto"`: fitted when there are more images than code dimensions, else
            the prior (`Result["sampler"]` says which). Defaults to `"auto"`.
        seed: seed of every draw. Defaults to `0`.
        out: directory for `generate.json`, `generate_samples.png`,
            `generate_interpolation.png`, `generate_arithmetic.png`.

    Returns:
        A `Result` with arrays `samples`, `interpolation`, `arithmetic`.
    """
    check_sampler(sampler)
    ref = resolve_model(model)
    check_applies("generate", ref.model)
    require_vae(ref.model)
    inputs = load_inputs(images, labels, dataset=dataset, split=split, limit=limit,
                         shape=ref.model.image_shape, resize=resize,
                         skip_bad=skip_bad, max_pixels=max_pixels)
    x = inputs.images
    model_for_images(ref, x)
    chosen = _check_args(x, grid, pairs, steps, between)
    skipped = {}
    if isinstance(arithmetic, str) and arithmetic == "auto":
        arithmetic, why = _auto_arithmetic(inputs)
        if why:
            skipped["latent arithmetic (generate_arithmetic.png)"] = why
    if arithmetic is not None:
        need_labels(inputs, "latent arithmetic")
        if len(arithmetic) != 3:
            raise InvalidValue(
                "arithmetic takes three classes (a, b, c) for a + (b - c). "
                f"Received: arithmetic={arithmetic!r}"
            )
        abc = [_class_id(v, inputs, "arithmetic") for v in arithmetic]
    model = ref.model
    rng = np.random.default_rng(seed)
    d = model.latent_dim
    asked, sampler = sampler, chosen_sampler(sampler, len(x), d)
    draw = latent_draws(model, x, sampler)  # before the output: too few images write nothing
    with Output(out) as output:
        samples = predict.decode(model, draw(grid * grid, rng))
        metrics = {"use": "generate", "model": ref.info(), "inputs": inputs.description,
                   "count": len(x), "seed": seed, "latent_dim": d,
                   **sampler_record(asked, sampler, len(x), d)}
        for part, why in skipped.items():
            skip(metrics, part, why)
        judge = half_a = half_b = None
        if inputs.labels is not None and len(np.unique(inputs.labels)) > 1 and len(x) >= 100:
            perm = rng.permutation(len(x))
            half_a, half_b = perm[: len(x) // 2], perm[len(x) // 2:]
            judge = _Judge(x[half_a], inputs.labels[half_a], seed)
            metrics["judge"] = {
                "model": "sklearn MLPClassifier(256 relu hidden units), 40 epochs",
                "trained_on": int(len(half_a)),
                "accuracy_on_real_held_out": judge.accuracy(x[half_b], inputs.labels[half_b])}
            metrics["samples"] = _sample_metrics(model, x, half_b, judge, eval_samples, rng,
                                                 draw)
        else:
            skip(metrics, "Fréchet distances and judge scores",
                 "they need labels of two or more classes and 100 images (a judge classifier "
                 "is trained on them); the pictures are written")
        baseline = pca_gaussian_sampler(x, d)(grid * grid, np.random.default_rng(seed + 1))
        interp, cross, chosen = _interpolate(model, x, inputs, pairs, steps, rng, chosen)
        metrics["interpolation"] = _interp_metrics(interp, cross, x, judge, chosen, inputs)
        arith = None
        if arithmetic is not None:
            arith, metrics["arithmetic"] = _arithmetic(model, x, inputs, abc, judge)
        if output.enabled:
            _plots.image_grid(
                output.path("generate_samples.png"),
                [(samples, f"VAE {ref.name}: decoder(z), z from {SAMPLED_FROM[sampler]}",
                  f"{d}-D latent, seed {seed}"),
                 (baseline, f"baseline: Gaussian in the top-{d} PCA subspace",
                  "pixels = mean + PCA components x N(0, eigenvalues)")],
                nrow=grid, title=f"{grid * grid} random samples each" + _samples_note(metrics))
            _plot_interp(output.path("generate_interpolation.png"), interp, cross, chosen,
                         inputs, metrics, ref)
            if arith is not None:
                _plot_arith(output.path("generate_arithmetic.png"), arith, metrics, ref)
            output.json("generate.json", metrics)
        files = output.commit()
    arrays = {"samples": samples, "baseline_samples": baseline, "interpolation": interp}
    if arith is not None:
        arrays["arithmetic"] = arith["vae"]
    return Result("generate", metrics, arrays, files)


def _check_args(x, grid, pairs, steps, between):
    """Validates the sizes; returns the `between` pairs as a list of `(i, j)` or `None`."""
    for name, v, lo in (("grid", grid, 1), ("pairs", pairs, 1), ("steps", steps, 3)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise InvalidValue(f"{name} must be an integer >= {lo}. Received: {name}={v!r}")
    if len(x) < 2:
        raise InvalidValue(f"generate needs at least 2 images. Received: images={len(x)}")
    chosen = None
    if between is not None:
        chosen = [tuple(between)] if np.ndim(between) == 1 else [tuple(p) for p in between]
        for pair in chosen:
            if len(pair) != 2 or not all(
                    isinstance(i, (int, np.integer)) and not isinstance(i, bool)
                    and 0 <= i < len(x) for i in pair):
                raise InvalidValue(
                    f"between takes pairs of image indices in [0, {len(x)}). "
                    f"Received: between={between!r}"
                )
        chosen = [(int(i), int(j)) for i, j in chosen]
    return chosen


def _auto_arithmetic(inputs):
    """`((a, b, c) or None, why skipped)` for `arithmetic="auto"`."""
    names = [n.lower() for n in inputs.label_names]
    if inputs.labels is None:
        return None, "the images have no labels, so there are no classes to add and subtract"
    if all(c.lower() in names for c in DEFAULT_ARITHMETIC):
        return DEFAULT_ARITHMETIC, None
    classes = sorted(set(np.unique(inputs.labels).tolist()))
    if len(classes) < 3:
        return None, f"the images hold {len(classes)} class(es); a + (b - c) needs three"
    return tuple(classes[:3]), None


def _sample_metrics(model, x, half_b, judge, eval_samples, rng, draw):
    d = model.latent_dim
    real = x[half_b]
    n = int(min(eval_samples, len(real) // 2))
    ref_a, ref_b = real[:n], real[n:2 * n]
    vae = predict.decode(model, draw(n, rng))
    sampler = pca_gaussian_sampler(real, d)
    k = sampler.components
    gauss = sampler(n, rng)
    feats = judge.features(ref_b)
    fd = {"vae": frechet_distance(judge.features(vae), feats),
          "pca_gaussian": frechet_distance(judge.features(gauss), feats),
          "real_vs_real": frechet_distance(judge.features(ref_a), feats)}
    return {
        "count": n,
        "frechet_distance": fd,
        "frechet_features": "hidden layer of the judge MLP (FID-like, not FID)",
        "baseline": f"Gaussian in the top-{k} PCA subspace of the pixels, clipped to [0, 1]",
        "judge_confidence": {"vae": judge.confidence(vae),
                             "pca_gaussian": judge.confidence(gauss),
                             "real": judge.confidence(ref_a)},
    }


def _interpolate(model, x, inputs, pairs, steps, rng, chosen=None):
    if chosen is not None:
        pass
    elif inputs.labels is not None and len(np.unique(inputs.labels)) > 1:
        # Pairs from different classes, so the path has somewhere to go.
        chosen = []
        while len(chosen) < pairs:
            i, j = rng.choice(len(x), 2, replace=False)
            if inputs.labels[i] != inputs.labels[j]:
                chosen.append((int(i), int(j)))
    else:
        chosen = [tuple(int(v) for v in rng.choice(len(x), 2, replace=False))
                  for _ in range(pairs)]
    t = np.linspace(0.0, 1.0, steps, dtype="float32")[:, None]
    ends = np.array(chosen)
    z = predict.encode(model, x[ends.reshape(-1)]).reshape(len(chosen), 2, -1)
    path = (1 - t)[None] * z[:, :1] + t[None] * z[:, 1:]
    interp = predict.decode(model, path.reshape(-1, z.shape[-1])).reshape(
        (len(chosen), steps) + x.shape[1:])
    tt = t.reshape((1, steps) + (1,) * (x.ndim - 1))
    cross = (1 - tt) * x[ends[:, 0]][:, None] + tt * x[ends[:, 1]][:, None]
    return interp, cross.astype("float32"), chosen


def _nearest_sq_distance(frames, real):
    f = frames.reshape(len(frames), -1).astype("float64")
    r = real.reshape(len(real), -1).astype("float64")
    d2 = (f ** 2).sum(1)[:, None] - 2 * f @ r.T + (r ** 2).sum(1)[None]
    return np.maximum(d2.min(axis=1), 0) / f.shape[1]


def _interp_metrics(interp, cross, x, judge, chosen, inputs):
    inner = slice(1, interp.shape[1] - 1)
    a = interp[:, inner].reshape((-1,) + x.shape[1:])
    b = cross[:, inner].reshape((-1,) + x.shape[1:])
    out = {
        "pairs": [[i, j] for i, j in chosen],
        "pair_classes": (None if inputs.labels is None else
                         [[label_name(inputs, int(inputs.labels[i])),
                           label_name(inputs, int(inputs.labels[j]))]
                          for i, j in chosen]),
        "steps": int(interp.shape[1]),
        "nearest_real_mse": {"latent": float(_nearest_sq_distance(a, x).mean()),
                             "pixel_crossfade": float(_nearest_sq_distance(b, x).mean())},
        "nearest_real_mse_note": ("mean over the in-between frames of the per-pixel MSE "
                                  "to the closest real image; lower = closer to real data"),
    }
    if judge is not None:
        out["judge_confidence"] = {"latent": judge.confidence(a),
                                   "pixel_crossfade": judge.confidence(b)}
    return out


def _arithmetic(model, x, inputs, abc, judge):
    a, b, c = abc
    y = inputs.labels
    codes = predict.encode(model, x)
    delta = codes[y == b].mean(axis=0) - codes[y == c].mean(axis=0)
    src = x[y == a]
    vae = predict.decode(model, codes[y == a] + delta)
    pix_delta = x[y == b].mean(axis=0) - x[y == c].mean(axis=0)
    pixel = np.clip(src + pix_delta, 0, 1).astype("float32")
    names = [label_name(inputs, k) for k in abc]
    result = {
        "expression": f"{names[0]} + ({names[1]} - {names[2]})",
        "classes": {"a": names[0], "b": names[1], "c": names[2]},
        "images": int(len(src)),
        "delta": "mean code of b minus mean code of c (VAE z_mean)",
        "nearest_real_mse": {"vae": float(_nearest_sq_distance(vae, x).mean()),
                             "pixel_arithmetic": float(_nearest_sq_distance(pixel, x).mean())},
        "nearest_real_mse_note": ("per-pixel MSE of each result to the closest real image, "
                                  "averaged; lower = closer to real data"),
    }
    if judge is not None:
        result["judged_as_b"] = {"vae": float(np.mean(judge.predict(vae) == b)),
                                 "pixel_arithmetic": float(np.mean(judge.predict(pixel) == b)),
                                 "inputs_unchanged": float(np.mean(judge.predict(src) == b))}
        result["judged_as_a"] = {"vae": float(np.mean(judge.predict(vae) == a)),
                                 "pixel_arithmetic": float(np.mean(judge.predict(pixel) == a))}
    means = predict.decode(model, np.stack([codes[y == k].mean(axis=0) for k in abc]))
    return {"src": src, "vae": vae, "pixel": pixel, "means": means, "names": names}, result


def _samples_note(metrics):
    s = metrics.get("samples")
    if not s:
        return ""
    fd = s["frechet_distance"]
    return (f"\nFréchet distance to real images (judge features): VAE {fd['vae']:.2f}, "
            f"PCA-Gaussian {fd['pca_gaussian']:.2f}, real {fd['real_vs_real']:.2f}")


def _plot_interp(path, interp, cross, chosen, inputs, metrics, ref):
    rows, labels = [], []
    for p, (i, j) in enumerate(chosen):
        rows += [interp[p], cross[p]]
        pair = (f"{label_name(inputs, int(inputs.labels[i]))}->"
                f"{label_name(inputs, int(inputs.labels[j]))}\n"
                if inputs.labels is not None else "")
        labels += [f"{pair}latent", "pixel fade"]
    m = metrics["interpolation"]["nearest_real_mse"]
    steps = interp.shape[1]
    return _plots.image_rows(
        path, rows, row_labels=labels,
        col_labels=[f"t={k / (steps - 1):.2f}" for k in range(steps)],
        title=(f"Latent interpolation with {ref.name} vs pixel cross-fade\nin-between "
               f"frames' MSE to the nearest real image: latent {m['latent']:.4f}, "
               f"cross-fade {m['pixel_crossfade']:.4f} (lower is more realistic)"),
    )


def _plot_arith(path, arith, metrics, ref):
    k = min(10, len(arith["src"]))
    a, b, c = arith["names"]
    info = metrics["arithmetic"]
    note = ""
    if "judged_as_b" in info:
        j = info["judged_as_b"]
        note = (f"\nclassified as {b} by the judge: VAE {j['vae']:.1%}, pixel arithmetic "
                f"{j['pixel_arithmetic']:.1%}, inputs {j['inputs_unchanged']:.1%} "
                f"({info['images']} {a} images)")
    m = info["nearest_real_mse"]
    note += (f"\nMSE to the nearest real image: VAE {m['vae']:.4f}, pixel arithmetic "
             f"{m['pixel_arithmetic']:.4f} (lower is more realistic)")
    rows = [arith["src"][:k], arith["vae"][:k], arith["pixel"][:k], arith["means"]]
    return _plots.image_rows(
        path, rows,
        row_labels=[f"{a} (input)", f"VAE: {a}\n+ ({b} - {c})", f"pixels: {a}\n+ ({b} - {c})",
                    "decoded class\nmean codes"],
        title=f"Latent arithmetic with {ref.name}: {a} + ({b} - {c}){note}",
        col_labels=None,
        # The class names go above their images: as a row label they outgrow the row.
        cell_labels=[None, None, None, [f"mean {a}", f"mean {b}", f"mean {c}"]],
    )
