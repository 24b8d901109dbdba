"""1-D convolutional autoencoders of series windows `(steps, channels)`: plain, denoising, VAE."""

import keras

from kerasae._util.errors import InvalidValue
from kerasae.models import _validate
from kerasae.models.builder import register_builder
from kerasae.models.families.conv import DECODER_MODES
from kerasae.models.parts import (latent_heads, make_autoencoder, reconstruction_of,
                                  scaled_input, scaled_output, scaling_of)


def _stages(steps, n):
    for _ in range(n):
        steps = (steps + 1) // 2  # "same" padding, stride 2
    return steps


def _args(input_shape, filters, kernel_size, latent_dim, activation, decoder, dropout):
    input_shape = _validate.input_shape(input_shape, rank=2)
    filters = _validate.positive_ints(filters, "filters")
    kernel_size = _validate.positive_int(kernel_size, "kernel_size")
    if latent_dim is not None:
        latent_dim = _validate.positive_int(latent_dim, "latent_dim")
    _validate.activation(activation, "activation")
    _validate.choice(decoder, "decoder", DECODER_MODES, "decoder mode")
    dropout = _validate.non_negative_float(dropout, "dropout")
    if dropout >= 1.0:
        raise InvalidValue(f"`dropout` is a fraction below 1. Received: dropout={dropout}")
    if 2 ** len(filters) > 2 * input_shape[0]:
        raise InvalidValue(
            f"{len(filters)} stride-2 stages would shrink a window of {input_shape[0]} steps "
            f"below one step. Use at most {max(1, input_shape[0].bit_length())} entries in "
            f"`filters`, or a longer window. Received: filters={filters}")
    return input_shape, filters, kernel_size, latent_dim, dropout


def conv1d_encoder(input_shape, filters, kernel_size, latent_dim, activation, *, dropout=0.0,
                   scaling=None, variational=False):
    inputs = keras.Input(shape=input_shape, name="image")
    x = scaled_input(inputs, scaling)
    for i, f in enumerate(filters):
        x = keras.layers.Conv1D(f, kernel_size, strides=2, padding="same",
                                activation=activation, name=f"conv_{i}")(x)
        if dropout and i == 0:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
    if latent_dim is None:
        return keras.Model(inputs, x, name="encoder")
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, latent_heads(x, latent_dim, variational), name="encoder")


