"""The conv families' defaults on held-out photo crops, against PCA, JPEG and filters.

    python -m kerasae.benchmarks.colorphotos PHOTOS      # once: the 252 offline photos
    python -m kerasae.benchmarks.photo_defaults PHOTOS --out DIR [--sizes 32 64]

Crops: `--train` random crops (5,000) of the photos of `PHOTOS/train/` and `--test` (1,000)
of those of `PHOTOS/val/` and `PHOTOS/heldout/` (`kerasae.benchmarks.colorphotos`' split:
no test crop comes from a photo that trained), at each `--sizes` side, seed 0.

Each family is built with its defaults (only `input_shape` set) and trained by
`kerasae.fit` for `--epochs` epochs, batch `--batch-size`, `--lr` with the
`"warmup_cosine"` schedule, on `--threads` CPU threads; the seconds are measured.

- `conv_ae` against PCA at its code size (scikit-learn, fitted on the training crops)
  and JPEG (Pillow, per crop the highest quality that fits 4 bytes per code number,
  the float32 code's size; quality 1 where none fits, with its true size stated).
- `denoising_conv_ae` on the test crops plus gaussian noise of std `--noise` (clipped
  to [0, 1], `kerasae.metrics.gaussian_noise`) against a gaussian filter (sigma
  chosen on 200 training crops) and a 3x3 median filter per channel.
- `conv_vae`: 1,000 samples `decoder(z ~ N(0, I))` (`conv_vae`) and 1,000 decoded
  from a Gaussian fitted to the training crops' codes `z_mean` (`conv_vae_fitted`:
  ex-post density estimation, Ghosh et al., ICLR 2020) against the PCA-Gaussian (a
  Gaussian fitted to the training crops' PCA coefficients at the same code size,
  sampled and projected back, clipped to [0, 1]); the Frechet distance to the test
  crops in two feature spaces: `stats` (`image_stats`: 32 hand-made image statistics,
  no network) and `pca` (the coefficients of the test crops' PCA at the code size).
  References in the same spaces: the training crops, and the test crops' own
  reconstructions by PCA and by the VAE (what its sharpness allows).

PSNR is that of the mean MSE (`kerasae.metrics.psnr`), SSIM `kerasae.metrics.mean_ssim`.
Writes `DIR/photo_defaults.json` and `DIR/<size>px_*.png` and prints a markdown table.
"""

import argparse
import io
import json
import os
import time

import numpy as np

from kerasae import metrics

FAMILIES = ("conv_ae", "denoising_conv_ae", "conv_vae")
TEST_PARTS = ("val", "heldout")


def crops(photo_dir, size, n_train=5000, n_test=1000, seed=0):
    """`(train, test)` float32 crops `(n, size, size, 3)` in [0, 1]; train crops come
    from `photo_dir/train/` and test crops from `photo_dir/{val,heldout}/`."""
    from PIL import Image

    rng = np.random.default_rng([seed, size])
    out = []
    for parts, n in ((("train",), n_train), (TEST_PARTS, n_test)):
        files = sorted(os.path.join(photo_dir, p, f) for p in parts
                       for f in os.listdir(os.path.join(photo_dir, p)) if f.endswith(".png"))
        if not files:
            raise FileNotFoundError(
                f"No .png photos in {photo_dir}/{'|'.join(parts)}/; write them with "
                f"`python -m kerasae.benchmarks.colorphotos {photo_dir}`. "
                f"Received: photo_dir={photo_dir!r}")
        photos = [np.asarray(Image.open(f).convert("RGB")) for f in files]
        picks = []
        for i in rng.integers(0, len(photos), n):
            im = photos[i]
            top = rng.integers(0, im.shape[0] - size + 1)
            left = rng.integers(0, im.shape[1] - size + 1)
            picks.append(im[top:top + size, left:left + size])
        out.append(np.stack(picks).astype("float32") / 255.0)
    return tuple(out)


