"""Convolutional autoencoders with an upsampling (or transposed-convolution) decoder."""

import keras

from kerasae._util.errors import InvalidValue
from kerasae.losses import RECONSTRUCTIONS
from kerasae.models import _validate
from kerasae.models.parts import latent_heads, make_autoencoder
from kerasae.models.builder import register_builder

DECODER_MODES = ("transpose", "upsample")
# Values per code number of `latent_dim="auto"`: a 28x28x1 digit keeps the former 16, a
# 32x32x3 photo crop gets 64 and a 64x64x3 one 256 (`kerasae.benchmarks.photo_defaults`).
VALUES_PER_CODE = 48
MIN_AUTO_CODE = 16


def auto_latent_dim(input_shape):
    """The code size of `latent_dim="auto"`: one number per `VALUES_PER_CODE` input
    values (height x width x channels), at least `MIN_AUTO_CODE`."""
    height, width, channels = input_shape
    return max(MIN_AUTO_CODE, round(height * width * channels / VALUES_PER_CODE))


def residual_block(x, kernel_size, activation, name):
    """`x + conv(conv(x))` at `x`'s width: two convolutions, the second linear (He et
    al., 2016), then the activation."""
    f = x.shape[-1]
    y = keras.layers.Conv2D(f, kernel_size, padding="same", activation=activation,
                            name=f"{name}_a")(x)
    y = keras.layers.Conv2D(f, kernel_size, padding="same", name=f"{name}_b")(y)
    x = keras.layers.Add(name=f"{name}_add")([x, y])
    return keras.layers.Activation(activation, name=f"{name}_act")(x)


def _down(size, stages):
    for _ in range(stages):
        size = (size + 1) // 2  # "same" padding, stride 2
    return size


