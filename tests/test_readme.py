"""The README's Python example runs as written."""

import pathlib
import re

import pytest

from tests.helpers import needs_fashion_mnist, photo_crops


@pytest.mark.slow
def test_python_example_runs(tmp_path, monkeypatch):
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    import numpy as np

    vae, x = scope["vae"], scope["x"]
    assert tuple(scope["z_mean"].shape) == (360, 8)
    np.testing.assert_allclose(np.asarray(scope["z_mean"]), vae.encoder.predict(x, verbose=0)[0],
                               atol=1e-5)
    np.testing.assert_allclose(np.asarray(scope["recon"]), vae.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(scope["halfway"]),
        vae.decoder.predict(np.asarray(scope["z_mean"][:2]).mean(0, keepdims=True), verbose=0),
        atol=1e-5)
    assert tuple(scope["images"].shape) == (16, 8, 8, 1)
    assert (tmp_path / "runs" / "vae" / "run.json").exists()


@needs_fashion_mnist  # the snippet encodes the Fashion-MNIST test split
def test_zoo_example_runs(monkeypatch, tmp_path):
    """The README's zoo snippet loads the shipped preset (no network) and encodes the test split."""
    import json

    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    block = next(b for b in blocks if 'weights="conv_ae_fashion_mnist"' in b)
    monkeypatch.setenv("KERASAE_CACHE", str(tmp_path / "cache"))  # empty cache
    monkeypatch.delenv("KERASAE_ZOO_MIRRORS", raising=False)
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    config = json.loads((pathlib.Path(__file__).parent.parent / "zoo" / "conv_ae_fashion_mnist"
                         / "v1" / "config.json").read_text())
    assert scope["codes"].shape == (10000, config["kwargs"]["latent_dim"])
    assert scope["ae"].count_params() == json.loads(
        (pathlib.Path(__file__).parent.parent / "zoo" / "index.json").read_text()
    )["presets"]["conv_ae_fashion_mnist"]["params"]


def test_zoo_table_numbers_are_the_measured_ones():
    """Every number in the README's zoo table is the one in the preset's metadata.json."""
    import json

    root = pathlib.Path(__file__).parent.parent
    readme = (root / "README.md").read_text()
    index = json.loads((root / "zoo" / "index.json").read_text())["presets"]
    labels = {"noisy PSNR": "psnr_noisy", "denoised PSNR": "psnr_denoised", "MSE": "mse",
              "PSNR": "psnr", "SSIM": "ssim", "neg-ELBO": "neg_elbo", "IS-NLL": "nll_is"}
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, labels)) + r") (\d+\.\d+)")
    rows = {m.group(1): m.group(2) for m in
            re.finditer(r"^\| `([a-z0-9_]+)` \| `[a-z0-9_]+` \|[^|]*\|[^|]*\| ([^|]*) \|", readme, re.M)}
    assert set(rows) == set(index), "the zoo table lists exactly the presets of zoo/index.json"
    for name, cell in rows.items():
        meta = json.loads((root / "zoo" / index[name]["path"] / "metadata.json").read_text())
        metrics = meta["evaluation"]["metrics"]
        found = pattern.findall(cell)
        assert found, cell
        for label, text in found:
            decimals = len(text.split(".")[1])
            assert abs(float(text) - metrics[labels[label]]) <= 0.5 * 10 ** -decimals, (
                name, label, text, metrics[labels[label]])


@pytest.mark.slow
def test_own_data_example_runs_on_a_folder_of_photos(tmp_path, monkeypatch):
    """The README's "Your own data" snippet, on photos of different sizes cut from the two
    pictures scikit-learn ships."""
    from PIL import Image

    (tmp_path / "photos").mkdir()
    for i, crop in enumerate(photo_crops(300, seed=0, sizes=(48, 160))):
        Image.fromarray(crop).save(tmp_path / "photos" / f"{i:03d}.jpg")
    block = _block('kerasae.data.folder("photos/"')
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert scope["photos"].image_shape == (64, 64, 3) and len(scope["photos"]) == 300
    assert scope["codes"].shape == (8, scope["result"].model.latent_dim)
    run = scope["result"].run
    assert run["dataset"]["route"] == "folder" and run["dataset"]["examples"] == 270
    assert run["dataset"]["validation"]["split"].endswith("(0.1 held out)")


