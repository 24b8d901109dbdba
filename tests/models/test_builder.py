"""Builders' `weights=`: a zoo preset's config merged with the caller's arguments."""

import numpy as np
import pytest

import kerasae
from kerasae import zoo

pytestmark = pytest.mark.usefixtures("no_zoo_env")


def test_builder_weights_preset_name(published_zoo, tmp_path, monkeypatch):
    root, models = published_zoo
    monkeypatch.setenv(zoo.ROOT_ENV, root)
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path))
    model = kerasae.ConvAE(weights="conv_ae_digits")
    for a, b in zip(model.get_weights(), models["conv_ae_digits"].get_weights()):
        np.testing.assert_array_equal(a, b)
    renamed = kerasae.ConvVAE(weights="conv_vae_digits", name="mine", beta=4.0)
    assert renamed.name == "mine" and renamed.beta == 4.0
    same_value = kerasae.ConvAE(weights="conv_ae_digits", filters=(8, 16))  # equal: allowed
    assert same_value.builder_config["filters"] == [8, 16]


def test_builder_refuses_another_builders_preset(published_zoo, monkeypatch):
    monkeypatch.setenv(zoo.ROOT_ENV, published_zoo[0])
    with pytest.raises(ValueError, match=r"for builder 'conv_vae', not 'conv_ae'\. Call "
                                         r"kerasae\.ConvVAE\(weights='conv_vae_digits'\)"):
        kerasae.ConvAE(weights="conv_vae_digits")


@pytest.mark.parametrize("override", [{"latent_dim": 3}, {"filters": (8, 8)},
                                      {"input_shape": (16, 16, 1)}, {"activation": "tanh"}])
def test_overrides_that_change_the_architecture_are_refused(published_zoo, monkeypatch, override):
    monkeypatch.setenv(zoo.ROOT_ENV, published_zoo[0])
    (key, value), = override.items()
    with pytest.raises(ValueError, match=rf"override is refused.*Received: {key}="):
        kerasae.ConvAE(weights="conv_ae_digits", **override)


def test_settings_without_weights_may_change(published_zoo, monkeypatch):
    """Corruption, loss weights and seeds hold no weights: a preset becomes a denoiser."""
    import json
    import os

    from tests.helpers import digits_batch, sha256

    root, models = published_zoo
    monkeypatch.setenv(zoo.ROOT_ENV, root)
    denoiser = kerasae.ConvAE(weights="conv_ae_digits", corruption="gaussian",
                              corruption_amount=0.3, seed=5)
    assert denoiser.corruption is not None and denoiser.corruption.amount == 0.3
    for a, b in zip(denoiser.get_weights(), models["conv_ae_digits"].get_weights()):
        np.testing.assert_array_equal(a, b)
    x = digits_batch(8)  # deterministic at inference: the corruption acts in training only
    np.testing.assert_array_equal(np.asarray(denoiser.reconstruct(x)),
                                  np.asarray(models["conv_ae_digits"].reconstruct(x)))
    entry = json.loads(open(os.path.join(root, "index.json")).read())["presets"]["conv_ae_digits"]
    weights = os.path.join(root, *entry["path"].split("/"), "model.weights.h5")
    assert denoiser.start_point == {"kind": "preset", "name": "conv_ae_digits", "version": 1,
                                    "sha256": sha256(weights)}


def test_a_keras_file_is_a_start_point_with_its_config(published_zoo, tmp_path, monkeypatch):
    from tests.helpers import sha256

    root, models = published_zoo
    monkeypatch.setenv(zoo.ROOT_ENV, root)
    path = str(tmp_path / "ae.keras")
    models["conv_ae_digits"].save(path)
    # Only the builder's name is given: the architecture comes from the file.
    model = kerasae.build("conv_ae", weights=path, corruption="masking")
    assert model.builder_config["filters"] == models["conv_ae_digits"].builder_config["filters"]
    assert model.start_point == {"kind": "keras", "path": path, "sha256": sha256(path)}
    for a, b in zip(model.get_weights(), models["conv_ae_digits"].get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="override is refused.*Received: latent_dim=3"):
        kerasae.build("conv_ae", weights=path, latent_dim=3)
    with pytest.raises(ValueError, match=r"for builder 'conv_ae', not 'conv_vae'\. Call "
                                         r"kerasae\.ConvAE\("):
        kerasae.build("conv_vae", weights=path)
    # A .weights.h5 file records no config: weights that do not fit are refused whole.
    h5 = str(tmp_path / "ae.weights.h5")
    models["conv_ae_digits"].save_weights(h5)
    with pytest.raises(ValueError, match="(?s)do not fit this model.*Build the model with the "
                                         "arguments its weights were trained with"):
        kerasae.build("conv_ae", weights=h5, input_shape=(8, 8, 1), filters=(4, 4))
