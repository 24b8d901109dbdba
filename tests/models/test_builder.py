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
                                      {"input_shape": (16, 16, 1)}, {"corruption": "gaussian"}])
def test_overrides_that_change_the_architecture_are_refused(published_zoo, monkeypatch, override):
    monkeypatch.setenv(zoo.ROOT_ENV, published_zoo[0])
    (key, value), = override.items()
    with pytest.raises(ValueError, match=rf"override is refused.*Received: {key}="):
        kerasae.ConvAE(weights="conv_ae_digits", **override)
