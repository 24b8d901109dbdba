"""The 20-photo protocol of `tae_flux2`'s card (`kerasae.benchmarks.photos`)."""

import os
import re

import numpy as np
import pytest

from kerasae import zoo
from kerasae.benchmarks import photos
from tests.models.test_convert import DECODER, ENCODER, needs_taef2

needs_photos = pytest.mark.skipif(
    not os.path.isdir(photos.MATE_NATURE),
    reason=f"needs the nature photos of mate-backgrounds in {photos.MATE_NATURE} "
           "(apt-get install mate-backgrounds)")


def _card_rows():
    """`{photo: (psnr, psnr_8bit)}` of the card's per-photo table."""
    entry = zoo.read_index(zoo.shipped_root())["presets"]["tae_flux2"]
    path = os.path.join(zoo.shipped_root(), *entry["path"].split("/"), "README.md")
    section = open(path, encoding="utf-8").read().split("## Per photo", 1)[1].split("\n## ")[0]
    return {m[1]: (float(m[2]), float(m[3]))
            for m in re.finditer(r"^\| (\S+) \| ([\d.]+) \| ([\d.]+) \|$", section, re.M)}


def test_psnr_and_eight_bit_codes_by_hand():
    x, y = np.zeros((4, 4, 3), "float32"), np.full((4, 4, 3), 0.1, "float32")
    assert photos.psnr(x, y) == pytest.approx(20.0)  # MSE 0.01
    z = np.array([-4.0, -3.0, 0.0, 1.0, 3.0, 9.0], "float32")
    # q = round(255 * clip(z / 6 + 0.5)) / 255, back by (q - 0.5) * 6
    expected = [(round(255 * min(max(v / 6 + 0.5, 0), 1)) / 255 - 0.5) * 6 for v in z]
    np.testing.assert_allclose(photos.eight_bit(z), expected, atol=1e-6)
    assert photos.eight_bit(z)[2] == pytest.approx(3 / 255, abs=1e-6)  # 0 lands on 128/255


@needs_photos
def test_the_protocol_reads_the_twenty_photos_as_stated():
    pytest.importorskip("skimage", reason="the photos are scikit-image's and scikit-learn's")
    images = dict(photos.photos())
    assert len(images) == 20 and len(_card_rows()) == 20 and set(images) == set(_card_rows())
    for name, x in images.items():
        assert x.dtype == np.float32 and x.shape[2] == 3 and 0 <= x.min() and x.max() <= 1
        assert x.shape[0] % 16 == 0 and x.shape[1] % 16 == 0
    assert images["Storm.jpg"].shape == (512, 512, 3)
    assert images["astronaut"].shape == (512, 512, 3) and images["china.jpg"].shape == (
        416, 640, 3)


@pytest.mark.slow
@needs_taef2
@needs_photos
def test_the_card_figures_reproduce_on_three_of_the_photos():
    pytest.importorskip("skimage", reason="the photos are scikit-image's and scikit-learn's")
    from kerasae.models.convert import tiny_ae_from_pth

    rows, chosen = _card_rows(), ("chelsea", "rocket", "Storm.jpg")
    images = [(n, x) for n, x in photos.photos() if n in chosen]
    measured = photos.round_trips(tiny_ae_from_pth(ENCODER, DECODER), images)
    for name in chosen:
        assert (measured[name]["psnr"], measured[name]["psnr_8bit"]) == pytest.approx(
            rows[name], abs=0.002), name
    mean = np.mean([rows[n][0] for n in rows])
    assert mean == pytest.approx(32.95, abs=0.05)  # the figure, measured in PyTorch


@pytest.mark.slow
@needs_taef2
@needs_photos
def test_the_codec_decodes_the_cards_eight_bit_figure_beside_jpeg_at_its_psnr():
    pytest.importorskip("skimage", reason="the photos are scikit-image's and scikit-learn's")
    from kerasae.models.convert import tiny_ae_from_pth

    images = [(n, x) for n, x in photos.photos() if n == "chelsea"]
    rows = photos.codec_figures(tiny_ae_from_pth(ENCODER, DECODER), images)["images"]
    got = rows["chelsea"]
    assert got["psnr"] == pytest.approx(_card_rows()["chelsea"][1], abs=0.002)
    assert 0 < got["bpp"] < 8 * 32 / 64  # below the unpacked 8-bit code's 4 bits a pixel
    assert abs(got["jpeg_psnr"] - got["psnr"]) < 1.0 and got["jpeg_scan_bpp"] < got["jpeg_bpp"]