def fit_pca(train, k, seed=0):
    from sklearn.decomposition import PCA

    flat = train.reshape(len(train), -1)
    return PCA(n_components=k, svd_solver="randomized", random_state=seed).fit(flat)


def pca_round_trip(pca, images):
    flat = images.reshape(len(images), -1)
    return np.clip(pca.inverse_transform(pca.transform(flat)), 0, 1).reshape(images.shape)


def jpeg_at_bytes(images, max_bytes):
    """Per image the highest JPEG quality (1-95) whose file fits `max_bytes` (quality 1
    where none does); returns `(decoded, mean bytes)`."""
    from PIL import Image

    def encode(pil, q):
        buf = io.BytesIO()
        pil.save(buf, "JPEG", quality=q, optimize=True)
        return buf.getvalue()

    decoded, sizes = [], []
    for image in images:
        pil = Image.fromarray(np.round(image * 255).astype("uint8"))
        best, lo, hi = None, 1, 95
        while lo <= hi:  # the file size grows with the quality
            q = (lo + hi) // 2
            data = encode(pil, q)
            if len(data) <= max_bytes:
                best, lo = data, q + 1
            else:
                hi = q - 1
        best = best if best is not None else encode(pil, 1)
        sizes.append(len(best))
        decoded.append(np.asarray(Image.open(io.BytesIO(best)).convert("RGB")))
    return np.stack(decoded).astype("float32") / 255.0, float(np.mean(sizes))


def quality(clean, output):
    mse = float(np.mean(metrics.mse_per_image(clean, output)))
    return {"psnr_db": round(metrics.psnr(mse), 2),
            "ssim": round(metrics.mean_ssim(clean, output), 4)}


