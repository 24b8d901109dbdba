"""colorize and train_colorizer: the preset on held-out photos, training, the files, errors."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from kerasae import zoo
from kerasae.cli import main as cli_main
from kerasae.models.colorizer import rgb_to_ycbcr
from kerasae.uses import colorize, train_colorizer
from kerasae.uses._colorize import colourfulness, hue_spread

PRESET = "colorize_photos"
# Held out of the preset's training (kerasae.benchmarks.colorphotos.HELDOUT), and
# installed wherever the tests run.
SKIMAGE_HELDOUT = ("chelsea", "coffee", "astronaut")
MIN_COLOURFULNESS = 0.3  # of the original's (measured: 0.38 to 0.91 on these three)
MIN_HUE_SPREAD = 15.0  # degrees; a sepia (one hue) has about 0


def _skimage_photo(name):
    """A scikit-image photo as the preset's card reads it: short side 256 (LANCZOS)."""
    data = pytest.importorskip(
        "skimage.data", reason="the photos are scikit-image's (a test tool: pip install "
        "scikit-image)")
    im = Image.fromarray(getattr(data, name)()[..., :3])
    s = 256 / min(im.size)
    im = im.resize((max(256, round(im.width * s)), max(256, round(im.height * s))),
                   Image.LANCZOS)
    return np.asarray(im)


def _sepia(rgb):
    """The classic sepia tone of an image: its luminance in one brown hue."""
    y = rgb_to_ycbcr(rgb)[..., :1]
    return np.clip(np.concatenate([y * 1.07, y * 0.74, y * 0.43], axis=-1), 0, 1)


def test_hue_spread_tells_sepia_from_colour():
    photo = _skimage_photo("astronaut").astype("float32") / 255
    assert hue_spread(_sepia(photo)) < 1.0 < MIN_HUE_SPREAD < hue_spread(photo)
    assert colourfulness(np.repeat(photo[..., :1], 3, axis=-1)) == 0.0


@pytest.mark.parametrize("name", SKIMAGE_HELDOUT)
def test_preset_beats_both_baselines_on_held_out_photos_in_colour_not_sepia(name, tmp_path):
    photo = _skimage_photo(name)
    r = colorize(photo, model=PRESET, out=tmp_path)
    row = r["images"][0]
    assert row["psnr"] > max(row["psnr_grey"], row["psnr_mean_chroma"]), row
    assert row["colourfulness"] > MIN_COLOURFULNESS * row["colourfulness_original"], row
    assert row["hue_spread"] > MIN_HUE_SPREAD, row  # several hues: not a sepia tint
    sheet = np.asarray(Image.open(tmp_path / "image_0000.png"))
    h, w = photo.shape[:2]
    assert sheet.shape == (h, 3 * w, 3)  # grey | colorized | original
    np.testing.assert_array_equal(sheet[:, 2 * w:], photo)


def test_preset_loads_through_the_store_sha256_checked(tmp_path):
    root = tmp_path / "zoo"
    shutil.copytree(zoo.zoo_root(), root)
    model = zoo.load_model(PRESET, root=str(root), cache_dir=str(tmp_path / "c"), mirrors=[])
    entry = zoo.read_index(str(root))["presets"][PRESET]
    assert model.builder_name == "colorizer" and model.count_params() == entry["params"]
    weights = root / entry["path"] / zoo.WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-100] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(zoo.PresetNotAvailableError, match="sha256"):
        zoo.load_model(PRESET, root=str(root), cache_dir=str(tmp_path / "c"), mirrors=[])


def test_grey_input_is_colorized_without_measures(tmp_path):
    grey = (_skimage_photo("coffee")[..., 0]).astype("uint8")
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    r = colorize(str(tmp_path / "grey.png"), out=tmp_path / "out")
    assert r["images"] == [{"image": "grey", "grey_input": True}] and r["mean"] == {}
    sheet = np.asarray(Image.open(tmp_path / "out" / "grey.png"))
    assert sheet.shape == (grey.shape[0], 2 * grey.shape[1], 3)  # grey | colorized


def test_bad_inputs_say_what_and_how(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="notes.png"):
        colorize(str(tmp_path / "notes.png"))
    with pytest.raises(ValueError, match=r"4 \(RGBA\).*Received: shape=\(8, 8, 5\)"):
        colorize(np.zeros((8, 8, 5), "float32"))
    with pytest.raises(ValueError, match="Scale with x / 255"):
        colorize(np.full((8, 8, 3), 200.0, "float32"))
    with pytest.raises(ValueError, match="not a colorizer"):
        colorize(np.zeros((8, 8, 3), "float32"), model="conv_ae_fashion_mnist")
    autoencoder = zoo.load_model("conv_ae_fashion_mnist")
    with pytest.raises(ValueError, match=r"not a colorizer.*Autoencoder with input_shape \(28"):
        colorize(np.zeros((8, 8, 3), "float32"), model=autoencoder)


