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


@pytest.mark.parametrize("shape, code", [((28, 28, 1), 16), ((8, 8, 1), 16),
                                         ((32, 32, 3), 64), ((64, 64, 3), 256)],
                         ids=["28x28x1", "8x8x1", "32x32x3", "64x64x3"])
def test_auto_code_size_follows_the_input(shape, code):
    filters = (4, 8) if shape[0] > 8 else (4,)
    assert kerasae.ConvAE(filters=filters, input_shape=shape).code_shape == (code,)
    vae = kerasae.ConvVAE(filters=filters, input_shape=shape)
    assert [t.shape[-1] for t in vae.encoder.outputs] == [code, code]


def test_default_decoder_upsamples_instead_of_transposing():
    for model in (kerasae.ConvAE(filters=(4, 8), input_shape=(8, 8, 1)),
                  kerasae.DenoisingConvAE(filters=(4, 8), input_shape=(8, 8, 1)),
                  kerasae.ConvVAE(filters=(4, 8), input_shape=(8, 8, 1))):
        kinds = {type(layer).__name__ for layer in model.decoder.layers}
        assert "UpSampling2D" in kinds and "Conv2DTranspose" not in kinds


def test_residual_blocks_in_encoder_and_decoder():
    model = kerasae.ConvAE(filters=(4, 8), residual=True, input_shape=(12, 12, 3))
    for part in (model.encoder, model.decoder):
        adds = [l for l in part.layers if type(l).__name__ == "Add"]
        assert len(adds) == 2
    x = np.random.default_rng(0).uniform(size=(2, 12, 12, 3)).astype("float32")
    assert model(x).shape == x.shape
    plain = kerasae.ConvAE(filters=(4, 8), input_shape=(12, 12, 3))
    assert not any(type(l).__name__ == "Add" for l in plain.encoder.layers)


def test_ssim_l1_model_trains_one_step():
    model = kerasae.ConvAE(filters=(4, 8), reconstruction="ssim_l1", input_shape=(16, 16, 3))
    model.compile(optimizer="adam")
    x = np.random.default_rng(0).uniform(size=(4, 16, 16, 3)).astype("float32")
    logs = model.train_on_batch(x, return_dict=True)
    assert np.isfinite(logs["loss"]) and 0 < logs["loss"] < 1


CONV_PRESETS = ["conv_ae_fashion_mnist", "conv_ae_fashion_mnist_small",
                "conv_vae_fashion_mnist", "denoising_conv_ae_fashion_mnist"]


@pytest.mark.parametrize("preset", CONV_PRESETS)
def test_published_configs_rebuild_the_architecture_they_were_trained_with(preset):
    # The presets' config.json was written before the defaults changed (issue 23): it
    # names its decoder and code size, and lacks `residual`, whose default is off.
    import json
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "zoo" / preset / "v1"
    config = json.loads((root / "config.json").read_text())
    kwargs = config["kwargs"]
    assert "residual" not in kwargs and kwargs["decoder"] == "transpose"
    model = kerasae.models.get_builder(config["builder"])(**kwargs)
    kinds = [type(layer).__name__ for layer in model.decoder.layers]
    assert "Conv2DTranspose" in kinds and "UpSampling2D" not in kinds and "Add" not in kinds
    if kwargs["latent_dim"] is not None:
        assert model.encoder.outputs[0].shape[1:] == (kwargs["latent_dim"],)
    model.load_weights(str(root / "model.weights.h5"))  # every weight still fits
