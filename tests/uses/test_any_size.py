"""The uses with a model of any size (`tiny_ae`, `input_shape=(None, None, 3)`): the images
given fix the size, and a twin of that size with the same weights does the work."""

import numpy as np
import pytest

import kerasae
from tests.helpers import photo_crops


@pytest.fixture(scope="module")
def open_model(tmp_path_factory):
    model = kerasae.TinyAE(latent_channels=4, width=8, blocks=(1, 1, 1), norm_groups=2,
                           input_shape=(None, None, 3), seed=0)
    path = tmp_path_factory.mktemp("model") / "open.keras"
    model.save(path)
    return model, str(path)


@pytest.fixture(scope="module")
def photos():
    return np.stack(photo_crops(12, seed=4, size=(24, 40))).astype("float32") / 255


def test_features_compress_and_denoise_take_images_of_the_size_given(open_model, photos,
                                                                     tmp_path):
    model, path = open_model
    codes = np.asarray(model.encode(photos))  # the open model itself: the reference
    r = kerasae.uses.features(path, photos, out=tmp_path / "f")
    np.testing.assert_allclose(r.arrays["codes"].reshape(codes.shape), codes, atol=1e-5)
    c = kerasae.uses.compress(path, photos, out=tmp_path / "c", sweep=False, jpeg=False)
    # each image at its own size (a version-3 file; tests/uses/test_compress_sizes.py)
    assert c["count"] == 12 and [s.shape for s in c.arrays["symbols"]] == [
        (codes.shape[1] * codes.shape[2], codes.shape[3])] * 12
    decoded = kerasae.uses.decompress(tmp_path / "c" / "images.kae", path).arrays["decoded"]
    np.testing.assert_allclose(np.stack(decoded), np.stack(c.arrays["decoded"]), atol=1e-6)
    assert np.stack(decoded).shape == photos.shape
    d = kerasae.uses.denoise(path, photos, out=tmp_path / "d")
    assert d.arrays["denoised"].shape == photos.shape


def test_another_channel_count_is_still_refused(open_model, photos):
    with pytest.raises(ValueError, match="The images are 24x40x1 but .* expects"):
        kerasae.uses.features(open_model[1], photos[..., :1])


def test_cli_image_size_reads_a_folder_of_mixed_sizes_for_a_model_of_any_size(open_model,
                                                                            tmp_path, capsys):
    from PIL import Image

    from kerasae import cli

    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, crop in enumerate(photo_crops(4, seed=6, sizes=(30, 60))):
        Image.fromarray(crop).save(folder / f"{i}.png")
    args = ["features", "--model", open_model[1], "--dataset", str(folder)]
    assert cli.main(args + ["--out", str(tmp_path / "a")]) != 0
    assert "--image-size" in capsys.readouterr().err
    assert cli.main(args + ["--image-size", "24x40", "--out", str(tmp_path / "b")]) == 0
    assert np.load(tmp_path / "b" / "codes.npy").shape == (4, 6, 10, 4)  # 1/4 of 24x40