def _visible_psnr(colorized, original, alpha):
    """PSNR (dB) over the pixels with alpha > 0, from the float MSE (numpy only)."""
    seen = alpha > 0
    mse = np.mean((colorized[seen].astype("float64") - original[seen]) ** 2)
    return 10 * np.log10(1.0 / mse)


def test_alpha_is_kept_and_only_visible_pixels_are_measured(tmp_path, capsys):
    """A PNG with transparency: colorized under it, its alpha re-attached to the
    colorized image and to every panel of its PNG, measured on its visible pixels (the
    colours hidden under alpha 0 count for nothing); the same image as an RGBA array
    gives the same figures; the command line says it once."""
    photo = _skimage_photo("chelsea")
    h, w = photo.shape[:2]
    alpha = np.full((h, w), 255, "uint8")
    alpha[:, : w // 3] = 0  # a cut-out: the left third transparent
    alpha[: h // 4] = 128  # and a band half transparent
    rgba = np.concatenate([photo, alpha[..., None]], axis=-1)
    rgba[alpha == 0, :3] = (255, 0, 255)  # what a PNG may hold under alpha 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut.png")
    r = colorize(str(tmp_path / "cut.png"), out=tmp_path / "o")
    row, out = r["images"][0], r.arrays["colorized"][0]
    assert row["alpha"] is True and r["alpha_images"] == 1
    assert out.shape == (h, w, 4)
    np.testing.assert_array_equal(np.rint(out[..., 3] * 255), alpha)
    original = rgba[..., :3].astype("float64") / 255
    assert row["psnr"] == pytest.approx(_visible_psnr(out[..., :3], original, alpha), abs=1e-6)
    sheet = np.asarray(Image.open(tmp_path / "o" / "cut.png"))
    assert sheet.shape == (h, 3 * w, 4)  # grey | colorized | original, each with its alpha
    for k in range(3):
        np.testing.assert_array_equal(sheet[:, k * w:(k + 1) * w, 3], alpha)
    np.testing.assert_array_equal(sheet[:, 2 * w:], rgba)
    same = colorize(rgba)  # an RGBA array: the same
    assert same["images"][0]["psnr"] == pytest.approx(row["psnr"], abs=1e-4)
    assert cli_main(["colorize", str(tmp_path / "cut.png"), "--out", str(tmp_path / "c")]) == 0
    printed = capsys.readouterr().out
    assert printed.count("transparency") == 1 and "alpha kept" in printed, printed


def test_training_options_without_train_are_refused(tmp_path, capsys):
    Image.fromarray(_skimage_photo("coffee")).save(tmp_path / "cup.png")
    for flags in (["--steps", "5"], ["--batch-size", "4"], ["--chroma-gain", "1.4"]):
        code = cli_main(["colorize", str(tmp_path / "cup.png"), *flags])
        err = capsys.readouterr().err
        assert code == 2 and "only applies with --train" in err and flags[0] in err, err
        assert len(err.strip().splitlines()) == 1
    assert cli_main(["colorize", "--train", str(tmp_path), "--out", str(tmp_path / "r"),
                     "--model", "colorize_photos"]) == 2
    assert "takes no --model" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "r") and not os.path.exists("runs/colorize/cup.png")


def _without_mean_chroma(keras_file, to):
    """A copy of `keras_file` as a colorizer written before its .keras kept the mean
    chroma: the key taken out of the layer's config."""
    import zipfile

    with zipfile.ZipFile(keras_file) as src, zipfile.ZipFile(to, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                rgb = [lay for lay in config["config"]["layers"] if lay["name"] == "rgb"][0]
                del rgb["config"]["mean_chroma"]
                data = json.dumps(config).encode()
            dst.writestr(item, data)


GAINS = (1.0, 1.2, 1.4, 1.6, 1.8)  # train_colorizer's candidates (written out: a check)


def _numpy_gain_scores(chroma_model, paths, short_side):
    """Mean PSNR per gain, by hand: Pillow's LANCZOS to the short side, BT.601 by its
    coefficients, the gain on the predicted chroma, clipped, PSNR from the MSE."""
    scores = {g: [] for g in GAINS}
    for path in paths:
        im = Image.open(path).convert("RGB")
        s = short_side / min(im.size)
        im = im.resize((max(short_side, round(im.width * s)),
                        max(short_side, round(im.height * s))), Image.LANCZOS)
        rgb = np.asarray(im, "float64") / 255
        y = rgb @ np.array([0.299, 0.587, 0.114])
        cb, cr = np.moveaxis(np.asarray(chroma_model(y[None, ..., None].astype("float32"))[0],
                                        "float64"), -1, 0)
        for g in GAINS:
            out = np.stack([y + 1.402 * g * cr, y - 0.344136 * g * cb - 0.714136 * g * cr,
                            y + 1.772 * g * cb], axis=-1).clip(0, 1)
            scores[g].append(10 * np.log10(1 / np.mean((out - rgb) ** 2)))
    return {g: float(np.mean(v)) for g, v in scores.items()}


@pytest.mark.slow
def test_trained_gain_is_the_best_on_held_out_photos_and_the_file_carries_it(tmp_path):
    """train_colorizer holds out a tenth of the photos, saves the gain of best mean PSNR
    on them (checked by hand), and its model.keras alone carries the gain and the mean
    chroma; an older file reads run.json, and without it refuses to measure."""
    import keras

    folder = _tiny_folder(tmp_path / "photos", n=15)
    # 20 steps leave the chroma faded: 1.4 was best here (1.0 0.3 dB below), so a gain
    # stuck at 1.0 fails
    r = train_colorizer(str(folder), str(tmp_path / "run"), steps=20, batch_size=4, crop=32,
                        short_side=64, bins=None, verbose=0)  # regression: a gain is chosen
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["photos"] == 15 and run["train_photos"] == 13 and len(run["gain_photos"]) == 2
    model = keras.saving.load_model(tmp_path / "run" / "model.keras", compile=False)
    chroma_model = keras.Model(model.input, model.get_layer("crop").output)
    by_hand = _numpy_gain_scores(chroma_model, [folder / n for n in run["gain_photos"]], 64)
    assert run["gain_scores"] == pytest.approx({f"{g:g}": v for g, v in by_hand.items()},
                                               abs=1e-3)
    best = max(by_hand, key=by_hand.get)
    assert run["chroma_gain"] == best == r["chroma_gain"] and best > 1.0, by_hand
    assert model.get_layer("rgb").chroma_gain == best

    alone = tmp_path / "moved" / "model.keras"  # the file alone is enough
    alone.parent.mkdir()
    shutil.copy(tmp_path / "run" / "model.keras", alone)
    c = colorize(str(folder / "p0.png"), model=str(alone))
    assert c["mean_chroma"] == pytest.approx(run["mean_chroma"])
    row = c["images"][0]
    assert row["psnr_mean_chroma"] != row["psnr_grey"]

    _without_mean_chroma(tmp_path / "run" / "model.keras", tmp_path / "run" / "old.keras")
    old = colorize(str(folder / "p0.png"), model=str(tmp_path / "run" / "old.keras"))
    assert old["mean_chroma"] == pytest.approx(run["mean_chroma"])  # from run.json beside it
    shutil.move(tmp_path / "run" / "old.keras", alone)
    with pytest.raises(ValueError, match="does not carry.*Put the run.json"):
        colorize(str(folder / "p0.png"), model=str(alone))
    grey = colorize(np.full((32, 32), 0.5, "float32"), model=str(alone))  # nothing to measure
    assert grey["mean_chroma"] is None and grey.arrays["colorized"][0].shape == (32, 32, 3)


def test_grey_held_out_photos_do_not_score_a_gain(tmp_path):
    from kerasae.uses._colortrain import gain_scores

    Image.fromarray(np.full((64, 64), 90, "uint8"), "L").save(tmp_path / "g.png")
    Image.fromarray(_skimage_photo("coffee")).save(tmp_path / "c.png")

    def faded(y, training=False):  # a third of the true chroma of the coffee photo
        return rgb_to_ycbcr(_skimage_photo("coffee")[None] / 255)[..., 1:] / 3

    assert gain_scores(faded, [str(tmp_path / "g.png")], 256) == {}
    scores = gain_scores(faded, [str(tmp_path / "g.png"), str(tmp_path / "c.png")], 256)
    assert max(scores, key=scores.get) == 1.8  # the largest gain undoes most of the fading


def _tiny_folder(folder, n=3, size=80):
    """Colour photos where the colour follows the luminance (so a few steps learn it)."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(n):
        y = np.clip(rng.uniform(0, 1, (size // 8, size // 8)).repeat(8, 0).repeat(8, 1), 0, 1)
        rgb = np.stack([y, y ** 2, 1 - y], axis=-1)
        Image.fromarray((rgb * 255).astype("uint8")).save(folder / f"p{i}.png")
    return folder


@pytest.mark.slow
def test_train_colorizer_lowers_the_loss_and_its_model_colorizes(tmp_path):
    folder = _tiny_folder(tmp_path / "photos")
    r = train_colorizer(str(folder), str(tmp_path / "run"), steps=60, batch_size=4, crop=32,
                        short_side=64, verbose=0)
    loss = r["loss"]
    assert len(loss) == 10 and loss[-1] < 0.7 * loss[0], loss
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["photos"] == 3 and len(run["mean_chroma"]) == 2
    c = colorize(str(folder / "p0.png"), model=str(tmp_path / "run" / "model.keras"))
    assert c["mean_chroma"] == pytest.approx(run["mean_chroma"])
    assert c["images"][0]["psnr"] > c["images"][0]["psnr_grey"]


def test_train_colorizer_refuses_grey_photos_and_bad_crops(tmp_path):
    folder = tmp_path / "grey"
    folder.mkdir()
    Image.fromarray(np.full((64, 64), 90, "uint8"), "L").save(folder / "g.png")
    with pytest.raises(ValueError, match="no colour to learn"):
        train_colorizer(str(folder), str(tmp_path / "run"), steps=2)
    with pytest.raises(ValueError, match="multiple of 16"):
        train_colorizer(str(folder), str(tmp_path / "run"), crop=50)
    with pytest.raises(ValueError, match="chroma_gain is a finite factor"):  # before training
        train_colorizer(str(folder), str(tmp_path / "run"), chroma_gain=float("nan"))
    assert not (tmp_path / "run").exists()


def test_cli_colorizes_and_prints_the_table(tmp_path, capsys):
    Image.fromarray(_skimage_photo("chelsea")).save(tmp_path / "cat.png")
    code = cli_main(["colorize", str(tmp_path / "cat.png"), "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 0 and "mean over 1 colour photo: " in out and "baselines on 1 of 1" in out, out
    legend, head, row = out.splitlines()[:3]  # every column is named before the table
    assert legend.startswith("PSNR (dB) against the original")
    assert all(f"({column})" in legend for column in ("PSNR", "grey", "meanC", "M", "M orig",
                                                      "hue sd; near 0: one tint, sepia"))
    assert head.split() == ["image", "PSNR", "grey", "meanC", "M", "M", "orig", "hue", "sd"]
    assert row.split()[0] == "cat" and len(row.split()) == 7
    assert os.path.isfile(tmp_path / "o" / "cat.png")
    assert cli_main(["colorize", "--train", str(tmp_path)]) == 2  # no --out


def test_trial_findings_names_flat_images_lists_and_large_photos(tmp_path):
    """Two files of one stem keep two outputs; a flat image has a hue spread of 0 (not
    NaN); a list of arrays of several sizes is read; a photo with a short side above 512
    is colorized at 256 and its chroma scaled up (the same luminance, its own size)."""
    from PIL import Image

    from kerasae.uses._colorize import colorize_one, hue_spread, read_inputs

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.full((8, 9, 3), (193, 243, 8), "uint8")).save(
            tmp_path / folder / "x.png")
    names = [n for n, _ in read_inputs([str(tmp_path / "a" / "x.png"),
                                        str(tmp_path / "b" / "x.png")])]
    assert names == ["x", "x_2"]
    flat = np.full((31, 28, 3), (193 / 255, 243 / 255, 8 / 255), "float32")
    assert hue_spread(flat) == 0.0
    arrays = [np.zeros((5, 7, 3), "uint8"), np.ones((4, 4), "float32")]
    assert [x.shape for _, x in read_inputs(arrays)] == [(5, 7, 3), (4, 4, 1)]

    calls = []

    def model(x, training=False):  # records the size it is given; a reddish cast
        calls.append(x.shape)
        return np.concatenate([x, x * 0.9, x * 0.8], axis=-1)

    grey = np.random.default_rng(0).uniform(0.2, 0.8, (600, 900, 1)).astype("float32")
    rgb = colorize_one(model, grey)
    assert calls == [(1, 256, 384, 1)] and rgb.shape == (600, 900, 3)
    y = rgb @ np.array([0.299, 0.587, 0.114], "float32")
    assert np.abs(y - grey[..., 0]).max() < 0.02  # the photo's own luminance, full size


def test_train_says_the_photos_trained_on_and_those_held_out_for_the_gain():
    from kerasae.cli.colorize import trained_lines

    run = {"photos": 7, "train_photos": 6, "gain_photos": ["a.png"], "grey_photos": 0,
           "seconds": 12.4, "loss": [0.02, 0.01]}
    assert trained_lines(run) == ["trained on 6 photos, 1 held out to choose the gain in 12 s: "
                                  "loss 0.02000 (first tenth) -> 0.01000 (last tenth)"]
    given = dict(run, train_photos=7, gain_photos=[], grey_photos=2)  # --chroma-gain given
    assert trained_lines(given)[0].startswith("kerasae: 2 of the 7 training photos are grey")
    assert trained_lines(given)[1].startswith("trained on 7 photos in 12 s: ")
