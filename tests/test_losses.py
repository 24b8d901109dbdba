"""Loss terms against independent numpy code."""

import numpy as np
import pytest

from kerasae import losses
from kerasae.layers import SparsityPenalty

rng = np.random.default_rng(0)


def test_kl_matches_numpy():
    mu = rng.normal(size=(6, 5)).astype("float32")
    log_var = rng.normal(size=(6, 5)).astype("float32")
    var = np.exp(log_var.astype("float64"))
    # KL(N(mu, var) || N(0, 1)) = 0.5 * (var + mu^2 - 1 - log var), per dim.
    expected = 0.5 * (var + mu.astype("float64") ** 2 - 1.0 - log_var).sum(axis=1)
    got = np.asarray(losses.kl_divergence(mu, log_var))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_kl_is_finite_for_extreme_log_variance_in_float16():
    mu = np.zeros((2, 3), "float16")
    log_var = np.array([[500, -500, 0], [60000, 0, 0]], "float16")
    got = np.asarray(losses.kl_divergence(mu, log_var))
    assert np.all(np.isfinite(got))
    # Clamped to [-20, 20]: the first row is KL at log_var 20, -20 and 0.
    expected = 0.5 * (np.exp(20.0) - 1 - 20) + 0.5 * (np.exp(-20.0) - 1 + 20)
    np.testing.assert_allclose(got[0], expected, rtol=1e-5)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_reconstruction_losses_match_numpy(reduction):
    x = rng.uniform(size=(4, 6, 6, 2)).astype("float32")
    x_hat = rng.uniform(0.01, 0.99, size=x.shape).astype("float32")
    reduce = (lambda a: a.reshape(4, -1).sum(1)) if reduction == "sum" else (
        lambda a: a.reshape(4, -1).mean(1))
    mse = reduce((x - x_hat) ** 2)
    bce = reduce(-(x * np.log(x_hat) + (1 - x) * np.log(1 - x_hat)))
    np.testing.assert_allclose(losses.reconstruction_loss(x, x_hat, "mse", reduction), mse,
                               rtol=1e-5)
    np.testing.assert_allclose(losses.reconstruction_loss(x, x_hat, "bce", reduction), bce,
                               rtol=1e-5)


def test_bce_is_finite_at_saturated_outputs():
    x = np.array([[1.0, 0.0]], "float32")
    x_hat = np.array([[0.0, 1.0]], "float32")
    got = float(np.asarray(losses.reconstruction_loss(x, x_hat, "bce"))[0])
    lo, hi = np.float32(1e-7), np.float32(1 - 1e-7)  # the clip, in float32
    np.testing.assert_allclose(got, -np.log(lo) - np.log(np.float32(1) - hi), rtol=1e-5)


def test_kl_sparsity_penalty_matches_numpy():
    h = rng.uniform(0.001, 0.999, size=(32, 10)).astype("float32")
    rho, weight = 0.05, 0.3
    rho_hat = h.astype("float64").mean(axis=0)
    kl = rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))
    layer = SparsityPenalty("kl", weight=weight, target=rho)
    out = layer(h)
    np.testing.assert_array_equal(np.asarray(out), h)  # identity
    np.testing.assert_allclose(float(layer.losses[0]), weight * kl.sum(), rtol=1e-5)


def test_l1_penalty_matches_numpy():
    h = rng.normal(size=(8, 5)).astype("float32")
    layer = SparsityPenalty("l1", weight=0.5)
    layer(h)
    np.testing.assert_allclose(float(layer.losses[0]), 0.5 * np.abs(h).sum(1).mean(),
                               rtol=1e-5)


def test_unknown_loss_names_the_fix():
    with pytest.raises(ValueError, match="Use one of mse, bce, ssim_l1, gaussian. Received: reconstruction='l2'"):
        losses.reconstruction_loss(np.zeros((1, 2)), np.zeros((1, 2)), "l2")


@pytest.mark.parametrize("shape", [(2, 16, 16, 1), (2, 32, 24, 3), (1, 11, 13, 2)],
                         ids=["16x16x1", "32x24x3", "11x13x2"])
def test_ssim_matches_scikit_image(shape):
    structural_similarity = pytest.importorskip(
        "skimage.metrics", reason="the reference SSIM is scikit-image's (a test tool)"
    ).structural_similarity

    x = rng.uniform(size=shape).astype("float32")
    y = np.clip(x + rng.normal(0, 0.1, size=shape), 0, 1).astype("float32")
    expected = [structural_similarity(a, b, data_range=1.0, channel_axis=-1,
                                      gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False) for a, b in zip(x, y)]
    np.testing.assert_allclose(losses.ssim(x, y), expected, atol=1e-5)


