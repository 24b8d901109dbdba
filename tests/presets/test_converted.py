"""A preset converted on the user's machine: `tae_flux2` from TAEF2's pinned PyTorch files.

The shipped index entry is copied into a temporary zoo root whose upstream URL points
at a loopback server (so no test reaches the internet); a real loopback mirror serves
`../shared/data/taef2/` under `sources/<repository>/<commit>/`, as a mirror would.
"""

import json
import os
import pickle
import re
import shutil

import numpy as np
import pytest

from kerasae import zoo
from kerasae.presets.converted import ConversionFailed
from tests.helpers import files_under, run_cli, sha256
from tests.models.test_convert import DECODER, ENCODER, needs_taef2
from tests.presets.test_torch_state import _Runs, _torch_zip

pytestmark = [needs_taef2, pytest.mark.usefixtures("no_zoo_env")]
NAME = "tae_flux2"


def _shipped_entry():
    return zoo.read_index(zoo.shipped_root())["presets"][NAME]


def _origin():
    return _shipped_entry()["files"][zoo.WEIGHTS_FILE]["converted_from"]


def _client_root(tmp_path, url=None, change=None):
    """A zoo root with `tae_flux2`'s shipped files and index entry (the upstream URL
    replaced by `url`, or removed); `change(entry)` edits the entry first."""
    root = tmp_path / "root"
    entry = json.loads(json.dumps(_shipped_entry()))
    origin = entry["files"][zoo.WEIGHTS_FILE]["converted_from"]
    origin.pop("url")
    if url:
        origin["url"] = url
    if change:
        change(entry)
    shutil.copytree(os.path.join(zoo.shipped_root(), *entry["path"].split("/")),
                    root / entry["path"])
    (root / "index.json").write_text(json.dumps({"format": 1, "presets": {NAME: entry}}))
    return str(root)


def _mirror(tmp_path, encoder=ENCODER, decoder=DECODER):
    """A mirror folder holding the upstream files where a mirror keeps them."""
    origin = _origin()
    folder = tmp_path / "mirror" / "sources" / origin["repository"] / origin["commit"]
    folder.mkdir(parents=True)
    for role, path in (("encoder", encoder), ("decoder", decoder)):
        shutil.copy(path, folder / origin["files"][role]["name"])
    return str(tmp_path / "mirror"), str(folder)


def _nothing_cached(cache):
    left = files_under(cache) if os.path.isdir(cache) else []
    assert left == [], left


