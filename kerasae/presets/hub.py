"""Presets on the Hugging Face Hub: `hf://org/name` (or `hf://org/name@revision`).

A hub repo holds one preset folder (`config.json`, `model.weights.h5`,
`metadata.json`, `README.md`, ...) and `kerasae-preset.json`, a manifest that
pins every file by sha256 and size (an index entry of the preset, see
`kerasae.zoo.hub_folder`). Files are `.json`, `.h5` and text only: no pickles.

A load pins one commit: a `HEAD` of the manifest at the revision (a branch or tag
name by git's rules, or a 40-hex commit; anything else is refused as it is
parsed) gives `X-Repo-Commit`, which must be 40 lowercase hex digits. Then the
manifest (at most 1 MiB) and every file are fetched at that commit
(`kerasae.presets.hub_http`: `HF_ENDPOINT`, the token and user agent of
`huggingface_hub`), each stopped one byte past its pinned size and checked by
sha256, in a staging folder, and installed into the Hugging Face cache
(`HF_HUB_CACHE` / `HF_HOME`, huggingface_hub's layout) all together, or not at
all (`kerasae.presets.hub_cache`). kerasae names every path itself: the server's
answers (ETag, commit, redirects) never do.

A commit whose files are all cached and verified loads without any network
access; a branch is looked up on the Hub when it answers and read from the
cache's `refs` when it does not (or with `HF_HUB_OFFLINE=1`). A cached file that
fails its check is removed (that file and its blob only) and fetched again.
"""

import functools
import json
import os
import re
import shutil

from kerasae._util.errors import InvalidValue, MissingDependency
from kerasae._util.versions import __version__
from kerasae.presets import download, hub_http
from kerasae.presets.hub_cache import COMMIT, RepoCache, cache_root
from kerasae.presets.index import check_index
from kerasae.presets.store import Preset, PresetNotAvailableError

PREFIX = "hf://"
MANIFEST = "kerasae-preset.json"
MANIFEST_FORMAT = "kerasae-hub-preset"
MANIFEST_MAX_BYTES = 1 << 20
_REPO = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}/[A-Za-z0-9][\w.\-]{0,95}$")
# git check-ref-format: no "..", "//", "@{", space, control character, ~ ^ : ? * [ or \.
_REF_BAD = re.compile(r"\.\.|//|@\{|[\x00-\x20\x7f~^:?*\[\\]")


def is_hub_name(text):
    """Whether a model / weights argument names a hub preset (`hf://...`)."""
    return isinstance(text, str) and text.startswith(PREFIX)


def _revision_problem(revision):
    """Why `revision` is neither a 40-hex commit nor a branch / tag name by git's rules."""
    if COMMIT.fullmatch(revision):
        return None
    parts = revision.split("/")
    if len(revision) > 255:
        return "it is longer than 255 characters"
    if _REF_BAD.search(revision) or not revision.isprintable():
        return ("it holds '..', '//', '@{', a space, a control character or one of "
                "~ ^ : ? * [ \\")
    if revision.startswith(("-", "/")) or revision.endswith(("/", ".")) or revision == "@" \
            or any(p.startswith(".") or p.endswith(".lock") for p in parts):
        return ("it starts with '-' or '/', ends with '/' or '.', or a part of it starts "
                "with '.' or ends with '.lock'")
    return None


def parse_hub_name(text):
    """`hf://org/name[@revision]` -> `(repo_id, revision or None)`, both checked: the
    revision must be a branch or tag name by git's rules, or a 40-hex commit."""
    rest = text[len(PREFIX):]
    repo, at, revision = rest.partition("@")
    if not _REPO.match(repo) or "--" in repo or ".." in repo or (at and not revision):
        raise InvalidValue(
            f"A hub preset is hf://<owner>/<repo>, optionally @<revision> (a branch, tag or "
            f"commit), e.g. hf://kerasae/conv_ae_fashion_mnist. Received: name={text!r}"
        )
    why = _revision_problem(revision) if revision else None
    if why:
        raise InvalidValue(
            f"The revision of {text!r} is not a branch or tag name, nor a commit (40 hex "
            f"digits): {why}. Name a branch (main), a tag (v1) or a commit. "
            f"Received: revision={revision!r}"
        )
    return repo, revision or None


