"""`compress` with a model of any size on photos of several sizes: one version-3 `.kae`
file that keeps each image's size, code shape and name; per-image bits per pixel and
PSNR beside JPEG; old (version 2) files still decode; damaged files are refused."""

import base64
import io
import json
import os
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

import kerasae
from kerasae.uses.codec import kae
from kerasae.uses.codec.container import MAGIC, KaeError
from tests.helpers import photo_crops
from tests.models.test_convert import DECODER, ENCODER, needs_taef2

# (height, width): 30x17 and 21x40 are off a multiple of 8 (the model's factor)
SIZES = ((24, 40), (30, 17), (16, 48), (21, 40))
NAMES = ("a.png", "b.png", "sub/c.png", "sub/d.png")


@pytest.fixture(scope="module")
def open_model(tmp_path_factory):
    """A small untrained `tiny_ae` of any size (factor 8), saved as a `.keras` file."""
    model = kerasae.TinyAE(latent_channels=4, width=8, blocks=(1, 1, 1, 1), norm_groups=2,
                           input_shape=(None, None, 3), seed=0)
    path = tmp_path_factory.mktemp("model") / "open.keras"
    model.save(path)
    return model, str(path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos") / "mixed"
    crops = [photo_crops(1, seed=i, size=s)[0] for i, s in enumerate(SIZES)]
    for name, crop in zip(NAMES, crops):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(crop).save(root / name)
    return str(root), {n: c.astype("float32") / 255 for n, c in zip(NAMES, crops)}


@pytest.fixture(scope="module")
def compressed(open_model, folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("compress") / "out"
    r = kerasae.uses.compress(open_model[1], folder[0], out=out, sweep=False)
    return r, str(out / "images.kae")


def _header_and_payload(data):
    length = struct.unpack("<I", data[9:13])[0]
    return json.loads(data[17:17 + length]), data[17 + length:]


def _floats(text):
    return np.frombuffer(base64.b64decode(text), "<f4")


def _psnr(x, y):
    return 10 * np.log10(1 / np.mean((np.float64(x) - np.float64(y)) ** 2))


def test_one_file_keeps_each_images_size_code_shape_and_name(compressed, folder):
    r, path = compressed
    data = open(path, "rb").read()
    assert data[:8] == MAGIC and data[8] == 3
    header, _ = _header_and_payload(data)
    names = [row["name"] for row in r["images"]]
    assert sorted(names) == sorted(NAMES) and header["names"] == names
    shapes = {n: folder[1][n].shape for n in NAMES}
    assert header["image_shapes"] == [list(shapes[n]) for n in names]
    # 1/8 of the size, rounded up (edge-padded inside the model), 4 code channels
    assert header["code_shapes"] == [[-(-shapes[n][0] // 8), -(-shapes[n][1] // 8), 4]
                                     for n in names]


def test_decoded_pixels_are_the_models_decoder_on_the_dequantized_codes(
        compressed, folder, open_model, tmp_path):
    r, path = compressed
    model = open_model[0]
    header, _ = _header_and_payload(open(path, "rb").read())
    names = header["names"]
    images = [folder[1][n] for n in names]
    # Independently: the encoder on each image, min / max per channel over all of them,
    # 8-bit levels, back, and the decoder (whole multiples of 8) cropped to the image.
    codes = [np.asarray(model.encoder(x[None]))[0] for x in images]
    lo = np.min([c.min(axis=(0, 1)) for c in codes], axis=0)
    hi = np.max([c.max(axis=(0, 1)) for c in codes], axis=0)
    scale = ((hi.astype("float64") - lo) / 255).astype("float32")
    np.testing.assert_array_equal(_floats(header["quantization"]["offset"]), lo)
    np.testing.assert_array_equal(_floats(header["quantization"]["scale"]), scale)
    decoded = kerasae.uses.decompress(path, open_model[1], out=tmp_path / "d")
    assert not (tmp_path / "d" / "decoded.npy").exists()
    for i, (x, c) in enumerate(zip(images, codes)):
        q = np.clip(np.rint((c.astype("float64") - lo) / scale), 0, 255)
        z = (lo + scale * q.astype("float32")).astype("float32")
        expected = np.asarray(model.decoder(z[None]))[0][:x.shape[0], :x.shape[1]]
        got = decoded.arrays["decoded"][i]
        assert got.shape == x.shape
        np.testing.assert_allclose(got, expected, atol=1e-6)
        np.testing.assert_allclose(r.arrays["decoded"][i], expected, atol=1e-6)
        png = np.asarray(Image.open(tmp_path / "d" / "images" / names[i]))
        assert png.shape == x.shape  # at its own size, under its own name
        np.testing.assert_array_equal(png, np.rint(np.clip(got, 0, 1) * 255).astype("uint8"))


def test_bits_per_pixel_psnr_and_jpeg_per_image_against_numpy(compressed, folder):
    r, path = compressed
    data = open(path, "rb").read()
    header, _ = _header_and_payload(data)
    pixels = 0
    for i, row in enumerate(r["images"]):
        x = folder[1][row["name"]]
        h, w = x.shape[:2]
        pixels += h * w
        assert row["bpp"] == pytest.approx(8 * header["payload_sizes"][i] / (h * w))
        assert row["psnr"] == pytest.approx(_psnr(r.arrays["decoded"][i], x), abs=1e-9)
        buf = io.BytesIO()  # JPEG at the quality the row names, by hand
        Image.fromarray(np.rint(x * 255).astype("uint8")).save(
            buf, format="JPEG", quality=row["jpeg_quality"], optimize=True)
        back = np.asarray(Image.open(io.BytesIO(buf.getvalue()))).astype("float32") / 255
        assert row["jpeg_bpp"] == pytest.approx(len(buf.getvalue()) * 8 / (h * w))
        assert row["jpeg_psnr"] == pytest.approx(_psnr(back, x), abs=1e-4)
    assert r["bits_per_pixel"] == pytest.approx(len(data) * 8 / pixels)
    assert r["psnr_db"] == pytest.approx(np.mean([row["psnr"] for row in r["images"]]))
    stored = json.load(open(os.path.join(os.path.dirname(path), "compress.json")))
    assert stored["images"][0]["bpp"] == pytest.approx(r["images"][0]["bpp"])


def test_a_truncated_or_inconsistent_file_is_refused_and_nothing_written(
        compressed, open_model, tmp_path):
    data = open(compressed[1], "rb").read()
    header, payload = _header_and_payload(data)
    cut = tmp_path / "cut.kae"
    for size, phrase in ((len(data) - 7, "truncated"), (40, "truncated")):
        cut.write_bytes(data[:size])
        with pytest.raises(KaeError, match=phrase):
            kerasae.uses.decompress(cut, open_model[1], out=tmp_path / "never")
        assert not (tmp_path / "never").exists()
    blob = json.dumps({**header, "payload_sizes": [len(payload)] + [0] * 3}).encode()
    cut.write_bytes(MAGIC + struct.pack("<BII", 3, len(blob), zlib.crc32(blob)) + blob + payload)
    with pytest.raises(KaeError, match="damaged or truncated: image 1"):
        kerasae.uses.decompress(cut, open_model[1], out=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_a_version_2_file_of_one_size_still_decodes(open_model, folder, tmp_path):
    # Today's writer (unchanged): images of one size, the model fixed to it.
    x = np.stack([photo_crops(1, seed=9 + i, size=(21, 40))[0] for i in range(3)]) / 255.0
    x = x.astype("float32")
    path = tmp_path / "old.kae"
    kae.encode_file(open_model[1], x, path, names=["p.png", "q.png", "r.png"])
    data = path.read_bytes()
    assert data[8] == 2
    header, _ = _header_and_payload(data)
    assert header["image_shape"] == [21, 40, 3]
    r = kerasae.uses.decompress(path, open_model[1], out=tmp_path / "d")
    assert r.arrays["decoded"].shape == (3, 21, 40, 3)
    assert (tmp_path / "d" / "decoded.npy").exists()
    # Reference: its per-dimension quantization, dequantized by hand, decoded, cropped.
    codes = np.asarray(open_model[0].encoder(x))
    flat = codes.reshape(3, -1)
    lo, hi = flat.min(axis=0), flat.max(axis=0)
    scale = ((hi.astype("float64") - lo) / 255).astype("float32")
    scale[~(scale > 0)] = 1
    q = np.clip(np.rint((flat.astype("float64") - lo) / scale), 0, 255).astype("float32")
    z = (lo + scale * q).reshape(codes.shape).astype("float32")
    expected = np.asarray(open_model[0].decoder(z))[:, :21, :40]
    np.testing.assert_allclose(r.arrays["decoded"], expected, atol=1e-6)
    # --tile applies to it too (it was ignored): the model's own tiled decoder
    tiled = kerasae.uses.decompress(path, open_model[1], tile=16)
    np.testing.assert_allclose(tiled.arrays["decoded"],
                               np.asarray(open_model[0].decode(z, tile=16))[:, :21, :40],
                               atol=1e-6)


def test_a_fixed_size_model_keeps_version_2_and_refuses_tiles(folder, tmp_path):
    fixed = kerasae.TinyAE(latent_channels=4, width=8, blocks=(1, 1, 1, 1), norm_groups=2,
                           input_shape=(24, 40, 3), seed=0)
    r = kerasae.uses.compress(fixed, folder[0], out=tmp_path / "c", sweep=False, jpeg=False)
    assert (tmp_path / "c" / "images.kae").read_bytes()[8] == 2
    assert r.arrays["decoded"].shape == (4, 24, 40, 3)  # read at its size (crop), as today
    with pytest.raises(ValueError, match="tile applies to a model of any size"):
        kerasae.uses.compress(fixed, folder[0], tile=64)
    with pytest.raises(ValueError, match="tile applies to a model of any size"):
        kerasae.uses.decompress(tmp_path / "c" / "images.kae", fixed, tile=16)


def test_tiles_encode_and_decode_each_photo_in_tiles(open_model, folder, tmp_path):
    model = open_model[0]
    x = np.concatenate([folder[1]["a.png"]] * 4, axis=1)  # 24x160: several tiles of 128
    r = kerasae.uses.compress(model, [x], out=tmp_path / "c", jpeg=False, sweep=False,
                              tile=128)
    codes = model.encode(x[None], tile=128)  # TinyAE's tiled mode: the reference
    header, _ = _header_and_payload((tmp_path / "c" / "images.kae").read_bytes())
    assert header["code_shapes"] == [list(codes.shape[1:])]
    tiled = kerasae.uses.decompress(tmp_path / "c" / "images.kae", model, tile=128)
    whole = kerasae.uses.decompress(tmp_path / "c" / "images.kae", model)
    np.testing.assert_allclose(tiled.arrays["decoded"][0], r.arrays["decoded"][0], atol=1e-6)
    assert whole.arrays["decoded"][0].shape == x.shape


def test_the_command_prints_each_image_and_the_totals(open_model, folder, tmp_path, capsys):
    from kerasae import cli

    out = tmp_path / "c"
    assert cli.main(["compress", "--model", open_model[1], "--images", folder[0],
                     "--no-sweep", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "sub/d.png | 21x40 |" in text and "bits/pixel in total" in text
    assert "JPEG at equal PSNR, per image:" in text
    assert cli.main(["compress", "--decode", str(out / "images.kae"), "--model",
                     open_model[1], "--out", str(tmp_path / "d")]) == 0
    said = capsys.readouterr().out
    assert "wrote 4 PNG files under images/" in said  # in two folders: the total is said
    # One folder of PNGs: its "wrote" lines count them, the first line does not again.
    flat = [os.path.join(folder[0], n) for n in NAMES if "/" not in n]
    assert cli.main(["compress", "--model", open_model[1], "--images", *flat, "--no-sweep",
                     "--no-jpeg", "--out", str(tmp_path / "f")]) == 0
    capsys.readouterr()
    assert cli.main(["compress", "--decode", str(tmp_path / "f" / "images.kae"), "--model",
                     open_model[1], "--out", str(tmp_path / "g")]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0] == f"decoded {len(flat)} images from {tmp_path / 'f' / 'images.kae'}"
    pngs = sorted(os.listdir(tmp_path / "g" / "images"))
    assert [s for s in said if s.endswith(".png")] == [
        f"wrote {tmp_path / 'g' / 'images' / p}" for p in pngs]
    assert Image.open(tmp_path / "d" / "images" / "sub" / "d.png").size == (40, 21)


def test_mutations_of_a_version_3_file_are_refused_or_decode(compressed, open_model):
    from tests.uses.test_kae_fuzz import SECONDS

    data = open(compressed[1], "rb").read()
    rng, refused, cases = np.random.default_rng(3), 0, 300
    for _ in range(cases):
        b = bytearray(data)
        if rng.integers(2):
            b = b[:rng.integers(0, len(b))]
        else:
            i = rng.integers(len(b))
            b[i] ^= 1 << int(rng.integers(8))
        start = time.perf_counter()
        try:
            images, _ = kae.decode_bytes(bytes(b), open_model[0])
        except KaeError:
            refused += 1
        else:
            assert all(np.isfinite(x).all() for x in images)
        assert time.perf_counter() - start < SECONDS
    assert refused > 0.95 * cases


@needs_taef2  # about 7 s
def test_taef2_codes_photos_of_their_own_sizes_near_its_float_round_trip(tmp_path):
    from kerasae.models.convert import tiny_ae_from_pth

    model = tiny_ae_from_pth(ENCODER, DECODER)
    photos = [photo_crops(1, seed=i, size=size)[0].astype("float32") / 255
              for i, size in enumerate(((120, 200), (97, 131)))]  # 97x131: off 8
    r = kerasae.uses.compress(model, photos, out=tmp_path / "c", sweep=False)
    back = kerasae.uses.decompress(tmp_path / "c" / "images.kae", model).arrays["decoded"]
    for x, row, decoded in zip(photos, r["images"], back):
        assert decoded.shape == x.shape
        whole = np.asarray(model.reconstruct(x[None]))[0]  # float codes, no file
        # 8-bit codes per channel cost a little PSNR (0.04 dB on the 20 photos' mean)
        assert _psnr(whole, x) - 0.3 < row["psnr"] <= _psnr(whole, x) + 0.05
        assert 2.0 < row["bpp"] < 5.0  # 3.35 on the 20 photos
        assert abs(row["jpeg_psnr"] - row["psnr"]) < 1.0


def test_dropped_transparency_is_counted_and_said(open_model, folder, tmp_path, capsys):
    """A PNG with transparency is coded as RGB: compress.json and the summary's last line
    count it (the decoded image is opaque)."""
    from kerasae import cli

    root = tmp_path / "photos"
    root.mkdir()
    rgba = np.dstack([(folder[1]["a.png"] * 255).astype("uint8"),
                      np.full((24, 40), 255, "uint8")])
    rgba[:8, :, 3] = 0  # a transparent band
    Image.fromarray(rgba, "RGBA").save(root / "see_through.png")
    Image.fromarray(rgba[..., :3]).save(root / "opaque.png")
    Image.fromarray(np.dstack([rgba[..., :3], np.full((24, 40), 255, "uint8")]),
                    "RGBA").save(root / "opaque_rgba.png")  # alpha stored, all opaque
    out = tmp_path / "c"
    assert cli.main(["compress", "--model", open_model[1], "--images", str(root),
                     "--no-sweep", "--no-jpeg", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    summary = [ln for ln in lines if not ln.startswith(("wrote ", "skipped ", "note: "))]
    assert summary[-1] == ("transparency: 1 image(s) with transparency coded as RGB, alpha "
                           "dropped (decoded opaque): see_through.png")
    saved = json.loads((out / "compress.json").read_text())
    assert saved["alpha_dropped"]["images"] == 1
    assert saved["alpha_dropped"]["names"] == ["see_through.png"]
    assert "alpha_dropped" not in saved["inputs"]  # said once
    by_name = {row["name"]: row for row in saved["images"]}
    assert by_name["see_through.png"]["psnr"] == pytest.approx(by_name["opaque.png"]["psnr"])
    # read at one size (--image-size) the same is counted and said
    assert cli.main(["compress", "--model", open_model[1], "--images", str(root), "--no-jpeg",
                     "--image-size", "16", "--out", str(tmp_path / "s")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert ("transparency: 1 image(s) with transparency coded as RGB, alpha dropped (decoded "
            "opaque): see_through.png") in lines
    assert "skipped rate-distortion sweep: not measured with a model of any size (each image " \
           "would be coded again at every bit depth)" in lines
    # a model of one size (codes of one shape, .kae version 2) counts and says it too
    from kerasae.uses._compress_sizes import summary_lines

    fixed = kerasae.TinyAE(latent_channels=4, width=8, blocks=(1, 1, 1, 1), norm_groups=2,
                           input_shape=(24, 40, 3), seed=0)
    r = kerasae.uses.compress(fixed, str(root), sweep=False, jpeg=False)
    assert r["alpha_dropped"]["names"] == ["see_through.png"] and r["count"] == 3
    assert summary_lines(r.metrics)[-1] == (
        "transparency: 1 image(s) with transparency coded as RGB, alpha dropped (decoded "
        "opaque): see_through.png")


def test_the_command_says_how_images_were_read_and_tiles_name_only_the_tile(
        open_model, folder, tmp_path, capsys):
    """Tiles of 32 (the overlap follows the tile); a tile the model cannot use is refused
    naming the tile only; the size of --image-size is not called the model's."""
    from kerasae import cli

    args = ["compress", "--model", open_model[1], "--images", folder[0], "--no-sweep",
            "--no-jpeg"]
    assert cli.main(args + ["--tile", "32", "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == ("inputs: 4 image file(s), read as rgb at their own sizes "
                                   "(the model takes any size)")
    # a tile the model cannot take is an argument error (exit 2), as --image-size's are
    assert cli.main(args + ["--tile", "60", "--out", str(tmp_path / "u")]) == 2
    err = capsys.readouterr().err
    assert "tile must be a multiple of the model's downsampling factor 8, at least 16" in err
    assert "overlap" not in err and not (tmp_path / "u").exists()
    assert cli.main(args + ["--tile", "-16", "--out", str(tmp_path / "u")]) == 2
    err = capsys.readouterr().err
    assert "tile must be a whole number of pixels (tile > 0)" in err and "overlap" not in err
    fixed = tmp_path / "fixed.keras"
    kerasae.TinyAE(latent_channels=4, width=8, blocks=(1, 1, 1, 1), norm_groups=2,
                   input_shape=(24, 40, 3), seed=0).save(fixed)
    assert cli.main(["compress", "--model", str(fixed), "--images", folder[0], "--tile", "16",
                     "--out", str(tmp_path / "v")]) == 2
    assert "--tile: tile applies to a model of any size" in capsys.readouterr().err
    assert cli.main(["compress", "--model", str(fixed), "--images", folder[0],
                     "--image-size", "16", "--out", str(tmp_path / "w")]) == 2
    assert "--image-size applies to a model of any size" in capsys.readouterr().err
    assert cli.main(args + ["--image-size", "16x24", "--out", str(tmp_path / "s")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "inputs: 4 image file(s), read as 16x24 rgb (--image-size), crop")


def test_image_size_reads_at_that_size_into_a_per_channel_version_3_file(
        open_model, folder, tmp_path):
    """`--image-size` fixes a model of any size to one size for reading, but the file is the
    model's own (version 3: quantization per code channel, not per code number, whose
    header grew with the image), it decodes with or without tiles, and --tile applies."""
    from kerasae import cli

    out = tmp_path / "s"
    assert cli.main(["compress", "--model", open_model[1], "--images", folder[0], "--no-sweep",
                     "--no-jpeg", "--image-size", "16x24", "--tile", "16", "--out",
                     str(out)]) == 0
    data = (out / "images.kae").read_bytes()
    assert data[8] == 3
    header, _ = _header_and_payload(data)
    assert header["image_shapes"] == [[16, 24, 3]] * 4
    assert header["code_shapes"] == [[2, 3, 4]] * 4
    # the reference: each image centre-cropped to 16x24 (--resize crop), encoded in tiles
    # (the largest centred 2:3 window, resized by Pillow's bilinear filter: README's rule)
    crops = []
    for name in header["names"]:
        im = Image.open(os.path.join(folder[0], name))
        w, h = im.size
        scale = min(h / 16, w / 24)
        ch, cw = round(scale * 16), round(scale * 24)
        box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
        im = im.crop(box) if (ch, cw) == (16, 24) else im.resize(
            (24, 16), Image.BILINEAR, box=box, reducing_gap=3.0)
        crops.append(np.asarray(im, "float32") / 255)
    codes = np.stack([np.asarray(open_model[0].encode(c[None], tile=16))[0] for c in crops])
    np.testing.assert_allclose(_floats(header["quantization"]["offset"]),
                               codes.min(axis=(0, 1, 2)), atol=1e-5)
    decoded = kerasae.uses.decompress(out / "images.kae", open_model[0], tile=16)
    assert [d.shape for d in decoded.arrays["decoded"]] == [(16, 24, 3)] * 4
