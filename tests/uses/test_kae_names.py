"""Decoding a `.kae` file: safe, unique file names, bounded floats, and no download.

Crafted files are made with the container's own `pack` after editing the header of
a real file (so the checksums hold and only the decoder's checks stand in the way),
and decoded through `kerasae.cli.main` as a user would: a refusal is one line and a
non-zero exit, never a traceback.
"""

import base64
import os

import numpy as np
import pytest
from PIL import Image

import kerasae
from kerasae import cli
from kerasae.models.resolve import resolve_model
from kerasae.uses.codec import kae
from kerasae.uses.codec.container import KaeError, pack, parse
from tests.helpers import digits_batch
from tests.presets.hub_server import HubServer


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """`(model file, its ModelRef)`: a tiny conv AE saved to a real .keras file."""
    model = kerasae.ConvAE(filters=(8, 16), latent_dim=8, input_shape=(8, 8, 1))
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    model.save(path)
    return path, resolve_model(path)


def crafted(ref, path, n, **edits):
    """A real file of `n` digits, its header edited (`names`, `model`, `offset`, `scale`)."""
    data, _, _ = kae.encode_bytes(ref, digits_batch(n))
    header, payload = parse(data)
    q = header["quantization"]
    for key in ("offset", "scale"):
        if key in edits:
            q[key] = base64.b64encode(np.full(8, edits.pop(key), "<f4").tobytes()).decode()
    header.update(edits)
    path.write_bytes(pack(header, payload))
    return str(path)