def _hub_headers():
    """A function giving the token and user agent huggingface_hub sends (the `hub` extra),
    built at the first request only: building them may ask the endpoint for its agent
    registry, and a load from the cache makes no request at all."""
    try:
        from huggingface_hub.utils import build_hf_headers
    except ImportError as e:
        raise MissingDependency(
            f"hf:// presets need huggingface_hub ({e}). Install it with: "
            "pip install 'kerasae[hub]'"
        ) from e
    return functools.cache(lambda: build_hf_headers(library_name="kerasae",
                                                    library_version=__version__))


class HubPreset(Preset):
    """A `Preset` whose files come from a hub repo at one commit (see the module docstring)."""

    repo_id: str = None
    revision: str = None
    commit: str = None

    @property
    def label(self):
        return f"{PREFIX}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")

    def relpath(self, filename):
        return filename

    def file(self, filename, use_shipped=True):
        return hub_file(self, filename)

    def record(self):
        """What a run records of this start point."""
        return {"repo_id": self.repo_id, "revision": self.revision, "commit": self.commit}


def _offline():
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_settings():
    """The Hub settings read from the environment now: `HF_ENDPOINT`, the cache folder
    (`HF_HUB_CACHE` / `HF_HOME`), `HF_HUB_OFFLINE`."""
    return {"endpoint": hub_http.endpoint(), "cache_dir": cache_root(),
            "local_files_only": _offline()}


