"""Reconstruction and KL terms, per example, in float32, with `keras.ops` only."""

import math

from keras import ops

from kerasae._util.errors import InvalidValue

RECONSTRUCTIONS = ("mse", "bce", "ssim_l1", "gaussian")
BCE_EPSILON = 1e-7
# Least variance of the "gaussian" decoder: a tenth of 8-bit quantisation noise's.
GAUSSIAN_MIN_VARIANCE = 1e-6
# Weight of (1 - SSIM) in "ssim_l1"; the rest is on L1 (Zhao et al., 2017, used 0.84
# with MS-SSIM).
SSIM_WEIGHT = 0.84


def reconstruction_loss(x, x_hat, kind="mse", reduction="sum", variance=None):
    """Per-example reconstruction error.

    Args:
        x: targets, shape `(batch, ...)`, values in [0, 1] for `"bce"`.
        x_hat: reconstructions of the same shape (probabilities for `"bce"`).
        kind: `"mse"` (squared error), `"bce"` (binary cross-entropy, with
            `x_hat` clipped to `[1e-7, 1 - 1e-7]`) or `"ssim_l1"` (images only:
            `0.84 * (1 - SSIM) + 0.16 * |x - x_hat|`, SSIM per image as `ssim`;
            with `"sum"` it is scaled by the number of values) or `"gaussian"` (the
            negative log-likelihood of a Gaussian decoder whose variance is the batch's
            mean squared error, its maximum-likelihood value: Rybkin et al., "Simple and
            Effective VAE Training with Calibrated Decoders", ICML 2021; a VAE's KL then
            weighs as much as the decoder's fit earns, not a fixed share). Defaults to
            `"mse"`.
        reduction: `"sum"` over all non-batch axes (a VAE's negative
            log-likelihood term) or `"mean"` (per-pixel error, comparable to PCA).
            Defaults to `"sum"`.
        variance: `"gaussian"` only: the decoder's variance (it carries no gradient):
            a scalar, or a function of the squared errors `(batch, ...)` that returns
            their mean (a model under `tf.distribute` passes the global batch's). `None`
            is the mean squared error of this call's batch. Defaults to `None`.

    Returns:
        A float32 tensor of shape `(batch,)`.
    """
    if kind not in RECONSTRUCTIONS:
        raise InvalidValue(
            f"Unknown reconstruction loss {kind!r}. Use one of "
            f"{', '.join(RECONSTRUCTIONS)}. Received: reconstruction={kind!r}"
        )
    if reduction not in ("sum", "mean"):
        raise InvalidValue(
            f"reduction must be 'sum' or 'mean'. Received: reduction={reduction!r}"
        )
    x = ops.cast(x, "float32")
    x_hat = ops.cast(x_hat, "float32")
    if kind == "ssim_l1":
        return _ssim_l1(x, x_hat, reduction)
    if kind == "gaussian":
        err = ops.square(x - x_hat)
        # The variance carries no gradient: at its optimum the loss is flat in it.
        if variance is None or callable(variance):
            var = (variance or ops.mean)(err)
        else:
            var = ops.cast(variance, "float32")
        var = ops.maximum(ops.stop_gradient(var), GAUSSIAN_MIN_VARIANCE)
        err = 0.5 * (err / var + ops.log(2.0 * math.pi * var))
    elif kind == "mse":
        err = ops.square(x - x_hat)
    else:
        p = ops.clip(x_hat, BCE_EPSILON, 1.0 - BCE_EPSILON)
        err = -(x * ops.log(p) + (1.0 - x) * ops.log(1.0 - p))
    axes = tuple(range(1, len(err.shape)))
    return ops.sum(err, axis=axes) if reduction == "sum" else ops.mean(err, axis=axes)


def _ssim_l1(x, x_hat, reduction):
    if len(x.shape) != 4:
        raise InvalidValue(
            "The 'ssim_l1' reconstruction loss compares images of shape (batch, height, "
            "width, channels); use 'mse' for records and series. "
            f"Received: shape={tuple(x.shape)}"
        )
    l1 = ops.mean(ops.abs(x - x_hat), axis=(1, 2, 3))
    err = SSIM_WEIGHT * (1.0 - ssim(x, x_hat)) + (1.0 - SSIM_WEIGHT) * l1
    if reduction == "sum":  # on the scale of a sum over values, as the VAE's KL expects
        err = err * float(math.prod(x.shape[1:]))
    return err


def _gaussian_window(size, sigma):
    coords = [i - (size - 1) / 2.0 for i in range(size)]
    g = [math.exp(-0.5 * (c / sigma) ** 2) for c in coords]
    return [v / sum(g) for v in g]


def ssim(x, y, max_val=1.0, filter_size=11, sigma=1.5, k1=0.01, k2=0.03):
    """SSIM of each image pair (Wang et al., 2004) in `keras.ops`, differentiable.

    The convention of `kerasae.metrics.ssim_per_image` (and `tf.image.ssim`): a
    `filter_size` Gaussian window of std `sigma` (capped at the image's shorter
    side), "valid" filtering, the map averaged over positions and channels.

    Args:
        x, y: image batches `(batch, height, width, channels)` in `[0, max_val]`.

    Returns:
        A float32 tensor of shape `(batch,)`.
    """
    x, y = ops.cast(x, "float32"), ops.cast(y, "float32")
    channels = x.shape[-1]
    size = min(int(filter_size), x.shape[1], x.shape[2])
    g = ops.convert_to_tensor(_gaussian_window(size, sigma), "float32")
    # Separable filtering: a (size, 1) then a (1, size) depthwise kernel.
    col = ops.tile(ops.reshape(g, (size, 1, 1, 1)), (1, 1, channels, 1))
    row = ops.tile(ops.reshape(g, (1, size, 1, 1)), (1, 1, channels, 1))

    def blur(v):
        v = ops.depthwise_conv(v, col, strides=1, padding="valid")
        return ops.depthwise_conv(v, row, strides=1, padding="valid")

    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - ops.square(mu_x)
    var_y = blur(y * y) - ops.square(mu_y)
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)) / (
        (ops.square(mu_x) + ops.square(mu_y) + c1) * (var_x + var_y + c2))
    return ops.mean(ssim_map, axis=(1, 2, 3))


def kl_divergence(z_mean, z_log_var, log_var_range=(-20.0, 20.0)):
    """Analytic `KL(N(z_mean, exp(z_log_var)) || N(0, I))`, summed over latent dims.

    Computed in float32 with the log-variance clamped to `log_var_range`, so a
    float16 encoder cannot overflow `exp`.

    Returns:
        A float32 tensor of shape `(batch,)`.
    """
    mu = ops.cast(z_mean, "float32")
    log_var = ops.clip(ops.cast(z_log_var, "float32"), *log_var_range)
    return -0.5 * ops.sum(1.0 + log_var - ops.square(mu) - ops.exp(log_var), axis=-1)


def kl_sparsity(target, rho_hat, epsilon=1e-7):
    """Elementwise `KL(Bernoulli(target) || Bernoulli(rho_hat))` of sparse AEs.

    `rho_hat` is clipped to `[epsilon, 1 - epsilon]` so saturated units give a
    large finite penalty instead of `inf`.
    """
    rho_hat = ops.clip(ops.cast(rho_hat, "float32"), epsilon, 1.0 - epsilon)
    rho = float(target)
    return rho * ops.log(rho / rho_hat) + (1.0 - rho) * ops.log(
        (1.0 - rho) / (1.0 - rho_hat)
    )
