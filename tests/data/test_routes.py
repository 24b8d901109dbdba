"""Datasets: TFDS and raw-IDX routes agree; damaged, missing and unknown data fail clearly."""

import gzip
import hashlib
import os
import shutil

import numpy as np
import pytest

from kerasae import data
from tests.helpers import FASHION_MNIST_DIR as DEBIAN
from tests.helpers import needs_fashion_mnist as needs_raw


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """A real TFDS fashion_mnist in ArrayRecord files (random access), prepared by TFDS's own
    builder from the raw files."""
    d = tmp_path_factory.mktemp("tfds")
    data.prepare_tfds_from_raw("fashion_mnist", str(d), raw_dir=DEBIAN)
    return str(d)


@pytest.fixture(scope="module")
def tfds_stream_dir(tmp_path_factory):
    """The same in TFRecord files, which TFDS only streams."""
    d = tmp_path_factory.mktemp("tfds_tfrecord")
    data.prepare_tfds_from_raw("fashion_mnist", str(d), raw_dir=DEBIAN, file_format="tfrecord")
    return str(d)


@needs_raw
def test_raw_files_are_verified_on_their_decompressed_content():
    for split, files in data.RAW_DATASETS["fashion_mnist"]["files"].items():
        for stem, sha in files:
            with gzip.open(os.path.join(DEBIAN, stem + ".gz"), "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == sha


@pytest.mark.slow
@needs_raw
def test_tfds_random_access_and_raw_routes_give_identical_examples(tfds_dir):
    import tensorflow_datasets as tfds

    raw = data.get_source("fashion_mnist", "test", raw_dir=DEBIAN, source="raw")
    via_tfds = data.get_source("fashion_mnist", "test", data_dir=tfds_dir, source="tfds")
    assert (raw.route, via_tfds.route) == ("raw", "tfds") and via_tfds.random_access
    assert len(raw) == len(via_tfds) == 10000
    # Reference read straight through TFDS's own data source, independent of kerasae.
    ref = tfds.data_source("fashion_mnist", split="test", data_dir=tfds_dir, download=False)
    for i in (0, 1234, 9999):
        np.testing.assert_array_equal(raw.images[i], ref[i]["image"])
        np.testing.assert_array_equal(via_tfds.load_batch([i])[0], ref[i]["image"])
        assert raw.labels[i] == via_tfds.labels[i] == ref[i]["label"]
    np.testing.assert_array_equal(raw.numpy(), via_tfds.numpy())
    np.testing.assert_array_equal(raw.labels, via_tfds.labels)


@pytest.mark.slow
@needs_raw
def test_tfds_streamed_split_matches_raw_whole_and_sharded(tfds_stream_dir):
    import tensorflow_datasets as tfds

    raw = data.get_source("fashion_mnist", "test[:960]", raw_dir=DEBIAN, source="raw")
    stream = data.get_source("fashion_mnist", "test[:960]", data_dir=tfds_stream_dir,
                             source="tfds")
    assert stream.route == "tfds" and not stream.random_access and len(stream) == 960
    ref = list(tfds.as_numpy(tfds.load("fashion_mnist", split="test[:960]",
                                       data_dir=tfds_stream_dir, shuffle_files=False)))
    np.testing.assert_array_equal(np.stack([r["image"] for r in ref]), raw.images)
    got = np.concatenate([x for _, x in stream.batches(100)])
    np.testing.assert_array_equal(got, raw.numpy())
    np.testing.assert_array_equal(stream.labels, raw.labels)
    # Two input pipelines keep their rows of every global batch of 64 and, put back
    # together, give the one-pipeline order; a seeded shuffle repeats per epoch.
    whole = np.concatenate([b.numpy() for b in stream.dataset(64, seed=3, epoch=2,
                                                              drop_remainder=True)])
    parts = [np.concatenate([b.numpy() for b in stream.dataset(
        64, seed=3, epoch=2, shard=(k, 1, 32))]) for k in (0, 1)]
    rebuilt = np.stack([p.reshape(-1, 32, 28, 28, 1) for p in parts], axis=1)
    np.testing.assert_array_equal(rebuilt.reshape(whole.shape), whole)
    again = np.concatenate([b.numpy() for b in stream.dataset(64, seed=3, epoch=2,
                                                              drop_remainder=True)])
    np.testing.assert_array_equal(again, whole)
    assert not np.array_equal(whole, raw.numpy()[: len(whole)])  # shuffled


@pytest.mark.slow
@needs_raw
def test_split_sizes_and_the_auto_route_prefers_a_prepared_tfds_copy(tfds_dir):
    train = data.get_source("fashion_mnist", "train", data_dir=tfds_dir)
    assert train.route == "tfds" and len(train) == 60000
    offline = data.get_source("fashion_mnist", "train", data_dir=tfds_dir + "/empty",
                              raw_dir=DEBIAN)
    assert offline.route == "raw" and len(offline) == 60000
    np.testing.assert_array_equal(train.load_batch([0, 59999]), offline.images[[0, -1]])


@needs_raw
def test_load_returns_scaled_shuffled_batches():
    kwargs = dict(batch_size=100, seed=1, raw_dir=DEBIAN, source="raw")
    ref = data.get_source("fashion_mnist", "test[:1000]", raw_dir=DEBIAN, source="raw").images
    ref = ref.astype("float32") / np.float32(255)
    # A test split is not shuffled by default: the file's order, scaled to [0, 1].
    plain = np.concatenate([b.numpy() for b in data.load("fashion_mnist", "test[:1000]",
                                                         **kwargs)])
    np.testing.assert_array_equal(plain, ref)
    ds = data.load("fashion_mnist", "test[:1000]", shuffle=True, **kwargs)
    batches = list(ds)
    assert len(batches) == 10 and batches[0].shape == (100, 28, 28, 1)
    assert batches[0].dtype.name == "float32"
    x = np.concatenate([b.numpy() for b in batches])
    # Same examples, other order.
    np.testing.assert_array_equal(np.sort(x.ravel()), np.sort(ref.ravel()))
    assert not np.array_equal(x, ref)
    again = np.concatenate([b.numpy() for b in data.load(
        "fashion_mnist", "test[:1000]", shuffle=True, **kwargs)])
    np.testing.assert_array_equal(x, again)
    # Every pass (a Keras epoch) has its own order of the same examples.
    second = np.concatenate([b.numpy() for b in ds])
    assert not np.array_equal(second, x)
    np.testing.assert_array_equal(np.sort(second.ravel()), np.sort(x.ravel()))


def test_one_pipeline_for_several_epochs_matches_the_per_epoch_orders():
    """`epochs=` chains epochs with their own shuffles, cut to `steps` global batches and
    sharded per input pipeline; reference: numpy permutations of (seed, epoch)."""
    src = data.from_array((np.arange(200 * 4) % 251).astype("uint8").reshape(200, 2, 2, 1))
    batch, steps, seed = 24, 5, 9
    for shard in [None, (0, 1, 24), (1, 2, 6)]:
        ds = src.dataset(batch, seed=seed, epochs=range(2, 5), steps=steps, shard=shard,
                         drop_remainder=True)
        got = np.concatenate([b.numpy() for b in ds])
        index, count, per = shard or (0, 1, batch)
        want = []
        for epoch in (2, 3, 4):
            order = np.random.default_rng([seed, epoch]).permutation(200)[:steps * batch]
            rows = order.reshape(steps, batch)[:, index * count * per:(index + 1) * count * per]
            want.append(src.images[rows.reshape(-1)] / 255.0)
        np.testing.assert_array_equal(got, np.concatenate(want).astype("float32"))
        # The same epoch on its own gives the same batches.
        alone = np.concatenate([b.numpy() for b in src.dataset(
            batch, seed=seed, epoch=3, steps=steps, shard=shard, drop_remainder=True)])
        np.testing.assert_array_equal(alone, want[1].astype("float32"))


def _copy_raw(tmp_path, mutate):
    for name in os.listdir(DEBIAN):
        if name.startswith("t10k"):
            shutil.copy(os.path.join(DEBIAN, name), tmp_path / name)
    mutate(tmp_path)
    return str(tmp_path)


@needs_raw
def test_recompressed_copy_passes(tmp_path):
    def regzip(d):
        path = d / "t10k-images-idx3-ubyte.gz"
        with gzip.open(path, "rb") as f:
            content = f.read()
        os.remove(path)
        (d / "t10k-images-idx3-ubyte").write_bytes(content)  # plain, uncompressed
        with gzip.open(d / "t10k-labels-idx1-ubyte.gz", "rb") as f:
            labels = f.read()
        with gzip.open(d / "t10k-labels-idx1-ubyte.gz", "wb", compresslevel=1) as f:
            f.write(labels)

    src = data.load_raw("fashion_mnist", "test", _copy_raw(tmp_path, regzip))
    assert len(src) == 10000


@needs_raw
def test_damaged_byte_is_refused(tmp_path):
    def flip(d):
        path = d / "t10k-images-idx3-ubyte.gz"
        with gzip.open(path, "rb") as f:
            content = bytearray(f.read())
        content[5000] ^= 0xFF
        with gzip.open(path, "wb") as f:
            f.write(bytes(content))

    with pytest.raises(data.DataError, match="t10k-images-idx3-ubyte.gz does not hold the original data"):
        data.load_raw("fashion_mnist", "test", _copy_raw(tmp_path, flip))


@needs_raw
def test_truncated_file_is_refused_with_the_fix(tmp_path):
    def truncate(d):
        path = d / "t10k-images-idx3-ubyte.gz"
        path.write_bytes(path.read_bytes()[:100_000])

    with pytest.raises(data.DataError, match="t10k-images-idx3-ubyte.gz.*truncated or damaged; re-download"):
        data.load_raw("fashion_mnist", "test", _copy_raw(tmp_path, truncate))


def test_truncated_plain_idx_names_the_file(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    header = bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (4).to_bytes(4, "big") * 2
    path.write_bytes(header + bytes(100))  # 160 promised, 100 present
    with pytest.raises(data.DataError, match="x-idx3-ubyte is truncated"):
        data.read_idx(str(path))


def test_wrong_directory_lists_every_fix(tmp_path, monkeypatch):
    monkeypatch.delenv(data.RAW_ENV, raising=False)
    monkeypatch.setitem(data.RAW_DATASETS["fashion_mnist"], "dirs", ())
    with pytest.raises(data.DataError) as e:
        data.get_source("fashion_mnist", "test", data_dir=str(tmp_path / "tfds"),
                        raw_dir=str(tmp_path / "nowhere"), download=False)
    message = str(e.value)
    assert str(tmp_path / "nowhere") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--raw-dir" in message and "--data-dir" in message


def test_unknown_dataset_name_suggests_the_closest(tmp_path):
    with pytest.raises(data.DataError, match="Unknown dataset 'fashion_mnsit'. Did you mean 'fashion_mnist'"):
        data.get_source("fashion_mnsit", data_dir=str(tmp_path))


def test_digits_split_is_fixed_and_covers_every_class():
    train, test = data.get_source("digits", "train"), data.get_source("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    assert set(test.labels) == set(range(10))
    assert train.images.dtype == np.uint8 and train.image_shape == (8, 8, 1)
    from sklearn.datasets import load_digits

    ref = load_digits()
    i = int(np.flatnonzero(np.all(ref.images == ref.images[7], axis=(1, 2)))[0])
    assert np.abs(data.get_source("digits", "all").numpy()[i, ..., 0] - ref.images[7] / 16).max() < 1 / 255


def test_arrays_and_npz(tmp_path):
    x = np.random.default_rng(0).uniform(size=(5, 4, 4)).astype("float32")
    src = data.from_array(x, labels=[0, 1, 0, 1, 1])
    assert src.image_shape == (4, 4, 1)
    np.savez(tmp_path / "a.npz", images=x, labels=np.arange(5))
    loaded = data.get_source(str(tmp_path / "a.npz"))
    np.testing.assert_array_equal(loaded.numpy()[..., 0], x)
    np.testing.assert_array_equal(loaded.labels, np.arange(5))
    with pytest.raises(data.DataError, match="Received: min=-0.5, max=2"):
        data.from_array(np.array([[-0.5, 2.0], [0.0, 1.0]], "float32")[None])
    with pytest.raises(data.DataError, match="No such file"):
        data.get_source(str(tmp_path / "missing.npz"))


def test_npz_with_pickled_objects_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(data.DataError, match="without pickles"):
        data.get_source(str(tmp_path / "obj.npy"))
