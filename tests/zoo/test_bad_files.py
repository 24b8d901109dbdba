"""Preset files that match their pins but are unusable: one line naming the file, never a traceback.

A zoo root (or a mirror, or a Hub repo) can pin a `config.json` that is not JSON
or a `metadata.json` whose fields have the wrong types: the sha256 check passes,
so the store must read them defensively. Each case below is a real published
tiny preset with one file rewritten and re-pinned, run through the real command
line in this process (a bug would escape `cli.main` as an exception).
"""

import hashlib
import json
import os
import shutil

import pytest

from kerasae import cli, zoo
from kerasae.presets.hub import MANIFEST
from tests.presets.hub_server import HubServer

PRESET = "conv_ae_digits"
pytestmark = pytest.mark.usefixtures("no_zoo_env")


def _set(key, value):
    def change(meta):
        holder = meta
        *parents, last = key.split(".")
        for k in parents:
            holder = holder[k]
        holder[last] = value
        return json.dumps(meta).encode()
    return change


# (file, change of its content, the phrase of the one line that names what is wrong)
CASES = {
    "config-not-json": ("config.json", lambda _: b'{"builder": "conv_ae", "kwargs": {',
                        "is refused: it is not JSON"),
    "config-a-list": ("config.json", lambda _: b"[1, 2]", "it holds a list, not an object"),
    "metadata-not-utf8": ("metadata.json", lambda _: b"\xff\xfe{}", "it is not JSON"),
    "evaluation-a-list": ("metadata.json", _set("evaluation", []),
                          "'evaluation' is a list, not an object"),
    "metric-a-string": ("metadata.json", _set("evaluation.metrics.mse", "0.1"),
                        "'evaluation.metrics.mse' is a string, not a number"),
    "metrics-a-string": ("metadata.json", _set("evaluation.metrics", "mse=0.1"),
                         "'evaluation.metrics' is a string, not an object"),
    "dataset-a-number": ("metadata.json", _set("dataset", 5),
                         "'dataset' is a number, not an object"),
    "setting-a-string": ("metadata.json", _set("evaluation.settings.batch_size", "250"),
                         "'evaluation.settings.batch_size' is a string, not a number"),
}
COMMANDS = {
    "info": lambda out: ["zoo", "info", PRESET],
    "hub": lambda out: ["zoo", "hub", PRESET, out],
    "evaluate": lambda out: ["zoo", "evaluate", PRESET, "--limit", "8"],
}


def _pin(path, data, index_path, key):
    """Writes `data` to `path` and pins it in the index (or manifest) at `key`."""
    with open(path, "wb") as f:
        f.write(data)
    with open(index_path) as f:
        index = json.load(f)
    holder = index
    for k in key:
        holder = holder[k]
    holder[os.path.basename(path)] = {"sha256": hashlib.sha256(data).hexdigest(),
                                      "bytes": len(data)}
    with open(index_path, "w") as f:
        json.dump(index, f)


@pytest.fixture
def bad_zoo(published_zoo, tmp_path):
    """`bad_zoo(filename, change)`: a copy of the tiny zoo whose PRESET has the file
    `filename` rewritten as `change(its JSON)` and re-pinned in the index."""
    def make(filename, change):
        root = str(tmp_path / "zoo")
        shutil.copytree(published_zoo[0], root)
        path = os.path.join(root, PRESET, "v1", filename)
        with open(path, "rb") as f:
            old = f.read()
        _pin(path, change(json.loads(old)), os.path.join(root, "index.json"),
             ("presets", PRESET, "files"))
        return root
    return make


def _one_line_error(capsys, argv, phrase, filename):
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("kerasae zoo: error: ")
    assert f"{filename} of preset {PRESET}@1 (" in lines[0] and phrase in lines[0]
    assert "republish the preset as a new version" in lines[0] and "Received: " in lines[0]


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_pinned_but_broken_file_of_a_custom_zoo_is_one_line(bad_zoo, case, command,
                                                              tmp_path, monkeypatch, capsys):
    filename, change, phrase = CASES[case]
    monkeypatch.setenv(zoo.ROOT_ENV, bad_zoo(filename, change))
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    out = str(tmp_path / "hub-folder")
    _one_line_error(capsys, COMMANDS[command](out), phrase, filename)
    assert not os.path.exists(out)


