"""A hostile Hub endpoint cannot write, change or delete anything outside the Hub cache,
nor leave half a preset in it (issue 19: item 1, and the hf:// parts of items 2 and 8).

Each case is a loopback Hub (`tests.presets.hub_server`) whose hook lies the way the
issue's trial lied: an ETag or `X-Repo-Commit` holding `../`, a revision `@../x`
against a server that answers any revision, a commit that changes during the load, a
body longer than pinned, a 10 TB Content-Length. The Hub cache sits in a sentinel tree
(an unrelated file, a fake site-packages, a neighbour folder); every path, size and
mtime of that tree outside the cache is the same after the case as before it. The
preset is the shipped `conv_ae_fashion_mnist` as a hub folder, with its manifest
written here from the shipped index and hashlib.
"""

import hashlib
import itertools
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time

import pytest

import kerasae
from kerasae import cli, presets
from kerasae._util.errors import KerasaeError
from kerasae.presets.hub import MANIFEST, get_hub_preset, hub_file
from tests.helpers import files_under
from tests.presets.hub_server import HubServer, Reply

pytest.importorskip("huggingface_hub")

PRESET = "conv_ae_fashion_mnist"
REPO = f"kerasae/{PRESET}"
SHIPPED = os.path.join(os.path.dirname(os.path.abspath(kerasae.__file__)), os.pardir, "zoo")
WEIGHTS = "model.weights.h5"
PINNED = os.path.getsize(os.path.join(SHIPPED, PRESET, "v1", WEIGHTS))
TEN_TB = 10 ** 13