def parse_manifest(data, what):
    """The preset entry of a `kerasae-preset.json` (its bytes), checked like an index entry."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except ValueError as e:
        raise InvalidValue(f"{MANIFEST} of {what} is not valid JSON ({e}). "
                           f"Received: name={what!r}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or \
            not isinstance(manifest.get("preset"), dict):
        raise InvalidValue(
            f"{MANIFEST} of {what} is not a kerasae hub manifest (format "
            f"{MANIFEST_FORMAT!r} with a 'preset' entry). Received: name={what!r}"
        )
    entry = dict(manifest["preset"], path=str(manifest["preset"].get("name", "preset")))
    check_index({"presets": {entry["path"]: entry}}, f"{MANIFEST} of {what}")
    files = entry["files"]
    bad = [f for f, spec in files.items() if not isinstance(spec, dict)
           or not re.fullmatch(r"[0-9a-f]{64}", str(spec.get("sha256")))
           or type(spec.get("bytes")) is not int or spec["bytes"] < 0]
    missing = [f for f in ("config.json", "model.weights.h5") if f not in files]
    if bad or missing or MANIFEST in files or not isinstance(entry.get("builder"), str) or \
            not isinstance(entry.get("version"), int):
        raise InvalidValue(
            f"{MANIFEST} of {what} is refused: "
            + (f"files {bad} lack a sha256 and a size" if bad else
               f"it does not list {missing}" if missing else
               "it lists itself" if MANIFEST in files else "it names no builder and version")
            + f". Received: name={what!r}"
        )
    return entry


def get_hub_preset(text, *, progress=True):
    """Resolves `hf://org/name[@revision]` to a `HubPreset` at one commit, every file of
    its manifest verified in the Hugging Face cache (fetched if needed)."""
    headers = _hub_headers()
    repo_id, revision = parse_hub_name(text)
    preset = HubPreset(repo_id.split("/")[-1], 0, {}, progress=progress)
    preset.repo_id, preset.revision = repo_id, revision
    cache, wanted, entry = RepoCache(repo_id), revision or "main", None
    if COMMIT.fullmatch(wanted):  # pinned and whole in the cache: no network at all
        entry, missing = _state(cache, wanted, text)
        entry, preset.commit = (entry if missing == [] else None), wanted
    if entry is None and _offline():
        preset.commit, entry = _from_cache(cache, repo_id, wanted, text, "HF_HUB_OFFLINE is set")
    elif entry is None:
        try:
            preset.commit = _ask_commit(repo_id, wanted, text, headers)
        except hub_http.HubUnreachable as e:
            why = f"the Hub ({hub_http.endpoint()}) could not be reached ({e})"
            preset.commit, entry = _from_cache(cache, repo_id, wanted, text, why)
        else:
            entry = _fetch(cache, preset, headers)
            if preset.commit != wanted:
                cache.write_ref(wanted, preset.commit)
    preset.entry, preset.version = entry, int(entry["version"])
    preset.name = entry.get("name", preset.name)
    return preset


def hub_file(preset, filename):
    """Local path of a verified copy of `filename` of a hub preset, at its commit: a cached
    copy that does not match the manifest is removed (that file and its blob only) and,
    unless offline, fetched again."""
    spec = preset.entry["files"].get(filename)
    if spec is None:
        raise InvalidValue(
            f"{preset.label} has no file {filename!r}; its manifest lists "
            f"{', '.join(sorted(preset.entry['files']))}. Received: filename={filename!r}"
        )
    cache = RepoCache(preset.repo_id)
    path, why = cache.check(preset.commit, filename, spec)
    if path is None:
        if why:
            cache.evict(preset.commit, filename)
        if _offline():
            raise _not_cached(filename, preset.repo_id, preset.label, "HF_HUB_OFFLINE is set")
        _fetch(cache, preset, _hub_headers())
        path, why = cache.check(preset.commit, filename, spec)
        if path is None:  # the manifest fetched again pins other bytes than the preset's
            raise PresetNotAvailableError(
                f"{filename!r} of {preset.label} at commit {preset.commit} no longer matches "
                f"the manifest it was loaded with ({why or 'it is missing'}). Load the preset "
                f"again. Received: name={preset.label!r}")
    return path


# ------------------------------------------------------------------ internals
def _state(cache, commit, what):
    """`(manifest entry or None, files not verified in the cache)` of a cached commit;
    a cached copy that fails its check is evicted on the way."""
    data = cache.read_small(commit, MANIFEST, MANIFEST_MAX_BYTES)
    try:
        entry = parse_manifest(data, what) if data is not None else None
    except InvalidValue:  # damaged in the cache (it was checked when it came): fetch again
        cache.evict(commit, MANIFEST)
        entry = None
    if entry is None:
        return None, None
    missing = []
    for filename, spec in sorted(entry["files"].items()):
        path, why = cache.check(commit, filename, spec)
        if why:
            cache.evict(commit, filename)
        if path is None:
            missing.append(filename)
    return entry, missing


def _not_cached(filename, repo_id, what, why):
    connect = ("Connect once (unset HF_HUB_OFFLINE)" if why.startswith("HF_HUB_OFFLINE")
               else "Connect once")
    return PresetNotAvailableError(
        f"{filename!r} of hf://{repo_id} is not in the Hugging Face cache and {why}. "
        f"{connect} to download it, or set HF_ENDPOINT to a mirror of the Hub. "
        f"Received: name={what!r}"
    )


def _from_cache(cache, repo_id, revision, what, why):
    """`(commit, manifest entry)` of `revision` with every file cached and verified, else
    the error saying what is missing and `why` it was not downloaded."""
    commit = revision if COMMIT.fullmatch(revision) else cache.read_ref(revision)
    entry, missing = _state(cache, commit, what) if commit else (None, None)
    if entry is None or missing:
        raise _not_cached(missing[0] if missing else MANIFEST, repo_id, what, why)
    return commit, entry


def _refused(what, detail):
    return PresetNotAvailableError(
        f"The Hub endpoint ({hub_http.endpoint()}) {detail}; kerasae refused it and wrote "
        f"nothing. If HF_ENDPOINT is set, check that it points to the Hugging Face Hub or a "
        f"mirror of it. Received: name={what!r}"
    )


def _missing(kind, repo_id, revision, filename, what):
    """The error for one of the Hub's "not found" answers (`hub_http.HubMissing.what`)."""
    if kind == "repo":
        text = (f"The Hub has no repo {repo_id!r} (or it is private: log in with `hf auth "
                f"login`)")
    elif kind == "revision":
        text = f"The hub repo {repo_id!r} has no revision {revision!r}"
    elif kind == "gated":
        text = (f"hf://{repo_id} is gated: accept its conditions on its Hub page, then log in "
                f"with `hf auth login`")
    elif filename == MANIFEST:
        text = (f"hf://{repo_id} has no {MANIFEST}, so it is not a kerasae preset (or not one "
                f"kerasae can verify): its files are not pinned by sha256, and kerasae loads "
                f"no unverified weights. Publish presets with `kerasae zoo hub NAME DIR`")
    else:
        text = f"hf://{repo_id} lacks {filename!r}, which its {MANIFEST} lists"
    return PresetNotAvailableError(f"{text}. Received: name={what!r}")


