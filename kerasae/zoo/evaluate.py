"""What a model card reports, measured: reconstruction, denoising and VAE bounds.

`kerasae zoo evaluate NAME` computes these with `evaluate_preset`, and
`kerasae.zoo.publish` writes them into `metadata.json` and the card. The image
metrics are `kerasae.metrics`'.

- Denoisers (models with a `corruption` layer): inputs get gaussian noise of
  std 0.2 clipped to [0, 1], drawn from a fixed seed; `psnr_noisy` is noisy vs
  clean and `psnr_denoised` the model's output vs clean.
- VAEs: `neg_elbo` is `E_q[-log p(x|z)] + KL(q(z|x) || N(0, I))` with a
  Bernoulli decoder (BCE summed over pixels) and beta = 1 whatever the model
  was trained with, in nats per image; `nll_is` is the importance-sampled
  estimate `-log mean_k p(x|z_k) p(z_k) / q(z_k|x)`, `z_k ~ q(z|x)` (Burda et al.,
  2016), also in nats per image. Fashion-MNIST pixels are not binary, so this is
  the Bernoulli "NLL" of grey levels (a cross-entropy), as in most VAE code on
  these datasets: comparable to numbers computed the same way, not to
  likelihoods of binarized or dequantized data.

All randomness is numpy's, drawn per block of `BLOCK` images (see
`kerasae.metrics`), so the numbers do not depend on the batch size.

Reference:
    Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016.
"""

import math

import numpy as np

from kerasae import data as data_lib
from kerasae._util.errors import InvalidType, InvalidValue
from kerasae.metrics import (
    BLOCK,
    ELBO_STREAM,
    LOG_2PI,
    LOG_VAR_RANGE,
    NLL_STREAM,
    bernoulli_nll,
    block_rng,
    gaussian_noise,
    mse_per_image,
    psnr,
    ssim_per_image,
)
from kerasae.models.predict import reconstruct, run_batched
from kerasae.models.resolve import resolve_preset
from kerasae.zoo.series import evaluate_series_preset

DEFAULT_SETTINGS = {
    "batch_size": 250,
    "seed": 0,
    "noise_std": 0.2,
    "elbo_samples": 1,
    "nll_samples": 20,
    "ssim_filter_size": 11,
}


def _encode_vae(model, x, batch_size):
    if not model.variational:
        raise InvalidType(
            f"{model.name} is not a variational autoencoder; ELBO and NLL need a VAE (an "
            f"encoder that returns z_mean and z_log_var). Received: model={model.name!r}"
        )
    z_mean, z_log_var = run_batched(model.encoder, x, batch_size)
    z_log_var = np.clip(z_log_var.astype("float64"), *LOG_VAR_RANGE)
    return z_mean.astype("float64"), z_log_var


def vae_bound(model, images, *, samples=1, seed=0, batch_size=250, first_block=0):
    """Per-image negative ELBO of a VAE, with its two terms, in nats.

    `reconstruction_nll` is the Bernoulli `-log p(x|z)` (BCE summed over pixels)
    averaged over `samples` draws `z ~ q(z|x)`; `kl` is the analytic
    `KL(q(z|x) || N(0, I))`; `neg_elbo` their sum (beta = 1).

    `first_block`: the block index of `images[0]` when `images` is a chunk (a
    multiple of `BLOCK` images into a larger set), so chunks draw what the whole
    set would.

    Returns:
        A dict of float64 arrays of shape `(n,)`: `neg_elbo`,
        `reconstruction_nll`, `kl`.
    """
    x = np.asarray(images, dtype="float32")
    samples = int(samples)
    if samples < 1:
        raise InvalidValue(f"samples must be >= 1. Received: samples={samples}")
    mu, log_var = _encode_vae(model, x, batch_size)
    kl = -0.5 * np.sum(1.0 + log_var - mu ** 2 - np.exp(log_var), axis=-1)
    rec = np.empty(len(x))
    for b, start in enumerate(range(0, len(x), BLOCK), start=int(first_block)):
        m, lv = mu[start:start + BLOCK], log_var[start:start + BLOCK]
        eps = block_rng(seed, ELBO_STREAM, b).standard_normal((samples,) + m.shape)
        z = (m + np.exp(0.5 * lv) * eps).reshape(-1, m.shape[-1])
        p = run_batched(model.decoder, z.astype("float32"), batch_size * samples)
        xs = x[start:start + BLOCK].astype("float64")
        xb = np.broadcast_to(xs, (samples,) + xs.shape)
        nll = bernoulli_nll(xb.reshape((-1,) + x.shape[1:]), p).reshape(samples, -1)
        rec[start:start + BLOCK] = nll.mean(axis=0)
    return {"neg_elbo": rec + kl, "reconstruction_nll": rec, "kl": kl}