@pytest.mark.slow
def test_fine_tune_example_runs_on_greyscale_photos(tmp_path, monkeypatch):
    """The README's "Fine-tune a preset" snippet, on 28x28 crops of scikit-learn's pictures."""
    import numpy as np
    from PIL import Image

    (tmp_path / "photos").mkdir()
    for i, crop in enumerate(photo_crops(200, seed=1, sizes=(30, 90))):
        Image.fromarray(crop).save(tmp_path / "photos" / f"{i:03d}.png")
    block = _block('kerasae.ConvAE(weights="conv_ae_fashion_mnist", corruption="gaussian")')
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    start = scope["start"]
    assert (start["kind"], start["name"], start["version"]) == ("preset", "conv_ae_fashion_mnist", 1)
    run = scope["result"].run
    assert run["config"]["corruption"] == "gaussian"
    assert run["dataset"]["image_shape"] == [28, 28, 1] and run["dataset"]["examples"] == 180
    assert np.isfinite(run["final"]["loss"]) and np.isfinite(run["final"]["val_loss"])


def _block(marker):
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    return next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if marker in b)


def test_hub_example_loads_from_a_loopback_hub(tmp_path, monkeypatch):
    """The README's "Presets on the Hub" snippet, against a local Hub serving the folder
    that `kerasae zoo hub` (the README's first command) writes, with the real client."""
    import numpy as np
    import pytest

    pytest.importorskip("huggingface_hub")
    from kerasae import cli, zoo
    from tests.presets.hub_server import HubServer

    assert cli.main(["zoo", "hub", "conv_ae_fashion_mnist", str(tmp_path / "hub" / "conv-ae"),
                     "--repo-id", "you/conv-ae"]) == 0
    server = HubServer({"you/conv-ae": str(tmp_path / "hub" / "conv-ae")})
    try:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
        scope = {}
        exec(compile(_block('"hf://you/conv-ae"'), "README.md", "exec"), scope)
    finally:
        server.stop()
    shipped = zoo.load_model("conv_ae_fashion_mnist")
    for model in (scope["ae"], scope["denoiser"]):
        weights = model.get_weights()
        assert len(weights) == len(shipped.get_weights())
        assert all(np.array_equal(a, b) for a, b in zip(weights, shipped.get_weights()))
    assert scope["denoiser"].builder_config["corruption"] == "gaussian"
    assert server.hits, "the snippet went through the Hub server"
    assert (tmp_path / "hf").is_dir() and not (tmp_path / "cache").exists()


@pytest.mark.slow
@needs_fashion_mnist  # calibrates on the preset's training data and encodes the test split
def test_litert_example_runs_the_int8_files(tmp_path, monkeypatch):
    """The README's LiteRT snippet: the int8 reconstruction is close to Keras's (the
    independent reference), and the reported loss is what the files give."""
    import numpy as np
    import pytest

    pytest.importorskip("ai_edge_litert")
    from kerasae import zoo

    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(_block("encoder.int8.tflite"), "README.md", "exec"), scope)
    x = scope["x"]
    keras_recon = np.asarray(zoo.load_model("conv_ae_fashion_mnist").predict(x, verbose=0))
    recon = np.asarray(scope["recon"])
    assert recon.shape == x.shape == (8, 28, 28, 1)
    assert np.mean((recon - keras_recon) ** 2) < 1e-3  # int8: close, not equal
    assert not np.array_equal(recon, keras_recon)
    int8 = scope["manifest"]["litert"]["int8"]
    assert int8["size_ratio"] <= 0.30 and 0 <= scope["loss_db"] <= 0.5
    assert sorted(p.name for p in (tmp_path / "exported-lite").iterdir()) == [
        "decoder.int8.tflite", "decoder.tflite", "encoder.int8.tflite", "encoder.tflite",
        "manifest.json", "reference.npz"]