def _write_manifest(folder):
    index = json.load(open(os.path.join(SHIPPED, "index.json")))
    entry = {k: v for k, v in index["presets"][PRESET].items()
             if k not in ("path", "previous_versions")}
    files = {}
    for name in sorted(os.listdir(folder)):
        if name != MANIFEST:
            data = open(os.path.join(folder, name), "rb").read()
            files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {"format": "kerasae-hub-preset", "format_version": 1,
                "preset": dict(entry, name=PRESET, files=files)}
    with open(os.path.join(folder, MANIFEST), "w") as f:
        json.dump(manifest, f)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The shipped preset as a hub folder, and an evil one whose manifest also pins a
    file of Python code (harmless as a blob, code run at start-up as a `.pth`)."""
    base = tmp_path_factory.mktemp("hub")
    good, evil, ran = base / "good", base / "evil", base / "pth-ran"
    shutil.copytree(os.path.join(SHIPPED, PRESET, "v1"), good)
    _write_manifest(good)
    shutil.copytree(good, evil)
    (evil / "notes.txt").write_text(f"import pathlib; pathlib.Path({str(ran)!r}).touch()\n")
    _write_manifest(evil)
    return {"good": str(good), "evil": str(evil), "ran": str(ran)}


class World:
    """A sentinel tree around the Hub cache (`root/cache/hf`) and kerasae's (`root/kcache`)."""

    def __init__(self, root):
        self.root, self.cache = str(root), str(root / "cache" / "hf")
        self.kcache = str(root / "kcache")
        self.site = str(root / "site-packages")
        self.victim = str(root / "cache" / "victim.txt")
        for folder in (self.cache, self.kcache, self.site, str(root / "home")):
            os.makedirs(folder)
        for path, text in ((self.victim, "an unrelated file\n"),
                           (os.path.join(self.site, "keep.py"), "x = 1\n"),
                           (str(root / "home" / ".bashrc"), "# mine\n")):
            with open(path, "w") as f:
                f.write(text)

    def snapshot(self):
        """Every path outside the two caches: kind, size, mtime (ns), link target."""
        out, skip = {}, {self.cache, self.kcache}
        for folder, dirs, names in os.walk(self.root):
            dirs[:] = [d for d in dirs if os.path.join(folder, d) not in skip]
            for name in dirs + names:
                path = os.path.join(folder, name)
                st = os.lstat(path)
                out[os.path.relpath(path, self.root)] = (
                    stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns,
                    os.readlink(path) if os.path.islink(path) else None)
        return out

    def blobs(self, repo=REPO):
        folder = os.path.join(self.cache, "models--" + repo.replace("/", "--"), "blobs")
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = World(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", w.cache)
    monkeypatch.setenv(presets.CACHE_ENV, w.kcache)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return w


@pytest.fixture
def hub(folders, world, monkeypatch):
    server = HubServer({REPO: folders["good"], "kerasae/evil": folders["evil"]})
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    yield server
    server.stop()


def _load(name):
    """Everything a load reads: the preset and each of its files, verified."""
    preset = get_hub_preset(name, progress=False)
    return [hub_file(preset, filename) for filename in sorted(preset.entry["files"])]


def _refused(name, match, capsys):
    """`kerasae zoo pull` exits non-zero with one error line and no traceback, and a
    load raises one clear KerasaeError; its message."""
    capsys.readouterr()
    assert cli.main(["zoo", "pull", name]) != 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and re.search(match, lines[0]) and "Traceback" not in err, err
    with pytest.raises(KerasaeError, match=match) as raised:
        _load(name)
    return str(raised.value)


def _pulled(name, capsys):
    capsys.readouterr()
    assert cli.main(["zoo", "pull", name]) == 0
    assert "verified files in" in capsys.readouterr().out


def _content_named_blobs(world, repo=REPO):
    """Every blob of the repo is named by the sha256 of its bytes (hashlib's), none else."""
    folder = os.path.join(world.cache, "models--" + repo.replace("/", "--"), "blobs")
    for name in world.blobs(repo):
        assert hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest() == name


# ------------------------------------------------------------------ ETag
@pytest.mark.parametrize("header", ["ETag", "X-Linked-Etag"])
def test_an_etag_with_dotdot_names_no_path(hub, folders, world, capsys, header):
    def hook(req):
        reply = req.default()
        if req.filename and reply.status == 200:
            reply.headers[header] = f'W/"../../../escaped-{req.filename}"'
        return reply

    hub.hook = hook
    before = world.snapshot()
    _pulled(f"hf://{REPO}", capsys)
    paths = _load(f"hf://{REPO}")
    assert {os.path.basename(p): open(p, "rb").read() for p in paths} == {
        n: open(os.path.join(folders["good"], n), "rb").read()
        for n in os.listdir(folders["good"]) if n != MANIFEST}
    if header == "ETag":  # the one end-to-end load: a model, bit for bit the shipped one
        from kerasae import zoo  # here: the other cases need no Keras

        a, b = zoo.load_model(f"hf://{REPO}"), zoo.load_model(PRESET)
        wa, wb = a.get_weights(), b.get_weights()
        assert len(wa) == len(wb) and all((x == y).all() for x, y in zip(wa, wb))
    assert world.snapshot() == before
    assert len(world.blobs()) == len(os.listdir(folders["good"]))  # the manifest, its files
    _content_named_blobs(world)


def test_a_pth_file_cannot_be_planted_in_site_packages(hub, folders, world, capsys):
    def hook(req):
        reply = req.default()
        if req.filename == "notes.txt" and reply.status == 200:
            reply.headers["ETag"] = '"../../../../site-packages/kerasae-evil.pth"'
        return reply

    hub.hook = hook
    before = world.snapshot()
    _pulled("hf://kerasae/evil", capsys)  # a valid preset, its notes pinned: only a blob
    assert world.snapshot() == before
    _content_named_blobs(world, "kerasae/evil")
    subprocess.run([sys.executable, "-c", "import site, sys; site.addsitedir(sys.argv[1])",
                    world.site], check=True, timeout=60)
    assert not os.path.exists(folders["ran"]), "a .pth in site-packages ran its code"


# --------------------------------------------------------------- eviction
def test_an_etag_naming_an_unrelated_file_does_not_get_it_deleted(hub, world, capsys):
    def hook(req):
        reply = req.default()
        if req.filename == WEIGHTS and reply.status == 200:
            reply.headers["ETag"] = '"../../../victim.txt"'
            data = bytearray(reply.body)
            data[len(data) // 2] ^= 0x01
            reply.body = bytes(data)
        return reply

    hub.hook = hook
    before = world.snapshot()
    _refused(f"hf://{REPO}", r"'model.weights.h5' of hf://kerasae/conv_ae_fashion_mnist does "
                             r"not match its kerasae-preset.json", capsys)
    assert world.snapshot() == before
    assert files_under(world.cache) == []  # nothing of the refused load is kept


def test_a_cached_link_out_of_the_cache_is_dropped_not_followed(hub, world, capsys,
                                                               monkeypatch):
    _pulled(f"hf://{REPO}", capsys)
    commit = hub.commit(REPO)
    link = os.path.join(world.cache, f"models--kerasae--{PRESET}", "snapshots", commit, WEIGHTS)
    os.remove(link)
    os.symlink(world.victim, link)  # what a hostile ETag left with an older client
    before = world.snapshot()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    error = _refused(f"hf://{REPO}@{commit}", r"'model.weights.h5' of hf://kerasae/", capsys)
    assert os.path.isfile(world.victim) and world.snapshot() == before
    assert "is not in the Hugging Face cache and HF_HUB_OFFLINE is set" in error
    assert not os.path.lexists(link)  # the link went, not what it pointed to
    monkeypatch.delenv("HF_HUB_OFFLINE")
    for path in _load(f"hf://{REPO}@{commit}"):
        assert os.path.realpath(path).startswith(os.path.realpath(world.cache) + os.sep)
    assert world.snapshot() == before


def test_a_cache_folder_linked_out_of_the_cache_is_not_written_through(hub, world, capsys):
    elsewhere = os.path.join(world.root, "elsewhere")
    os.makedirs(elsewhere)
    repo = os.path.join(world.cache, f"models--kerasae--{PRESET}")
    os.makedirs(repo)
    os.symlink(elsewhere, os.path.join(repo, "blobs"))
    before = world.snapshot()
    _refused(f"hf://{REPO}", r"models--kerasae--conv_ae_fashion_mnist/blobs leads outside the "
                             r"cache", capsys)
    assert world.snapshot() == before and os.listdir(elsewhere) == []


# ---------------------------------------------------------- X-Repo-Commit
@pytest.mark.parametrize("status, match", [
    (404, r"has no kerasae-preset.json"),
    (200, r"X-Repo-Commit '\.\./\.\./\.\./\.\./made-by-the-server'.*not a commit"),
])
def test_a_commit_header_with_dotdot_is_refused_before_the_disk(hub, world, capsys, status,
                                                               match):
    bad = "../../../../made-by-the-server"

    def hook(req):
        if status == 404 and req.filename == MANIFEST:
            return Reply(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": bad})
        reply = req.default()
        reply.headers["X-Repo-Commit"] = bad
        return reply

    hub.hook = hook
    before = world.snapshot()
    _refused(f"hf://{REPO}", match, capsys)
    assert world.snapshot() == before
    assert files_under(world.cache) == [] and os.listdir(world.cache) == []


# ---------------------------------------------------------------- revision
def test_a_revision_that_climbs_is_refused_before_any_request(hub, world, capsys):
    hub.hook = lambda req: req.default(revision="main") if req.revision else None  # any
    before = world.snapshot()
    _refused(f"hf://{REPO}@../../../../made-by-the-revision",
             r"is not a branch or tag name, nor a commit", capsys)
    assert [path for _, path in hub.hits if "/resolve/" in path] == []
    assert world.snapshot() == before
    assert os.listdir(world.cache) == []


@pytest.mark.parametrize("revision", ["..", "a/../b", "-x", "/main", "main/", "a//b", "x.lock",
                                      "a/.hidden", "a\\b", "a b", "a\x00b", "a\nb", "a~1",
                                      "a^", "a:b", "a?", "a*", "a[", "@", "a@{1}", "main."])
def test_a_revision_must_be_a_git_ref_name_or_a_commit(revision):
    with pytest.raises(KerasaeError, match=r"not a branch or tag name.*Received: revision="):
        presets.hub.parse_hub_name(f"hf://{REPO}@{revision}")
    for good in ("main", "v1.0", "refs/pr/1", "release-2026", "a@b", "f" * 40, "abc1234"):
        assert presets.hub.parse_hub_name(f"hf://{REPO}@{good}") == (REPO, good)


# --------------------------------------------------------------- redirects
def test_the_token_goes_to_the_hub_only(hub, folders, world, monkeypatch):
    """As huggingface_hub does: a relative redirect (a renamed repo) is followed; a HEAD
    is not followed off the Hub (its answer carries the commit); a GET is, to a CDN,
    without the Authorization header. (A guard of kerasae's own HTTP, which replaced
    huggingface_hub's: this one holds on the old code too.)"""
    monkeypatch.setenv("HF_TOKEN", "hf_kerasae_test_token")
    commit, auth = hub.commit(REPO), {"hub": [], "cdn": []}

    def cdn_hook(req):
        auth["cdn"].append(req.headers.get("Authorization"))
        with open(os.path.join(folders["good"], req.path.rsplit("/", 1)[1]), "rb") as f:
            return Reply(200, {}, f.read())

    def hook(req):
        if not req.filename:  # huggingface_hub's own calls (its agent registry)
            return None
        auth["hub"].append(req.headers.get("Authorization"))
        if req.repo_id == "kerasae/renamed":
            return Reply(307, {"Location": req.path.replace("kerasae/renamed", REPO)})
        with open(os.path.join(folders["good"], req.filename), "rb") as f:
            data = f.read()
        return Reply(302, {"Location": f"{cdn.url}/blobs/{req.filename}",  # as for LFS files
                           "X-Repo-Commit": commit, "X-Linked-Size": str(len(data)),
                           "X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"'})

    cdn = HubServer({}, hook=cdn_hook)
    hub.hook = hook
    try:
        paths = _load("hf://kerasae/renamed")
    finally:
        cdn.stop()
    assert {os.path.basename(p): open(p, "rb").read() for p in paths} == {
        n: open(os.path.join(folders["good"], n), "rb").read()
        for n in os.listdir(folders["good"]) if n != MANIFEST}
    assert [p for m, p in hub.hits if m == "HEAD"][:2] == [
        f"/kerasae/renamed/resolve/main/{MANIFEST}", f"/{REPO}/resolve/main/{MANIFEST}"]
    assert {m for m, _ in cdn.hits} == {"GET"}  # the HEAD stopped at the Hub's redirect
    assert len(cdn.hits) == len(os.listdir(folders["good"]))
    assert set(auth["hub"]) == {"Bearer hf_kerasae_test_token"} and set(auth["cdn"]) == {None}


# -------------------------------------------------------- a moving commit
@pytest.mark.parametrize("how", ["moved", "mixed"])
def test_a_commit_that_changes_mid_load_leaves_no_part_of_a_snapshot(hub, world, capsys, how):
    """Past the manifest, the repo has moved on: its commit serves no file (`moved`), or
    files come from another commit (`mixed`). No snapshot keeps 1 of 6 files."""
    other = "1" * 40

    def hook(req):
        if not req.filename or req.filename == MANIFEST:
            return None
        if how == "moved":
            return Reply(404, {"X-Error-Code": "RevisionNotFound"})
        reply = req.default(revision="main")
        reply.headers["X-Repo-Commit"] = other
        return reply

    hub.hook = hook
    before = world.snapshot()
    match = r"has no revision" if how == "moved" else r"when asked for the pinned commit"
    _refused(f"hf://{REPO}", match, capsys)
    assert world.snapshot() == before
    assert files_under(world.cache) == [], files_under(world.cache)


# ----------------------------------------------------------------- sizes
def test_a_body_longer_than_pinned_stops_one_byte_past_the_pin(hub, folders, world, capsys):
    """300 MB sent, with no Content-Length, for a file pinned at 2.3 MB: the server gets
    the pin and no more than what the two sockets' buffers hold onto the wire before the
    client hangs up (`sent` counts whole 64 KiB writes)."""
    weights = open(os.path.join(folders["good"], WEIGHTS), "rb").read()
    chunk = 1 << 16

    def hook(req):
        reply = req.default()
        if req.filename == WEIGHTS and req.command == "GET" and reply.status == 200:
            pinned = (weights[i:i + chunk] for i in range(0, len(weights), chunk))
            zeros = itertools.repeat(bytes(chunk), ((300 << 20) - len(weights)) // chunk)
            return Reply(200, reply.headers, itertools.chain(pinned, zeros))
        return reply

    hub.hook = hook
    before = world.snapshot()
    error = _refused(f"hf://{REPO}", r"'model.weights.h5' of hf://kerasae/conv_ae", capsys)

    def sent():  # a server thread records its count once its write fails: it may lag
        return [n for path, n in hub.sent if path.endswith(WEIGHTS)]

    deadline = time.monotonic() + 30
    while len(sent()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sent()) == 2 and all(PINNED <= n < PINNED + (16 << 20) for n in sent()), sent()
    assert f"more than the expected {PINNED} bytes were sent; stopped one byte past" in error
    assert world.snapshot() == before
    assert files_under(world.cache) == []


def test_a_ten_terabyte_content_length_is_one_clear_error(hub, world, capsys):
    def hook(req):
        reply = req.default()
        if req.filename == WEIGHTS and reply.status == 200:
            reply.length = TEN_TB
        return reply

    hub.hook = hook
    before = world.snapshot()
    _refused(f"hf://{REPO}", f"announces {TEN_TB:,} bytes where {PINNED:,} are pinned",
             capsys)
    assert world.snapshot() == before
    assert files_under(world.cache) == []


def test_a_ten_terabyte_content_length_from_a_mirror_is_one_clear_error(hub, world, capsys):
    def hook(req):  # the server as a zoo mirror: /<preset>/v1/<file>
        path = os.path.join(SHIPPED, *req.path.strip("/").split("/"))
        if req.repo_id or not os.path.isfile(path):
            return None
        return Reply(200, {}, open(path, "rb").read(),
                     TEN_TB if path.endswith(WEIGHTS) else None)

    hub.hook = hook
    before = world.snapshot()
    match = f"announces {TEN_TB:,} bytes where {PINNED:,} are pinned"
    with pytest.raises(KerasaeError, match=match):
        presets.pull(PRESET, mirrors=[hub.url])
    capsys.readouterr()
    assert cli.main(["zoo", "pull", PRESET, "--mirror", hub.url]) != 0
    err = capsys.readouterr().err
    assert re.search(match, err) and "Traceback" not in err, err
    assert WEIGHTS not in [os.path.basename(f) for f in files_under(world.kcache)]
    assert world.snapshot() == before