def conv_encoder(input_shape, filters, kernel_size, latent_dim, activation, *,
                 convs_per_stage=1, dense_units=(), batch_norm=False, variational=False,
                 residual=False):
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for i, f in enumerate(filters):
        for j in range(convs_per_stage):
            x = keras.layers.Conv2D(
                f, kernel_size, strides=2 if j == 0 else 1, padding="same",
                activation=None if batch_norm else activation, name=f"conv_{i}_{j}",
            )(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(name=f"bn_{i}_{j}")(x)
                x = keras.layers.Activation(activation, name=f"act_{i}_{j}")(x)
        if residual:
            x = residual_block(x, kernel_size, activation, f"res_{i}")
    if latent_dim is None:
        return keras.Model(inputs, x, name="encoder")
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(dense_units):
        x = keras.layers.Dense(units, activation=activation, name=f"dense_{i}")(x)
    return keras.Model(inputs, latent_heads(x, latent_dim, variational), name="encoder")


def conv_decoder(output_shape, filters, kernel_size, latent_dim, activation, *,
                 output_activation="sigmoid", convs_per_stage=1, dense_units=(),
                 batch_norm=False, mode="transpose", residual=False):
    height, width, channels = output_shape
    h, w = _down(height, len(filters)), _down(width, len(filters))
    if latent_dim is None:
        inputs = keras.Input(shape=(h, w, filters[-1]), name="code")
        x = inputs
    else:
        inputs = keras.Input(shape=(latent_dim,), name="code")
        x = inputs
        for i, units in enumerate(reversed(dense_units)):
            x = keras.layers.Dense(units, activation=activation, name=f"dense_{i}")(x)
        x = keras.layers.Dense(h * w * filters[-1], activation=activation,
                               name="project")(x)
        x = keras.layers.Reshape((h, w, filters[-1]), name="unflatten")(x)

    def conv(layer, name):
        nonlocal x
        x = layer(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"bn_{name}")(x)
            x = keras.layers.Activation(activation, name=f"act_{name}")(x)

    act = None if batch_norm else activation
    for i, f in enumerate(reversed(filters)):
        if residual:
            x = residual_block(x, kernel_size, activation, f"res_{i}")
        for j in range(convs_per_stage - 1):
            conv(keras.layers.Conv2D(f, kernel_size, padding="same", activation=act,
                                     name=f"conv_{i}_{j}"), f"{i}_{j}")
        if mode == "transpose":
            conv(keras.layers.Conv2DTranspose(f, kernel_size, strides=2, padding="same",
                                              activation=act, name=f"deconv_{i}"), f"up_{i}")
        else:
            x = keras.layers.UpSampling2D(2, name=f"upsample_{i}")(x)
            conv(keras.layers.Conv2D(f, kernel_size, padding="same", activation=act,
                                     name=f"upconv_{i}"), f"up_{i}")
    x = keras.layers.Conv2D(channels, kernel_size, padding="same",
                            activation=output_activation, name="reconstruction",
                            dtype="float32")(x)
    # Strides round odd sizes up on the way down, so the way up can overshoot.
    extra_h, extra_w = h * 2 ** len(filters) - height, w * 2 ** len(filters) - width
    if extra_h or extra_w:
        x = keras.layers.Cropping2D(
            ((extra_h // 2, extra_h - extra_h // 2), (extra_w // 2, extra_w - extra_w // 2)),
            name="crop", dtype="float32",
        )(x)
    return keras.Model(inputs, x, name="decoder")


def conv_args(input_shape, filters, kernel_size, latent_dim, activation,
              convs_per_stage, dense_units, decoder, output_activation="sigmoid"):
    """Validates the arguments shared by the convolutional builders."""
    input_shape = _validate.input_shape(input_shape, rank=3)
    filters = _validate.positive_ints(filters, "filters")
    kernel_size = _validate.positive_int(kernel_size, "kernel_size")
    if isinstance(latent_dim, str) and latent_dim == "auto":
        latent_dim = auto_latent_dim(input_shape)
    if latent_dim is not None:
        latent_dim = _validate.positive_int(latent_dim, "latent_dim")
    _validate.activation(activation, "activation")
    _validate.activation(output_activation, "output_activation")
    convs_per_stage = _validate.positive_int(convs_per_stage, "convs_per_stage")
    dense_units = _validate.positive_ints(dense_units, "dense_units", allow_empty=True)
    _validate.choice(decoder, "decoder", DECODER_MODES, "decoder mode")
    min_side = min(input_shape[:2])
    if 2 ** len(filters) > 2 * min_side:
        raise InvalidValue(
            f"{len(filters)} stride-2 stages would shrink a {input_shape[0]}x"
            f"{input_shape[1]} image below one pixel many times over. Use at most "
            f"{max(1, min_side.bit_length())} entries in `filters` for this input, "
            f"or a larger input_shape. Received: filters={filters}"
        )
    return input_shape, filters, kernel_size, latent_dim, convs_per_stage, dense_units


@register_builder("conv_ae", example=dict(filters=(8, 16), latent_dim=8, input_shape=(8, 8, 1)))
def ConvAE(
    *,
    filters=(32, 64),
    latent_dim="auto",
    kernel_size=3,
    activation="relu",
    output_activation="sigmoid",
    convs_per_stage=1,
    dense_units=(),
    batch_norm=False,
    residual=False,
    decoder="upsample",
    corruption=None,
    corruption_amount=0.2,
    reconstruction="mse",
    seed=None,
    input_shape=(28, 28, 1),
    weights=None,
    name="conv_ae",
):
    """Instantiates a convolutional autoencoder.

    Encoder: one stage per entry of `filters`, each a stride-2 `Conv2D` (plus
    `convs_per_stage - 1` stride-1 convolutions and, with `residual=True`, a
    residual block), then `Flatten` and a dense code of size `latent_dim`. With
    `latent_dim=None` the code is the last feature map (fully convolutional, no
    dense bottleneck). The decoder mirrors it with nearest-neighbour
    `UpSampling2D` + `Conv2D` (no checkerboard: Odena et al., 2016), or
    `Conv2DTranspose` with `decoder="transpose"`, and crops when odd sizes were
    rounded up on the way down, so any input size and channel count works
    (28x28x1, 32x32x3, 8x8x1, 7x9x2, ...).

    Args:
        filters: filters per stage, outermost first. Defaults to `(32, 64)`.
        latent_dim: code size, `"auto"` (one number per 48 input values, at least
            16: 16 for 28x28x1, 64 for 32x32x3, 256 for 64x64x3), or `None` for a
            spatial code. Defaults to `"auto"`.
        kernel_size: convolution kernel size. Defaults to `3`.
        activation: hidden activation. Defaults to `"relu"`.
        output_activation: activation of the reconstruction. Defaults to `"sigmoid"`.
        convs_per_stage: convolutions per resolution. Defaults to `1`.
        dense_units: dense layers between the feature map and the code.
            Defaults to `()`.
        batch_norm: batch normalization after each convolution. Defaults to `False`.
        residual: a residual block (two convolutions and a skip) at each stage of
            the encoder and the decoder. Defaults to `False`.
        decoder: `"upsample"` or `"transpose"` (the former default; every saved
            config and preset names its decoder, so they rebuild as trained).
            Defaults to `"upsample"`.
        corruption: `None`, `"gaussian"`, `"masking"` or `"salt_and_pepper"`
            train-time corruption (denoising). Defaults to `None`.
        corruption_amount: noise std (gaussian) or corrupted fraction, or a range
            `(low, high)` each example draws its own from (blind denoising).
            Defaults to `0.2`.
        reconstruction: `"mse"`, `"bce"` or `"ssim_l1"` (`0.84 * (1 - SSIM) +
            0.16 * L1`, `kerasae.losses.reconstruction_loss`), averaged over
            pixels. Defaults to `"mse"`.
        seed: seed of the random layers (noise, sampling). The initial weights
            follow Keras's global seed: `keras.utils.set_random_seed`, which
            `kerasae.fit` calls with its own `seed` when it builds the model.
            Defaults to `None`.
        input_shape: `(height, width, channels)`. Defaults to `(28, 28, 1)`.
        weights: `None`, a zoo preset name, or a `.weights.h5` / `.keras` path.
            Defaults to `None`.
        name: model name. Defaults to `"conv_ae"`.

    Returns:
        A `kerasae.models.Autoencoder` with `encoder` and `decoder` sub-models.

    Reference:
        Masci et al., "Stacked convolutional auto-encoders for hierarchical
        feature extraction", ICANN 2011.

    Example:
        >>> import kerasae
        >>> model = kerasae.ConvAE(input_shape=(32, 32, 3))
        >>> model.code_shape
        (64,)
        >>> model.decoder.output.shape
        (None, 32, 32, 3)
    """
    input_shape, filters, kernel_size, latent_dim, convs_per_stage, dense_units = conv_args(
        input_shape, filters, kernel_size, latent_dim, activation, convs_per_stage,
        dense_units, decoder, output_activation,
    )
    _validate.choice(reconstruction, "reconstruction", RECONSTRUCTIONS, "reconstruction loss")
    seed = _validate.seed(seed)
    common = dict(convs_per_stage=convs_per_stage, dense_units=dense_units,
                  batch_norm=bool(batch_norm), residual=bool(residual))
    enc = conv_encoder(input_shape, filters, kernel_size, latent_dim, activation, **common)
    dec = conv_decoder(input_shape, filters, kernel_size, latent_dim, activation,
                       output_activation=output_activation, mode=decoder, **common)
    return make_autoencoder(enc, dec, name=name, reconstruction=reconstruction, seed=seed,
                            corruption=corruption, corruption_amount=corruption_amount)


@register_builder("denoising_conv_ae", example=dict(filters=(8, 16), input_shape=(8, 8, 1)))
def DenoisingConvAE(
    *,
    filters=(32, 64),
    latent_dim=None,
    kernel_size=3,
    activation="relu",
    convs_per_stage=1,
    batch_norm=False,
    residual=False,
    decoder="upsample",
    corruption="gaussian",
    corruption_amount=(0.0, 0.2),
    reconstruction="mse",
    seed=None,
    input_shape=(28, 28, 1),
    weights=None,
    name="denoising_conv_ae",
):
    """Instantiates a denoising convolutional autoencoder.

    `ConvAE` with train-time gaussian noise and, by default, a spatial code (no dense
    bottleneck), which keeps detail for denoising. See `ConvAE` for the arguments.
    By default each training image draws its noise std uniformly from [0, 0.2]
    (clipped to [0, 1]): one model for noise up to std 0.2 (blind denoising, as
    DnCNN-B); `corruption_amount=0.2` trains at the TF denoising tutorial's single level,
    which over-smooths weaker noise (on held-out 32x32 photo crops at std 0.1: 26.03 dB
    against 27.83 dB for the range, `kerasae.benchmarks.photo_defaults`).

    Reference:
        Vincent et al., "Extracting and composing robust features with denoising
        autoencoders", ICML 2008.
    """
    return ConvAE(
        filters=filters, latent_dim=latent_dim, kernel_size=kernel_size,
        activation=activation, convs_per_stage=convs_per_stage, batch_norm=batch_norm,
        residual=residual, decoder=decoder, corruption=corruption,
        corruption_amount=corruption_amount, reconstruction=reconstruction, seed=seed, input_shape=input_shape, name=name,
    )
