"""Arrays (in memory and memory-mapped), a user's tf.data pipelines, validation in every form."""

import numpy as np
import pytest
import tensorflow as tf

from kerasae import data
from kerasae.data.source import DataError

RNG = np.random.default_rng(0)
IMAGES = (RNG.uniform(size=(50, 6, 5, 3)) * 255).astype("uint8")
LABELS = np.arange(50) % 4


def rows(ds):
    return np.concatenate([b.numpy() if not isinstance(b, tuple) else b[0].numpy() for b in ds])


def test_npy_is_memory_mapped_and_read_by_index(tmp_path):
    np.save(tmp_path / "x.npy", IMAGES)
    src = data.get_source(str(tmp_path / "x.npy"))
    assert src.route == "memmap" and isinstance(src.images, np.memmap)
    np.testing.assert_array_equal(src.load_batch([7, 3]), IMAGES[[7, 3]])
    got = rows(src.dataset(16, seed=1, epoch=2, drop_remainder=True))
    order = data.epoch_order(50, 16, seed=1, epoch=2, drop_remainder=True)
    np.testing.assert_array_equal(got, IMAGES[order] / np.float32(255))


@pytest.mark.parametrize("bad, phrase", [
    (np.where(np.arange(50)[:, None, None, None] == 7, np.nan, IMAGES / 255.0),
     r"NaN or infinite value\(s\), the first in row 7"),
    (np.transpose(IMAGES, (0, 3, 1, 2)).repeat(2, axis=3), r"channels-first.*np.transpose"),
    (IMAGES.astype("float32"), r"\[0, 1\].*spans \[0, 255\]|spans \[\d"),
], ids=["nan", "channels-first", "range"])
def test_bad_arrays_are_refused_with_the_fix(tmp_path, bad, phrase):
    with pytest.raises(DataError, match=phrase):
        data.from_array(bad)
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(DataError, match=phrase):  # also when memory-mapped
        data.get_source(str(tmp_path / "bad.npy"))


def test_ragged_npz_names_the_fix(tmp_path):
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.zeros((4, 4)), np.zeros((5, 5))
    np.savez(tmp_path / "ragged.npz", x=ragged)
    with pytest.raises(DataError, match=r"different sizes.*--image-size"):
        data.get_source(str(tmp_path / "ragged.npz"))


@pytest.mark.parametrize("form", ["unbatched", "batched", "pairs", "dict", "float"])
def test_a_users_tf_data_pipeline_in_every_form(form):
    x = IMAGES.astype("float32") / 255 if form == "float" else IMAGES
    ds = {"unbatched": tf.data.Dataset.from_tensor_slices(x),
          "batched": tf.data.Dataset.from_tensor_slices(x).batch(7),
          "pairs": tf.data.Dataset.from_tensor_slices((x, LABELS)).batch(9),
          "dict": tf.data.Dataset.from_tensor_slices({"image": x, "label": LABELS}),
          "float": tf.data.Dataset.from_tensor_slices(x).batch(5)}[form]
    src = data.get_source(ds)
    assert src.route == "tf.data" and len(src) == 50 and src.image_shape == (6, 5, 3)
    assert (src.labels is not None) == (form in ("pairs", "dict"))
    # The user's order, re-batched to the global batch; two pipelines split it by rows.
    got = rows(src.dataset(10, drop_remainder=True))
    np.testing.assert_allclose(got, IMAGES / 255.0, atol=1e-7)
    parts = [rows(src.dataset(10, shard=(k, 1, 5))) for k in (0, 1)]
    rebuilt = np.stack([p.reshape(5, 5, 6, 5, 3) for p in parts], axis=1).reshape(got.shape)
    np.testing.assert_array_equal(rebuilt, got)
    if src.labels is not None:
        np.testing.assert_array_equal(src.labels, LABELS)
        _, y = next(iter(src.dataset(10, with_labels=True)))
        np.testing.assert_array_equal(y.numpy(), LABELS[:10])


def test_a_pipeline_without_a_fixed_size_or_a_repeating_one_is_refused():
    ragged = tf.data.Dataset.from_generator(
        lambda: (np.zeros((h, h, 3), "uint8") for h in (4, 5)),
        output_signature=tf.TensorSpec((None, None, 3), tf.uint8))
    with pytest.raises(DataError, match=r"no fixed size \(\(None, None, 3\)\)"):
        data.get_source(ragged)
    # PNGs decoded in the pipeline: one image of unknown size each, said as such
    pngs = tf.data.Dataset.from_tensor_slices(IMAGES[:4]).map(tf.io.encode_png)
    with pytest.raises(DataError, match=r"no fixed size \(\(None, None, 3\)\).*resize"):
        data.get_source(pngs.map(lambda b: tf.io.decode_png(b, channels=3)))
    decoded = pngs.map(lambda b: tf.ensure_shape(tf.io.decode_png(b, channels=3), IMAGES.shape[1:]))
    np.testing.assert_allclose(data.get_source(decoded).numpy(), IMAGES[:4] / 255, atol=1e-6)
    with pytest.raises(DataError, match="infinite"):
        data.get_source(tf.data.Dataset.from_tensor_slices(IMAGES).repeat())


def test_validation_in_every_form(tmp_path):
    np.savez(tmp_path / "val.npz", x=IMAGES[:8])
    arrays = (IMAGES, LABELS)
    train, val = data.train_and_validation(arrays, validation=str(tmp_path / "val.npz"))
    assert len(train) == 50 and len(val) == 8
    _, val = data.train_and_validation(arrays, validation=IMAGES[:5])
    assert len(val) == 5
    train, val = data.train_and_validation(arrays, validation=0.2, seed=1)
    assert (len(train), len(val)) == (40, 10)
    assert not set(train.indices) & set(val.indices)
    _, val = data.train_and_validation(arrays, validation=tf.data.Dataset.from_tensor_slices(
        IMAGES[:3]))
    assert len(val) == 3
    for none in (None, "none"):
        assert data.train_and_validation(arrays, validation=none)[1] is None
    assert data.train_and_validation(arrays, validation="auto")[1] is None  # no test split
    with pytest.raises(DataError, match="has no named splits"):
        data.train_and_validation(arrays, validation="test")
    _, val = data.train_and_validation("digits", validation="auto")
    assert val.split == "test" and len(val) == 360
