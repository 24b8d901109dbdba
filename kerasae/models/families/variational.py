"""Variational autoencoders (SGVB / beta-VAE), dense and convolutional."""

from kerasae._util.errors import InvalidValue
from kerasae.losses import RECONSTRUCTIONS
from kerasae.models import _validate
from kerasae.models.parts import (dense_sizes, make_autoencoder, output_of, reconstruction_of,
                                 scaling_of)
from kerasae.models.builder import register_builder
from kerasae.models.families.conv import conv_args, conv_decoder, conv_encoder
from kerasae.models.families.stacked import dense_decoder, dense_encoder


def _vae_args(beta, reconstruction, seed):
    beta = _validate.non_negative_float(beta, "beta")
    _validate.choice(reconstruction, "reconstruction", RECONSTRUCTIONS, "reconstruction loss")
    return beta, _validate.seed(seed)


@register_builder("dense_vae", example=dict(hidden_units=(32,), latent_dim=4,
                                              input_shape=(8, 8, 1)))
def DenseVAE(
    *,
    hidden_units="auto",
    latent_dim="auto",
    activation="relu",
    beta=1.0,
    reconstruction="auto",
    scaling="auto",
    seed=None,
    input_shape=(28, 28, 1),
    weights=None,
    name="dense_vae",
):
    """Instantiates a dense variational autoencoder.

    The encoder returns `[z_mean, z_log_var]` (layers `z_mean`, `z_log_var`, in
    float32) and never samples; the full model holds a seeded `Sampling` layer
    used only when training, so inference and exports are deterministic. The
    loss is the reconstruction term summed over pixels plus `beta` times the
    analytic KL, reported separately as `reconstruction_loss` and `kl_loss`.

    Args:
        hidden_units: hidden layer sizes, outermost first. `"auto"`: `(512, 256)` for
            images, none `()` for records. Defaults to `"auto"`.
        latent_dim: latent size. `"auto"`: 16 for images, a quarter of the features
            (at least 1) for records. Defaults to `"auto"`.
        activation: hidden activation. Defaults to `"relu"`.
        beta: KL weight; 1 is the standard VAE, > 1 a beta-VAE. Defaults to `1.0`.
        reconstruction: `"bce"` (Bernoulli likelihood), `"mse"` (Gaussian of variance
            1/2) or `"gaussian"` (Gaussian of the batch's mean squared error as
            variance), summed over the input's values; `"auto"` is `"bce"` for images
            in [0, 1] and `"mse"` for records. Defaults to `"auto"`.
        scaling: `"auto"` (none for images, `"standard"` for records), `"standard"`,
            `"minmax"` or `None` (see `StackedAE`). Defaults to `"auto"`.
        seed: seed of the sampling layer. Defaults to `None`.
        input_shape: shape of one input. Defaults to `(28, 28, 1)`.
        weights: `None`, a zoo preset name, or a `.weights.h5` / `.keras` path.
            Defaults to `None`.
        name: model name. Defaults to `"dense_vae"`.

    Returns:
        A `kerasae.models.Autoencoder` with `variational=True`.

    Reference:
        Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014;
        Higgins et al., "beta-VAE", ICLR 2017.

    Example:
        >>> import kerasae
        >>> vae = kerasae.DenseVAE(latent_dim=2, hidden_units=(64,))
        >>> [t.shape for t in vae.encoder.outputs]
        [(None, 2), (None, 2)]
    """
    input_shape = _validate.input_shape(input_shape)
    hidden_units, latent_dim = dense_sizes(hidden_units, latent_dim, input_shape, ((512, 256), 16))
    hidden_units = _validate.positive_ints(hidden_units, "hidden_units", allow_empty=True)
    latent_dim = _validate.positive_int(latent_dim, "latent_dim")
    _validate.activation(activation, "activation")
    reconstruction = reconstruction_of(reconstruction, input_shape)
    beta, seed = _vae_args(beta, reconstruction, seed)
    scaling = scaling_of(scaling, input_shape)
    encoder = dense_encoder(input_shape, hidden_units, latent_dim, activation, variational=True,
                            scaling=scaling)
    decoder = dense_decoder(input_shape, hidden_units, latent_dim, activation,
                            output_of("auto", input_shape), scaling)
    return make_autoencoder(encoder, decoder, name=name, variational=True, beta=beta,
                            reconstruction=reconstruction, seed=seed)


@register_builder("conv_vae", example=dict(filters=(8, 16), latent_dim=4, input_shape=(8, 8, 1)))
def ConvVAE(
    *,
    filters=(32, 64),
    latent_dim="auto",
    kernel_size=3,
    activation="relu",
    convs_per_stage=1,
    dense_units=(),
    batch_norm=False,
    residual=False,
    decoder="upsample",
    beta=1.0,
    reconstruction="gaussian",
    seed=None,
    input_shape=(28, 28, 1),
    weights=None,
    name="conv_vae",
):
    """Instantiates a convolutional variational autoencoder.

    The convolutional body of `ConvAE` with the variational head of `DenseVAE`:
    the encoder returns `[z_mean, z_log_var]`, a seeded `Sampling` layer draws
    `z` only when training, and the loss is reconstruction (summed over pixels)
    plus `beta` times the analytic KL. See `ConvAE` and `DenseVAE` for the
    arguments; `latent_dim="auto"` follows the input as `ConvAE`'s does
    (16 for 28x28x1, 64 for 32x32x3, 256 for 64x64x3). `reconstruction` defaults
    to `"gaussian"`, a Gaussian decoder whose variance is the batch's mean squared
    error (see `kerasae.losses.reconstruction_loss`; `"bce"` and `"mse"` weigh the KL
    as a fixed share and blur photos).

    Reference:
        Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.

    Example:
        >>> import kerasae
        >>> vae = kerasae.ConvVAE()
        >>> vae.decoder.output.shape
        (None, 28, 28, 1)
    """
    input_shape, filters, kernel_size, latent_dim, convs_per_stage, dense_units = conv_args(
        input_shape, filters, kernel_size, latent_dim, activation, convs_per_stage,
        dense_units, decoder,
    )
    if latent_dim is None:
        raise InvalidValue(
            "A VAE needs a vector latent space; pass a positive latent_dim such as 16. "
            "Received: latent_dim=None"
        )
    beta, seed = _vae_args(beta, reconstruction, seed)
    common = dict(convs_per_stage=convs_per_stage, dense_units=dense_units,
                  batch_norm=bool(batch_norm), residual=bool(residual))
    encoder = conv_encoder(input_shape, filters, kernel_size, latent_dim, activation,
                           variational=True, **common)
    dec = conv_decoder(input_shape, filters, kernel_size, latent_dim, activation,
                       mode=decoder, **common)
    return make_autoencoder(encoder, dec, name=name, variational=True, beta=beta,
                            reconstruction=reconstruction, seed=seed)
