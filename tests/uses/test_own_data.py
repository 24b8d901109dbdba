"""Every use on data of one's own: a folder of unlabelled photos, and the labelled digits set.

No Fashion-MNIST here: tiny models are trained on scikit-learn's 8x8 digits, and
the photos are RGB crops (12x16) of scikit-learn's two sample pictures, which
the uses read at the models' 8x8 greyscale input.
"""

import csv
import json
import os

import numpy as np
import pytest

import kerasae
from kerasae.uses.inputs import load_inputs
from tests.helpers import photo_crops

N_PHOTOS = 48
GREY = np.asarray([0.2989, 0.5870, 0.1140])  # ITU-R 601, as tf.image.rgb_to_grayscale


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """One BLAS thread: on 2 shared cores, threaded SVDs run up to 10x slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A conv AE and a conv VAE of 8x8 digits, briefly trained, and the AE's .keras file."""
    import keras

    x = kerasae.data.load_numpy("digits", "train")[0]
    out = {}
    for name, kw in (("conv_ae", {"latent_dim": 8}), ("conv_vae", {"latent_dim": 4})):
        keras.utils.set_random_seed(0)
        model = kerasae.build(name, input_shape=(8, 8, 1), filters=(8, 16), seed=0, **kw)
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        model.fit(x, epochs=3, batch_size=64, verbose=0)
        out[name] = model
    out["file"] = str(tmp_path_factory.mktemp("model") / "digits_ae.keras")
    out["conv_ae"].save(out["file"])
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A flat folder of unlabelled RGB photos (12x16 crops), and the crops as uint8."""
    from PIL import Image

    root = tmp_path_factory.mktemp("photos") / "holiday"
    root.mkdir()
    crops = photo_crops(N_PHOTOS, seed=7, size=(12, 16))
    for i, crop in enumerate(crops):
        Image.fromarray(crop).save(root / f"p{i:02d}.png")
    return str(root), np.stack(crops)


def test_folders_and_files_are_read_at_the_models_input(photos, tmp_path):
    from PIL import Image

    # 8x12 photos: the centred 8x8 window is the crop, exactly, then made grey.
    folder = tmp_path / "wide"
    folder.mkdir()
    crops = photos[1][:5, 2:10, :12]
    for i, c in enumerate(crops):
        Image.fromarray(c).save(folder / f"w{i}.png")
    expected = (crops[:, :, 2:10].astype("float64") @ GREY)[..., None] / 255.0
    for given in ({"dataset": str(folder)}, {"images": [str(folder)]}):
        inputs = load_inputs(**given, shape=(8, 8, 1))
        assert inputs.images.shape == (5, 8, 8, 1)
        # The folder route decodes to uint8 grey (rounding), the file route stays float.
        np.testing.assert_allclose(inputs.images, expected, atol=1.0 / 255 + 1e-6)
    assert load_inputs(images=[str(folder)], shape=(8, 8, 1)).names == [
        f"w{i}.png" for i in range(5)]
    wide = load_inputs(dataset=str(folder), shape=(8, 8, 3), resize="stretch")
    assert wide.images.shape == (5, 8, 8, 3)
    assert wide.description["sized"].startswith("8x8 rgb")


def _run(use, models, data, tmp_path):
    """Runs `use` on the photos folder or digits with settings that keep it quick."""
    model = models["conv_vae" if use == "generate" else "conv_ae"]
    out = tmp_path / f"{use}-{'photos' if data != 'digits' else 'digits'}"
    fn = getattr(kerasae.uses, use)
    if use == "anomaly":
        return fn(model, dataset=data, epochs=1, train_limit=400, limit=150, out=out), out
    extra = {"reduce": {"bottleneck_epochs": 1}, "compress": {"sweep_count": 60},
             "generate": {"grid": 3, "pairs": 2, "steps": 3, "eval_samples": 50}}.get(use, {})
    return fn(model, dataset=data, limit=150, out=out, **extra), out


# What each use writes, and what it skips without labels (one entry each).
WRITES = {
    "features": (["codes.npy", "features.json"], ["features.png"], ["linear probe"]),
    "reduce": (["codes.npy", "codes_2d.npy", "reduce.json", "reduce_mse.png",
                "reduce_scatter.png"], [], ["5-NN accuracy"]),
    "compress": (["compress.json", "compress.png", "compress_rd.png", "images.kae"], [], []),
    "denoise": (["denoise.json", "denoise.png", "denoised.npy"], [], []),
    "anomaly": (["anomaly.json", "anomaly.png", "anomaly_examples.png", "detector",
                 "scores.csv"], [], ["ROC-AUC"]),
    "generate": (["generate.json", "generate_interpolation.png", "generate_samples.png"],
                 ["generate_arithmetic.png"], ["latent arithmetic", "Fréchet distances"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("use", sorted(WRITES))
def test_every_use_runs_on_unlabelled_photos_and_on_digits(use, models, photos, tmp_path):
    always, labelled_only, skipped_without_labels = WRITES[use]
    r, out = _run(use, models, photos[0], tmp_path)
    assert sorted(os.listdir(out)) == sorted(always)
    saved = json.loads((out / f"{use}.json").read_text())
    skipped = saved.get("skipped", {})
    assert [k for k in skipped] == [k for k in skipped if any(
        k.startswith(p) for p in skipped_without_labels)]
    assert len(skipped) == len(skipped_without_labels), skipped
    assert all(isinstance(why, str) and len(why) > 20 for why in skipped.values())
    if use != "anomaly":
        assert saved["inputs"]["split"] == "all"  # a flat folder is one split
        assert saved["inputs"]["sized"].startswith("8x8 grayscale")

    r, out = _run(use, models, "digits", tmp_path)
    assert sorted(os.listdir(out)) == sorted(always + labelled_only)
    saved = json.loads((out / f"{use}.json").read_text())
    assert not saved.get("skipped"), saved.get("skipped")
    if use != "anomaly":
        assert saved["inputs"]["split"] == "test"


def test_anomaly_without_labels_scores_every_photo(models, photos, tmp_path):
    r, out = _run("anomaly", models, photos[0], tmp_path)
    with open(out / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["file"] for row in rows] == [f"p{i:02d}.png" for i in range(N_PHOTOS)]
    scores = np.asarray([float(row["score"]) for row in rows])
    np.testing.assert_allclose(scores, r.arrays["scores"], rtol=1e-5)
    # No test split: the photos are the training images, so the 99th percentile of
    # their own scores is the threshold, and the flags follow from it.
    threshold = np.percentile(r.arrays["scores"], 99)
    assert r["threshold"]["value"] == pytest.approx(threshold, rel=1e-9)
    assert [int(row["flagged"]) for row in rows] == list((r.arrays["scores"] > threshold) * 1)
    assert r["test"]["flagged"] == int((r.arrays["scores"] > threshold).sum())
    assert r["training"]["from"].startswith("the given weights")
    with pytest.raises(ValueError, match="held_out=3 names a class"):
        kerasae.uses.anomaly(models["conv_ae"], dataset=photos[0], held_out=3, epochs=1)


def test_generate_picks_classes_the_data_has(models, tmp_path):
    r = kerasae.uses.generate(models["conv_vae"], dataset="digits", limit=150, grid=2,
                              pairs=1, steps=3, eval_samples=50)
    assert r["arithmetic"]["expression"] == "0 + (1 - 2)"
    with pytest.raises(ValueError, match="Unknown class 'Sneaker'"):
        kerasae.uses.generate(models["conv_vae"], dataset="digits", limit=150,
                              arithmetic=("Sneaker", "Ankle boot", "Sandal"))


def test_use_commands_say_what_they_read_and_skipped(models, photos, tmp_path, capsys):
    from kerasae import cli

    assert cli.main(["features", "--model", models["file"], "--dataset", photos[0],
                     "--out", str(tmp_path / "f")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"inputs: {photos[0]!r} split 'all', read as 8x8 grayscale (the "
                        "model's input), crop")
    assert [ln for ln in lines if ln.startswith("skipped ")] == [
        "skipped linear probe (features.png): the images have no labels (class folders or "
        "a labelled dataset have them)"]


def test_reduce_prints_the_5nn_accuracy_it_wrote(models, tmp_path, capsys):
    from kerasae import cli

    out = tmp_path / "r"
    assert cli.main(["reduce", "--model", models["file"], "--dataset", "digits", "--limit",
                     "200", "--bottleneck-epochs", "1", "--out", str(out)]) == 0
    knn = json.load(open(out / "reduce.json"))["knn5_accuracy_2d"]
    assert (f"5-NN accuracy in 2-D: codes {knn['codes']:.3f}, PCA of pixels "
            f"{knn['pca_pixels']:.3f}") in capsys.readouterr().out.splitlines()


def test_anomaly_on_class_folders_without_a_test_split_says_it_is_in_sample(models, tmp_path):
    from PIL import Image

    for i, crop in enumerate(photo_crops(60, seed=9, size=(10, 10))):
        folder = tmp_path / "shots" / ("china", "flower")[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(crop).save(folder / f"{i:02d}.png")
    r = kerasae.uses.anomaly(models["conv_ae"], dataset=str(tmp_path / "shots"), epochs=1,
                             batch_size=16)
    assert len(r.metrics["notes"]) == 1 and "in-sample" in r.metrics["notes"][0]
    assert r["test"]["images"] == 60
