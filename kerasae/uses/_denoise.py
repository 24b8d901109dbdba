"""denoise: clean images from noisy ones, against classical filters."""

import numpy as np

from kerasae import plots as _plots
from kerasae._util.errors import InvalidValue
from kerasae.metrics import gaussian_noise, image_quality
from kerasae.models import predict
from kerasae.models.resolve import resolve_model
from kerasae.uses.codec.container import output_names
from kerasae.uses.inputs import check_applies, load_inputs, model_for_images
from kerasae.uses.result import Output, Result, skip, save_png

GAUSSIAN_SIGMAS = (0.5, 0.75, 1.0, 1.5, 2.0)
MEDIAN_SIZES = (2, 3, 5)


def gaussian_filter(images, sigma):
    """Per-image, per-channel 2-D gaussian blur (scipy.ndimage, reflect borders)."""
    from scipy import ndimage

    return ndimage.gaussian_filter(np.asarray(images, dtype="float32"),
                                   sigma=(0, sigma, sigma, 0), mode="reflect")


def median_filter(images, size):
    """Per-image, per-channel 2-D median filter of a `size` x `size` window."""
    from scipy import ndimage

    return ndimage.median_filter(np.asarray(images, dtype="float32"),
                                 size=(1, size, size, 1), mode="reflect")


def denoise(model, images=None, labels=None, *, clean=None, add_noise=None, noise_std=0.2,
            seed=0, dataset="fashion_mnist", split="auto", limit=None, resize="crop",
            skip_bad=False, max_pixels=None,
            
            out=None):
    """Denoises images with an autoencoder and compares with gaussian and median filters.

    With a clean reference (a dataset or array, noised here, or `clean=`), it
    reports MSE / PSNR / SSIM (definitions of `kerasae.metrics`) of the noisy
    input, the autoencoder's output, and the best gaussian (sigma in
    0.5..2) and median (2x2..5x5) filters. The filters' settings are picked
    on the same images ("oracle-tuned"), which favours the filters; every
    setting is listed. The noise is `kerasae.metrics.gaussian_noise`: gaussian,
    std `noise_std`, clipped to [0, 1], from `seed`, the model cards' setting.

    Args:
        model: an `Autoencoder`, a `.keras` path or a zoo preset name.
        images, labels, dataset, split, limit, resize, skip_bad, max_pixels:
            the inputs (see `features`).
        clean: clean references for noisy `images`. Defaults to `None`.
        add_noise: treat `images` as clean and add noise. Defaults to `True`
            for datasets and arrays, `False` for image files (taken as noisy).
        noise_std: noise standard deviation. Defaults to `0.2`.
        seed: noise seed. Defaults to `0`.
        out: directory for `denoise.json`, `denoise.png`, `denoised.npy` and,
            for image files, `denoised/<name>.png`. Defaults to `None`.

    Returns:
        A `Result` with arrays `noisy` and `denoised`.
    """
    ref = resolve_model(model)
    check_applies("denoise", ref.model)
    inputs = load_inputs(images, labels, dataset=dataset, split=split, limit=limit,
                         shape=ref.model.image_shape, resize=resize,
                         skip_bad=skip_bad, max_pixels=max_pixels)
    x = inputs.images
    model_for_images(ref, x)
    if x.ndim != 4:
        raise InvalidValue(
            f"denoise works on images (n, H, W, C): its filter baselines and SSIM are 2-D. "
            f"These are flat vectors; use a dataset of images and a model of images. "
            f"Received: shape={tuple(x.shape)}"
        )
    files = "files" in inputs.description  # image files (not a dataset): taken as noisy
    if add_noise is None:
        add_noise = not files and clean is None
    if noise_std < 0:
        raise InvalidValue(f"noise_std must be >= 0. Received: noise_std={noise_std}")
    if add_noise:
        if clean is not None:
            raise InvalidValue(
                "Pass either clean images to compare with (the inputs are noisy) or "
                "add_noise=True (the inputs are clean), not both. Received: add_noise=True"
            )
        reference = x
        noisy = gaussian_noise(x, noise_std, seed)
    else:
        noisy = x
        reference = None
        if clean is not None:
            reference = load_inputs(clean).images
            if reference.shape != noisy.shape:
                raise InvalidValue(
                    f"The clean images must match the noisy ones in number and shape. "
                    f"Received: clean.shape={reference.shape}, images.shape={noisy.shape}"
                )
    with Output(out) as output:
        denoised = predict.reconstruct(ref.model, noisy)
        sweeps = {"gaussian": [(s, gaussian_filter(noisy, s)) for s in GAUSSIAN_SIGMAS],
                  "median": [(k, median_filter(noisy, k)) for k in MEDIAN_SIZES]}
        metrics = {
            "use": "denoise", "model": ref.info(), "inputs": inputs.description,
            "count": len(x), "files": inputs.names,
            "model_trained_with_corruption": getattr(ref.model, "corruption", None) is not None,
            "noise": ({"kind": "gaussian", "std": noise_std, "clip": [0.0, 1.0], "seed": seed,
                       "generator": "kerasae.metrics.gaussian_noise"}
                      if add_noise else "inputs taken as noisy"),
        }
        best = _score(reference, noisy, denoised, sweeps, metrics)
        if output.enabled:
            output.npy("denoised.npy", denoised)
            if files:
                metrics.update(_write_pngs(output, inputs.names, denoised))
            _plot(output.path("denoise.png"), reference, noisy, denoised, best, metrics, ref)
            output.json("denoise.json", metrics)
        files = output.commit()
    return Result("denoise", metrics, {"noisy": noisy, "denoised": denoised}, files)


