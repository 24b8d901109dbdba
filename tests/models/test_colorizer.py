"""The colorizer: any size, BT.601 recombination, saving, and its place beside the families."""

import keras
import numpy as np
import pytest

from kerasae.models import list_builders, registry
from kerasae.models.colorizer import Colorizer, YCbCrToRGB, rgb_to_ycbcr


def _reference_rgb(y, cb, cr):
    """JPEG's (JFIF) YCbCr -> RGB with its published constants, chroma centred on 0."""
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    return np.clip(np.stack([r, g, b], axis=-1), 0, 1)


@pytest.fixture(scope="module", params=[False, True], ids=["local", "global_context"])
def model(request):
    return Colorizer(width=2, depth=3, global_context=request.param)


@pytest.mark.parametrize("size", [(1, 1), (17, 23), (64, 48), (33, 130)],
                         ids=lambda s: f"{s[0]}x{s[1]}")
def test_any_size_in_gives_rgb_of_that_size_in_0_1(model, size):
    grey = np.random.default_rng(0).uniform(0, 1, (2, *size, 1)).astype("float32")
    rgb = model.predict(grey, verbose=0)
    assert rgb.shape == (2, *size, 3)
    assert rgb.min() >= 0 and rgb.max() <= 1


@pytest.mark.parametrize("gain", [1.0, 1.5])
def test_recombination_equals_numpy_bt601(gain):
    rng = np.random.default_rng(1)
    y = rng.uniform(0, 1, (3, 5, 7, 1)).astype("float32")
    cbcr = rng.uniform(-0.3, 0.3, (3, 5, 7, 2)).astype("float32")
    got = keras.ops.convert_to_numpy(YCbCrToRGB(gain)([y, cbcr]))
    want = _reference_rgb(y[..., 0], gain * cbcr[..., 0], gain * cbcr[..., 1])
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_output_keeps_the_input_luminance_where_nothing_clips(model):
    grey = np.full((1, 20, 20, 1), 0.5, "float32")
    rgb = model.predict(grey, verbose=0)[0]
    np.testing.assert_allclose(rgb_to_ycbcr(rgb)[..., 0], 0.5, atol=1e-4)


def test_saves_and_loads_as_keras_in_safe_mode_and_as_weights_h5(model, tmp_path):
    grey = np.random.default_rng(2).uniform(0, 1, (1, 21, 19, 1)).astype("float32")
    want = model.predict(grey, verbose=0)
    model.save(tmp_path / "c.keras")
    loaded = keras.saving.load_model(tmp_path / "c.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(grey, verbose=0), want, atol=1e-6)
    model.save_weights(tmp_path / "c.weights.h5")
    again = Colorizer(**model.builder_config, weights=str(tmp_path / "c.weights.h5"))
    np.testing.assert_allclose(again.predict(grey, verbose=0), want, atol=1e-6)
    assert again.builder_name == "colorizer" and again.builder_config["width"] == 2


def test_exports_to_onnx_with_an_open_height_and_width(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = Colorizer(width=2, depth=3)
    model.predict(np.zeros((1, 8, 8, 1), "float32"), verbose=0)
    model.export(str(tmp_path / "c.onnx"), format="onnx", verbose=False)
    session = ort.InferenceSession(str(tmp_path / "c.onnx"))
    for size in [(37, 53), (1, 1)]:  # 37: padded to 40 and cropped back
        grey = np.random.default_rng(3).uniform(0, 1, (1, *size, 1)).astype("float32")
        got = session.run(None, {session.get_inputs()[0].name: grey})[0]
        np.testing.assert_allclose(got, model.predict(grey, verbose=0), atol=1e-5)


def test_is_no_family_but_a_preset_may_name_it():
    assert "colorizer" not in list_builders()  # the family-wide contracts skip it
    assert registry.model_builder("colorizer") is Colorizer
    with pytest.raises(ValueError, match="Did you mean 'colorizer'"):
        registry.model_builder("colorizr")


def test_refuses_colour_input_shape():
    with pytest.raises(ValueError, match=r"luminance only.*input_shape=\(None, None, 3\)"):
        Colorizer(input_shape=(None, None, 3))
