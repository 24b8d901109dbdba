"""The preset store: loading, the cache, and downloads from real loopback HTTP mirrors.

Tiny presets are published into a temporary zoo root (`published_zoo`); the
mirror serves that root, and the client sees an index-only root
(`client_root`), so every file has to come from the cache or a mirror.
"""

import json
import os
import pickle
import shutil

import numpy as np
import pytest

import kerasae
from kerasae import presets, zoo
from kerasae.presets import download
from tests.conftest import TINY_PRESETS
from tests.helpers import assert_plain_float_weights, build_tiny, digits_batch, files_under, sha256

pytestmark = pytest.mark.usefixtures("no_zoo_env")


@pytest.fixture
def serve(mirror_server, published_zoo):
    """`serve(mode)`: a loopback mirror of the published zoo (see `mirror_server`)."""
    return lambda mode="ok": mirror_server(published_zoo[0], mode)


def _assert_verified_cache(cache, root, name):
    entry = zoo.read_index(root)["presets"][name]
    folder = os.path.join(cache, *entry["path"].split("/"))
    assert sorted(os.listdir(folder)) == sorted(entry["files"])
    for filename, spec in entry["files"].items():
        assert sha256(os.path.join(folder, filename)) == spec["sha256"]


def test_load_model_rebuilds_the_published_model(published_zoo, tmp_path):
    root, models = published_zoo
    x = digits_batch(16)
    for name, model in models.items():
        loaded = zoo.load_model(name, root=root, cache_dir=str(tmp_path), mirrors=[])
        assert loaded.builder_name == model.builder_name
        assert loaded.builder_config == model.builder_config
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert os.listdir(tmp_path) == []  # served from the root, nothing cached


def test_unknown_preset_suggests_the_closest(published_zoo):
    with pytest.raises(ValueError, match=r"Did you mean 'conv_ae_digits'\?.*"
                                         r"Received: name='conv_ae_digit'"):
        zoo.get_preset("conv_ae_digit", root=published_zoo[0])


def test_list_presets(published_zoo, monkeypatch):
    assert zoo.list_presets(published_zoo[0]) == sorted(TINY_PRESETS)
    monkeypatch.setenv(zoo.ROOT_ENV, published_zoo[0])
    assert zoo.list_presets() == sorted(TINY_PRESETS)


def test_weights_that_only_partly_fit_are_an_error(published_zoo, tmp_path):
    # A file with the right sha256 but for another architecture is never half-loaded.
    preset = zoo.get_preset("conv_ae_digits", root=published_zoo[0], cache_dir=str(tmp_path))
    other = build_tiny("conv_ae", latent_dim=5)
    with pytest.raises(ValueError, match="do not fit|only partly fit"):
        zoo.load_preset_weights(other, preset)


def test_pull_into_an_empty_cache(published_zoo, client_root, serve, tmp_path):
    url, server = serve("ok")
    cache = str(tmp_path / "cache")
    folder = zoo.pull("conv_vae_digits", mirrors=[url], cache_dir=cache, root=client_root)
    _assert_verified_cache(cache, client_root, "conv_vae_digits")
    for filename in zoo.PRESET_FILES:
        with open(os.path.join(folder, filename), "rb") as a, \
                open(os.path.join(published_zoo[0], "conv_vae_digits", "v1", filename), "rb") as b:
            assert a.read() == b.read()
    assert len(server.hits) == len(zoo.PRESET_FILES)
    # Now offline: everything comes from the cache.
    model = zoo.load_model("conv_vae_digits", root=client_root, cache_dir=cache, mirrors=[])
    x = digits_batch(8)
    np.testing.assert_array_equal(model.predict(x, verbose=0),
                                  published_zoo[1]["conv_vae_digits"].predict(x, verbose=0))
    zoo.pull("conv_vae_digits", mirrors=[url], cache_dir=cache, root=client_root)
    assert len(server.hits) == len(zoo.PRESET_FILES)  # verified cache hits: no new requests