def _score(reference, noisy, denoised, sweeps, metrics):
    """PSNR / SSIM of the noisy, denoised and best-filtered images against `reference`,
    into `metrics`; the best filter settings (or defaults without a reference)."""
    best = {}
    if reference is not None:
        results = {"noisy": image_quality(reference, noisy),
                   "autoencoder": image_quality(reference, denoised)}
        grid = {}
        for name, runs in sweeps.items():
            rows = []
            for setting, filtered in runs:
                row = image_quality(reference, filtered)
                row["sigma" if name == "gaussian" else "size"] = setting
                rows.append(row)
            grid[name] = rows
            top = int(np.argmax([r["psnr_db"] for r in rows]))
            best[name] = runs[top]
            results[f"{name}_filter"] = dict(rows[top])
        metrics["results"] = results
        metrics["filter_grid"] = grid
        metrics["filter_tuning"] = "best PSNR on these same images (favours the filters)"
        metrics["psnr_gain_db"] = {
            "autoencoder_over_noisy": results["autoencoder"]["psnr_db"]
            - results["noisy"]["psnr_db"],
            "autoencoder_over_best_filter": results["autoencoder"]["psnr_db"]
            - max(results["gaussian_filter"]["psnr_db"], results["median_filter"]["psnr_db"]),
        }
    else:
        metrics["results"] = None
        metrics["results_skipped"] = "no clean reference (pass clean= or add_noise=True)"
        skip(metrics, "PSNR / SSIM scores", "the images are taken as noisy and no clean "
             "reference was given (--clean FILES, or --add-noise to noise clean images)")
        best = {"gaussian": sweeps["gaussian"][2], "median": sweeps["median"][1]}
    return best


def _write_pngs(output, names, images):
    """`denoised/<name>.png`, keeping the files' sub-folders, the names made safe and
    unique (`a.jpg` and `a.png` both give `a.png`: the second becomes `a-1.png`)."""
    paths, renamed, changed = output_names(names)
    for rel, img in zip(paths, images):
        save_png(output.path(f"denoised/{rel}"), img)
    return {"png_files": len(paths), "renamed": renamed, "names_made_safe": changed}


def _plot(path, reference, noisy, denoised, best, metrics, ref):
    k = min(10, len(noisy))
    rows, labels = [], []
    res = metrics.get("results")

    def label(name, key):
        return f"{name}\n{res[key]['psnr_db']:.2f} dB" if res else name

    if reference is not None:
        rows.append(reference[:k])
        labels.append("clean")
    rows += [noisy[:k], best["gaussian"][1][:k], best["median"][1][:k], denoised[:k]]
    labels += [label("noisy", "noisy"),
               label(f"gaussian s={best['gaussian'][0]}", "gaussian_filter"),
               label(f"median {best['median'][0]}x{best['median'][0]}", "median_filter"),
               label("autoencoder", "autoencoder")]
    title = f"Denoising with {ref.name}"
    if res:
        title += (f": PSNR / SSIM over {metrics['count']} images\nnoisy "
                  f"{res['noisy']['psnr_db']:.2f} dB / {res['noisy']['ssim']:.3f}, "
                  f"autoencoder {res['autoencoder']['psnr_db']:.2f} / "
                  f"{res['autoencoder']['ssim']:.3f}, best gaussian "
                  f"{res['gaussian_filter']['psnr_db']:.2f} / {res['gaussian_filter']['ssim']:.3f},"
                  f" best median {res['median_filter']['psnr_db']:.2f} / "
                  f"{res['median_filter']['ssim']:.3f}")
    else:
        title += " (no clean reference: no scores)"
    return _plots.image_rows(path, rows, title=title, row_labels=labels)
