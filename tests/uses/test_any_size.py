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
    assert c["count"] == 12 and c["code_dims"] == int(np.prod(codes.shape[1:]))
    decoded = kerasae.uses.decompress(tmp_path / "c" / "images.kae", path).arrays["decoded"]
    np.testing.assert_allclose(decoded, c.arrays["decoded"], atol=1e-6)
    assert decoded.shape == photos.shape
    d = kerasae.uses.denoise(path, photos, out=tmp_path / "d")
    assert d.arrays["denoised"].shape == photos.shape


def test_another_channel_count_is_still_refused(open_model, photos):
    with pytest.raises(ValueError, match="The images are 24x40x1 but .* expects"):
        kerasae.uses.features(open_model[1], photos[..., :1])
