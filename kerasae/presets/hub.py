"""Presets on the Hugging Face Hub: `hf://org/name` (or `hf://org/name@revision`).

A hub repo holds one preset folder (`config.json`, `model.weights.h5`,
`metadata.json`, `README.md`, ...) and `kerasae-preset.json`, a manifest that
pins every file by sha256 (an index entry of the preset, see
`kerasae.zoo.hub_folder`). The manifest is read first and fixes the revision
(the commit it came from); every file is then downloaded at that commit through
`huggingface_hub` into the Hub's own cache (`HF_HOME` / `HF_HUB_CACHE`, honouring
`HF_ENDPOINT` and `HF_HUB_OFFLINE`) and verified against the manifest. A file that
does not match is removed from that cache and refused, so nothing unverified is
ever loaded or kept. Files are `.json`, `.h5` and text only: no pickles.

A file already cached at a commit is used without any network access; the
manifest of a branch (`main`) is looked up on the Hub when it answers and read
from the cache when it does not (or with `HF_HUB_OFFLINE=1`).
"""

import json
import os
import re

from kerasae._util.errors import InvalidValue, MissingDependency
from kerasae._util.files import sha256_file
from kerasae.presets.index import check_index
from kerasae.presets.store import Preset, PresetNotAvailableError

PREFIX = "hf://"
MANIFEST = "kerasae-preset.json"
MANIFEST_FORMAT = "kerasae-hub-preset"
_REPO = re.compile(r"^[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*$")


def is_hub_name(text):
    """Whether a model / weights argument names a hub preset (`hf://...`)."""
    return isinstance(text, str) and text.startswith(PREFIX)


def parse_hub_name(text):
    """`hf://org/name[@revision]` -> `(repo_id, revision or None)`."""
    rest = text[len(PREFIX):]
    repo, _, revision = rest.partition("@")
    if not _REPO.match(repo) or (_ and not revision):
        raise InvalidValue(
            f"A hub preset is hf://<owner>/<repo>, optionally @<revision> (a branch, tag or "
            f"commit), e.g. hf://kerasae/conv_ae_fashion_mnist. Received: name={text!r}"
        )
    return repo, revision or None


def _hub():
    try:
        import huggingface_hub
        import huggingface_hub.errors  # noqa: F401 - the package loads it lazily
    except ImportError as e:
        raise MissingDependency(
            f"hf:// presets need huggingface_hub ({e}). Install it with: "
            "pip install 'kerasae[hub]'"
        ) from e
    return huggingface_hub


class HubPreset(Preset):
    """A `Preset` whose files come from a hub repo at one commit (see the module docstring)."""

    repo_id: str = None
    revision: str = None

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
    """`huggingface_hub` download settings read from the environment now, not when
    `huggingface_hub` was imported: `HF_ENDPOINT`, `HF_HUB_CACHE` / `HF_HOME`,
    `HF_HUB_OFFLINE`."""
    cache = os.environ.get("HF_HUB_CACHE") or (
        os.path.join(os.environ["HF_HOME"], "hub") if os.environ.get("HF_HOME") else None)
    return {"endpoint": os.environ.get("HF_ENDPOINT") or None, "cache_dir": cache,
            "local_files_only": _offline()}


