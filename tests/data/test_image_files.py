"""Image files that lie, turn, bomb or vanish: the one decoder of every route.

References are numpy arrays the tests draw themselves (rotations by `np.rot90`,
palette colours by hand), never kerasae's reader; folders (`kerasae.data.folder`)
and file lists (`kerasae.data.image_files`, the uses' `--images`) must agree.
"""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from kerasae import data
from kerasae.data.source import DataError
from tests.helpers import ENV, REPO


def _pattern(h, w):
    """A uint8 RGB image with no symmetry: every rotation or flip shows."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(1, w - 1), y * 255 // max(1, h - 1),
                     (x + 2 * y) % 256], axis=-1).astype("uint8")


def _with_orientation(array, path, orientation):
    """Saves `array` as it must be STORED so that EXIF `orientation` shows it upright."""
    stored = {1: array, 3: np.rot90(array, 2), 6: np.rot90(array, 1), 8: np.rot90(array, -1)}
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(stored[orientation])).save(path, exif=exif)


def _both_routes(folder, **options):
    """The images of a folder read by the folder route and by the file-list route."""
    a = data.folder(folder, **options).numpy()
    b = data.image_files([folder], **options).numpy()
    np.testing.assert_array_equal(a, b)
    return a


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_on_every_route(tmp_path, orientation):
    upright = _pattern(6, 10)
    _with_orientation(upright, tmp_path / "phone.png", orientation)
    got = _both_routes(tmp_path)
    np.testing.assert_array_equal(got[0], upright / np.float32(255))
    # The header's size is the upright one: a sized read crops the upright image.
    assert data.folder(tmp_path, image_size=(6, 6)).image_shape == (6, 6, 3)
    np.testing.assert_array_equal(data.folder(tmp_path, image_size=(6, 6)).numpy()[0],
                                  upright[:, 2:8] / np.float32(255))


@pytest.mark.parametrize("orientation", [2, 4, 5, 6, 7, 8])
def test_every_exif_orientation_of_a_tiff_and_a_png_is_upright_with_its_header_size(
        tmp_path, orientation):
    """TIFF's reader turns the image itself (and reports the upright size); other formats
    are turned by kerasae: both must come out upright, sized as upright."""
    upright = _pattern(6, 10)
    stored = {2: upright[:, ::-1], 4: upright[::-1], 5: upright.transpose(1, 0, 2),
              6: np.rot90(upright, 1), 7: upright[::-1, ::-1].transpose(1, 0, 2),
              8: np.rot90(upright, -1)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    for fmt in ("tiff", "png"):
        Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / f"a.{fmt}", exif=exif)
    src = data.folder(tmp_path)  # one size for both: the headers agree on the upright size
    assert src.image_shape == (6, 10, 3)
    for got in src.numpy():
        np.testing.assert_array_equal(got, upright / np.float32(255))
    sized = data.folder(tmp_path, image_size=(3, 5), resize="stretch").numpy()
    np.testing.assert_array_equal(sized[0], sized[1])


def test_an_exif_rotated_jpeg_comes_out_upright(tmp_path):
    upright = np.zeros((16, 32, 3), "uint8")
    upright[:, :16] = (250, 10, 10)  # red left half, blue right half
    upright[:, 16:] = (10, 10, 250)
    _with_orientation(upright, tmp_path / "phone.jpg", 6)
    got = _both_routes(tmp_path)[0] * 255
    assert got.shape == (16, 32, 3)
    assert np.abs(got[:, :12] - (250, 10, 10)).max() < 12
    assert np.abs(got[:, 20:] - (10, 10, 250)).max() < 12


def test_palette_bmp_decodes_to_its_colours(tmp_path):
    rgb = np.zeros((4, 6, 3), "uint8")
    rgb[:, :3] = (255, 0, 0)
    rgb[:, 3:] = (0, 0, 255)
    pal = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=2)
    pal.save(tmp_path / "pal.bmp")
    assert Image.open(tmp_path / "pal.bmp").mode == "P"  # a real 8-bit palette file
    got = _both_routes(tmp_path)[0]
    np.testing.assert_array_equal(got, rgb / np.float32(255))


def test_a_jpeg_whose_header_lies_about_its_size_is_a_bad_file(tmp_path):
    good = io.BytesIO()
    Image.fromarray(_pattern(16, 16)).save(good, "JPEG", quality=90)
    raw = bytearray(good.getvalue())
    sof = raw.index(b"\xff\xc0")
    raw[sof + 5:sof + 9] = (9000).to_bytes(2, "big") * 2  # height, width
    sos = raw.index(b"\xff\xda")  # the header ends with the start-of-scan segment
    cut = sos + 2 + int.from_bytes(raw[sos + 2:sos + 4], "big") + 10
    (tmp_path / "liar.jpg").write_bytes(bytes(raw[:cut]))  # ~330 bytes, as in the issue
    Image.fromarray(_pattern(16, 16)).save(tmp_path / "fine.png")
    with Image.open(tmp_path / "liar.jpg") as im:
        assert im.size == (9000, 9000)  # the header claims 81 megapixels
    with pytest.raises(DataError, match=r"liar\.jpg' claims 9000x9000 pixels in \d+ bytes.*"
                                        r"skip_bad=True"):
        data.folder(tmp_path, image_size=16)  # from its header, before any decoding
    kept = data.folder(tmp_path, image_size=16, skip_bad=True)
    assert [os.path.basename(f) for f in kept.files] == ["fine.png"]


def test_a_complete_jpeg_whose_header_claims_a_huge_size_is_a_bad_file(tmp_path):
    """Cut or not, 9000x9000 pixels cannot fit in a few hundred bytes: libjpeg would fill
    the image with grey; kerasae names the file."""
    good = io.BytesIO()
    Image.fromarray(_pattern(16, 16)).save(good, "JPEG", quality=90)
    raw = bytearray(good.getvalue())
    sof = raw.index(b"\xff\xc0")
    raw[sof + 5:sof + 9] = (9000).to_bytes(2, "big") * 2
    assert raw.endswith(b"\xff\xd9")  # the end-of-image marker is still there
    (tmp_path / "liar.jpg").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"liar\.jpg' claims 9000x9000 pixels in \d+ bytes"):
        data.folder(tmp_path)
    os.symlink(tmp_path / "gone.png", tmp_path / "link.png")
    with pytest.raises(DataError, match=r"link\.png' is a broken symbolic link"):
        data.folder(tmp_path)


def test_every_bad_file_is_listed_with_its_reason(tmp_path):
    Image.fromarray(_pattern(8, 8)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_text("not a png")
    (tmp_path / "c.jpg").write_bytes(b"\xff\xd8\xff\xe0 garbage")
    with pytest.raises(DataError, match=r"2 image file\(s\).*b\.png' is not an image file.*"
                                        r"c\.jpg' has a damaged header"):
        data.folder(tmp_path)


def test_bad_headers_and_truncated_data_are_listed_together_in_one_run(tmp_path):
    """A damaged header is found when the folder is opened, a truncated JPEG only when it
    is decoded: both in one message, not one per run."""
    for i in range(3):
        Image.fromarray(_pattern(64, 64)).save(tmp_path / f"{i}.png")
    (tmp_path / "b.png").write_text("not a png")
    whole = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype="uint8")
    Image.fromarray(noise).save(whole, "JPEG", quality=90)
    (tmp_path / "cut.jpg").write_bytes(whole.getvalue()[:len(whole.getvalue()) * 2 // 3])
    with pytest.raises(DataError, match=r"2 image file\(s\).*b\.png' is not an image file.*"
                                        r"cut\.jpg' could not be decoded.*Received: files=5"):
        data.folder(tmp_path)


def test_files_that_are_not_images_are_said_once(tmp_path, capsys):
    for i in range(2):
        Image.fromarray(_pattern(8, 8)).save(tmp_path / f"{i}.png")
    (tmp_path / "README.md").write_text("photos of the garden")
    (tmp_path / "logo.svg").write_text("<svg/>")
    (tmp_path / ".DS_Store").write_text("hidden")
    assert len(data.folder(tmp_path)) == 2
    data.folder(tmp_path)  # again: not said twice
    out = capsys.readouterr().out
    assert out.count("kerasae: left out") == 1
    assert "left out 2 file(s)" in out and "'README.md', 'logo.svg'" in out
    assert "DS_Store" not in out


def test_a_deleted_file_is_named_as_missing_not_undecodable(tmp_path):
    for i in range(3):
        Image.fromarray(_pattern(8, 8)).save(tmp_path / f"{i}.png")
    src = data.folder(tmp_path)
    os.remove(tmp_path / "1.png")
    with pytest.raises(DataError, match=r"1\.png' is missing \(deleted or moved since"):
        src.numpy()
    import tensorflow as tf

    with pytest.raises(tf.errors.OpError, match=r"1\.png' is missing"):
        next(iter(src.dataset(3, shuffle=False)))  # tf.data's error carries the reason
    explained = src.explain_error(RuntimeError("the pipeline's error"))
    assert isinstance(explained, DataError) and "1.png' is missing" in str(explained)


def test_a_file_name_that_is_not_utf8_is_read(tmp_path):
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: not valid UTF-8
    Image.fromarray(_pattern(8, 8)).save(os.path.join(tmp_path, name))
    Image.fromarray(_pattern(8, 8)[::-1]).save(tmp_path / "z.png")
    src = data.folder(tmp_path, skip_bad=True)
    assert len(src) == 2
    x = next(iter(src.dataset(2, shuffle=False))).numpy()
    np.testing.assert_array_equal(x[0], _pattern(8, 8) / np.float32(255))


def _run(code, timeout=120):
    """`code` in a fresh Python; `(return code, stdout + stderr, its peak RSS in MB)`."""
    # VmHWM: the peak of this process's own memory (ru_maxrss would carry over the
    # parent's peak from before the exec).
    report = ("import atexit, sys\n"
              "atexit.register(lambda: print('PEAK_RSS_KB', [l.split()[1] for l in "
              "open('/proc/self/status') if l.startswith('VmHWM')][0], file=sys.stderr))\n")
    p = subprocess.run([sys.executable, "-c", report + code], cwd=REPO, env=ENV,
                       capture_output=True, text=True, timeout=timeout)
    out = p.stdout + p.stderr
    peaks = [int(line.split()[1]) for line in out.splitlines() if line.startswith("PEAK_RSS_KB")]
    return p.returncode, out, (peaks[-1] / 1024 if peaks else float("nan"))


def test_a_fifo_named_png_never_blocks_the_reader(tmp_path):
    Image.fromarray(_pattern(8, 8)).save(tmp_path / "a.png")
    os.mkfifo(tmp_path / "pipe.png")
    code = (f"from kerasae import data\n"
            f"src = data.folder({str(tmp_path)!r}, skip_bad=True)\n"
            f"print(len(src))\n"
            f"data.folder({str(tmp_path)!r})\n")
    rc, out, _ = _run(code, timeout=60)  # the old reader waited for a writer forever
    assert rc == 1 and out.splitlines()[0] == "kerasae: skipped 1 image file(s) of " \
        f"{str(tmp_path)!r} that cannot be read ('pipe.png' is not a regular file (a fifo, " \
        "socket or device)); 1 left."
    assert "pipe.png' is not a regular file" in out


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    """Four 10,010 x 10,010 PNGs (100.2 megapixels) of about 100 KB each, one size over
    the default budget, beside one ordinary photo."""
    folder = tmp_path_factory.mktemp("bombs")
    Image.new("L", (10_010, 10_010)).save(folder / "bomb0.png")
    for i in range(1, 4):
        (folder / f"bomb{i}.png").write_bytes((folder / "bomb0.png").read_bytes())
    Image.fromarray(_pattern(40, 40)).save(folder / "photo.png")
    return folder


def test_a_decompression_bomb_is_refused_from_its_header(bombs):
    assert os.path.getsize(bombs / "bomb0.png") < 200_000
    with pytest.raises(DataError, match=r"4 image file\(s\).*bomb0\.png' is 10010x10010 "
                                        r"\(100 megapixels\), over the pixel budget of "
                                        r"100 megapixels: a decompression bomb.*--max-pixels"):
        data.folder(bombs, image_size=32)
    src = data.folder(bombs, image_size=32, skip_bad=True)
    assert [os.path.basename(f) for f in src.files] == ["photo.png"]
    raised = data.image_files([bombs / "bomb0.png"], image_size=32, max_pixels=101_000_000)
    np.testing.assert_array_equal(raised.numpy(), np.zeros((1, 32, 32, 1), "float32"))


def test_training_on_a_folder_of_bombs_stays_small_and_says_why(bombs, tmp_path):
    code = (f"import sys; from kerasae import cli\n"
            f"sys.exit(cli.main(['train', 'conv_ae', '--dataset', {str(bombs)!r}, "
            f"'--image-size', '32', '--epochs', '1', '--out', {str(tmp_path / 'run')!r}]))")
    rc, out, peak = _run(code)
    assert rc == 1 and "Traceback" not in out and "DecompressionBomb" not in out
    assert "a decompression bomb" in out and "--max-pixels" in out
    assert peak < 1200, peak  # the old reader decoded them: 5.9 GB for four 13k x 13k PNGs


def test_large_photos_are_read_at_the_models_size_not_held_whole(tmp_path):
    """Thirty 12-megapixel JPEGs through `kerasae features --images`: each is decoded at
    1/8 scale (libjpeg) and sized to 28x28 as it is read."""
    photo = Image.fromarray(_pattern(3000, 4000)).resize((4000, 3000))
    photo.save(tmp_path / "p00.jpg", quality=80)
    for i in range(1, 30):
        os.link(tmp_path / "p00.jpg", tmp_path / f"p{i:02d}.jpg")
    code = (f"import sys; from kerasae import cli\n"
            f"sys.exit(cli.main(['features', '--model', 'conv_ae_fashion_mnist', '--images', "
            f"{str(tmp_path)!r}, '--out', {str(tmp_path / 'out')!r}]))")
    rc, out, peak = _run(code, timeout=300)
    assert rc == 0, out
    assert "inputs: 30 image file(s)" in out
    assert peak < 1200, peak  # the old reader held them all at full size: 4.9 GB


def test_a_link_back_to_the_folder_is_not_a_class_and_a_bomb_is_said_once(tmp_path):
    Image.fromarray(_pattern(8, 8)).save(tmp_path / "a.png")
    os.symlink(".", tmp_path / "all")  # a loop, not a class folder
    assert len(data.folder(tmp_path)) == 1
    for i in range(3):
        Image.fromarray(_pattern(40, 40)).save(tmp_path / f"big{i}.png")
    with pytest.raises(DataError) as e:
        data.folder(tmp_path, max_pixels=1000)
    message = str(e.value)
    assert "'big0.png' is 40x40 (0.0016 megapixels), over the pixel budget of 0.001 " \
           "megapixels" in message.replace(str(tmp_path) + os.sep, "")
    assert message.count("Raise the pixel budget") == 1
