"""Recurrent (LSTM or GRU) sequence autoencoders of series windows `(steps, channels)`."""

import keras

from kerasae.models import _validate
from kerasae.models.builder import register_builder
from kerasae.models.parts import (latent_heads, make_autoencoder, scaled_input, scaled_output,
                                  scaling_of)

CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def recurrent_encoder(input_shape, units, latent_dim, cell, scaling=None):
    inputs = keras.Input(shape=input_shape, name="image")
    x = scaled_input(inputs, scaling)
    for i, n in enumerate(units):
        x = CELLS[cell](n, return_sequences=i < len(units) - 1, name=f"{cell}_{i}")(x)
    return keras.Model(inputs, latent_heads(x, latent_dim, False), name="encoder")


def recurrent_decoder(output_shape, units, latent_dim, cell, scaling=None):
    steps, channels = output_shape
    inputs = keras.Input(shape=(latent_dim,), name="code")
    x = keras.layers.RepeatVector(steps, name="repeat")(inputs)
    for i, n in enumerate(reversed(units)):
        x = CELLS[cell](n, return_sequences=True, name=f"decoder_{cell}_{i}")(x)
    x = keras.layers.Dense(channels, name="reconstruction", dtype="float32")(x)
    return keras.Model(inputs, scaled_output(x, scaling), name="decoder")


# No LiteRT: with a dynamic batch TensorFlow's converter cannot lower a recurrent layer's
# loop to built-in ops (TensorListReserve needs a static element shape).
@register_builder("recurrent_ae", example=dict(units=(8,), latent_dim=4, input_shape=(12, 2)),
                  exports=("saved_model", "onnx"))
def RecurrentAE(
    *,
    units=(64,),
    latent_dim=16,
    cell="lstm",
    corruption=None,
    corruption_amount=0.2,
    reconstruction="mse",
    scaling="auto",
    seed=None,
    input_shape=(48, 1),
    weights=None,
    name="recurrent_ae",
):
    """Instantiates a recurrent sequence-to-sequence autoencoder of series windows.

    The encoder reads a window with stacked recurrent layers (`units`, LSTM or GRU)
    and gives the last state's projection as the code; the decoder repeats the code
    for every step and unrolls the mirror stack, then maps each step back to the
    channels. Values are scaled per channel inside the model, so it takes and gives
    raw values. With `corruption`, a denoising autoencoder. (There is no variational
    form: a recurrent decoder tends to ignore a sampled code.)

    Args:
        units: units of the recurrent layers, outermost first. Defaults to `(64,)`.
        latent_dim: size of the code. Defaults to `16`.
        cell: `"lstm"` or `"gru"`. Defaults to `"lstm"`.
        corruption: `None`, `"gaussian"`, `"masking"` or `"salt_and_pepper"`, in the
            scaled units, when training. Defaults to `None`.
        corruption_amount: noise std or corrupted fraction, or a range `(low, high)`
            drawn per example. Defaults to `0.2`.
        reconstruction: `"mse"`. Defaults to `"mse"`.
        scaling: `"auto"` (= `"standard"`), `"standard"`, `"minmax"` or `None`.
            Defaults to `"auto"`.
        seed: seed of the random layers. Defaults to `None`.
        input_shape: `(steps, channels)` of a window. Defaults to `(48, 1)`.
        weights: `None`, a zoo preset name, or a `.weights.h5` / `.keras` path.
            Defaults to `None`.
        name: model name. Defaults to `"recurrent_ae"`.

    Returns:
        A `kerasae.models.Autoencoder` with `encoder` and `decoder` sub-models.

    Reference:
        Srivastava, Mansimov & Salakhutdinov, "Unsupervised learning of video
        representations using LSTMs", ICML 2015; Malhotra et al., "LSTM-based
        encoder-decoder for multi-sensor anomaly detection", ICML workshop 2016.

    Example:
        >>> import kerasae
        >>> model = kerasae.RecurrentAE(units=(16,), latent_dim=4, input_shape=(24, 2))
        >>> model.decoder.output.shape
        (None, 24, 2)
    """
    input_shape = _validate.input_shape(input_shape, rank=2)
    units = _validate.positive_ints(units, "units")
    latent_dim = _validate.positive_int(latent_dim, "latent_dim")
    cell = _validate.choice(cell, "cell", CELLS, "recurrent cell")
    _validate.choice(reconstruction, "reconstruction", ("mse",), "reconstruction loss")
    scaling = scaling_of(scaling, input_shape)
    seed = _validate.seed(seed)
    enc = recurrent_encoder(input_shape, units, latent_dim, cell, scaling)
    dec = recurrent_decoder(input_shape, units, latent_dim, cell, scaling)
    return make_autoencoder(enc, dec, name=name, reconstruction=reconstruction, seed=seed,
                            corruption=corruption, corruption_amount=corruption_amount)