def conv1d_decoder(output_shape, filters, kernel_size, latent_dim, activation, *, mode,
                   dropout=0.0, scaling=None):
    steps, channels = output_shape
    down = _stages(steps, len(filters))
    if latent_dim is None:
        inputs = keras.Input(shape=(down, filters[-1]), name="code")
        x = inputs
    else:
        inputs = keras.Input(shape=(latent_dim,), name="code")
        x = keras.layers.Dense(down * filters[-1], activation=activation, name="project")(inputs)
        x = keras.layers.Reshape((down, filters[-1]), name="unflatten")(x)
    for i, f in enumerate(reversed(filters)):
        if mode == "transpose":
            x = keras.layers.Conv1DTranspose(f, kernel_size, strides=2, padding="same",
                                             activation=activation, name=f"deconv_{i}")(x)
        else:
            x = keras.layers.UpSampling1D(2, name=f"upsample_{i}")(x)
            x = keras.layers.Conv1D(f, kernel_size, padding="same", activation=activation,
                                    name=f"upconv_{i}")(x)
        if dropout and i == 0:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Conv1D(channels, kernel_size, padding="same", name="reconstruction",
                            dtype="float32")(x)
    extra = down * 2 ** len(filters) - steps  # stride 2 rounds odd lengths up
    if extra:
        x = keras.layers.Cropping1D((extra // 2, extra - extra // 2), name="crop",
                                    dtype="float32")(x)
    return keras.Model(inputs, scaled_output(x, scaling), name="decoder")


@register_builder("conv1d_ae", example=dict(filters=(8, 4), kernel_size=3, input_shape=(16, 2)))
def Conv1DAE(
    *,
    filters=(32, 16),
    kernel_size=7,
    latent_dim=None,
    activation="relu",
    dropout=0.0,
    decoder="transpose",
    corruption=None,
    corruption_amount=0.2,
    reconstruction="mse",
    scaling="auto",
    seed=None,
    input_shape=(288, 1),
    weights=None,
    name="conv1d_ae",
):
    """Instantiates a 1-D convolutional autoencoder of series windows.

    Encoder: one stride-2 `Conv1D` per entry of `filters` (the code is the last
    feature map, or a dense code of `latent_dim`); decoder: the mirror, with
    `Conv1DTranspose` (or `UpSampling1D` + `Conv1D`), cropped back to the window's
    length, so any window length and channel count works. Values are scaled per
    channel inside the model (fitted on the training data), so it takes and gives
    raw values; the loss is the squared error in the scaled units. With
    `corruption`, a denoising autoencoder. The defaults are the keras.io
    "Timeseries anomaly detection" model's (filters 32 and 16, kernel 7, windows of
    288 steps of one channel), with dropout off.

    Args:
        filters: filters per stage, outermost first. Defaults to `(32, 16)`.
        kernel_size: kernel length. Defaults to `7`.
        latent_dim: size of a dense code, or `None` for the last feature map.
            Defaults to `None`.
        activation: hidden activation. Defaults to `"relu"`.
        dropout: dropout after the first stage of the encoder and of the decoder.
            Defaults to `0.0`.
        decoder: `"transpose"` or `"upsample"`. Defaults to `"transpose"`.
        corruption: `None`, `"gaussian"`, `"masking"` or `"salt_and_pepper"`, in the
            scaled units, when training. Defaults to `None`.
        corruption_amount: noise std or corrupted fraction, or a range `(low, high)`
            drawn per example. Defaults to `0.2`.
        reconstruction: `"mse"`. Defaults to `"mse"`.
        scaling: `"auto"` (= `"standard"`), `"standard"`, `"minmax"` or `None`.
            Defaults to `"auto"`.
        seed: seed of the random layers. Defaults to `None`.
        input_shape: `(steps, channels)` of a window. Defaults to `(288, 1)`.
        weights: `None`, a zoo preset name, or a `.weights.h5` / `.keras` path.
            Defaults to `None`.
        name: model name. Defaults to `"conv1d_ae"`.

    Returns:
        A `kerasae.models.Autoencoder` with `encoder` and `decoder` sub-models.

    Example:
        >>> import kerasae
        >>> model = kerasae.Conv1DAE(input_shape=(48, 1))
        >>> model.encoder.output.shape
        (None, 12, 16)
    """
    input_shape, filters, kernel_size, latent_dim, dropout = _args(
        input_shape, filters, kernel_size, latent_dim, activation, decoder, dropout)
    reconstruction = reconstruction_of(reconstruction, input_shape)
    scaling = scaling_of(scaling, input_shape)
    seed = _validate.seed(seed)
    enc = conv1d_encoder(input_shape, filters, kernel_size, latent_dim, activation,
                         dropout=dropout, scaling=scaling)
    dec = conv1d_decoder(input_shape, filters, kernel_size, latent_dim, activation,
                         mode=decoder, dropout=dropout, scaling=scaling)
    return make_autoencoder(enc, dec, name=name, reconstruction=reconstruction, seed=seed,
                            corruption=corruption, corruption_amount=corruption_amount)


@register_builder("conv1d_vae", example=dict(filters=(8, 4), kernel_size=3, latent_dim=4,
                                               input_shape=(16, 2)))
def Conv1DVAE(
    *,
    filters=(32, 16),
    kernel_size=7,
    latent_dim=16,
    activation="relu",
    decoder="transpose",
    beta=1.0,
    scaling="auto",
    seed=None,
    input_shape=(288, 1),
    weights=None,
    name="conv1d_vae",
):
    """Instantiates a 1-D convolutional variational autoencoder of series windows.

    The body of `Conv1DAE` with a variational code of `latent_dim`: the encoder
    returns `[z_mean, z_log_var]`, and the loss is the squared error summed over the
    window (a Gaussian likelihood, in the scaled units) plus `beta` times the KL.
    See `Conv1DAE` for the arguments.

    Reference:
        Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    """
    input_shape, filters, kernel_size, latent_dim, _ = _args(
        input_shape, filters, kernel_size, latent_dim, activation, decoder, 0.0)
    if latent_dim is None:
        raise InvalidValue("A VAE needs a vector latent space; pass a positive latent_dim "
                           "such as 16. Received: latent_dim=None")
    beta = _validate.non_negative_float(beta, "beta")
    scaling = scaling_of(scaling, input_shape)
    seed = _validate.seed(seed)
    enc = conv1d_encoder(input_shape, filters, kernel_size, latent_dim, activation,
                         scaling=scaling, variational=True)
    dec = conv1d_decoder(input_shape, filters, kernel_size, latent_dim, activation,
                         mode=decoder, scaling=scaling)
    return make_autoencoder(enc, dec, name=name, variational=True, beta=beta,
                            reconstruction="mse", seed=seed)