def test_ssim_of_images_smaller_than_the_window_follows_the_metric():
    from kerasae.metrics import ssim_per_image

    x = rng.uniform(size=(3, 8, 8, 1)).astype("float32")
    y = rng.uniform(size=x.shape).astype("float32")
    np.testing.assert_allclose(losses.ssim(x, y), ssim_per_image(x, y), atol=1e-5)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_ssim_l1_loss_is_the_weighted_sum_of_its_terms(reduction):
    structural_similarity = pytest.importorskip(
        "skimage.metrics", reason="the reference SSIM is scikit-image's (a test tool)"
    ).structural_similarity

    x = rng.uniform(size=(2, 12, 12, 3)).astype("float32")
    x_hat = rng.uniform(size=x.shape).astype("float32")
    ssim = np.array([structural_similarity(a, b, data_range=1.0, channel_axis=-1,
                                           gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False)
                     for a, b in zip(x, x_hat)])
    expected = 0.84 * (1 - ssim) + 0.16 * np.abs(x - x_hat).reshape(2, -1).mean(1)
    if reduction == "sum":
        expected = expected * 12 * 12 * 3
    got = losses.reconstruction_loss(x, x_hat, "ssim_l1", reduction)
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    assert np.all(np.asarray(losses.reconstruction_loss(x, x, "ssim_l1")) < 1e-5)


def test_ssim_l1_on_records_names_the_fix():
    with pytest.raises(ValueError, match="use 'mse' for records.*Received: shape=\\(2, 5\\)"):
        losses.reconstruction_loss(np.zeros((2, 5)), np.zeros((2, 5)), "ssim_l1")


def test_gaussian_loss_is_the_normal_likelihood_at_its_best_variance():
    from scipy import optimize, stats

    x = rng.uniform(size=(4, 6, 6, 3)).astype("float32")
    x_hat = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1).astype("float32")
    got = np.asarray(losses.reconstruction_loss(x, x_hat, "gaussian"))
    x64, xh64 = x.astype("float64"), x_hat.astype("float64")

    def nll(sigma):  # per image, scipy's normal density
        return -stats.norm.logpdf(x64, xh64, sigma).reshape(4, -1).sum(1)

    best = optimize.minimize_scalar(lambda s: nll(s).sum(), bounds=(1e-3, 1), method="bounded")
    np.testing.assert_allclose(got, nll(best.x), rtol=1e-4)
    mean = np.asarray(losses.reconstruction_loss(x, x_hat, "gaussian", "mean"))
    np.testing.assert_allclose(mean, got / (6 * 6 * 3), rtol=1e-6)
    given = losses.reconstruction_loss(x, x_hat, "gaussian", variance=0.01)  # a model's global one
    np.testing.assert_allclose(given, nll(0.1), rtol=1e-5)
    seen = []  # a function of the squared errors (tf.distribute's global mean) gets them once
    fn = losses.reconstruction_loss(x, x_hat, "gaussian", variance=lambda e: seen.append(
        np.asarray(e)) or 0.01)
    np.testing.assert_allclose(fn, nll(0.1), rtol=1e-5)
    np.testing.assert_allclose(seen[0], (x64 - xh64) ** 2, rtol=1e-5, atol=1e-7)


def test_gaussian_loss_gradient_is_the_error_over_the_variance():
    import tensorflow as tf

    x = rng.uniform(size=(3, 5, 5, 1)).astype("float32")
    x_hat = tf.Variable(np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1).astype("float32"))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(losses.reconstruction_loss(x, x_hat, "gaussian"))
    var = np.mean((x_hat.numpy() - x) ** 2)
    np.testing.assert_allclose(tape.gradient(total, x_hat), (x_hat.numpy() - x) / var,
                               rtol=1e-4, atol=1e-6)


def test_gaussian_loss_of_a_perfect_fit_stays_finite():
    x = rng.uniform(size=(2, 4, 4, 3)).astype("float32")
    got = np.asarray(losses.reconstruction_loss(x, x, "gaussian"))
    expected = 0.5 * 48 * np.log(2 * np.pi * losses.GAUSSIAN_MIN_VARIANCE)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
