"""`kerasae.fit` takes the CLI's folder options, resolves its dataset once, pretrains
stacked models layer by layer and draws `reconstructions.png`; `kerasae train` hands it
its arguments as they are."""

import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

import kerasae
from kerasae._util.errors import InvalidValue
from kerasae.cli import main
from kerasae.data import folders
from tests.helpers import digits_batch, photo_crops, run_json

TINY_CONV = {"filters": (4,), "latent_dim": 4}
QUICK = dict(epochs=1, batch_size=8, steps_per_epoch=1, verbose=0)


def _photos(folder, n, *, seed=0, sizes=(20, 40), suffix="png", gray=False):
    """`n` real photo crops of different sizes written as image files into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, crop in enumerate(photo_crops(n, seed=seed, sizes=sizes)):
        img = Image.fromarray(crop)
        (img.convert("L") if gray else img).save(folder / f"{i:03d}.{suffix}")
    return folder


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    return _photos(tmp_path_factory.mktemp("flat") / "photos", 24, gray=True)


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    root = tmp_path_factory.mktemp("classes") / "photos"
    for k, name in enumerate(("china", "flower")):
        _photos(root / name, 12, seed=k, gray=True)
    return root


@pytest.fixture
def scans(monkeypatch):
    """Every listing of an image folder (`kerasae.data.folders.scan`), counted by
    `(folder, split)`; the real function still runs."""
    calls = {}
    real = folders.scan

    def counted(root, split):
        key = (os.path.basename(os.path.normpath(root)), split)
        calls[key] = calls.get(key, 0) + 1
        return real(root, split)

    monkeypatch.setattr(folders, "scan", counted)
    return calls


@pytest.mark.parametrize("builder, layout, extra", [
    ("conv_ae", "flat", ["--arg", "filters=[4]", "--latent-dim", "4"]),
    # Layer-wise pretraining reads the data fit resolved, not a listing of its own.
    ("stacked_ae", "classes", ["--arg", "hidden_units=[16]", "--latent-dim", "4",
                               "--pretrain-epochs", "1"]),
], ids=["conv_ae-flat", "stacked_ae-pretrained-classes"])
def test_train_on_a_folder_lists_it_once(builder, layout, extra, request, scans, tmp_path,
                                         capsys):
    dataset = request.getfixturevalue(layout)
    out = tmp_path / "run"
    code = main(["train", builder, "--dataset", str(dataset), "--image-size", "16", "--epochs",
                 "1", "--batch-size", "8", "--steps-per-epoch", "2", *extra, "--out", str(out),
                 "--verbose", "2"])
    said = capsys.readouterr().out
    assert code == 0
    # One listing of the training images, no second one looking for a test/ folder.
    assert scans == {("photos", "train"): 1}
    assert said.count("No validation: ") == 1
    assert f"picture: {out / 'reconstructions.png'}" in said
    assert run_json(out)["dataset"]["examples"] == 24
    if "--pretrain-epochs" in extra:
        stages = [line.split()[1] for line in said.splitlines() if line.startswith("pretrained ")]
        assert stages == ["dense_0", "code"]


def test_fit_reads_a_photo_folder_at_image_size_and_draws_the_picture(tmp_path, scans):
    """`kerasae.fit(model, "photos/", image_size=64)`: photos of other sizes, sized to
    64x64; the picture Python users get, as the command line does."""
    photos = _photos(tmp_path / "photos", 20, sizes=(50, 140))
    model = kerasae.ConvAE(input_shape=(64, 64, 3), **TINY_CONV)
    with pytest.raises(InvalidValue, match="pass one of them"):
        kerasae.fit(model, str(photos), out_dir=str(tmp_path / "a"), out=str(tmp_path / "b"))
    # out=, the uses' name for it, is out_dir=
    result = kerasae.fit(model, str(photos), image_size=64, validation=0.25,
                         out=str(tmp_path / "run"), **QUICK)
    data = result.run["dataset"]
    assert data["image_shape"] == [64, 64, 3]
    assert data["examples"] == 15 and data["validation"]["examples"] == 5
    assert scans == {("photos", "train"): 1}  # the held-out part is cut from that listing
    assert result.picture == str(tmp_path / "run" / "reconstructions.png")
    with Image.open(result.picture) as png:  # 2 rows of 5 (the validation images), titled
        assert png.size[0] > 300 and png.size[1] > 150


def test_fit_passes_every_folder_option_to_the_reader(tmp_path, capsys):
    photos = _photos(tmp_path / "photos", 16)
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    cache = tmp_path / "cache"
    result = kerasae.fit("conv_ae", str(photos), image_size=(12, 16), color_mode="grayscale",
                         resize="pad", skip_bad=True, cache=str(cache), validation="none",
                         builder_kwargs=TINY_CONV, **QUICK)
    assert "skipped 1 image file(s)" in capsys.readouterr().out
    data = result.run["dataset"]
    assert (data["route"], data["resize"], data["image_size"]) == ("cache", "pad", [12, 16])
    assert data["examples"] == 16 and result.run["config"]["input_shape"] == [12, 16, 1]
    (npy,) = [f for f in os.listdir(cache) if f.endswith(".npy")]
    assert np.load(cache / npy, mmap_mode="r").shape == (16, 12, 16, 1)


def test_fit_max_pixels_refuses_larger_images_before_training(tmp_path):
    photos = _photos(tmp_path / "photos", 8, sizes=(30, 40))
    with pytest.raises(kerasae.data.DataError, match="decompression bomb"):
        kerasae.fit("conv_ae", str(photos), image_size=16, max_pixels=100,
                    out_dir=str(tmp_path / "run"), builder_kwargs=TINY_CONV, **QUICK)
    assert not (tmp_path / "run").exists()


STACKED = {"hidden_units": (16,), "latent_dim": 4, "seed": 1}


def test_fit_pretrains_layer_by_layer_before_training_and_not_on_resume(tmp_path, capsys):
    x = digits_batch(256)
    # At a learning rate of 1e-9 one fine-tuning step moves no weight measurably, so the
    # model fit returns holds the weights of the pretraining alone.
    run = dict(builder_kwargs=STACKED, learning_rate=1e-9, batch_size=64, epochs=1,
               steps_per_epoch=1, validation=None, seed=3, verbose=0)
    result = kerasae.fit("stacked_ae", x, pretrain_epochs=2, out_dir=str(tmp_path / "run"),
                         **run)
    keras.utils.set_random_seed(3)  # fit's seed: the initial weights come from it
    reference = kerasae.StackedAE(input_shape=(8, 8, 1), **STACKED)
    fresh = [np.array(w) for w in reference.get_weights()]
    kerasae.pretrain_layerwise(reference, x, epochs=2, batch_size=64, seed=3)
    for got, want, before in zip(result.model.get_weights(), reference.get_weights(), fresh):
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert np.abs(want - before).max() > 1e-3  # pretraining did change every weight
    # A second call resumes from the checkpoint: its weights, not a second pretraining.
    capsys.readouterr()
    kerasae.fit("stacked_ae", x, pretrain_epochs=2, out_dir=str(tmp_path / "run"),
                **dict(run, epochs=2, verbose=1))
    assert "Checkpoints exist: skipping layer-wise pretraining" in capsys.readouterr().out
    with open(tmp_path / "run" / "run.json") as f:
        assert json.load(f)["resumed_from_epoch"] == 1


@pytest.mark.parametrize("value, error, rule", [
    (-1, ValueError, "must be >= 0"), (1.5, TypeError, "must be an integer"),
    (True, TypeError, "must be an integer")])
def test_fit_refuses_a_bad_pretrain_epochs(value, error, rule):
    with pytest.raises(error, match=rf"`pretrain_epochs` {rule} .*"
                       rf"Received: pretrain_epochs={value!r}$"):
        kerasae.fit("stacked_ae", digits_batch(64), pretrain_epochs=value, **QUICK)


def test_a_tif_folder_trains_and_a_tif_file_denoises(tmp_path, capsys, no_zoo_env):
    """The two routes read TIFF by one decoder: `kerasae train --dataset tifs/` and
    `kerasae denoise --images x.tif` both work."""
    tifs = _photos(tmp_path / "tifs", 16, suffix="tif", gray=True)
    assert main(["train", "conv_ae", "--dataset", str(tifs), "--image-size", "16",
                 "--arg", "filters=[4]", "--latent-dim", "4", "--epochs", "1",
                 "--batch-size", "8", "--out", str(tmp_path / "run"), "--verbose", "0"]) == 0
    assert run_json(tmp_path / "run")["dataset"]["examples"] == 16
    assert main(["denoise", "--model", "conv_ae_fashion_mnist", "--images",
                 str(tifs / "000.tif"), str(tifs / "001.tif"),
                 "--out", str(tmp_path / "denoised")]) == 0
    with open(tmp_path / "denoised" / "denoise.json") as f:
        assert json.load(f)
    assert sorted(os.listdir(tmp_path / "denoised" / "denoised")) == ["000.png", "001.png"]
    capsys.readouterr()


def test_warmup_cosine_rises_then_decays_to_zero():
    from kerasae.training.loop import lr_schedule
    from kerasae.training.options import WARMUP_FRACTION

    schedule = lr_schedule(1e-3, "warmup_cosine", 200)
    warm = round(200 * WARMUP_FRACTION)
    rates = [float(schedule(step)) for step in range(201)]
    assert rates[0] == 0.0 and rates[warm] == pytest.approx(1e-3)
    assert rates[warm // 2] == pytest.approx(1e-3 / 2, rel=1e-4)
    # Cosine after the warm-up: half the rate half-way through the remaining steps.
    assert rates[warm + (200 - warm) // 2] == pytest.approx(5e-4, rel=1e-2)
    assert rates[200] == pytest.approx(0.0, abs=1e-9)
    assert lr_schedule(1e-3, "constant", 200) == 1e-3


@pytest.mark.parametrize("n, batch, shuffle, said", [
    (40, 32, True, "Each epoch trains on 32 of the 40 examples (1 batch of 32; the 8 left out "
                   "change from epoch to epoch): --batch-size 40 (batch_size=40) uses them all."),
    (37, 32, False, "Each epoch trains on 32 of the 37 examples (1 batch of 32; the 5 left out "
                    "are the same every epoch, unshuffled): --batch-size 37 (batch_size=37) "
                    "uses them all."),
    # 47 is prime: 23 leaves one out (47 = 2 x 23 + 1), the fewest of the sizes near 16
    (47, 16, True, "Each epoch trains on 32 of the 47 examples (2 batches of 16; the 15 left "
                   "out change from epoch to epoch): --batch-size 23 (batch_size=23) leaves 1 "
                   "out."),
    # 76 = 2 x 38 = 4 x 19: 38 is the nearer of the two to 32
    (76, 32, True, "Each epoch trains on 64 of the 76 examples (2 batches of 32; the 12 left "
                   "out change from epoch to epoch): --batch-size 38 (batch_size=38) uses them "
                   "all."),
    (70, 32, True, None),  # 6 of 70 left out: under a tenth, nothing said
], ids=["40", "37-no-shuffle", "47-prime", "76", "70"])
def test_a_batch_size_that_leaves_a_tenth_of_the_examples_out_is_said(n, batch, shuffle, said,
                                                                     capsys):
    """Batches are whole (exact resume, replicas): when n % batch is a tenth of the data or
    more, one line says how many examples an epoch uses and a batch size that uses all."""
    x = np.random.default_rng(0).random((n, 8, 8, 1), dtype="float32")
    result = kerasae.fit("conv_ae", x, epochs=1, batch_size=batch, validation=None,
                         shuffle=shuffle, verbose=2, seed=0,
                         builder_kwargs=dict(filters=(4,), latent_dim=2))
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("Each epoch trains on")]
    assert lines == ([said] if said else [])
    assert len(result.history) == 1


def test_the_batch_size_named_splits_over_the_replicas(capsys):
    """With 2 replicas the batch named is even: 53 = 2 x 26 + 1 (52 leaves one out too,
    further from 32)."""
    from kerasae.training.train import _say_unused

    _say_unused(53, 32, replicas=2)
    assert capsys.readouterr().out.strip().endswith(
        "the 21 left out change from epoch to epoch): --batch-size 26 (batch_size=26) "
        "leaves 1 out.")
    _say_unused(50, 34, replicas=2)  # 25 and 50 divide 50; 50 is the even one near 34
    assert capsys.readouterr().out.strip().endswith(
        "--batch-size 50 (batch_size=50) uses them all.")
