"""What is special to the tiny autoencoders (`tiny_ae`): any image size, padded at the bottom
and right with repeated edges and cropped back inside the model, the soft clamp of the code,
the clipped output, denoising, and `.keras` files of a model of open size. The generic checks
(training, saving, `weights=`, export, uses) come from the family contract."""

import keras
import numpy as np
import pytest

import kerasae
from kerasae._util.errors import KerasaeError
from kerasae.layers import Corruption
from kerasae.models.families.tiny import EdgePad, TinyAutoencoder
from tests.helpers import photo_crops

SMALL = dict(latent_channels=4, width=8, blocks=(1, 1, 2, 1), seed=1)


def _photos(h, w, n=3):
    return np.stack(photo_crops(n, seed=0, size=(h, w))).astype("float32") / 255.0


@pytest.fixture(scope="module")
def open_size():
    """A small model of any size, with random weights that make its outputs differ."""
    keras.utils.set_random_seed(3)
    return kerasae.TinyAE(**SMALL, clip_output=False, input_shape=(None, None, 3))


def _same_weights(model, **kwargs):
    twin = kerasae.TinyAE(**{**SMALL, "clip_output": False, **kwargs})
    twin.set_weights(model.get_weights())
    return twin


@pytest.mark.parametrize("size", [(36, 52), (64, 64), (17, 8), (5, 3)], ids=str)
def test_any_size_is_padded_with_its_edges_and_cropped_back(open_size, size):
    h, w = size
    x = _photos(h, w)
    ph, pw = -h % 8, -w % 8
    # Reference: numpy's edge padding into a model of the padded size, then cropped.
    padded = _same_weights(open_size, input_shape=(h + ph, w + pw, 3))
    assert not any(isinstance(layer, EdgePad) for layer in padded.encoder.layers)
    x_pad = np.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    code_ref = np.asarray(padded.encoder(x_pad))
    recon_ref = np.asarray(padded(x_pad))[:, :h, :w]
    fixed = _same_weights(open_size, input_shape=(h, w, 3))
    assert fixed.encoder.output.shape == (None, -(-h // 8), -(-w // 8), 4)
    assert fixed.decoder.output.shape == (None, h, w, 3)
    for model in (fixed, open_size):
        np.testing.assert_allclose(np.asarray(model.encoder(x)), code_ref, atol=1e-5)
        np.testing.assert_allclose(np.asarray(model(x)), recon_ref, atol=1e-5)
        np.testing.assert_allclose(np.asarray(model.reconstruct(x)), recon_ref, atol=1e-5)
    # The open-size decoder alone returns the whole padded grid.
    assert np.asarray(open_size.decode(code_ref)).shape == (3, h + ph, w + pw, 3)


def test_a_model_of_open_size_saves_and_loads_in_safe_mode(open_size, tmp_path):
    path = tmp_path / "tiny.keras"
    open_size.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is TinyAutoencoder and loaded.builder_name == "tiny_ae"
    assert loaded.image_shape == (None, None, 3)
    for h, w in ((36, 52), (24, 16)):
        x = _photos(h, w, n=2)
        np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(open_size(x)))


def test_the_defaults_are_taef2s_layout():
    model = kerasae.TinyAE()
    # Parameter counts of TAEF2's published encoder and decoder (upstream's layout).
    assert (model.encoder.count_params(), model.decoder.count_params()) == (1338528, 1338499)
    assert model.image_shape == (256, 256, 3) and model.code_shape == (32, 32, 32)
    norms = [layer for layer in model.encoder.layers
             if isinstance(layer, keras.layers.GroupNormalization)]
    assert [n.name for n in norms] == [f"block_3_{i}_norm" for i in range(3)]
    assert all(n.groups == 4 and n.epsilon == 1e-5 for n in norms)


def test_the_decoder_soft_clamps_its_code(open_size):
    z = np.random.default_rng(0).normal(0, 4, (2, 3, 5, 4)).astype("float32")
    unclamped = _same_weights(open_size, code_clamp=None, input_shape=(None, None, 3))
    assert len(unclamped.get_weights()) == len(open_size.get_weights())
    np.testing.assert_allclose(np.asarray(open_size.decode(z)),
                               np.asarray(unclamped.decode(3.0 * np.tanh(z / 3.0))), atol=1e-5)


def test_clip_output_bounds_the_reconstruction_to_the_unit_interval(open_size):
    clipped = _same_weights(open_size, clip_output=True, input_shape=(None, None, 3))
    x = _photos(16, 24)
    raw = np.asarray(open_size(x))
    np.testing.assert_allclose(np.asarray(clipped(x)), np.clip(raw, 0.0, 1.0), atol=1e-6)
    layer = clipped.decoder.get_layer("reconstruction")
    layer.bias.assign(np.full(3, 50.0, "float32"))  # every pixel far above 1
    np.testing.assert_array_equal(np.asarray(clipped(x)), np.ones_like(x))


def test_denoising_corrupts_only_in_training():
    model = kerasae.TinyAE(**SMALL, corruption="masking", corruption_amount=1.0,
                           input_shape=(16, 16, 3))
    assert isinstance(model.corruption, Corruption) and model.corruption.kind == "masking"
    x = _photos(16, 16)
    # Masking every value: the training pass sees a black image.
    np.testing.assert_allclose(np.asarray(model(x, training=True)),
                               np.asarray(model(np.zeros_like(x))), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(model(x)))
    assert not np.allclose(np.asarray(model(x)), np.asarray(model(np.zeros_like(x))))


def test_bilinear_upsampling_and_one_channel():
    model = kerasae.TinyAE(**SMALL, upsampling="bilinear", input_shape=(20, 28, 1))
    assert model.get_layer("decoder").get_layer("upsample_1").interpolation == "bilinear"
    assert np.asarray(model(np.full((2, 20, 28, 1), 0.5, "float32"))).shape == (2, 20, 28, 1)


@pytest.mark.parametrize("kwargs, phrase", [
    (dict(blocks=()), "blocks"),
    (dict(blocks=(1, -1)), "blocks"),
    (dict(width=8, norm_groups=3), "must divide"),
    (dict(input_shape=(32, 32)), "input_shape"),
    (dict(input_shape=(None, None, None)), "input_shape"),
    (dict(upsampling="cubic"), "upsampling"),
    (dict(code_clamp=0.0), "code_clamp"),
    (dict(corruption="blur"), "corruption"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_arguments_are_refused_by_name(kwargs, phrase):
    with pytest.raises(KerasaeError, match=phrase) as caught:
        kerasae.TinyAE(**kwargs)
    assert "Received:" in str(caught.value)


@pytest.mark.slow
def test_kerasae_fit_trains_a_model_of_any_size_on_photos_of_one_size(open_size, tmp_path):
    from kerasae.training import fit

    x = _photos(24, 40, n=16)
    before = [w.copy() for w in open_size.get_weights()]
    result = fit(open_size, x, epochs=1, batch_size=8, validation=None, verbose=0,
                 out_dir=str(tmp_path / "run"))
    assert tuple(result.model.image_shape) == (None, None, 3)  # still any size
    assert np.isfinite(result.history[-1]["loss"])
    assert any(not np.array_equal(a, b) for a, b in zip(before, result.model.get_weights()))
    assert result.model.reconstruct(_photos(17, 30, n=1)).shape == (1, 17, 30, 3)