def test_a_flipped_byte_is_rejected_and_the_cache_stays_clean(client_root, serve, tmp_path):
    url, _ = serve("flip")
    cache = str(tmp_path / "cache")
    with pytest.raises(zoo.PresetNotAvailableError, match=r"failed the sha256 check.*discarded"):
        zoo.pull("conv_ae_digits", mirrors=[url], cache_dir=cache, root=client_root)
    entry = zoo.read_index(client_root)["presets"]["conv_ae_digits"]
    left = files_under(cache)
    assert not any(f.endswith(".part") or f.endswith(zoo.WEIGHTS_FILE) for f in left)
    for rel in left:  # only files that passed their check
        assert sha256(os.path.join(cache, rel)) == entry["files"][os.path.basename(rel)]["sha256"]


@pytest.mark.parametrize("bad", ["truncate", "404", "refused", "flip"])
def test_a_failing_first_mirror_falls_through_to_the_second(client_root, serve, tmp_path, bad):
    bad_url, bad_server = serve(bad)
    good_url, good_server = serve("ok")
    cache = str(tmp_path / "cache")
    zoo.pull("conv_ae_digits", mirrors=[bad_url, good_url], cache_dir=cache, root=client_root)
    _assert_verified_cache(cache, client_root, "conv_ae_digits")
    assert not any(f.endswith(".part") for f in files_under(cache))
    assert any(h.endswith(zoo.WEIGHTS_FILE) for h in good_server.hits)
    if bad_server is not None:
        assert any(h.endswith(zoo.WEIGHTS_FILE) for h in bad_server.hits)


def test_all_mirrors_failing_lists_what_was_tried(client_root, serve, tmp_path):
    url_404, _ = serve("404")
    url_refused, _ = serve("refused")
    with pytest.raises(zoo.PresetNotAvailableError) as info:
        zoo.load_model("conv_ae_digits", root=client_root, cache_dir=str(tmp_path),
                       mirrors=[url_404, url_refused])
    message = str(info.value)
    assert "could not be fetched from any mirror" in message
    assert f"{url_404}/conv_ae_digits/v1/config.json: HTTP 404" in message
    assert f"{url_refused}/conv_ae_digits/v1/config.json: unreachable" in message
    assert message.endswith("Received: name='conv_ae_digits'")


def test_no_mirror_and_no_cache_is_one_clear_offline_error(client_root, tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    monkeypatch.setenv(zoo.ROOT_ENV, client_root)
    monkeypatch.setenv(zoo.CACHE_ENV, cache)
    with pytest.raises(FileNotFoundError) as info:
        kerasae.ConvAE(weights="conv_ae_digits")
    message = str(info.value)
    assert "is not available offline" in message and "No mirror is configured" in message
    assert zoo.MIRRORS_ENV in message and cache in message
    assert message.endswith("Received: name='conv_ae_digits'")
    assert not os.path.exists(cache) or files_under(cache) == []


def test_mirrors_and_cache_from_the_environment(client_root, serve, tmp_path, monkeypatch):
    bad_url, _ = serve("404")
    good_url, _ = serve("ok")
    monkeypatch.setenv(zoo.MIRRORS_ENV, f"{bad_url}, {good_url}")
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "env_cache"))
    monkeypatch.setenv(zoo.ROOT_ENV, client_root)
    model = kerasae.DenoisingConvAE(weights="denoising_conv_ae_digits")
    assert model.corruption is not None
    entry = zoo.read_index(client_root)["presets"]["denoising_conv_ae_digits"]
    folder = tmp_path / "env_cache" / "denoising_conv_ae_digits" / "v1"
    assert sorted(os.listdir(folder)) == ["config.json", zoo.WEIGHTS_FILE]  # what loading needs
    for filename in os.listdir(folder):
        assert sha256(folder / filename) == entry["files"][filename]["sha256"]


