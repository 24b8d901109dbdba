"""Card metrics of models (`kerasae.zoo.evaluate`) against numpy, tf.image.ssim, closed forms."""

import numpy as np
import pytest

from kerasae import metrics
from kerasae.zoo import evaluate as ev
from tests.helpers import build_tiny
from tests.test_metrics import SSIM_ATOL, tf_ssim


@pytest.fixture(scope="module")
def digits():
    import kerasae

    return kerasae.data.load_numpy("digits", "test")[0]


def test_evaluate_model_autoencoder_against_numpy_and_tf(digits):
    model = build_tiny("conv_ae")
    result = ev.evaluate_model(model, digits, batch_size=64)
    x_hat = model.predict(digits, verbose=0).astype("float64")
    mse = np.mean((digits.astype("float64") - x_hat) ** 2)
    m = result["metrics"]
    assert set(m) == {"mse", "psnr", "ssim"}
    assert m["mse"] == pytest.approx(mse, rel=1e-5)
    assert m["psnr"] == pytest.approx(10 * np.log10(1.0 / mse), rel=1e-5)
    assert m["ssim"] == pytest.approx(float(np.mean(tf_ssim(digits, x_hat, 8))), abs=SSIM_ATOL)
    assert result["examples"] == len(digits)
    assert result["settings"]["ssim_filter_size"] == 8


def test_evaluate_model_denoiser_reports_noisy_and_denoised_psnr(digits):
    model = build_tiny("denoising_conv_ae")
    result = ev.evaluate_model(model, digits, seed=5)
    noisy = metrics.gaussian_noise(digits, 0.2, seed=5)
    clean = digits.astype("float64")
    denoised = model.predict(noisy, verbose=0).astype("float64")
    m = result["metrics"]
    assert m["psnr_noisy"] == pytest.approx(10 * np.log10(1 / np.mean((noisy - clean) ** 2)),
                                            rel=1e-6)
    assert m["psnr_denoised"] == pytest.approx(
        10 * np.log10(1 / np.mean((denoised - clean) ** 2)), rel=1e-5)
    # gaussian std 0.2 clipped to [0, 1] on mostly-dark digits: about 15-16 dB.
    assert 14.0 < m["psnr_noisy"] < 18.0


def _constant_decoder_vae(p, z_mean_bias, z_log_var_bias):
    """A DenseVAE whose decoder ignores z (outputs p) and whose q(z|x) is fixed."""
    import kerasae

    model = kerasae.DenseVAE(hidden_units=(), latent_dim=2, input_shape=(4, 4, 1), seed=0)
    enc, dec = model.encoder, model.decoder
    for layer, bias in (("z_mean", z_mean_bias), ("z_log_var", z_log_var_bias)):
        kernel = enc.get_layer(layer).get_weights()[0]
        enc.get_layer(layer).set_weights([np.zeros_like(kernel), np.asarray(bias, "float32")])
    kernel = dec.get_layer("reconstruction").get_weights()[0]
    logits = np.log(p / (1 - p)).reshape(-1).astype("float32")
    dec.get_layer("reconstruction").set_weights([np.zeros_like(kernel), logits])
    return model


@pytest.fixture(scope="module")
def pixels():
    rng = np.random.default_rng(7)
    x = rng.uniform(size=(30, 4, 4, 1)).astype("float32")
    p = rng.uniform(0.1, 0.9, size=(4, 4, 1))
    bce = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(1, 2, 3))
    return x, p, bce


def test_vae_bound_has_closed_form_with_a_constant_decoder(pixels):
    x, p, bce = pixels
    mu, log_var = np.array([0.3, -0.2]), np.array([-0.2, 0.1])
    model = _constant_decoder_vae(p, mu, log_var)
    kl = -0.5 * np.sum(1 + log_var - mu ** 2 - np.exp(log_var))
    for samples in (1, 3):
        bound = ev.vae_bound(model, x, samples=samples, seed=1)
        np.testing.assert_allclose(bound["reconstruction_nll"], bce, rtol=1e-5)
        np.testing.assert_allclose(bound["kl"], kl, rtol=1e-5)
        np.testing.assert_allclose(bound["neg_elbo"], bce + kl, rtol=1e-5)


def test_importance_sampled_nll_is_exact_when_q_is_the_prior(pixels):
    # log p(z) - log q(z|x) = 0 for every sample, so the estimate is -log p(x|z) exactly.
    x, p, bce = pixels
    model = _constant_decoder_vae(p, [0.0, 0.0], [0.0, 0.0])
    np.testing.assert_allclose(ev.importance_sampled_nll(model, x, samples=5, seed=0), bce,
                               rtol=1e-5)


def test_importance_sampled_nll_converges_to_the_true_nll(pixels):
    # The true NLL is the BCE (the decoder ignores z); a wrong log-density
    # normalisation would show up as a constant offset.
    x, p, bce = pixels
    model = _constant_decoder_vae(p, [0.3, -0.2], [-0.2, 0.1])
    est = ev.importance_sampled_nll(model, x, samples=4000, seed=0)
    np.testing.assert_allclose(est, bce, atol=0.02)
    elbo = ev.vae_bound(model, x, seed=0)["neg_elbo"]
    assert np.all(est <= elbo + 1e-9)


def test_vae_numbers_are_seeded_and_independent_of_batch_size(digits):
    model = build_tiny("conv_vae")
    a = ev.evaluate_model(model, digits, batch_size=64)["metrics"]
    b = ev.evaluate_model(model, digits, batch_size=250)["metrics"]
    for key in ("neg_elbo", "kl", "reconstruction_nll", "nll_is"):
        assert a[key] == pytest.approx(b[key], rel=1e-6)
    assert a["nll_is"] <= a["neg_elbo"]
    c = ev.evaluate_model(model, digits, seed=1)["metrics"]
    assert c["nll_is"] != a["nll_is"]


def test_vae_metrics_need_a_vae(digits):
    with pytest.raises(TypeError, match="not a variational autoencoder"):
        ev.vae_bound(build_tiny("conv_ae"), digits[:4])


def test_unknown_setting_is_refused(digits):
    with pytest.raises(TypeError, match="Received: nll_sample=3"):
        ev.evaluate_model(build_tiny("conv_ae"), digits[:4], nll_sample=3)
