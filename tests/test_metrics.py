"""Image metrics against independent references: hand values, numpy, tf.image.ssim."""

import math

import numpy as np
import pytest

from kerasae import metrics as ev
from tests.helpers import digits_batch


@pytest.fixture(scope="module")
def fashion(fashion_mnist):
    return fashion_mnist[0][:48]


# tf.image.ssim casts to float32 internally, so it agrees to float32 precision.
SSIM_ATOL = 1e-4


def tf_ssim(x, y, filter_size=11):
    """The independent SSIM: TensorFlow's `tf.image.ssim`, same window and constants."""
    import tensorflow as tf

    return tf.image.ssim(tf.constant(x, tf.float64), tf.constant(y, tf.float64), max_val=1.0,
                         filter_size=filter_size, filter_sigma=1.5, k1=0.01, k2=0.03).numpy()


def test_mse_and_psnr_match_hand_values():
    x = np.zeros((2, 4, 4, 1), "float32")
    y = np.full_like(x, 0.1)
    y[1] = 0.3
    np.testing.assert_allclose(ev.mse_per_image(x, y), [0.01, 0.09], rtol=1e-6)
    assert ev.psnr(0.01) == pytest.approx(20.0)
    assert ev.psnr(0.25, max_val=255) == pytest.approx(10 * math.log10(255 ** 2 / 0.25))
    assert ev.psnr(0.0) == float("inf")


def test_psnr_rejects_negative_mse():
    with pytest.raises(ValueError, match="Received: mse=-1"):
        ev.psnr(-1.0)


def test_mismatched_shapes_are_an_error():
    with pytest.raises(ValueError, match="same shape"):
        ev.mse_per_image(np.zeros((2, 4, 4, 1)), np.zeros((2, 4, 5, 1)))


def test_ssim_matches_tf_image_ssim_on_fashion_mnist(fashion):
    rng = np.random.default_rng(0)
    noisy = np.clip(fashion + 0.15 * rng.standard_normal(fashion.shape), 0, 1)
    shifted = np.roll(fashion, 2, axis=2)
    for other in (noisy, shifted, 1.0 - fashion):
        np.testing.assert_allclose(ev.ssim_per_image(fashion, other), tf_ssim(fashion, other),
                                   atol=SSIM_ATOL)


def test_ssim_matches_tf_on_colour_images_and_small_windows():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(5, 16, 13, 3))
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    np.testing.assert_allclose(ev.ssim_per_image(x, y), tf_ssim(x, y), atol=SSIM_ATOL)
    d = digits_batch(16).astype("float64")
    noisy = np.clip(d + 0.1 * rng.standard_normal(d.shape), 0, 1)
    # 8x8 images: the window is capped at the image side.
    np.testing.assert_allclose(ev.ssim_per_image(d, noisy), tf_ssim(d, noisy, filter_size=8),
                               atol=SSIM_ATOL)


def test_ssim_of_identical_images_is_one(fashion):
    np.testing.assert_allclose(ev.ssim_per_image(fashion, fashion), 1.0, atol=1e-12)


def test_gaussian_noise_is_seeded_clipped_and_independent_of_batching(fashion):
    a = ev.gaussian_noise(fashion, 0.2, seed=3)
    np.testing.assert_array_equal(a, ev.gaussian_noise(fashion, 0.2, seed=3))
    assert not np.array_equal(a, ev.gaussian_noise(fashion, 0.2, seed=4))
    assert a.dtype == np.float32 and a.min() >= 0.0 and a.max() <= 1.0
    big = np.tile(fashion, (5, 1, 1, 1))  # 240 images: 3 noise blocks
    np.testing.assert_array_equal(ev.gaussian_noise(big, 0.2, 3)[:200],
                                  ev.gaussian_noise(big[:200], 0.2, 3))
    raw = ev.gaussian_noise(np.zeros((200, 28, 28, 1)), 0.2, seed=0, clip=None)
    assert raw.std() == pytest.approx(0.2, rel=0.01)
    assert abs(raw.mean()) < 0.002