def test_a_corrupt_cached_file_is_ignored_and_replaced(client_root, serve, tmp_path):
    url, _ = serve("ok")
    cache = str(tmp_path / "cache")
    zoo.pull("conv_ae_digits", mirrors=[url], cache_dir=cache, root=client_root)
    weights = os.path.join(cache, "conv_ae_digits", "v1", zoo.WEIGHTS_FILE)
    with open(weights, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(zoo.PresetNotAvailableError, match=r"cache: .*sha256 .*ignored"):
        zoo.load_model("conv_ae_digits", root=client_root, cache_dir=cache, mirrors=[])
    zoo.load_model("conv_ae_digits", root=client_root, cache_dir=cache, mirrors=[url])
    _assert_verified_cache(cache, client_root, "conv_ae_digits")


def test_progress_is_reported(client_root, serve, tmp_path, monkeypatch, capsys):
    url, _ = serve("ok")
    calls = []
    zoo.pull("conv_ae_digits", mirrors=[url], cache_dir=str(tmp_path / "a"), root=client_root)
    preset = zoo.get_preset("conv_ae_digits", root=client_root, cache_dir=str(tmp_path / "b"),
                            mirrors=[url], progress=lambda *a: calls.append(a))
    preset.file(zoo.WEIGHTS_FILE)
    size = preset.entry["files"][zoo.WEIGHTS_FILE]["bytes"]
    weights_calls = [c for c in calls if c[0].endswith(zoo.WEIGHTS_FILE)]
    assert weights_calls[-1] == ("conv_ae_digits@1/model.weights.h5", size, size)
    assert [c[1] for c in weights_calls] == sorted(c[1] for c in weights_calls)
    # The default reporter prints for large files only; make every file "large".
    monkeypatch.setattr(download, "PROGRESS_MIN_BYTES", 1)
    capsys.readouterr()
    zoo.pull("conv_ae_digits", mirrors=[url], cache_dir=str(tmp_path / "c"), root=client_root)
    err = capsys.readouterr().err
    assert "Downloading conv_ae_digits@1/model.weights.h5" in err and "(100%)" in err


def test_presets_hold_no_pickles(published_zoo):
    root = published_zoo[0]
    for rel in files_under(root):
        assert rel.endswith((".json", ".h5", ".md")), rel
        if rel.endswith(".json"):
            json.load(open(os.path.join(root, rel)))
    for name in TINY_PRESETS:
        assert_plain_float_weights(os.path.join(root, name, "v1", zoo.WEIGHTS_FILE))
    for module in os.listdir(os.path.dirname(presets.__file__)):
        if module.endswith(".py"):
            source = open(os.path.join(os.path.dirname(presets.__file__), module)).read()
            assert "safe_mode=False" not in source, module
            assert "pickle.load(" not in source and "pickle.loads(" not in source, module
            # Only the PyTorch reader holds pickle, for an unpickler that resolves no names
            # but the few a state dict uses (tests/presets/test_torch_state.py attacks it).
            assert "import pickle" not in source or module == "torch_state.py", module
    from kerasae.presets import torch_state

    assert torch_state._Unpickler.find_class is not pickle.Unpickler.find_class


def test_verify_index_finds_a_changed_file(published_zoo, tmp_path):
    copy = str(tmp_path / "copy")
    shutil.copytree(published_zoo[0], copy)
    assert zoo.verify_index(copy) == []
    with open(os.path.join(copy, "conv_vae_digits", "v1", "README.md"), "a") as f:
        f.write("edited in place\n")
    os.remove(os.path.join(copy, "conv_ae_digits", "v1", zoo.WEIGHTS_FILE))
    problems = zoo.verify_index(copy)
    assert len(problems) == 2
    assert any("conv_vae_digits@1: README.md has sha256" in p for p in problems)
    assert any("conv_ae_digits@1: model.weights.h5 is missing" in p for p in problems)


def test_pull_without_a_mirror_says_a_shipped_preset_needs_none(published_zoo, tmp_path,
                                                                monkeypatch):
    monkeypatch.setenv(zoo.ROOT_ENV, published_zoo[0])
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"conv_ae_digits@1 cannot be pulled.*it needs "
                                                r"no pull.*loading it works offline"):
        zoo.pull("conv_ae_digits")
    assert not (tmp_path / "cache").exists()
    kerasae.ConvAE(weights="conv_ae_digits")  # and indeed it loads
