"""The parts builders share: the `Autoencoder` of a builder, its corruption layer, its code heads."""

import keras

from kerasae._util.errors import InvalidType
from kerasae.layers import CORRUPTIONS, Corruption
from kerasae.models import _validate
from kerasae.models.base import Autoencoder


def make_autoencoder(encoder, decoder, *, name, corruption=None, corruption_amount=0.2,
                     variational=False, beta=1.0, reconstruction="mse", seed=None):
    """The `Autoencoder` of a builder; `corruption` is a kind (see `corruption_layer`),
    a `Corruption` layer, or `None`."""
    if isinstance(corruption, str):
        corruption = corruption_layer(corruption, corruption_amount, seed)
    elif corruption is not None and not isinstance(corruption, Corruption):
        raise InvalidType(
            f"`corruption` is None or the name of a corruption ({', '.join(CORRUPTIONS)}). "
            f"Received: corruption={corruption!r}"
        )
    return Autoencoder(
        encoder, decoder, corruption=corruption, variational=variational, beta=beta,
        reconstruction=reconstruction, seed=seed, name=name,
    )


def corruption_layer(kind, amount, seed):
    """Builds the `Corruption` layer of a denoising model, or returns None."""
    if kind is None:
        return None
    _validate.choice(kind, "corruption", CORRUPTIONS)
    _validate.non_negative_float(amount, "corruption_amount")
    return Corruption(kind=kind, amount=amount, seed=seed, name="corruption")


def latent_heads(x, latent_dim, variational, code_activation=None):
    """The code layer(s): `code`, or `z_mean` + `z_log_var` in float32 for a VAE."""
    if variational:
        z_mean = keras.layers.Dense(latent_dim, name="z_mean", dtype="float32")(x)
        z_log_var = keras.layers.Dense(latent_dim, name="z_log_var", dtype="float32")(x)
        return [z_mean, z_log_var]
    return keras.layers.Dense(latent_dim, activation=code_activation, name="code")(x)
