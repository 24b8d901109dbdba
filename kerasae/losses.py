"""Reconstruction and KL terms, per example, in float32, with `keras.ops` only."""

from keras import ops

from kerasae._util.errors import InvalidValue

RECONSTRUCTIONS = ("mse", "bce")
BCE_EPSILON = 1e-7


def reconstruction_loss(x, x_hat, kind="mse", reduction="sum"):
    """Per-example reconstruction error.

    Args:
        x: targets, shape `(batch, ...)`, values in [0, 1] for `"bce"`.
        x_hat: reconstructions of the same shape (probabilities for `"bce"`).
        kind: `"mse"` (squared error) or `"bce"` (binary cross-entropy, with
            `x_hat` clipped to `[1e-7, 1 - 1e-7]`). Defaults to `"mse"`.
        reduction: `"sum"` over all non-batch axes (a VAE's negative
            log-likelihood term) or `"mean"` (per-pixel error, comparable to PCA).
            Defaults to `"sum"`.

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
    if kind == "mse":
        err = ops.square(x - x_hat)
    else:
        p = ops.clip(x_hat, BCE_EPSILON, 1.0 - BCE_EPSILON)
        err = -(x * ops.log(p) + (1.0 - x) * ops.log(1.0 - p))
    axes = tuple(range(1, len(err.shape)))
    return ops.sum(err, axis=axes) if reduction == "sum" else ops.mean(err, axis=axes)


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
