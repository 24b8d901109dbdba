"""`kerasae train BUILDER --weights PRESET_OR_FILE`: fine-tuning from the zoo or a run's model.

The data are greyscale photos (28x28 crops of scikit-learn's two sample
pictures), not Fashion-MNIST: the shipped preset has never seen them.
"""

import json
import os

import numpy as np
import pytest

from tests.helpers import ENV, REPO, photo_crops, run_cli, run_json, sha256
from tests.models.test_convert import DECODER, ENCODER, needs_taef2

PRESET = "conv_ae_fashion_mnist"
PRESET_WEIGHTS = os.path.join(REPO, "zoo", PRESET, "v1", "model.weights.h5")


@pytest.fixture(scope="module")
def grey_photos(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("grey") / "photos"
    root.mkdir()
    for i, crop in enumerate(photo_crops(256, seed=3, size=(28, 28))):
        Image.fromarray(crop).convert("L").save(root / f"{i:03d}.png")
    return str(root)


def _train(cwd, out, data, *extra, check=True):
    return run_cli(["train", "conv_ae", "--dataset", data, "--epochs", "1", "--batch-size", "32",
                    "--validation", "none", "--verbose", "0", "--out", out, *extra], cwd,
                   check=check)


@pytest.fixture(scope="module")
def runs(grey_photos, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("runs")
    _train(cwd, "scratch", grey_photos)
    _train(cwd, "tuned", grey_photos, "--weights", PRESET)
    _train(cwd, "denoiser", grey_photos, "--weights", PRESET, "--arg", "corruption=gaussian",
           "--arg", "corruption_amount=0.3")
    return cwd


@pytest.mark.slow
def test_a_preset_fine_tunes_better_than_scratch(runs):
    scratch, tuned = run_json(runs / "scratch"), run_json(runs / "tuned")
    assert tuned["final"]["loss"] < scratch["final"]["loss"] / 2, (tuned["final"],
                                                                   scratch["final"])
    assert scratch["weights"] is None
    assert tuned["weights"] == {"kind": "preset", "name": PRESET, "version": 1,
                                "sha256": sha256(PRESET_WEIGHTS)}
    preset_config = json.loads(open(os.path.join(REPO, "zoo", PRESET, "v1",
                                                 "config.json")).read())["kwargs"]
    assert {k: tuned["config"][k] for k in preset_config} == preset_config


@pytest.mark.slow
def test_corruption_turns_the_preset_into_a_denoiser_that_trains(runs):
    import keras

    import kerasae  # noqa: F401 - registers the classes the file names

    run = run_json(runs / "denoiser")
    assert run["config"]["corruption"] == "gaussian"
    assert run["config"]["corruption_amount"] == 0.3
    assert np.isfinite(run["final"]["loss"])
    model = keras.saving.load_model(runs / "denoiser" / "model.keras", safe_mode=True)
    assert model.corruption is not None and model.corruption.kind == "gaussian"
    preset = kerasae.ConvAE(weights=PRESET)
    changed = [not np.array_equal(a, b) for a, b in zip(model.get_weights(),
                                                        preset.get_weights())]
    assert all(changed), "every weight trained"


@pytest.mark.slow
def test_a_runs_model_is_a_start_point_and_shapes_are_not_overridden(runs, grey_photos):
    model = str(runs / "tuned" / "model.keras")
    _train(runs, "again", grey_photos, "--weights", model, "--arg", "corruption=masking")
    again = run_json(runs / "again")
    assert again["weights"] == {"kind": "keras", "path": model, "sha256": sha256(model)}
    assert again["config"]["corruption"] == "masking"
    proc = _train(runs, "refused", grey_photos, "--weights", PRESET, "--latent-dim", "8",
                  check=False)
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "trained with latent_dim=64" in err[0] and \
        "override is refused" in err[0], proc.stderr
    assert not (runs / "refused").exists()
    # The same run directory with other starting weights is another run: not resumed.
    proc = _train(runs, "scratch", grey_photos, "--weights", PRESET, check=False)
    assert proc.returncode == 1 and "holds another run" in proc.stderr
    assert "--no-resume" in proc.stderr


@pytest.mark.slow
@needs_taef2
def test_tae_flux2_fine_tunes_on_colour_crops_at_its_own_rate_and_lowers_the_loss(tmp_path):
    from PIL import Image

    from kerasae.models import load_keras_file
    from kerasae.models.convert import tiny_ae_from_pth
    from kerasae.presets.converted import SOURCES_DIR

    crops = np.stack(photo_crops(48, seed=5, size=(64, 64)))
    (tmp_path / "crops").mkdir()
    for i, crop in enumerate(crops):
        Image.fromarray(crop).save(tmp_path / "crops" / f"{i:03d}.png")
    # A file:// mirror holding the upstream files: the preset is converted on first use.
    origin = json.load(open(os.path.join(REPO, "zoo", "index.json")))["presets"]["tae_flux2"][
        "files"]["model.weights.h5"]["converted_from"]
    sources = tmp_path / "mirror" / SOURCES_DIR / origin["repository"] / origin["commit"]
    sources.mkdir(parents=True)
    for role, path in (("encoder", ENCODER), ("decoder", DECODER)):
        os.symlink(path, sources / origin["files"][role]["name"])
    env = dict(ENV, KERASAE_ZOO_MIRRORS=f"file://{tmp_path / 'mirror'}",
               KERASAE_CACHE=str(tmp_path / "cache"))
    run_cli(["train", "tiny_ae", "--dataset", "crops", "--weights", "tae_flux2", "--epochs", "1",
             "--batch-size", "8", "--validation", "none", "--verbose", "0", "--out", "tuned"],
            tmp_path, env=env)
    run = run_json(tmp_path / "tuned")
    assert run["learning_rate"] == 1e-5  # the preset's recipe: 1e-3 and 1e-4 raise the loss
    x = crops.astype("float32") / 255

    def mse(model):
        return float(np.mean((np.clip(np.asarray(model.reconstruct(x)), 0, 1) - x) ** 2))

    before = mse(tiny_ae_from_pth(ENCODER, DECODER))
    after = mse(load_keras_file(str(tmp_path / "tuned" / "model.keras")))
    assert after < before, (before, after)
