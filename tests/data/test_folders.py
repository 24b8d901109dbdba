"""Image folders: layouts, sizing, colour modes, formats, bad files, caches.

References are independent of kerasae's reader: Pillow decodes the files, numpy
crops and pads, and the raw IDX route (already checked against TFDS) gives the
Fashion-MNIST pixels that PNG folders must reproduce exactly.
"""

import os

import numpy as np
import pytest
from PIL import Image

from kerasae import data
from kerasae.data.source import DataError
from tests.helpers import FASHION_MNIST_DIR, needs_fashion_mnist

FASHION_TEST_PNGS = 2000  # of the 10k test images, written once per session


def save(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture(scope="session")
def fashion_pngs(tmp_path_factory):
    """The first Fashion-MNIST test images as PNGs in class folders named after the labels,
    each file named by its index in the raw (TFDS-order) test split."""
    raw = data.load_raw("fashion_mnist", f"test[:{FASHION_TEST_PNGS}]", FASHION_MNIST_DIR)
    root = tmp_path_factory.mktemp("fashion_pngs")
    for i, (img, y) in enumerate(zip(raw.images, raw.labels)):
        save(str(root / raw.label_names[y].replace("/", "-") / f"{i:05d}.png"), img[..., 0])
    return str(root), raw


@needs_fashion_mnist
def test_folder_route_gives_exactly_the_raw_idx_pixels_and_labels(fashion_pngs):
    root, raw = fashion_pngs
    src = data.get_source(root)
    assert src.route == "folder" and len(src) == len(raw) and src.image_shape == (28, 28, 1)
    # Files are read in sorted order: class folder, then file name (= raw index).
    order = np.array([int(os.path.basename(f)[:5]) for f in src.files])
    names = np.array([os.path.basename(os.path.dirname(f)) for f in src.files])
    np.testing.assert_array_equal(src.numpy(), raw.images[order].astype("float32") / 255)
    folder_names = [src.label_names[y] for y in src.labels]
    raw_names = [raw.label_names[y].replace("/", "-") for y in raw.labels[order]]
    assert folder_names == raw_names == names.tolist()
    assert list(src.label_names) == sorted(set(raw_names))
    # The pipeline yields the same pixels, batch by batch, with the labels.
    x, y = next(iter(src.dataset(64, shuffle=False, with_labels=True)))
    np.testing.assert_array_equal(x.numpy(), raw.images[order[:64]] / np.float32(255))
    np.testing.assert_array_equal(y.numpy(), src.labels[:64])


def photo(seed, h, w, channels=3):
    """A smooth random colour image (JPEG and WebP stay close to it)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, size=(4, 4, channels))
    big = np.asarray(Image.fromarray(small.astype("uint8").squeeze()).resize((w, h),
                                                                             Image.BILINEAR))
    return big.reshape(h, w, channels) if channels == 1 else big


def test_flat_folder_sorted_without_labels(tmp_path):
    for name in ("b.png", "a.png", "c.png"):
        save(str(tmp_path / name), photo(len(name) + ord(name[0]), 10, 12))
    (tmp_path / "notes.txt").write_text("not an image")
    src = data.folder(tmp_path)
    assert [os.path.basename(f) for f in src.files] == ["a.png", "b.png", "c.png"]
    assert src.labels is None and src.image_shape == (10, 12, 3)
    np.testing.assert_array_equal(src.take(1)[0], np.asarray(Image.open(tmp_path / "a.png"))
                                  / np.float32(255))


def test_mixed_sizes_need_image_size_and_name_two_files(tmp_path):
    save(str(tmp_path / "a.png"), photo(1, 10, 12))
    save(str(tmp_path / "b.png"), photo(2, 20, 16))
    with pytest.raises(DataError, match=r"a\.png' is 10x12 but .*b\.png' is 20x16.*"
                                        r"--image-size"):
        data.folder(tmp_path)


def test_crop_and_pad_against_numpy(tmp_path):
    img = photo(3, 40, 60)
    save(str(tmp_path / "wide.png"), img)
    crop = data.folder(tmp_path, image_size=40, resize="crop").numpy()[0]
    np.testing.assert_array_equal(crop, img[:, 10:50] / np.float32(255))  # centred window
    pad = data.folder(tmp_path, image_size=60, resize="pad").numpy()[0]
    np.testing.assert_array_equal(pad, np.pad(img, ((10, 10), (0, 0), (0, 0))) / np.float32(255))
    stretch = data.folder(tmp_path, image_size=(20, 20), resize="stretch").numpy()[0]
    assert stretch.shape == (20, 20, 3)
    assert abs(stretch.mean() - img.mean() / 255) < 0.02


def test_colour_modes_and_formats_against_pillow(tmp_path):
    rgb = photo(4, 24, 32)
    for fmt in ("png", "bmp", "gif", "jpeg", "webp"):
        Image.fromarray(rgb).save(tmp_path / f"img.{fmt}")
    src = data.folder(tmp_path)
    assert src.image_shape == (24, 32, 3)
    for i, path in enumerate(src.files):
        with Image.open(path) as im:
            ref = np.asarray(im.convert("RGB"), dtype="float32") / 255
        got = src.take(len(src))[i]
        # Lossless formats decode identically; JPEG and WebP decoders differ a little.
        tol = 0.0 if path.endswith((".png", ".bmp", ".gif")) else 6 / 255
        assert np.abs(got - ref).max() <= tol + 1e-7, path
    gray = data.folder(tmp_path, color_mode="grayscale").take(1)[0]
    with Image.open(src.files[0]) as im:
        ref = np.asarray(im.convert("L"), dtype="float32")[..., None] / 255
    assert gray.shape == (24, 32, 1) and np.abs(gray - ref).max() <= 1 / 255 + 1e-7
    assert data.folder(tmp_path, color_mode="rgba").image_shape == (24, 32, 4)


def test_grayscale_files_read_as_one_channel(tmp_path):
    save(str(tmp_path / "g.png"), photo(5, 8, 8, channels=1)[..., 0])
    assert data.folder(tmp_path).image_shape == (8, 8, 1)


def test_split_folders_and_class_labels(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cats", "dogs"):
            for i in range(n):
                save(str(tmp_path / split / cls / f"{i}.png"), photo(i, 6, 6))
    train, test = data.get_source(str(tmp_path), "train"), data.get_source(str(tmp_path), "test")
    assert (len(train), len(test)) == (6, 4)
    assert train.label_names == test.label_names == ("cats", "dogs")
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1] and test.labels.tolist() == [0, 0, 1, 1]
    _, val = data.train_and_validation(str(tmp_path), "train", "auto")
    assert len(val) == 4 and val.split == "test"
    with pytest.raises(DataError, match="none for split 'holdout'"):
        data.get_source(str(tmp_path), "holdout")


def test_bad_files_are_named_and_can_be_skipped(tmp_path, capsys):
    for i in range(4):
        save(str(tmp_path / f"{i}.png"), photo(i, 8, 8))
    good = (tmp_path / "1.png").read_bytes()
    (tmp_path / "1.png").write_bytes(good[: len(good) // 2])  # a truncated PNG
    (tmp_path / "9.png").write_text("not a png")
    with pytest.raises(DataError, match=r"9\.png.*--skip-bad"):
        data.folder(tmp_path)  # the header scan already finds the non-image
    (tmp_path / "9.png").unlink()
    src = data.folder(tmp_path)  # a truncated file passes the header scan...
    with pytest.raises(DataError, match=r"1 image file\(s\).*1\.png.*skip_bad=True"):
        src.numpy()  # ...and is named when it fails to decode
    (tmp_path / "9.png").write_text("not a png")
    skipped = data.folder(tmp_path, skip_bad=True)
    assert [os.path.basename(f) for f in skipped.files] == ["0.png", "2.png", "3.png"]
    assert "skipped 2 image file(s)" in capsys.readouterr().out


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no image files"):
        data.get_source(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="No such file or folder: './my_photos/'"):
        data.get_source("./my_photos/")


def test_validation_fraction_is_a_seeded_disjoint_split(tmp_path):
    for i in range(20):
        save(str(tmp_path / f"{i:02d}.png"), photo(i, 6, 6))
    train, val = data.train_and_validation(str(tmp_path), "train", 0.25, seed=3)
    assert (len(train), len(val)) == (15, 5)
    a = {os.path.basename(train.parent.files[i]) for i in train.indices}
    b = {os.path.basename(val.parent.files[i]) for i in val.indices}
    assert not a & b and len(a | b) == 20
    again = data.train_and_validation(str(tmp_path), "train", 0.25, seed=3)[1]
    np.testing.assert_array_equal(again.indices, val.indices)
    np.testing.assert_array_equal(val.numpy(), train.parent.numpy()[val.indices])
    with pytest.raises(DataError, match="has no test/ folder"):
        data.train_and_validation(str(tmp_path), "train", "test")


def test_cache_holds_the_decoded_pixels_and_follows_the_files(tmp_path):
    folder = tmp_path / "imgs"
    for i in range(5):
        save(str(folder / f"{i}.png"), photo(i, 20, 30))
    plain = data.folder(folder, image_size=16)
    cached = data.get_source(str(folder), image_size=16, cache=str(tmp_path / "cache"))
    assert cached.route == "cache" and isinstance(cached.images, np.memmap)
    np.testing.assert_array_equal(cached.numpy(), plain.numpy())
    (path,) = os.listdir(tmp_path / "cache")
    stamp = os.stat(tmp_path / "cache" / path).st_mtime_ns
    data.get_source(str(folder), image_size=16, cache=str(tmp_path / "cache"))
    assert os.stat(tmp_path / "cache" / path).st_mtime_ns == stamp  # read, not rebuilt
    save(str(folder / "5.png"), photo(9, 20, 30))
    grown = data.get_source(str(folder), image_size=16, cache=str(tmp_path / "cache"))
    assert len(grown) == 6 and len(os.listdir(tmp_path / "cache")) == 2
    assert not [n for n in os.listdir(tmp_path / "cache") if n.endswith(".tmp")]


def test_a_validation_folder_is_read_as_the_training_folder(tmp_path):
    for i in range(6):
        save(str(tmp_path / "train" / f"{i}.png"), photo(i, 12, 12))
        save(str(tmp_path / "val" / f"{i}.png"), photo(i + 10, 20, 30))  # larger, RGB
    train, val = data.train_and_validation(str(tmp_path / "train"), "train",
                                           str(tmp_path / "val"))
    assert val.image_shape == train.image_shape == (12, 12, 3)
    # Sized as a folder with image_size=12 is sized: the same pixels.
    np.testing.assert_array_equal(val.numpy(), data.folder(tmp_path / "val",
                                                           image_size=12).numpy())
    np.save(tmp_path / "other.npy", np.zeros((4, 8, 8, 3), "uint8"))
    with pytest.raises(DataError, match=r"validation images of 'other.npy' have shape "
                                        r"\(8, 8, 3\) but the training images \(12, 12, 3\)"):
        data.train_and_validation(str(tmp_path / "train"), "train", str(tmp_path / "other.npy"))


def test_options_that_do_not_apply_are_refused_with_the_reason(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 8, 8, 1), "uint8"))
    with pytest.raises(DataError, match="image_size applies to image folders.*'.*x.npy' holds "
                                        "arrays, used as they are"):
        data.get_source(str(tmp_path / "x.npy"), image_size=28)
    with pytest.raises(DataError, match="is a file, not a folder of images.*get_source"):
        data.folder(str(tmp_path / "x.npy"))
    with pytest.raises(DataError, match=r"fraction must lie between 0 and 1.*validation='1.5'"):
        data.train_and_validation("digits", "train", "1.5")
    with pytest.raises(DataError, match=r"'.*x.npy' has no named splits"):
        data.train_and_validation(str(tmp_path / "x.npy"), "train", "test")
    save(str(tmp_path / "imgs" / "a.png"), photo(0, 8, 8))
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    with pytest.raises(NotADirectoryError, match="cache .--cache. .*cannot be made"):
        data.get_source(str(tmp_path / "imgs"), cache=str(blocker / "cache"))


def test_a_single_file_or_a_name_that_is_no_dataset_is_one_clear_error(tmp_path, monkeypatch):
    """A new user's mistakes: an image file, a typo'd file name, a name with a space.
    Each is a DataError naming what was given (TFDS's own parser raised a ValueError)."""
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (8, 8)).save("g.png")
    with pytest.raises(DataError, match=r"'g.png' is a single file.*put them in a folder"):
        data.get_source("g.png")
    for name in ("x.tif", "some name"):
        with pytest.raises(DataError, match=rf"'{name}' is neither a file or folder that exists"):
            data.get_source(name)
