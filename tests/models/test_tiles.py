"""Tiled mode: overlapping tiles blended (`kerasae.models.tiles`, `TinyAE`'s `tile=`)."""

import logging

import numpy as np
import pytest

from kerasae.models import tiles
from tests.models.test_convert import DECODER, ENCODER, needs_taef2


@pytest.mark.parametrize("size, tile, overlap", [((37, 50), 16, 8), ((64, 64), 32, 0),
                                                 ((20, 90), 24, 16), ((10, 12), 32, 8)])
def test_blending_the_tiles_of_a_pointwise_map_gives_the_map_of_the_whole(size, tile, overlap):
    x = np.random.default_rng(0).uniform(size=(*size, 3)).astype("float32")
    np.testing.assert_allclose(tiles.tiled(lambda t: t * 2 + 1, x, tile, overlap, 1),
                               x * 2 + 1, rtol=1e-6)
    # A 2x nearest upsampling, tile by tile, is the upsampling of the whole.
    up = tiles.tiled(lambda t: t.repeat(2, axis=1).repeat(2, axis=2), x, tile, overlap, 2)
    np.testing.assert_allclose(up, x.repeat(2, axis=0).repeat(2, axis=1), rtol=1e-6)


def test_downsampling_tiles_start_on_the_grid():
    x = np.random.default_rng(1).uniform(size=(48, 72, 2)).astype("float32")

    def pool(t):  # 4x4 means: a tile must start on a multiple of 4 to match the whole
        b, h, w, c = t.shape
        return t.reshape(b, h // 4, 4, w // 4, 4, c).mean(axis=(2, 4))

    np.testing.assert_allclose(tiles.tiled(pool, x, 24, 8, 1 / 4, align=4), pool(x[None])[0],
                               rtol=1e-5)


def test_the_weights_fall_linearly_towards_neighbours_only():
    w = tiles._ramp(8, before=True, after=False, overlap=4)
    np.testing.assert_allclose(w, [0.125, 0.375, 0.625, 0.875, 1, 1, 1, 1])
    np.testing.assert_allclose(tiles._ramp(6, False, True, 2), [1, 1, 1, 1, 0.75, 0.25])


@pytest.mark.parametrize("tile, overlap, phrase", [
    (100, 16, "multiples of the model's downsampling factor 8"),
    (64, 64, "overlap < tile"), (64, -8, "must be a whole number"), (True, 8, "whole number"),
    (8, 0, "tile >= 16")])
def test_tilings_the_model_cannot_use_are_refused(tile, overlap, phrase):
    with pytest.raises(ValueError, match=phrase):
        tiles.check_tiling(tile, overlap, 8)


def test_tiled_codes_and_images_have_the_untiled_shapes():
    from kerasae.models.families.tiny import TinyAE

    model = TinyAE(input_shape=(None, None, 3), width=8, latent_channels=4, blocks=(1, 1, 1, 1),
                   norm_groups=2, seed=0)
    x = np.random.default_rng(2).uniform(size=(2, 75, 130, 3)).astype("float32")
    z = model.encode(x, tile=32, overlap=16)
    assert z.shape == tuple(np.asarray(model.encode(x)).shape) == (2, 10, 17, 4)
    assert model.reconstruct(x, tile=32, overlap=16).shape == x.shape
    assert model.decode(z, tile=32, overlap=16).shape == (2, 80, 136, 3)


@pytest.mark.slow
@needs_taef2
def test_taef2_in_tiles_is_within_a_tenth_of_a_db_of_the_whole_photo():
    skimage_data = pytest.importorskip("skimage.data", reason="the photo is scikit-image's")
    from kerasae.benchmarks.photos import psnr
    from kerasae.models.convert import tiny_ae_from_pth

    model = tiny_ae_from_pth(ENCODER, DECODER)
    x = (skimage_data.astronaut()[None] / 255.0).astype("float32")  # 512 x 512
    whole = np.clip(np.asarray(model.reconstruct(x)), 0, 1)[0]
    tiled = np.clip(model.reconstruct(x, tile=256, overlap=64), 0, 1)[0]
    # Measured: 31.188 dB whole, 31.213 dB in 4 tiles; tiles vs whole 54.6 dB.
    assert abs(psnr(tiled, x[0]) - psnr(whole, x[0])) < 0.1
    assert psnr(tiled, whole) > 50


def test_an_overlap_without_a_tile_is_refused():
    from kerasae.models.families.tiny import TinyAE

    model = TinyAE(input_shape=(None, None, 3), width=8, latent_channels=4, blocks=(1, 1),
                   norm_groups=2, seed=0)
    with pytest.raises(ValueError, match="overlap applies to tiled mode only: pass tile="):
        model.reconstruct(np.zeros((1, 16, 16, 3), "float32"), overlap=32)


def test_the_overlap_follows_the_tile_unless_given():
    assert tiles.check_tiling(512, None, 8) == (512, 64)
    assert tiles.check_tiling(64, None, 8) == (64, 16)
    assert tiles.check_tiling(16, None, 8) == (16, 0)
    with pytest.raises(ValueError, match=r"^tile must be a multiple .* Received: tile=60$"):
        tiles.check_tiling(60, None, 8)


def test_tiles_of_several_shapes_keep_tensorflows_retracing_warning_quiet(caplog):
    from kerasae.models.families.tiny import TinyAE

    model = TinyAE(input_shape=(None, None, 3), width=8, latent_channels=4, blocks=(1, 1),
                   norm_groups=2, seed=0)
    with caplog.at_level(logging.WARNING):
        for side in range(16, 112, 8):  # each image one tile of its own shape
            x = np.zeros((1, side, side + 8, 3), "float32")
            model.decode(model.encode(x, tile=128), tile=128)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


def test_a_large_photo_is_not_copied_to_pad_or_stack_it():
    from kerasae.models.families import tiny

    photo = np.zeros((16, 24, 3), "float32")
    assert tiny._edge_padded(photo, 8) is photo  # a multiple of 8: no copy
    padded = tiny._edge_padded(photo[:13], 8)
    assert padded.shape == (16, 24, 3) and not np.shares_memory(padded, photo)
    out = np.ones((4, 4, 3), "float32")
    assert np.shares_memory(tiny._stacked([out]), out) and tiny._stacked([out]).shape[0] == 1
    assert tiny._stacked([out, out]).shape == (2, 4, 4, 3)
