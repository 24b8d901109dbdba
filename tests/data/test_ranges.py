"""A warning, once, when images given to a kerasae model fall outside [0, 1]."""

import warnings

import numpy as np
import pytest

import kerasae
from kerasae.data import ranges
from tests.helpers import build_tiny, digits_batch


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(ranges, "_warned", set())


def _tiny(name):
    from kerasae.models import build
    from tests.helpers import tiny_kwargs

    return build("conv_ae", **dict(tiny_kwargs("conv_ae"), name=name))


def _fit(model, data, **kw):
    model.compile(optimizer="adam")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(data, epochs=1, verbose=0, **kw)
        model.fit(data, epochs=1, verbose=0, **kw)
    return [str(w.message) for w in caught]


def test_model_fit_on_8bit_values_warns_once():
    x = digits_batch(64) * 255.0  # 8-bit values as floats: 0..255
    msgs = _fit(build_tiny("conv_ae"), x, batch_size=32)
    assert len(msgs) == 1, msgs
    assert msgs[0].startswith("conv_ae.fit() got images spanning [0, 255], but kerasae models "
                              "take pixels in [0, 1]")
    assert "x / 255.0" in msgs[0]
    assert _fit(_tiny("clean"), digits_batch(64), batch_size=32) == []


def test_tf_data_pipelines_are_checked_in_the_pipeline():
    import tensorflow as tf

    x = digits_batch(64)
    floats = tf.data.Dataset.from_tensor_slices(x * 255.0).batch(16)
    msgs = _fit(_tiny("floats"), floats)
    assert msgs == [
        "floats.fit() got images spanning [0, 255] (in a batch of the dataset), but kerasae "
        "models take pixels in [0, 1]: the loss and the reconstructions will be meaningless. "
        "Divide 8-bit images by 255 (x / 255.0), or give kerasae.fit uint8 arrays, folders or "
        "datasets, which it scales itself."]
    ints = tf.data.Dataset.from_tensor_slices(np.rint(x * 255).astype("uint8")).batch(16)
    assert len([m for m in _fit(_tiny("ints"), ints)
                if "uint8 images" in m]) == 1
    # In range: no warning at all (Keras's "shuffle=True is ignored" included).
    clean = tf.data.Dataset.from_tensor_slices(x).batch(16)
    assert _fit(_tiny("clean"), clean) == []


def test_kerasae_fit_checks_a_float_pipeline():
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(digits_batch(64) * 255.0).batch(16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kerasae.fit("conv_ae", ds, epochs=1, batch_size=16, validation=None, verbose=0,
                    builder_kwargs=dict(filters=(8, 16), latent_dim=8))
    assert [str(w.message)[:60] for w in caught] == [
        "The dataset 'tf.data' got images spanning [0, 255] (in a bat"]


@pytest.mark.parametrize("size", [5, (1 << 20) + 7])  # one chunk, and a chunk and a bit
def test_the_finite_span_is_read_by_chunks_as_numpy_reads_it_whole(size):
    x = np.random.default_rng(0).normal(size=size).astype("float32")
    x[[0, size // 2, -1]] = [np.nan, np.inf, -np.inf]
    lo, hi = ranges._finite_span(x)
    finite = x[np.isfinite(x)]
    assert (lo, hi) == (finite.min(), finite.max())
    assert ranges._finite_span(np.full(3, np.nan, "float32")) == (None, None)
    assert ranges._finite_span(np.array([[3, 200]], "uint8")) == (3, 200)
