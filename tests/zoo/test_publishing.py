"""Publishing presets: exactly the pinned files, measured cards, versions never overwritten."""

import json
import os

import numpy as np
import pytest

import kerasae
from kerasae import zoo
from tests.conftest import TINY_PRESETS, check_preset
from tests.helpers import build_tiny, files_under, sha256

pytestmark = pytest.mark.usefixtures("no_zoo_env")


def test_publish_writes_exactly_the_preset_files_pinned_in_the_index(published_zoo):
    root, models = published_zoo
    index = json.load(open(os.path.join(root, "index.json")))
    assert index["format"] == 1 and sorted(index["presets"]) == sorted(TINY_PRESETS)
    for name, model in models.items():
        entry = index["presets"][name]
        folder = os.path.join(root, name, "v1")
        assert entry["path"] == f"{name}/v1" and entry["version"] == 1
        assert sorted(os.listdir(folder)) == sorted(zoo.PRESET_FILES)
        assert sorted(os.listdir(os.path.join(root, name))) == ["v1"]  # no temp leftovers
        for filename in zoo.PRESET_FILES:
            path = os.path.join(folder, filename)
            assert entry["files"][filename] == {"sha256": sha256(path),
                                                "bytes": os.path.getsize(path)}
        config = json.load(open(os.path.join(folder, "config.json")))
        assert config == {"builder": model.builder_name, "kwargs": model.builder_config}
        meta = json.load(open(os.path.join(folder, "metadata.json")))
        assert meta["parameters"] == entry["params"] == model.count_params()
        assert meta["dataset"]["name"] == "digits" and meta["evaluation"]["split"] == "test"
        assert meta["recipe"]["command"].startswith("python -m tests.train_tiny")
        assert {"kerasae", "keras", "tensorflow", "numpy"} <= set(meta["versions"])
        card = open(os.path.join(folder, "README.md")).read()
        for section in ("## Intended use", "## Data", "## Training procedure",
                        "## Evaluation", "## Limitations", "## Load"):
            assert section in card
        assert "a made-up reference" in card
        load = card.split("## Load")[1].split("```python")[1].split("```")[0].strip()
        assert len(load.splitlines()) == 3


def test_every_published_preset_meets_the_preset_contract(published_zoo):
    for name in TINY_PRESETS:
        check_preset(published_zoo[0], name)


def test_published_metrics_are_what_evaluate_measures(published_zoo):
    root, models = published_zoo
    from kerasae.zoo.evaluate import evaluate_model

    images = kerasae.data.load_numpy("digits", "test")[0]
    for name, model in models.items():
        meta = json.load(open(os.path.join(root, name, "v1", "metadata.json")))
        again = evaluate_model(model, images, **meta["evaluation"]["settings"])["metrics"]
        assert again == pytest.approx(meta["evaluation"]["metrics"], rel=1e-6)
    den = json.load(open(os.path.join(root, "denoising_conv_ae_digits", "v1", "metadata.json")))
    vae = json.load(open(os.path.join(root, "conv_vae_digits", "v1", "metadata.json")))
    assert {"psnr_noisy", "psnr_denoised"} <= set(den["evaluation"]["metrics"])
    assert {"neg_elbo", "nll_is", "kl"} <= set(vae["evaluation"]["metrics"])


def test_publish_refuses_to_overwrite_a_published_version(published_zoo):
    root, models = published_zoo
    before = {f: sha256(os.path.join(root, "conv_ae_digits", "v1", f)) for f in zoo.PRESET_FILES}
    index_before = open(os.path.join(root, "index.json")).read()
    with pytest.raises(ValueError, match="already published.*Publish version 2"):
        zoo.publish(models["conv_ae_digits"], "conv_ae_digits", version=1, description="x",
                    dataset="digits", recipe={"command": "x"}, root=root)
    after = {f: sha256(os.path.join(root, "conv_ae_digits", "v1", f)) for f in zoo.PRESET_FILES}
    assert before == after and open(os.path.join(root, "index.json")).read() == index_before


def test_new_version_keeps_the_old_one_loadable(tmp_path):
    root = str(tmp_path / "zoo")
    first, second = build_tiny("stacked_ae", seed=1), build_tiny("stacked_ae", seed=2)
    common = dict(dataset="digits", recipe={"command": "train"}, root=root)
    zoo.publish(first, "stacked_ae_digits", version=1, description="first", **common)
    v1_files = {f: sha256(os.path.join(root, "stacked_ae_digits", "v1", f)) for f in zoo.PRESET_FILES}
    zoo.publish(second, "stacked_ae_digits", version=2, description="second", **common)
    entry = zoo.read_index(root)["presets"]["stacked_ae_digits"]
    assert entry["version"] == 2 and [o["version"] for o in entry["previous_versions"]] == [1]
    assert v1_files == {f: sha256(os.path.join(root, "stacked_ae_digits", "v1", f))
                        for f in zoo.PRESET_FILES}
    cache = str(tmp_path / "cache")
    for name, model in (("stacked_ae_digits", second), ("stacked_ae_digits@2", second),
                        ("stacked_ae_digits@1", first)):
        loaded = zoo.load_model(name, root=root, cache_dir=cache, mirrors=[])
        for a, b in zip(loaded.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="no version 3"):
        zoo.get_preset("stacked_ae_digits@3", root=root, cache_dir=cache, mirrors=[])
    with pytest.raises(ValueError, match="already published"):
        zoo.publish(first, "stacked_ae_digits", version=1, description="again", **common)


def test_publish_refuses_weights_over_5_mb(tmp_path):
    root = str(tmp_path / "zoo")
    big = kerasae.StackedAE(hidden_units=(1700,), latent_dim=8)  # ~2.7M params, ~11 MB
    with pytest.raises(ValueError, match=r"at most 5,000,000.*Received: weights_bytes="):
        zoo.publish(big, "stacked_ae_fashion_mnist", version=1, description="big",
                    dataset="fashion_mnist", recipe={"command": "train"}, root=root)
    assert files_under(root) == []  # nothing half-published
    assert zoo.read_index(root)["presets"] == {}


@pytest.mark.parametrize("name, match", [
    ("ConvAE_digits", "lower snake case"),
    ("stacked_ae_digits", "starts with the builder name"),
    ("conv_ae_digits_latent16", None),
])
def test_publish_checks_names(tmp_path, name, match):
    model = build_tiny("conv_ae")
    kwargs = dict(version=1, description="d", dataset="digits", recipe={"command": "c"},
                  root=str(tmp_path))
    if match is None:  # a name is not checked for hyperparameters; it is only a convention
        zoo.publish(model, name, **kwargs)
        return
    with pytest.raises(ValueError, match=f"{match}.*Received: name="):
        zoo.publish(model, name, **kwargs)


def test_publish_needs_a_recipe_command(tmp_path):
    with pytest.raises(ValueError, match="exact training command"):
        zoo.publish(build_tiny("conv_ae"), "conv_ae_digits", version=1, description="d",
                    dataset="digits", recipe={"epochs": 3}, root=str(tmp_path))