def _ask_commit(repo_id, revision, what, headers):
    """The commit the endpoint resolves `revision` to (a HEAD of the manifest), checked."""
    try:
        commit, size = hub_http.head(repo_id, revision, MANIFEST, headers())
    except hub_http.HubMissing as e:
        raise _missing(e.what, repo_id, revision, MANIFEST, what) from None
    if commit is None:
        raise _refused(what, f"answered for {MANIFEST} of hf://{repo_id} without an "
                             f"X-Repo-Commit header, so it does not seem to be a Hub")
    if not COMMIT.fullmatch(commit):
        raise _refused(what, f"answered X-Repo-Commit {commit[:100]!r} for hf://{repo_id}, "
                             f"which is not a commit (40 lowercase hex digits)")
    if COMMIT.fullmatch(revision) and commit != revision:
        raise _refused(what, f"answered commit {commit} when asked for commit {revision}")
    if size is not None and size > MANIFEST_MAX_BYTES:
        raise _refused(what, f"announced {size:,} bytes for {MANIFEST} of hf://{repo_id}, "
                             f"and a manifest is at most {MANIFEST_MAX_BYTES:,}")
    return commit


def _fetch(cache, preset, headers):
    """Fetches what the cache lacks of `preset.commit` into a staging folder, verifies
    it, and installs it all at once (nothing when any file fails); the manifest entry."""
    what = preset.label
    entry, missing = _state(cache, preset.commit, what)
    if entry is not None and not missing:
        return entry
    with cache.staging() as stage:
        files = {}
        if entry is None:
            files[MANIFEST] = _receive(stage, preset, MANIFEST, None, headers)
            with open(os.path.join(stage, "blobs", files[MANIFEST]), "rb") as f:
                entry = parse_manifest(f.read(), what)
            missing = [name for name, spec in sorted(entry["files"].items())
                       if cache.check(preset.commit, name, spec)[0] is None]
        _check_space(stage, entry, missing, what)
        for filename in missing:
            spec = entry["files"][filename]
            if cache.blob(spec) is None:  # another commit's copy of the same bytes serves
                _receive(stage, preset, filename, spec, headers)
            files[filename] = spec["sha256"]
        cache.install(stage, preset.commit, files)
    return entry


def _check_space(stage, entry, missing, what):
    need = sum(entry["files"][f]["bytes"] for f in missing)
    free = shutil.disk_usage(stage).free
    if need > free:
        raise PresetNotAvailableError(
            f"{what} needs {need:,} bytes in the Hugging Face cache ({cache_root()}) and "
            f"{free:,} are free. Free some space or set HF_HUB_CACHE to a larger disk. "
            f"Received: name={what!r}"
        )


def _receive(stage, preset, filename, spec, headers):
    """Downloads one file at the preset's commit into `stage/blobs/<sha256>`, checked
    against `spec` (the manifest itself: against the 1 MiB cap); its sha256."""
    repo_id, commit, what = preset.repo_id, preset.commit, preset.label
    try:
        resp, commits = hub_http.get(repo_id, commit, filename, headers())
    except hub_http.HubMissing as e:
        raise _missing(e.what, repo_id, commit, filename, what) from None
    except hub_http.HubUnreachable as e:
        raise _failed(filename, repo_id, what, str(e)) from None
    part = os.path.join(stage, "incoming")
    with resp:
        if commits - {commit}:
            raise _refused(what, f"answered {filename!r} at commit {sorted(commits)[0][:100]!r} "
                                 f"when asked for the pinned commit {commit} (the repo changed "
                                 f"during the load? Then retry)")
        size = spec["bytes"] if spec else MANIFEST_MAX_BYTES
        report = download.progress_reporter(preset.progress, f"{what}/{filename}") if spec else None
        try:
            with open(part, "wb") as out:
                done, sha = download.receive(resp, out, size, report, at_most=spec is None)
        except download.DownloadFailure as e:
            raise _failed(filename, repo_id, what, str(e)) from None
    if spec and (sha, done) != (spec["sha256"], spec["bytes"]):
        raise PresetNotAvailableError(
            f"{filename!r} of {what} does not match its {MANIFEST}: sha256 {sha} and "
            f"{done} bytes were downloaded, the manifest pins {spec['sha256']} and "
            f"{spec['bytes']} bytes. Nothing of the download was kept in the Hugging Face "
            f"cache and nothing was loaded; the repo's file and manifest disagree (a bad "
            f"upload, or a changed file). Received: name={what!r}"
        )
    os.replace(part, os.path.join(stage, "blobs", sha))
    return sha


def _failed(filename, repo_id, what, why):
    return PresetNotAvailableError(
        f"Downloading {filename!r} of hf://{repo_id} failed ({why}); nothing of it was kept. "
        f"Check the network and HF_ENDPOINT, then retry. Received: name={what!r}"
    )
