"""Convolutional builders: any input size and channel count, decoder modes, shape errors."""

import numpy as np
import pytest

import kerasae


@pytest.mark.parametrize("shape, filters", [
    ((28, 28, 1), (8, 16)),
    ((32, 32, 3), (8, 16, 16)),
    ((8, 8, 1), (4, 8)),
    ((7, 9, 2), (4, 8)),      # odd sizes: rounded up on the way down, cropped back
    ((5, 30, 1), (4, 4, 4)),
])
@pytest.mark.parametrize("decoder", ["transpose", "upsample"])
def test_reconstruction_has_the_input_shape(shape, filters, decoder):
    model = kerasae.ConvAE(filters=filters, latent_dim=4, decoder=decoder, input_shape=shape)
    x = np.random.default_rng(0).uniform(size=(2, *shape)).astype("float32")
    out = np.asarray(model(x))
    assert out.shape == x.shape
    assert np.all((out >= 0) & (out <= 1))


def test_crop_is_centered_and_only_when_needed():
    exact = kerasae.ConvAE(filters=(4, 4), input_shape=(8, 8, 1))
    odd = kerasae.ConvAE(filters=(4, 4), input_shape=(7, 6, 1))
    assert "crop" not in [l.name for l in exact.decoder.layers]
    crop = odd.decoder.get_layer("crop")
    # 7 -> 4 -> 2 -> 8 on the way back: 1 row to crop; 6 -> 3 -> 2 -> 8: 2 columns.
    assert crop.cropping == ((0, 1), (1, 1))


def test_spatial_code_when_latent_dim_is_none():
    model = kerasae.ConvAE(filters=(4, 6), latent_dim=None, input_shape=(12, 12, 1))
    assert model.code_shape == (3, 3, 6)
    assert not any(l.name == "code" for l in model.encoder.layers)


def test_batch_norm_and_extra_convs_build():
    model = kerasae.ConvAE(filters=(4, 8), convs_per_stage=2, batch_norm=True,
                           dense_units=(16,), input_shape=(8, 8, 1))
    names = [l.name for l in model.encoder.layers]
    assert {"conv_0_1", "bn_0_0", "dense_0"} <= set(names)
    assert model(np.zeros((1, 8, 8, 1), "float32")).shape == (1, 8, 8, 1)


def test_too_many_stages_for_the_image_is_refused():
    with pytest.raises(ValueError, match="Use at most 3 entries in `filters`.*Received: filters"):
        kerasae.ConvAE(filters=(4, 4, 4, 4, 4), input_shape=(4, 4, 1))


def test_flat_input_shape_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"\(H, W, 1\).*Received: input_shape=\(784,\)"):
        kerasae.ConvAE(input_shape=(784,))


def test_wrong_batch_shape_says_how_to_fix_it():
    model = kerasae.ConvAE(filters=(4,), input_shape=(8, 8, 1))
    with pytest.raises(ValueError, match=r"Add a channel axis.*Received: shape=\(2, 8, 8\)"):
        model(np.zeros((2, 8, 8), "float32"))