def _download(hf, repo_id, filename, revision, what):
    errors = hf.errors
    settings = hub_settings()
    try:
        return hf.hf_hub_download(repo_id, filename, revision=revision, **settings)
    except errors.RepositoryNotFoundError:
        raise PresetNotAvailableError(
            f"The Hub has no repo {repo_id!r} (or it is private: log in with `hf auth "
            f"login`). Received: name={what!r}"
        ) from None
    except errors.RevisionNotFoundError:
        raise PresetNotAvailableError(
            f"The hub repo {repo_id!r} has no revision {revision!r}. Received: name={what!r}"
        ) from None
    except errors.LocalEntryNotFoundError as e:
        offline = settings["local_files_only"]
        why = ("HF_HUB_OFFLINE is set" if offline else
               f"the Hub ({settings['endpoint'] or hf.constants.ENDPOINT}) could not be reached")
        connect = "Connect once (unset HF_HUB_OFFLINE)" if offline else "Connect once"
        raise PresetNotAvailableError(
            f"{filename!r} of hf://{repo_id} is not in the Hugging Face cache and {why}. "
            f"{connect} to download it, or set HF_ENDPOINT to a mirror of the Hub. "
            f"Received: name={what!r}"
        ) from e
    except errors.EntryNotFoundError:
        if filename == MANIFEST:
            raise PresetNotAvailableError(
                f"hf://{repo_id} has no {MANIFEST}, so it is not a kerasae preset (or not one "
                f"kerasae can verify): its files are not pinned by sha256, and kerasae loads "
                f"no unverified weights. Publish presets with `kerasae zoo hub NAME DIR`. "
                f"Received: name={what!r}"
            ) from None
        raise PresetNotAvailableError(
            f"hf://{repo_id} lacks {filename!r}, which its {MANIFEST} lists. "
            f"Received: name={what!r}"
        ) from None
    except (OSError, errors.HfHubHTTPError) as e:
        raise PresetNotAvailableError(
            f"Downloading {filename!r} of hf://{repo_id} failed ({type(e).__name__}: {e}). "
            f"Received: name={what!r}"
        ) from e


def _commit_of(path):
    """The commit a file of the Hub cache belongs to (`.../snapshots/<commit>/<file>`)."""
    parts = os.path.normpath(path).split(os.sep)
    if "snapshots" in parts:
        return parts[parts.index("snapshots") + 1]
    return None


def read_manifest(path, what):
    """The preset entry of a `kerasae-preset.json`, checked like an index entry."""
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
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
           or not isinstance(spec.get("bytes"), int)]
    missing = [f for f in ("config.json", "model.weights.h5") if f not in files]
    if bad or missing or not isinstance(entry.get("builder"), str) or \
            not isinstance(entry.get("version"), int):
        raise InvalidValue(
            f"{MANIFEST} of {what} is refused: "
            + (f"files {bad} lack a sha256 and a size" if bad else
               f"it does not list {missing}" if missing else "it names no builder and version")
            + f". Received: name={what!r}"
        )
    return entry


def get_hub_preset(text, *, progress=True):
    """Resolves `hf://org/name[@revision]` to a `HubPreset` (its manifest read and checked)."""
    hf = _hub()
    repo_id, revision = parse_hub_name(text)
    path = _download(hf, repo_id, MANIFEST, revision, text)
    entry = read_manifest(path, text)
    preset = HubPreset(entry.get("name", repo_id.split("/")[-1]), int(entry["version"]), entry,
                       progress=progress)
    preset.repo_id, preset.revision = repo_id, revision
    preset.commit = _commit_of(path) or revision
    return preset


def hub_file(preset, filename):
    """Local path of a verified copy of `filename` of a hub preset (downloaded at its
    manifest's commit); a copy that does not match the manifest is deleted and refused."""
    spec = preset.entry["files"].get(filename)
    if spec is None:
        raise InvalidValue(
            f"{preset.label} has no file {filename!r}; its manifest lists "
            f"{', '.join(sorted(preset.entry['files']))}. Received: filename={filename!r}"
        )
    hf = _hub()
    path = _download(hf, preset.repo_id, filename, preset.commit, preset.label)
    got, size = sha256_file(path), os.path.getsize(path)
    if got != spec["sha256"] or size != spec["bytes"]:
        _evict(path)
        raise PresetNotAvailableError(
            f"{filename!r} of {preset.label} does not match its {MANIFEST}: sha256 {got} and "
            f"{size} bytes were downloaded, "
            f"the manifest pins {spec['sha256']} and {spec['bytes']} bytes. The copy was "
            f"removed from the Hugging Face cache and nothing was loaded; the repo's file and "
            f"manifest disagree (a bad upload, or a changed file). "
            f"Received: name={preset.label!r}"
        )
    return path


def _evict(path):
    """Removes a cached hub file: its snapshot link and the blob it points to."""
    blob = os.path.realpath(path)
    for p in {path, blob}:
        try:
            os.remove(p)
        except OSError:
            pass
