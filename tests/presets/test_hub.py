"""hf:// presets against a loopback Hub, read back with huggingface_hub's own tools.

The shipped `conv_ae_fashion_mnist` preset is written as a hub folder
(`kerasae zoo hub`), served by `tests.presets.hub_server` and loaded from
`hf://`: it must equal the shipped preset bit for bit, load again with the server
stopped, land in the Hugging Face cache as huggingface_hub lays it out, and refuse
damaged repos without keeping anything of them. Hostile servers:
`test_hub_hostile.py`.
"""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

import kerasae
from kerasae import zoo
from kerasae.presets.hub import MANIFEST
from tests.helpers import files_under, needs_fashion_mnist
from tests.presets.hub_server import HubServer

pytest.importorskip("huggingface_hub")

PRESET = "conv_ae_fashion_mnist"
REPO = f"kerasae/{PRESET}"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The hub folder of the shipped preset, and three damaged copies of it."""
    base = tmp_path_factory.mktemp("hub")
    good = str(base / "good")
    zoo.hub_folder(PRESET, good, repo_id=REPO)
    out = {"good": good}
    for kind in ("flipped", "no-manifest", "mismatch"):
        out[kind] = str(base / kind)
        shutil.copytree(good, out[kind])
    weights = os.path.join(out["flipped"], "model.weights.h5")
    data = bytearray(open(weights, "rb").read())
    data[len(data) // 2] ^= 0x01  # one bit of one weight; the manifest still pins the original
    open(weights, "wb").write(bytes(data))
    os.remove(os.path.join(out["no-manifest"], MANIFEST))
    manifest = json.load(open(os.path.join(out["mismatch"], MANIFEST)))
    manifest["preset"]["files"]["config.json"]["sha256"] = "0" * 64
    json.dump(manifest, open(os.path.join(out["mismatch"], MANIFEST), "w"))
    return out


@pytest.fixture
def hub(folders, tmp_path, monkeypatch):
    server = HubServer({f"kerasae/{k}": v for k, v in folders.items()} | {REPO: folders["good"]})
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "kerasae-cache"))
    yield server
    server.stop()


def _equal(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))


def test_the_hub_folder_pins_every_file_and_carries_the_hubs_metadata(folders):
    from huggingface_hub import ModelCard

    manifest = json.load(open(os.path.join(folders["good"], MANIFEST)))
    files = manifest["preset"]["files"]
    assert sorted(files) == sorted(n for n in os.listdir(folders["good"]) if n != MANIFEST)
    for name, spec in files.items():
        data = open(os.path.join(folders["good"], name), "rb").read()
        assert spec == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    shipped = os.path.join(os.path.dirname(kerasae.__file__), os.pardir, "zoo", PRESET, "v1")
    assert open(os.path.join(shipped, "model.weights.h5"), "rb").read() == open(
        os.path.join(folders["good"], "model.weights.h5"), "rb").read()
    card = ModelCard.load(os.path.join(folders["good"], "README.md"))  # the Hub's own parser
    assert card.data.library_name == "kerasae" and card.data.datasets == ["fashion_mnist"]
    measured = json.load(open(os.path.join(shipped, "metadata.json")))["evaluation"]["metrics"]
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == measured
    assert f"hf://{REPO}" in card.text


def test_hf_preset_loads_bit_for_bit_then_from_the_cache_without_the_server(hub, tmp_path,
                                                                            monkeypatch):
    model = zoo.load_model(f"hf://{REPO}")
    assert _equal(model, zoo.load_model(PRESET))
    assert {m for m, _ in hub.hits} == {"HEAD", "GET"}
    # (huggingface_hub may ask for its agent registry once, building its user agent)
    assert all("/resolve/" in p for _, p in hub.hits if p != "/api/agent-harnesses")
    from huggingface_hub import scan_cache_dir

    scan = scan_cache_dir(tmp_path / "hf")  # the Hub's own reader of its cache layout
    (repo,) = scan.repos
    (revision,) = repo.revisions
    assert scan.warnings == [] and repo.repo_id == REPO and revision.refs == {"main"}
    assert revision.commit_hash == hub.commit(REPO)
    assert sorted(f.file_name for f in revision.files) == sorted(os.listdir(hub.server.repos[REPO]))
    built = kerasae.ConvAE(weights=f"hf://{REPO}", corruption="gaussian")  # a builder too
    assert _equal(built, model) and built.start_point["kind"] == "hub"
    assert built.start_point["commit"] == hub.commit(REPO)
    hub.stop()
    assert _equal(zoo.load_model(f"hf://{REPO}"), model)  # the Hub is down: its cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _equal(zoo.load_model(f"hf://{REPO}@{hub.commit(REPO)}"), model)
    assert not os.path.exists(tmp_path / "kerasae-cache")  # the Hub's cache, not kerasae's


def test_a_cached_commit_needs_no_network(hub):
    zoo.load_model(f"hf://{REPO}@{hub.commit(REPO)}")
    before = len(hub.hits)
    zoo.load_model(f"hf://{REPO}@{hub.commit(REPO)}")
    assert len(hub.hits) == before


def test_offline_with_an_empty_cache_is_one_clear_error(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"'kerasae-preset.json' of hf://kerasae/"
                                                r"conv_ae_fashion_mnist is not in the Hugging "
                                                r"Face cache and HF_HUB_OFFLINE is set"):
        zoo.load_model(f"hf://{REPO}")
    assert hub.hits == []


@pytest.mark.parametrize("kind, phrase", [
    ("flipped", "'model.weights.h5' of hf://kerasae/flipped does not match"),
    ("no-manifest", "has no kerasae-preset.json, so it is not a kerasae preset"),
    ("mismatch", "'config.json' of hf://kerasae/mismatch does not match"),
])
def test_damaged_repos_are_refused_and_nothing_of_them_is_kept(hub, tmp_path, kind, phrase):
    with pytest.raises(FileNotFoundError, match=phrase):
        zoo.load_model(f"hf://kerasae/{kind}")
    assert not os.path.exists(tmp_path / "kerasae-cache")
    bad = {"flipped": "model.weights.h5", "mismatch": "config.json"}.get(kind)
    if bad:  # the unverified file is gone from the Hub's cache too: a retry downloads again
        cached = [f for f in files_under(tmp_path / "hf") if f.endswith(bad)]
        assert cached == [], cached
        blobs = files_under(tmp_path / "hf" / f"models--kerasae--{kind}" / "blobs")
        data = open(os.path.join(hub.server.repos[f"kerasae/{kind}"], bad), "rb").read()
        assert hashlib.sha256(data).hexdigest() not in blobs


def test_commands_take_hf_presets(hub, tmp_path, capsys):
    from kerasae import cli

    name = f"hf://{REPO}"
    assert cli.main(["zoo", "info", name]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{name} version 1:") and "[hub cache]" in out
    assert cli.main(["zoo", "pull", name]) == 0
    assert "verified files in" in capsys.readouterr().out
    assert cli.main(["export", name, str(tmp_path / "exported"), "--formats", "saved_model"]) == 0
    manifest = json.load(open(tmp_path / "exported" / "manifest.json"))
    assert manifest["source"]["preset"] == name and manifest["parity"]["passed"]


@needs_fashion_mnist
def test_zoo_evaluate_on_a_hub_preset_matches_the_shipped_one(hub):
    a = zoo.evaluate_preset(f"hf://{REPO}", limit=200)
    b = zoo.evaluate_preset(PRESET, limit=200)
    assert a["metrics"] == b["metrics"]
