"""`kerasae train BUILDER --weights PRESET_OR_FILE`: fine-tuning from the zoo or a run's model.

The data are greyscale photos (28x28 crops of scikit-learn's two sample
pictures), not Fashion-MNIST: the shipped preset has never seen them.
"""

import json
import os

import numpy as np
import pytest

from tests.helpers import REPO, photo_crops, run_cli, run_json, sha256

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
