"""Shared test helpers: tiny builder configs and a fixed, learnable batch."""

import functools

import numpy as np

# Small but real configs for every registered builder, on 8x8x1 inputs, so the
# registry-wide tests stay fast. A builder missing here fails the coverage test.
TINY = {
    "stacked_ae": dict(hidden_units=(32,), latent_dim=8),
    "sparse_stacked_ae": dict(hidden_units=(32,), latent_dim=8),
    "denoising_stacked_ae": dict(hidden_units=(32,), latent_dim=8),
    "conv_ae": dict(filters=(8, 16), latent_dim=8),
    "denoising_conv_ae": dict(filters=(8, 16)),
    "dense_vae": dict(hidden_units=(32,), latent_dim=4),
    "conv_vae": dict(filters=(8, 16), latent_dim=4),
}
TINY_SHAPE = (8, 8, 1)


def tiny_kwargs(name, **overrides):
    kwargs = dict(TINY[name], input_shape=TINY_SHAPE, seed=1)
    kwargs.update(overrides)
    return kwargs


def build_tiny(name, **overrides):
    import kerasae

    return kerasae.build(name, **tiny_kwargs(name, **overrides))


@functools.lru_cache(maxsize=None)
def digits_batch(n=64):
    """A fixed batch of real 8x8 digits in [0, 1], shape (n, 8, 8, 1)."""
    from sklearn.datasets import load_digits

    images = load_digits().images[:n].astype("float32") / 16.0
    return images[..., None]