def image_stats(images):
    """32 statistics per image: mean, std and 5%/50%/95% quantiles of each channel (15),
    the mean saturation, the mean absolute horizontal and vertical luminance gradients
    at full and half resolution (4), the mean absolute Laplacian, and the log power of
    the luminance spectrum in 11 radial bands."""
    x = images.astype("float64")
    n = len(x)
    flat = x.reshape(n, -1, 3)
    feats = [flat.mean(1), flat.std(1)]
    feats += [np.quantile(flat, q, axis=1) for q in (0.05, 0.5, 0.95)]
    feats.append((flat.max(2) - flat.min(2)).mean(1, keepdims=True))
    lum = x @ np.array([0.299, 0.587, 0.114])
    half = lum.reshape(n, lum.shape[1] // 2, 2, lum.shape[2] // 2, 2).mean((2, 4))
    for im in (lum, half):
        feats.append(np.abs(np.diff(im, axis=1)).mean((1, 2))[:, None])
        feats.append(np.abs(np.diff(im, axis=2)).mean((1, 2))[:, None])
    lap = 4 * lum[:, 1:-1, 1:-1] - lum[:, :-2, 1:-1] - lum[:, 2:, 1:-1] - lum[:, 1:-1, :-2] \
        - lum[:, 1:-1, 2:]
    feats.append(np.abs(lap).mean((1, 2))[:, None])
    power = np.abs(np.fft.fftshift(np.fft.fft2(lum - lum.mean((1, 2), keepdims=True)),
                                   axes=(1, 2))) ** 2
    h, w = lum.shape[1:]
    yy, xx = np.mgrid[:h, :w]
    radius = np.hypot(yy - h // 2, xx - w // 2) / (min(h, w) / 2)
    bands = np.minimum((radius * 10).astype(int), 10)
    for b in range(11):
        feats.append(np.log(power[:, bands == b].mean(1) + 1e-12)[:, None])
    return np.concatenate(feats, axis=1)


def frechet(a, b):
    """Frechet distance of Gaussians fitted to two feature sets `(n, d)`."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * root))


def train(builder, images, args):
    """`(model, seconds)`: `builder` with its defaults, trained by `kerasae.fit`."""
    from kerasae.training.train import fit  # lazy: TensorFlow only when a model trains

    start = time.perf_counter()
    result = fit(builder, images, epochs=args.epochs, batch_size=args.batch_size,
                         learning_rate=args.lr, lr_schedule="warmup_cosine",
                         validation=None, seed=0, tensorboard=False, verbose=0,
                         builder_kwargs={"input_shape": images.shape[1:]})
    return result.model, round(time.perf_counter() - start, 1)


def _predict(model, images):
    return np.asarray(model.predict(images, batch_size=250, verbose=0), "float32")


def write_grid(path, rows, columns=8, zoom=4):
    """A PNG of `rows` (lists of `columns` images), each pixel `zoom` x `zoom`, so that a
    checkerboard would show."""
    from PIL import Image

    strip = [np.concatenate(list(r[:columns]), axis=1) for r in rows]
    grid = np.concatenate(strip, axis=0)
    grid = np.repeat(np.repeat(grid, zoom, axis=0), zoom, axis=1)
    Image.fromarray(np.round(np.clip(grid, 0, 1) * 255).astype("uint8")).save(path)
    return path


def measure_ae(train_x, test_x, out, size, args):
    model, seconds = train("conv_ae", train_x, args)
    code = int(np.prod(model.code_shape))
    recon = _predict(model, test_x)
    pca = fit_pca(train_x, code)
    pca_recon = pca_round_trip(pca, test_x)
    jpeg, jpeg_bytes = jpeg_at_bytes(test_x, 4 * code)
    idx = np.arange(0, len(test_x), len(test_x) // 8)[:8]
    write_grid(os.path.join(out, f"{size}px_conv_ae.png"),
               [test_x[idx], recon[idx], pca_recon[idx], jpeg[idx]])
    return {"code": code, "seconds": seconds, "conv_ae": quality(test_x, recon),
            f"pca_{code}": quality(test_x, pca_recon),
            "jpeg": dict(quality(test_x, jpeg), bytes=round(jpeg_bytes, 1))}


def _best_sigma(clean, noisy):
    from scipy import ndimage

    def psnr_of(sigma):
        out = ndimage.gaussian_filter(noisy, (0, sigma, sigma, 0))
        return metrics.psnr(np.mean(metrics.mse_per_image(clean, out)))

    return max((0.5, 0.75, 1.0, 1.25, 1.5), key=psnr_of)


def measure_denoiser(train_x, test_x, out, size, args):
    from scipy import ndimage

    model, seconds = train("denoising_conv_ae", train_x, args)
    noisy = metrics.gaussian_noise(test_x, std=args.noise, seed=0)
    denoised = _predict(model, noisy)
    sigma = _best_sigma(train_x[:200], metrics.gaussian_noise(train_x[:200], std=args.noise,
                                                              seed=1))
    gauss = ndimage.gaussian_filter(noisy, (0, sigma, sigma, 0))
    median = ndimage.median_filter(noisy, size=(1, 3, 3, 1))
    idx = np.arange(0, len(test_x), len(test_x) // 8)[:8]
    write_grid(os.path.join(out, f"{size}px_denoising_conv_ae.png"),
               [test_x[idx], noisy[idx], denoised[idx], gauss[idx], median[idx]])
    return {"seconds": seconds, "noisy": quality(test_x, noisy),
            "denoising_conv_ae": quality(test_x, denoised),
            f"gaussian_sigma_{sigma}": quality(test_x, gauss), "median_3x3": quality(test_x, median)}


def measure_vae(train_x, test_x, out, size, args):
    from kerasae.uses._samplers import latent_draws  # lazy: TensorFlow only when measuring

    model, seconds = train("conv_vae", train_x, args)
    code = int(model.decoder.inputs[0].shape[-1])
    rng = np.random.default_rng(0)
    n = len(test_x)
    samples = _predict(model.decoder, latent_draws(model, None, "prior")(n, rng))
    pca = fit_pca(train_x, code)
    coef = pca.transform(train_x.reshape(len(train_x), -1))
    draws = rng.multivariate_normal(coef.mean(0), np.cov(coef, rowvar=False), n)
    gaussian = np.clip(pca.inverse_transform(draws), 0, 1).reshape(test_x.shape).astype("float32")
    fitted = _predict(model.decoder, latent_draws(model, train_x, "fitted")(n, rng))
    recon = _predict(model, test_x)
    test_pca = fit_pca(test_x, code)
    feats = {"stats": image_stats, "pca": lambda x: test_pca.transform(x.reshape(len(x), -1))}
    sets = {"conv_vae": samples, "conv_vae_fitted": fitted, "pca_gaussian": gaussian,
            "pca_reconstructions": pca_round_trip(pca, test_x),
            "conv_vae_reconstructions": recon, "train_crops": train_x[:n]}
    fd = {}
    for space, f in feats.items():
        reference = f(test_x)  # once per space, not once per set
        fd[space] = {k: round(frechet(f(v), reference), 2) for k, v in sets.items()}
    write_grid(os.path.join(out, f"{size}px_conv_vae.png"),
               [samples[:8], samples[8:16], fitted[:8], fitted[8:16], gaussian[:8],
                gaussian[8:16]])
    return {"code": code, "seconds": seconds, "frechet": fd,
            "reconstruction": quality(test_x, recon)}


MEASURES = {"conv_ae": measure_ae, "denoising_conv_ae": measure_denoiser,
            "conv_vae": measure_vae}


def table(results):
    """The markdown table of `results` (`{size: {family: figures}}`)."""
    lines = ["| size | model | PSNR dB | SSIM | baseline | PSNR dB | SSIM | train s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for size, fams in results.items():
        for fam, r in fams.items():
            if fam == "conv_ae":
                for base in (f"pca_{r['code']}", "jpeg"):
                    b = r[base]
                    label = base if base != "jpeg" else f"JPEG {b['bytes']:.0f} B"
                    lines.append(f"| {size} | conv_ae (code {r['code']}) | "
                                 f"{r['conv_ae']['psnr_db']} | {r['conv_ae']['ssim']} | "
                                 f"{label} | {b['psnr_db']} | {b['ssim']} | {r['seconds']} |")
            elif fam == "denoising_conv_ae":
                for base in [k for k in r if k.startswith(("gaussian", "median", "noisy"))]:
                    lines.append(f"| {size} | denoising_conv_ae | "
                                 f"{r['denoising_conv_ae']['psnr_db']} | "
                                 f"{r['denoising_conv_ae']['ssim']} | {base} | "
                                 f"{r[base]['psnr_db']} | {r[base]['ssim']} | {r['seconds']} |")
            else:
                for space, fd in r["frechet"].items():
                    lines.append(f"| {size} | conv_vae (code {r['code']}) samples, "
                                 f"prior / fitted | FD {fd['conv_vae']} / "
                                 f"{fd.get('conv_vae_fitted', '-')} ({space}) | - | "
                                 f"PCA-Gaussian | FD {fd['pca_gaussian']} | - | {r['seconds']} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", help="folder written by kerasae.benchmarks.colorphotos")
    parser.add_argument("--out", required=True, help="folder for the JSON and the PNGs")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import tensorflow as tf  # lazy: threads must be set before any TensorFlow op

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "photo_defaults.json")
    results = json.load(open(path, encoding="utf-8")) if os.path.exists(path) else {}
    for size in args.sizes:
        train_x, test_x = crops(args.photos, size, args.train, args.test)
        for fam in args.families:
            r = MEASURES[fam](train_x, test_x, args.out, size, args)
            r.update(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                     threads=args.threads, train_crops=len(train_x), test_crops=len(test_x))
            results.setdefault(str(size), {})[fam] = r
            with open(path, "w", encoding="utf-8") as f:
                json.dump(results, f, indent=1)
            print(f"{size}px {fam}: {json.dumps(r)}", flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