@pytest.mark.slow
def test_zoo_pull_converts_the_pinned_upstream_files_and_caches_them(tmp_path, mirror_server):
    mirror, _ = _mirror(tmp_path)
    url, server = mirror_server(mirror)
    root, cache = _client_root(tmp_path), str(tmp_path / "cache")
    proc = run_cli(["zoo", "pull", NAME, "--mirror", url, "--root", root, "--cache-dir", cache],
                   cwd=tmp_path)
    assert "verified files in" in proc.stdout
    origin, spec = _origin(), _shipped_entry()["files"][zoo.WEIGHTS_FILE]
    weights = os.path.join(cache, NAME, "v1", zoo.WEIGHTS_FILE)
    assert sha256(weights) == spec["sha256"] and os.path.getsize(weights) == spec["bytes"]
    for part in origin["files"].values():  # the upstream files are kept, verified
        path = os.path.join(cache, "sources", origin["repository"], origin["commit"],
                            part["name"])
        assert sha256(path) == part["sha256"]
    assert not [f for f in files_under(cache) if os.path.basename(f).startswith(".")]
    hits = len(server.hits)
    # Offline now: the preset loads from the cache and is the upstream model, bit for bit.
    from kerasae.models.convert import tiny_ae_from_pth

    model = zoo.load_model(NAME, root=root, cache_dir=cache, mirrors=[])
    x = np.random.default_rng(0).uniform(size=(1, 40, 56, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(model.reconstruct(x)),
                                  np.asarray(tiny_ae_from_pth(ENCODER, DECODER).reconstruct(x)))
    zoo.pull(NAME, mirrors=[url], cache_dir=cache, root=root)
    assert len(server.hits) == hits  # a verified cache: no new request


@pytest.mark.slow
def test_the_upstream_url_serves_when_no_mirror_does(tmp_path, mirror_server):
    _, folder = _mirror(tmp_path)
    origin_url, _ = mirror_server(folder)  # the upstream's own file layout
    empty_url, _ = mirror_server(str(tmp_path))
    root, cache = _client_root(tmp_path, url=origin_url + "/"), str(tmp_path / "cache")
    zoo.pull(NAME, mirrors=[empty_url], cache_dir=cache, root=root)
    spec = _shipped_entry()["files"][zoo.WEIGHTS_FILE]
    assert sha256(os.path.join(cache, NAME, "v1", zoo.WEIGHTS_FILE)) == spec["sha256"]


def test_a_flipped_byte_in_an_upstream_file_is_refused_and_nothing_is_cached(
        tmp_path, mirror_server):
    mirror, folder = _mirror(tmp_path)
    path = os.path.join(folder, _origin()["files"]["encoder"]["name"])
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(path, "wb").write(bytes(data))
    url, _ = mirror_server(mirror)
    cache = str(tmp_path / "cache")
    with pytest.raises(zoo.PresetNotAvailableError,
                       match=r"(?s)taef2_encoder.pth of madebyollin/taesd .*nothing was cached.*"
                             r"failed the sha256 check"):
        zoo.pull(NAME, mirrors=[url], cache_dir=cache, root=_client_root(tmp_path))
    _nothing_cached(cache)


def test_a_crafted_pth_pinned_in_the_index_is_refused_runs_nothing_and_caches_nothing(
        tmp_path, mirror_server):
    sentinel = tmp_path / "ran"
    crafted = _torch_zip(tmp_path / "evil.pth",
                         pickle.dumps(_Runs(os.system, f"touch {sentinel}"), protocol=2))
    mirror, _ = _mirror(tmp_path, encoder=crafted)

    def pin_the_crafted_file(entry):  # an index that names it: the reader must still refuse
        part = entry["files"][zoo.WEIGHTS_FILE]["converted_from"]["files"]["encoder"]
        part.update(sha256=sha256(crafted), bytes=os.path.getsize(crafted))

    url, _ = mirror_server(mirror)
    root, cache = _client_root(tmp_path, change=pin_the_crafted_file), str(tmp_path / "cache")
    with pytest.raises(ConversionFailed, match=r"refused when read; nothing was cached: .*"
                                               r"names posix\.system"):
        zoo.pull(NAME, mirrors=[url], cache_dir=cache, root=root)
    assert not sentinel.exists()
    _nothing_cached(cache)


@pytest.mark.slow
def test_a_conversion_that_is_not_the_pinned_file_is_discarded(tmp_path, mirror_server):
    mirror, _ = _mirror(tmp_path)
    url, _ = mirror_server(mirror)

    def another_pin(entry):
        entry["files"][zoo.WEIGHTS_FILE]["sha256"] = "0" * 64

    root, cache = _client_root(tmp_path, change=another_pin), str(tmp_path / "cache")
    with pytest.raises(ConversionFailed, match=r"not the pinned 000000000000\.\.\.; it was "
                                               r"discarded and nothing was cached"):
        zoo.pull(NAME, mirrors=[url], cache_dir=cache, root=root)
    _nothing_cached(cache)


@pytest.mark.parametrize("change, phrase", [
    (lambda o: o.update(commit="../../etc"), r"converted_from\.commit is '\.\./\.\./etc'"),
    (lambda o: o["files"]["encoder"].update(name="../x.pth"), r"converted_from\.files\.encoder"),
    (lambda o: o.update(url="ftp://example.org/"), r"not an http\(s\):// or file:// URL"),
])
def test_an_index_whose_upstream_names_could_leave_the_cache_is_refused(tmp_path, change,
                                                                       phrase):
    def edit(entry):
        change(entry["files"][zoo.WEIGHTS_FILE]["converted_from"])

    root, cache = _client_root(tmp_path, change=edit), str(tmp_path / "cache")
    assert any(re.search(phrase, p) for p in zoo.verify_index(root))
    with pytest.raises(ValueError, match=phrase):
        zoo.load_model(NAME, mirrors=[], cache_dir=cache, root=root)
    _nothing_cached(cache)


def test_zoo_info_says_where_the_weights_come_from_before_they_exist(tmp_path, capsys):
    from kerasae import cli

    root, cache = _client_root(tmp_path), str(tmp_path / "cache")
    assert cli.main(["zoo", "info", NAME, "--root", root, "--cache-dir", cache]) == 0
    out = capsys.readouterr().out
    assert re.search(r"model\.weights\.h5 +11,088,160 bytes .*\[converted on first use from "
                     r"madebyollin/taesd@5cccb12 \(MIT\)\]", out), out
    _nothing_cached(cache)


def test_a_damaged_cached_conversion_is_named_when_nothing_can_remake_it(tmp_path):
    root, cache = _client_root(tmp_path), tmp_path / "cache"
    damaged = cache / NAME / "v1" / zoo.WEIGHTS_FILE
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not the converted weights")
    with pytest.raises(zoo.PresetNotAvailableError,
                       match=r"(?s)could not be fetched; nothing was cached.*Before that, "
                             r"model\.weights\.h5 itself was tried:\n  cache: .*\(sha256 "):
        zoo.load_model(NAME, root=root, cache_dir=str(cache), mirrors=[])
    assert damaged.read_bytes() == b"not the converted weights"  # left for the user to see