def importance_sampled_nll(model, images, *, samples=20, seed=0, batch_size=250,
                           first_block=0):
    """Per-image importance-sampled negative log-likelihood of a VAE, in nats.

    `-log (1/k) sum_k p(x|z_k) p(z_k) / q(z_k|x)` with `z_k ~ q(z|x)`, computed
    with log-sum-exp in float64. Its expectation is an upper bound on the true
    NLL that tightens as `samples` grows, and is never looser than the ELBO
    (Burda et al., 2016). See the module docstring for what "likelihood"
    means on grey-level images. `first_block` as for `vae_bound`.

    Returns:
        A float64 array of shape `(n,)`.
    """
    from scipy.special import logsumexp

    x = np.asarray(images, dtype="float32")
    k = int(samples)
    if k < 1:
        raise InvalidValue(f"samples must be >= 1. Received: samples={samples}")
    mu, log_var = _encode_vae(model, x, batch_size)
    out = np.empty(len(x))
    for b, start in enumerate(range(0, len(x), BLOCK), start=int(first_block)):
        m, lv = mu[start:start + BLOCK], log_var[start:start + BLOCK]
        eps = block_rng(seed, NLL_STREAM, b).standard_normal((k,) + m.shape)
        z = m + np.exp(0.5 * lv) * eps  # (k, B, d)
        log_pz = -0.5 * np.sum(z ** 2 + LOG_2PI, axis=-1)
        log_qz = -0.5 * np.sum(eps ** 2 + lv + LOG_2PI, axis=-1)
        xb = x[start:start + BLOCK].astype("float64")
        log_px = np.empty((k, len(m)))
        # Decode a few samples at a time to bound memory on large images.
        step = max(1, 4096 // max(1, len(m)))
        for s in range(0, k, step):
            zs = z[s:s + step].reshape(-1, m.shape[-1]).astype("float32")
            p = run_batched(model.decoder, zs, max(batch_size, len(zs)))
            n_s = len(zs) // len(m)
            xs = np.broadcast_to(xb, (n_s,) + xb.shape).reshape((-1,) + xb.shape[1:])
            log_px[s:s + n_s] = -bernoulli_nll(xs, p).reshape(n_s, -1)
        log_w = log_px + log_pz - log_qz
        out[start:start + BLOCK] = -(logsumexp(log_w, axis=0) - math.log(k))
    return out


def is_denoiser(model):
    return getattr(model, "corruption", None) is not None


CHUNK_BLOCKS = 10  # images are read BLOCK * CHUNK_BLOCKS at a time, with running sums


def _settings(settings, image_shape):
    unknown = sorted(set(settings) - set(DEFAULT_SETTINGS))
    if unknown:
        raise InvalidType(
            f"Unknown evaluation setting(s) {', '.join(unknown)}. Valid: "
            f"{', '.join(sorted(DEFAULT_SETTINGS))}. "
            f"Received: {unknown[0]}={settings[unknown[0]]!r}"
        )
    s = dict(DEFAULT_SETTINGS, **settings)
    s["ssim_filter_size"] = min(int(s["ssim_filter_size"]), image_shape[0], image_shape[1])
    return s


def _chunk_sums(model, x, s, first_block):
    """Per-chunk sums of every per-image quantity of the card."""
    bs, size = int(s["batch_size"]), s["ssim_filter_size"]
    recon = reconstruct(model, x, bs)
    out = {"mse": mse_per_image(x, recon).sum(),
           "ssim": ssim_per_image(x, recon, filter_size=size).sum()}
    if is_denoiser(model):
        noisy = gaussian_noise(x, s["noise_std"], s["seed"], first_block=first_block)
        denoised = reconstruct(model, noisy, bs)
        out["mse_noisy"] = mse_per_image(x, noisy).sum()
        out["mse_denoised"] = mse_per_image(x, denoised).sum()
        out["ssim_denoised"] = ssim_per_image(x, denoised, filter_size=size).sum()
    if model.variational:
        bound = vae_bound(model, x, samples=s["elbo_samples"], seed=s["seed"], batch_size=bs,
                          first_block=first_block)
        out.update({k: v.sum() for k, v in bound.items()})
        out["nll_is"] = importance_sampled_nll(
            model, x, samples=s["nll_samples"], seed=s["seed"], batch_size=bs,
            first_block=first_block).sum()
    return out


def evaluate_model(model, images, **settings):
    """Measures a model on `images` (float32 in [0, 1]); the numbers of a model card.

    Every model: `mse`, `psnr`, `ssim` of its deterministic reconstruction.
    Denoisers add `psnr_noisy`, `psnr_denoised`, `mse_denoised`,
    `ssim_denoised`; VAEs add `neg_elbo`, `reconstruction_nll`, `kl` and
    `nll_is` (nats per image). See the module docstring for the definitions.
    The images are read in chunks with running sums, so any dataset size works;
    the numbers do not depend on the chunking.

    Args:
        model: a `kerasae.models.Autoencoder`.
        images: array `(n, H, W, C)` in [0, 1], or a `kerasae.data.Source`.
        **settings: overrides of `DEFAULT_SETTINGS`: `batch_size` (250),
            `seed` (0), `noise_std` (0.2), `elbo_samples` (1), `nll_samples`
            (20), `ssim_filter_size` (11).

    Returns:
        A dict `{"examples": n, "metrics": {...}, "settings": {...}}` of plain
        Python numbers (JSON-ready). `settings` holds every value used, so
        `evaluate_model(model, images, **result["settings"])` repeats it.
    """
    src = images if isinstance(images, data_lib.Source) else data_lib.from_array(images)
    if len(src) == 0:
        raise InvalidValue("No images to evaluate. Received: images with 0 examples")
    s = _settings(settings, src.image_shape)
    totals, n = {}, 0
    for first, x in src.batches(BLOCK * CHUNK_BLOCKS):
        for k, v in _chunk_sums(model, x, s, first // BLOCK).items():
            totals[k] = totals.get(k, 0.0) + float(v)
        n += len(x)
    mean = {k: v / n for k, v in totals.items()}
    metrics = {"mse": mean["mse"], "psnr": psnr(mean["mse"]), "ssim": mean["ssim"]}
    if "mse_noisy" in mean:
        metrics.update(psnr_noisy=psnr(mean["mse_noisy"]), mse_denoised=mean["mse_denoised"],
                       psnr_denoised=psnr(mean["mse_denoised"]),
                       ssim_denoised=mean["ssim_denoised"])
    for key in ("neg_elbo", "reconstruction_nll", "kl", "nll_is"):
        if key in mean:
            metrics[key] = mean[key]
    return {"examples": int(n), "metrics": metrics, "settings": s}


METRIC_DOCS = {
    "mse": "mean squared error per pixel (clean input)",
    "psnr": "PSNR in dB from the mean MSE (max value 1)",
    "ssim": "mean SSIM (Gaussian window of ssim_filter_size, sigma 1.5)",
    "psnr_noisy": "PSNR of the noisy input (gaussian std 0.2, clipped) vs clean",
    "psnr_denoised": "PSNR of the denoised output vs clean",
    "mse_denoised": "MSE of the denoised output vs clean",
    "ssim_denoised": "SSIM of the denoised output vs clean",
    "neg_elbo": "negative ELBO, Bernoulli BCE + KL, nats per image",
    "reconstruction_nll": "E_q[-log p(x|z)] (BCE summed over pixels), nats per image",
    "kl": "KL(q(z|x) || N(0, I)), nats per image",
    "nll_is": "importance-sampled NLL estimate, nats per image",
}


def evaluate_preset(name, *, split="test", dataset=None, label=None, limit=None,
                    settings=None, root=None, cache_dir=None, mirrors=None, data_dir=None,
                    raw_dir=None):
    """Evaluates a zoo preset on a split of its dataset (`kerasae zoo evaluate`).

    The settings default to the ones recorded in the preset's `metadata.json`,
    so a re-run reproduces the card. A preset of series windows is measured on
    the series `dataset` (required: no series ships with kerasae) by
    `kerasae.zoo.series.evaluate_series_preset`.

    Args:
        name: preset name, optionally `name@version`.
        split: dataset split. Defaults to `"test"`.
        dataset: the data to measure on instead of the preset's dataset; for a
            series preset, the series (a `.csv` file, an array `(T, C)`).
            Defaults to `None`.
        label: a series' label column (name or index), instead of the labelled
            windows the card records. Defaults to `None`.
        limit: evaluate only the first `limit` images (quick checks; such
            numbers are not card numbers). Defaults to `None` (all).
        settings: overrides of the recorded evaluation settings.
        root, cache_dir, mirrors: see `kerasae.zoo.get_preset`.
        data_dir, raw_dir: passed to `kerasae.data.get_source`.

    Returns:
        The `evaluate_model` dict plus `preset`, `version`, `dataset`, `split`.
    """
    ref = resolve_preset(name, root=root, cache_dir=cache_dir, mirrors=mirrors)
    if ref.model.input_kind == "series":
        if limit is not None:
            raise InvalidValue(f"limit takes the first images of an image preset; {name!r} "
                               f"measures a whole series. Received: limit={limit!r}")
        return evaluate_series_preset(ref, dataset, label=label, settings=settings)
    preset = ref.preset
    metadata = ref.metadata()  # its types checked by the store
    recorded = dict(metadata["evaluation"].get("settings") or {})
    unknown = sorted(set(recorded) - set(DEFAULT_SETTINGS))
    if unknown:
        raise InvalidValue(
            f"metadata.json of preset {preset.label} records evaluation setting(s) "
            f"{', '.join(unknown)} that this kerasae does not know (valid: "
            f"{', '.join(sorted(DEFAULT_SETTINGS))}): a newer kerasae published it, so upgrade "
            f"kerasae to reproduce its card. Received: {unknown[0]}={recorded[unknown[0]]!r}"
        )
    recorded.update(settings or {})
    dataset = metadata["dataset"]["name"] if dataset is None else dataset
    model = ref.model
    kwargs = {k: v for k, v in (("data_dir", data_dir), ("raw_dir", raw_dir)) if v}
    src = data_lib.get_source(dataset, split, **kwargs)
    if limit is not None:
        src = src.subset(np.arange(min(int(limit), len(src))))
    result = evaluate_model(model, src, **recorded)
    return {"preset": preset.name, "version": preset.version, "dataset": dataset,
            "split": split, **result}
