"""VAEs: deterministic encoder, seeded sampling, separate loss terms, float32 KL."""

import keras
import numpy as np
import pytest

import kerasae
from kerasae.layers import Sampling
from tests.helpers import digits_batch


def test_encoder_has_no_sampling_and_the_model_has_one():
    vae = kerasae.ConvVAE(filters=(4, 8), latent_dim=3, input_shape=(8, 8, 1))
    assert not any(isinstance(l, Sampling) for l in vae.encoder.layers)
    assert isinstance(vae.get_layer("sampling"), Sampling)


def test_training_forward_samples_and_is_seeded():
    x = digits_batch(8)
    a = kerasae.DenseVAE(hidden_units=(16,), latent_dim=3, input_shape=(8, 8, 1), seed=5)
    seed = np.array([1, 2], "int32")
    out1, m, lv = a.forward(x, training=True, seed=seed)
    out2, _, _ = a.forward(x, training=True, seed=seed)
    out3, _, _ = a.forward(x, training=True, seed=np.array([1, 3], "int32"))
    np.testing.assert_array_equal(np.asarray(out1), np.asarray(out2))
    assert not np.allclose(np.asarray(out1), np.asarray(out3))
    np.testing.assert_array_equal(np.asarray(a(x)), np.asarray(a.decoder(m)))


def test_beta_weights_the_kl_term():
    x = digits_batch(16)
    vae = kerasae.DenseVAE(hidden_units=(16,), latent_dim=3, input_shape=(8, 8, 1), beta=4.0)
    vae.compile(optimizer="adam")
    logs = vae.evaluate(x, verbose=0, return_dict=True)
    np.testing.assert_allclose(
        logs["loss"], logs["reconstruction_loss"] + 4.0 * logs["kl_loss"], rtol=1e-5
    )


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_kl_and_sampling_in_float32(policy):
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        vae = kerasae.ConvVAE(filters=(4, 8), latent_dim=3, input_shape=(8, 8, 1), seed=0)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    x = digits_batch(8)
    out, z_mean, z_log_var = vae.forward(x, training=True, seed=np.array([0, 1], "int32"))
    assert z_mean.dtype == "float32" and z_log_var.dtype == "float32"
    assert out.dtype == "float32"
    assert vae.get_layer("encoder").get_layer("conv_0_0").compute_dtype != "float32"
    terms = vae.per_example_terms(x, out, z_mean, z_log_var)
    assert terms["kl_loss"].dtype == "float32"
    assert np.all(np.isfinite(np.asarray(terms["loss"])))


def test_sample_needs_a_vae():
    vae = kerasae.DenseVAE(hidden_units=(8,), latent_dim=2, input_shape=(8, 8, 1))
    assert vae.sample(5, seed=1).shape == (5, 8, 8, 1)
    with pytest.raises(TypeError, match="not a variational autoencoder"):
        kerasae.ConvAE(filters=(4,), input_shape=(8, 8, 1)).sample(2)


def test_vae_needs_a_vector_latent():
    with pytest.raises(ValueError, match="Received: latent_dim=None"):
        kerasae.ConvVAE(latent_dim=None)
