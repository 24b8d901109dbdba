"""Image quality and likelihood terms, in numpy: the numbers model cards and uses report.

- `mse_per_image`: squared error averaged over the values of an example (the
  pixels of an image, the features of a record, a window's steps).
- `psnr`: `10 * log10(max_val**2 / mse)` of a MEAN MSE (over a split: not the
  mean of per-image PSNRs, which weights easy images more).
- `ssim_per_image`: SSIM of Wang et al. (2004): 11x11 Gaussian window with
  sigma 1.5, K1 = 0.01, K2 = 0.03, "valid" filtering, averaged over the map and
  the channels; images smaller than the window use a window the size of their
  shorter side.
- `gaussian_noise`: the denoising benchmark's noise (std 0.2 clipped to [0, 1]
  by default), drawn per block of `BLOCK` images from
  `np.random.default_rng([seed, stream, block_index])`, so it does not depend
  on the batch size and is the same on every machine.
- `bernoulli_nll`: `-log p(x|z)` of a Bernoulli decoder, summed over pixels.

Reference:
    Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error
    visibility to structural similarity", IEEE TIP 2004.
"""

import math

import numpy as np

from kerasae._util.errors import InvalidValue

BLOCK = 100  # images per random block; fixed so results do not depend on batch_size
NOISE_STREAM, ELBO_STREAM, NLL_STREAM = 1, 2, 3
LOG_2PI = math.log(2.0 * math.pi)
# Same clamps as training (kerasae.losses / kerasae.layers.Sampling).
BCE_EPSILON = 1e-7
LOG_VAR_RANGE = (-20.0, 20.0)


def _as_images(x, arg):
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise InvalidValue(
            "Images must have shape (n, height, width[, channels]). "
            f"Received: {arg}.shape={x.shape}"
        )
    return x.astype("float64")


def _check_pair(x, y, as_batch=_as_images):
    x, y = as_batch(x, "x"), as_batch(y, "y")
    if x.shape != y.shape:
        raise InvalidValue(
            f"Both batches must have the same shape. Received: x.shape={x.shape}, "
            f"y.shape={y.shape}"
        )
    return x, y


def _as_examples(x, arg):
    x = np.asarray(x)
    if x.ndim < 2:
        raise InvalidValue(f"A batch has a batch axis and at least one more. "
                           f"Received: {arg}.shape={x.shape}")
    return x.astype("float64")


def mse_per_image(x, y):
    """Mean squared error of each pair of examples (images, records, windows), averaged
    over all their values; shape `(n,)`."""
    x, y = _check_pair(x, y, _as_examples)
    return np.mean(np.square(x - y).reshape(len(x), -1), axis=1)


def psnr(mse, max_val=1.0):
    """PSNR in dB of a (mean) MSE: `10 * log10(max_val**2 / mse)`; `inf` for 0."""
    mse = float(mse)
    if mse < 0:
        raise InvalidValue(f"An MSE cannot be negative. Received: mse={mse}")
    if mse == 0.0:
        return float("inf")
    return 10.0 * math.log10(float(max_val) ** 2 / mse)


def gaussian_window(size=11, sigma=1.5):
    """The normalized 1-D Gaussian of the SSIM window (the 2-D window is its outer product)."""
    coords = np.arange(size, dtype="float64") - (size - 1) / 2.0
    g = np.exp(-0.5 * np.square(coords / sigma))
    return g / g.sum()


def _filter_valid(x, g):
    # Separable "valid" filtering over the two spatial axes of (n, H, W, C).
    k = len(g)
    x = np.lib.stride_tricks.sliding_window_view(x, k, axis=1) @ g
    return np.lib.stride_tricks.sliding_window_view(x, k, axis=2) @ g


def ssim_per_image(x, y, *, max_val=1.0, filter_size=11, sigma=1.5, k1=0.01, k2=0.03):
    """SSIM of each image pair (Wang et al., 2004); shape `(n,)`.

    The SSIM map uses a `filter_size` x `filter_size` Gaussian window with
    std `sigma` and no padding, and is averaged over positions and channels
    (the convention of `tf.image.ssim`). `filter_size` is capped at the
    image's shorter side.

    Args:
        x, y: images of shape `(n, H, W[, C])` with values in `[0, max_val]`.
        max_val: dynamic range. Defaults to `1.0`.
        filter_size: window size. Defaults to `11`.
        sigma: window std. Defaults to `1.5`.
        k1, k2: stabilizing constants. Default to `0.01` and `0.03`.

    Returns:
        A float64 array of shape `(n,)`.
    """
    x, y = _check_pair(x, y)
    size = min(int(filter_size), x.shape[1], x.shape[2])
    g = gaussian_window(size, sigma)
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
    xx, yy, xy = _filter_valid(x * x, g), _filter_valid(y * y, g), _filter_valid(x * y, g)
    var_x, var_y, cov = xx - mu_x ** 2, yy - mu_y ** 2, xy - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2)
    )
    return ssim_map.mean(axis=(1, 2, 3))


def block_rng(seed, stream, block):
    """The numpy generator of one block of `BLOCK` images of one random stream."""
    return np.random.default_rng([int(seed), stream, int(block)])


def gaussian_noise(images, std=0.2, seed=0, clip=(0.0, 1.0), first_block=0):
    """`images + N(0, std^2)`, clipped to `clip`, from a fixed seed; float32.

    The noise of image `i` depends only on `seed` and `i` (drawn per block of
    `BLOCK` images), so any batching gives the same noisy set: a chunk of a
    larger set that starts at image `first_block * BLOCK` gets that image's noise.
    """
    x = np.asarray(images, dtype="float32")
    out = np.empty_like(x)
    for start in range(0, len(x), BLOCK):
        chunk = x[start:start + BLOCK]
        block = int(first_block) + start // BLOCK
        noise = block_rng(seed, NOISE_STREAM, block).standard_normal(chunk.shape)
        out[start:start + BLOCK] = chunk + np.float32(std) * noise.astype("float32")
    if clip is not None:
        np.clip(out, clip[0], clip[1], out=out)
    return out


def bernoulli_nll(x, p):
    """`-log p(x|z)` summed over pixels; `x` (n, ...) targets, `p` (n, ...) probabilities.

    `p` is clipped to `[BCE_EPSILON, 1 - BCE_EPSILON]`, as in training.
    """
    p = np.clip(np.asarray(p, dtype="float64"), BCE_EPSILON, 1.0 - BCE_EPSILON)
    x = np.asarray(x, dtype="float64")
    err = -(x * np.log(p) + (1.0 - x) * np.log1p(-p))
    return err.reshape(len(err), -1).sum(axis=1)


def mean_mse(x, y):
    """The MSE of two image batches, averaged over pixels and images."""
    return float(np.mean(mse_per_image(x, y)))


def mean_ssim(x, y, **kwargs):
    """The SSIM of two image batches, averaged over images (see `ssim_per_image`)."""
    return float(np.mean(ssim_per_image(x, y, **kwargs)))


def image_quality(clean, output):
    """`{"mse", "psnr_db", "ssim"}` of `output` against `clean` (PSNR of the mean MSE)."""
    mse = mean_mse(clean, output)
    return {"mse": mse, "psnr_db": psnr(mse), "ssim": mean_ssim(clean, output)}


def summary(values):
    """`{"mean", "std", "median"}` of a sequence of numbers."""
    v = np.asarray(values, dtype="float64")
    return {"mean": float(v.mean()), "std": float(v.std()), "median": float(np.median(v))}
