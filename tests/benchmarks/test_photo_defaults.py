"""The photo benchmark's parts (`kerasae.benchmarks.photo_defaults`) on small real files."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from kerasae.benchmarks import photo_defaults as bench


def _photo_folder(root):
    # Train photos are reds, test photos (val/ and heldout/) blues: a leak would show.
    rng = np.random.default_rng(0)
    for part, channel, n in (("train", 0, 3), ("val", 2, 1), ("heldout", 2, 2)):
        os.makedirs(root / part)
        for i in range(n):
            im = np.zeros((40, 50, 3), "uint8")
            im[..., channel] = rng.integers(100, 256, size=(40, 50))
            Image.fromarray(im).save(root / part / f"{part}_{i}.png")
    return str(root)


def test_crops_split_by_photo(tmp_path):
    train, test = bench.crops(_photo_folder(tmp_path), 16, n_train=30, n_test=10)
    assert train.shape == (30, 16, 16, 3) and test.shape == (10, 16, 16, 3)
    assert train[..., 0].min() > 0.35 and train[..., 1:].max() == 0
    assert test[..., 2].min() > 0.35 and test[..., :2].max() == 0


def test_missing_photos_say_how_to_write_them(tmp_path):
    os.makedirs(tmp_path / "train")
    with pytest.raises(FileNotFoundError, match="kerasae.benchmarks.colorphotos"):
        bench.crops(str(tmp_path), 16)


def test_jpeg_fits_the_byte_budget_at_the_highest_quality():
    images = np.random.default_rng(0).uniform(size=(3, 32, 32, 3)).astype("float32")
    decoded, mean_bytes = bench.jpeg_at_bytes(images, 900)
    assert decoded.shape == images.shape and mean_bytes <= 900
    for image in images:  # one quality step up would not fit (or 95 is reached)
        pil = Image.fromarray(np.round(image * 255).astype("uint8"))
        sizes = []
        for q in range(1, 96):
            buf = io.BytesIO()
            pil.save(buf, "JPEG", quality=q, optimize=True)
            sizes.append(buf.tell())
        assert min(sizes) <= 900
    tiny, tiny_bytes = bench.jpeg_at_bytes(images[:1], 10)  # nothing fits: quality 1
    assert tiny_bytes > 10 and tiny.shape == (1, 32, 32, 3)


def test_frechet_distance_of_gaussians_by_hand():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20000, 2)) * [1.0, 2.0]
    b = rng.standard_normal((20000, 2)) * [3.0, 2.0] + [1.0, 0.0]
    # |mu_a - mu_b|^2 + sum (s_a - s_b)^2 for diagonal covariances: 1 + 4 + 0
    assert bench.frechet(a, b) == pytest.approx(5.0, rel=0.05)
    assert bench.frechet(a, a) == pytest.approx(0.0, abs=1e-6)


def test_image_stats_see_texture_and_colour():
    flat = np.full((4, 16, 16, 3), 0.5, "float32")
    noisy = np.clip(flat + np.random.default_rng(0).normal(0, 0.2, flat.shape), 0, 1)
    f_flat, f_noisy = bench.image_stats(flat), bench.image_stats(noisy)
    assert f_flat.shape == (4, 32)
    np.testing.assert_allclose(f_flat[:, :3], 0.5)  # channel means
    assert np.all(f_noisy[:, 19] > f_flat[:, 19] + 0.05)  # horizontal gradient