@pytest.mark.parametrize("case", ["config-not-json", "metric-a-string"])
def test_a_broken_file_served_by_a_mirror_is_one_line(bad_zoo, mirror_server, case, tmp_path,
                                                      monkeypatch, capsys):
    filename, change, phrase = CASES[case]
    root = bad_zoo(filename, change)
    client = tmp_path / "client"
    client.mkdir()
    shutil.copy(os.path.join(root, "index.json"), client / "index.json")  # files: the mirror
    url, server = mirror_server(root)
    monkeypatch.setenv(zoo.ROOT_ENV, str(client))
    monkeypatch.setenv(zoo.MIRRORS_ENV, url)
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    _one_line_error(capsys, ["zoo", "info", PRESET], phrase, filename)
    assert any(hit.endswith(f"/{filename}") for hit in server.hits)


def test_evaluate_refuses_settings_it_does_not_know(bad_zoo, tmp_path, monkeypatch, capsys):
    root = bad_zoo("metadata.json", _set("evaluation.settings.temperature", 1.0))
    monkeypatch.setenv(zoo.ROOT_ENV, root)
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    assert cli.main(["zoo", "evaluate", PRESET, "--limit", "8"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "records evaluation setting(s) " \
        "temperature that this kerasae does not know" in err
    assert cli.main(["zoo", "info", PRESET]) == 0  # the card's numbers still show


def test_an_index_that_is_not_json_is_one_line(tmp_path, capsys):
    (tmp_path / "index.json").write_bytes(b'{"format": 1, "presets": {')
    assert cli.main(["zoo", "list", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"kerasae zoo: error: {tmp_path / 'index.json'} is not JSON (")
    assert "so it is no zoo index: restore it" in err and len(err.splitlines()) == 1


def test_publish_refuses_reference_metrics_its_card_cannot_show(published_zoo, tmp_path):
    model = published_zoo[1][PRESET]
    with pytest.raises(ValueError, match=r"reference_metrics are \{metric: .*'reference_metrics"
                                         r".mse' is not .*Received: mse=\[0.05\]"):
        zoo.publish(model, PRESET, version=1, description="x", dataset="digits",
                    root=str(tmp_path / "zoo"), recipe={"command": "x"},
                    reference_metrics={"mse": 0.05})
    assert not os.path.exists(tmp_path / "zoo")


# ------------------------------------------------------------------ hf:// presets
@pytest.fixture
def hub(published_zoo, tmp_path, monkeypatch):
    """A loopback Hub serving the hub folder of the tiny preset (as `kerasae zoo hub` wrote
    it) as `kerasae/good`, and the same with a metadata.json of the wrong types as
    `kerasae/bad`."""
    pytest.importorskip("huggingface_hub")
    good, bad = str(tmp_path / "good"), str(tmp_path / "bad")
    zoo.hub_folder(PRESET, good, repo_id="kerasae/good", root=published_zoo[0])
    shutil.copytree(good, bad)
    path = os.path.join(bad, "metadata.json")
    with open(path, "rb") as f:
        data = _set("dataset", 5)(json.load(f))
    _pin(path, data, os.path.join(bad, MANIFEST), ("preset", "files"))
    server = HubServer({"kerasae/good": good, "kerasae/bad": bad})
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield good
    server.stop()


def test_hub_of_an_hf_preset_replaces_its_front_matter_and_load_section(hub, tmp_path):
    from huggingface_hub import ModelCard  # the Hub's own parser

    again = str(tmp_path / "again")
    zoo.hub_folder("hf://kerasae/good", again, repo_id="kerasae/good")
    with open(os.path.join(again, "README.md"), encoding="utf-8") as f:
        text = f.read()
    with open(os.path.join(hub, "README.md"), encoding="utf-8") as f:
        first = f.read()
    # Written from the same metadata for the same repo: the same card, byte for byte.
    assert text == first
    card = ModelCard.load(os.path.join(again, "README.md"))
    assert card.data.library_name == "kerasae" and card.data.datasets == ["digits"]
    assert "\n---" not in card.text and card.text.count("## Load from the Hub") == 1
    third = str(tmp_path / "third")
    zoo.hub_folder("hf://kerasae/good", third, repo_id="someone/else")
    card = ModelCard.load(os.path.join(third, "README.md"))
    assert card.text.count("## Load from the Hub") == 1
    assert "hf://someone/else" in card.text and "hf://kerasae/good" not in card.text
    assert card.text.rstrip().endswith("```")  # the load section stays the last one


def test_an_hf_preset_with_metadata_of_wrong_types_is_one_line(hub, capsys):
    assert cli.main(["zoo", "info", "hf://kerasae/bad"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "metadata.json of preset hf://kerasae/bad (" in err
    assert "'dataset' is a number, not an object" in err