def decode(capsys, *args):
    """`(exit code, stdout, stderr)` of `kerasae compress --decode ...`."""
    capsys.readouterr()
    code = cli.main(["compress", "--decode", *map(str, args)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def written(folder):
    """Relative paths of every file below `folder`, `/`-separated."""
    return sorted(os.path.relpath(os.path.join(root, f), folder).replace(os.sep, "/")
                  for root, _, files in os.walk(folder) for f in files)


def snapshot(folder):
    return {os.path.join(root, n) for root, dirs, files in os.walk(folder) for n in dirs + files}


def png(path):
    with Image.open(path) as im:
        return np.asarray(im, "float64") / 255.0


# ------------------------------------------------------------------- names
def test_same_names_in_two_folders_keep_their_folders(tiny, tmp_path, capsys):
    model_file, _ = tiny
    x = digits_batch(10)
    for i, img in enumerate(x):  # a/img0..img4.png and b/img0..img4.png
        folder = tmp_path / "in" / "ab"[i // 5]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.rint(img[..., 0] * 255).astype("uint8"), "L").save(
            folder / f"img{i % 5}.png")
    assert cli.main(["compress", "--model", model_file, "--images", str(tmp_path / "in"),
                     "--no-jpeg", "--no-sweep", "--out", str(tmp_path / "c")]) == 0
    expected = [f"{d}/img{i}.png" for d in "ab" for i in range(5)]
    header, _ = parse((tmp_path / "c" / "images.kae").read_bytes())
    assert header["names"] == expected  # the container keeps each relative path

    code, out, _ = decode(capsys, tmp_path / "c" / "images.kae", "--model", model_file,
                          "--out", tmp_path / "d")
    assert code == 0
    assert written(tmp_path / "d" / "images") == expected
    assert "decoded 10 images" in out and "wrote 10 PNG files" in out and "renamed" not in out
    decoded = np.load(tmp_path / "d" / "decoded.npy")
    for i, name in enumerate(expected):  # each file holds its own image, not another's
        np.testing.assert_allclose(png(tmp_path / "d" / "images" / name), decoded[i, ..., 0],
                                   atol=0.5 / 255 + 1e-6)


def test_names_that_collide_are_renamed_and_counted(tiny, tmp_path, capsys):
    _, ref = tiny
    names = ["x.png", "X.png", "x.jpg", "a/y.png", "A/y.png", "a/z.png", "x-1.png"]
    path = crafted(ref, tmp_path / "f.kae", len(names), names=names)
    code, out, _ = decode(capsys, path, "--model", tiny[0], "--out", tmp_path / "d")
    assert code == 0
    # Case is ignored (as on Windows and macOS); the first spelling of a folder wins.
    assert written(tmp_path / "d" / "images") == sorted(
        ["x.png", "X-1.png", "x-2.png", "a/y.png", "a/y-1.png", "a/z.png", "x-1-1.png"])
    assert "decoded 7 images" in out and "wrote 7 PNG files" in out
    assert "4 renamed" in out


# Crafted names -> where they must land below images/ (by hand; see output_names).
CRAFTED = {
    "\x00evil.png": "_evil.png",
    "": "image1.png",
    "dir/": "dir.png",
    "..": "image3.png",
    "../../escape.png": "escape.png",
    "/abs/path.png": "abs/path.png",
    "C:\\Windows\\win.png": "C_/Windows/win.png",
    "\\\\server\\share\\unc.png": "server/share/unc.png",
    "\ud800lone.png": "_lone.png",
    "s/\udcff.png": "s/_.png",
    "con.png": "_con.png",
    "nl\n.png": "nl_.png",
    "k/./l/../../../m.png": "k/l/m.png",
    ".hidden": "hidden.png",
    "\u202egnp.exe": "_gnp.png",
    "q" * 300 + ".png": "q" * 96 + ".png",
    "d/" * 200 + "deep.png": "d/" * 98 + "deep.png",  # 200 bytes before ".png"
}


def test_crafted_names_are_written_safely_inside_the_output(tiny, tmp_path, capsys,
                                                             monkeypatch):
    _, ref = tiny
    names = list(CRAFTED)
    work = tmp_path / "work"
    work.mkdir()
    path = crafted(ref, tmp_path / "f.kae", len(names), names=names)
    monkeypatch.chdir(work)  # a relative escape would land in tmp_path
    before = snapshot(tmp_path)
    code, out, _ = decode(capsys, path, "--model", tiny[0], "--out", work / "out")
    assert code == 0
    new = snapshot(tmp_path) - before
    outside = [p for p in new if os.path.commonpath([p, str(work / "out")]) != str(work / "out")]
    assert outside == []
    assert written(work / "out" / "images") == sorted(CRAFTED.values())
    assert f"wrote {len(names)} PNG files" in out
    assert f"({len(names)} names made safe)" in out
    decoded = np.load(work / "out" / "decoded.npy")
    for i, name in enumerate(CRAFTED.values()):
        np.testing.assert_allclose(png(work / "out" / "images" / name), decoded[i, ..., 0],
                                   atol=0.5 / 255 + 1e-6)


# ------------------------------------------------------------------ floats
OUT_OF_RANGE = [
    (0.0, 3e38, "quantization.scale"),  # 255 * scale overflows float32
    (3.3e38, 1e36, "quantization.offset"),  # scale * 255 fits; offset + it does not
]


def test_quantization_out_of_float32_range_is_refused(tiny, tmp_path, capsys):
    _, ref = tiny
    for i, (offset, scale, field) in enumerate(OUT_OF_RANGE):
        path = crafted(ref, tmp_path / f"{i}.kae", 4, offset=offset, scale=scale)
        code, out, err = decode(capsys, path, "--model", tiny[0], "--out", tmp_path / "d")
        assert code == 1 and err.count("\n") == 1, (field, out, err)
        assert field in err and "float32" in err
        assert not (tmp_path / "d").exists()
        with pytest.raises(KaeError, match=field):
            kae.decode_file(path, ref)
    # Large but in range: still decoded (to finite pixels).
    path = crafted(ref, tmp_path / "ok.kae", 4, offset=-1e20, scale=1e20)
    images, _ = kae.decode_file(path, ref)
    assert images.shape == (4, 8, 8, 1) and np.isfinite(images).all()


# ------------------------------------------------------------ no downloads
@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A loopback Hub that records every request (and holds no repo)."""
    server = HubServer({})
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield server
    server.stop()


def test_a_header_naming_a_hub_preset_never_downloads(tiny, tmp_path, capsys, hub):
    model_file, ref = tiny
    header_model = dict(parse(kae.encode_bytes(ref, digits_batch(2))[0])[0]["model"],
                        name="hf://kerasae/conv_ae_digits", source="preset")
    path = crafted(ref, tmp_path / "f.kae", 2, model=header_model)
    code, _, err = decode(capsys, path, "--out", tmp_path / "d")
    assert code == 1 and err.count("\n") == 1
    assert "hf://kerasae/conv_ae_digits" in err and "--model" in err
    with pytest.raises(kerasae.KerasaeError, match=r"model=\.\.\."):
        kerasae.uses.decode_file(path)
    assert hub.hits == []
    # Passed explicitly, the model decodes the file (its weights are the header's).
    code, out, _ = decode(capsys, path, "--model", model_file, "--out", tmp_path / "d")
    assert code == 0 and "decoded 2 images" in out


def test_a_header_naming_a_preset_not_here_never_downloads(
        published_zoo, client_root, mirror_server, tmp_path, capsys, monkeypatch):
    root, _ = published_zoo
    url, mirror = mirror_server(root)
    monkeypatch.setenv("KERASAE_ZOO_MIRRORS", url)
    monkeypatch.setenv("KERASAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERASAE_ZOO_ROOT", root)  # every file here
    path = tmp_path / "f.kae"
    kae.encode_file("conv_ae_digits", digits_batch(3), path)
    assert parse(path.read_bytes())[0]["model"]["name"] == "conv_ae_digits@1"
    images, _ = kerasae.uses.decode_file(path)  # a preset at hand: found, offline
    assert images.shape == (3, 8, 8, 1) and mirror.hits == []

    monkeypatch.setenv("KERASAE_ZOO_ROOT", client_root)  # the index only: files on a mirror
    code, _, err = decode(capsys, path, "--out", tmp_path / "d")
    assert code == 1 and err.count("\n") == 1
    assert "conv_ae_digits@1" in err and "--model" in err
    assert mirror.hits == []
    code, out, _ = decode(capsys, path, "--model", "conv_ae_digits", "--out", tmp_path / "d")
    assert code == 0 and "decoded 3 images" in out
    assert any(h.endswith("model.weights.h5") for h in mirror.hits)  # fetched as usual
