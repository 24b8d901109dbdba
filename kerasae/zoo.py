"""The preset zoo: list, inspect, pull and load pretrained presets; publish new ones.

A preset is a folder `<name>/v<version>/` under a zoo root, holding
`config.json` (builder name + keyword arguments, JSON only), `model.weights.h5`,
`metadata.json` (versions, dataset, training recipe, measured metrics) and
`README.md` (the model card). The root's `index.json` lists every preset with
the sha256 and size of each file; a file that fails its sha256 is never used.
Published folders are never changed: a change is a new version, and
`name@version` still loads an older one.

Where a preset file comes from, in order:

1. the local cache: `cache_dir=`, else `$KERASAE_CACHE`, else
   `$XDG_CACHE_HOME/kerasae/zoo` (`~/.cache/kerasae/zoo`);
2. the copy shipped with the package (`kerasae/_zoo/` in a wheel, the
   repository's `zoo/` in a source checkout), or the root given by `root=` /
   `$KERASAE_ZOO_ROOT`;
3. the mirrors, in order: `mirrors=`, else `$KERASAE_ZOO_MIRRORS` (base URLs
   of a copy of the zoo root, separated by commas or spaces). A download goes
   to a temporary file in the cache, is checked against the index, then
   renamed into place, so the cache only ever holds verified files; a failed
   mirror (refused, 404, truncated, wrong bytes) falls through to the next.

Loading reads only JSON and the HDF5 weight arrays (no pickles, no code), and
the weights only load into the architecture of the preset's `config.json`.

Example:

```python
import kerasae
model = kerasae.ConvAE(weights="conv_ae_fashion_mnist")
model = kerasae.zoo.load_model("conv_ae_fashion_mnist")  # any builder
```
"""

import dataclasses
import datetime
import difflib
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings

from kerasae._files import sha256_file

INDEX_FILE = "index.json"
INDEX_FORMAT = 1
CACHE_ENV = "KERASAE_CACHE"
MIRRORS_ENV = "KERASAE_ZOO_MIRRORS"
ROOT_ENV = "KERASAE_ZOO_ROOT"
# No public mirror is configured yet; set $KERASAE_ZOO_MIRRORS or pass mirrors=.
DEFAULT_MIRRORS = ()
WEIGHTS_FILE = "model.weights.h5"
PRESET_FILES = ("config.json", WEIGHTS_FILE, "metadata.json", "README.md")
MAX_WEIGHTS_BYTES = 5_000_000  # 5 MB per preset: the wheel ships every preset
PROGRESS_MIN_BYTES = 1 << 20
DOWNLOAD_TIMEOUT = 30.0
_CHUNK = 1 << 16
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
_EXTRA_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.(?:md|txt|sh|json|yaml|yml|csv)$")
_PARTIAL_LOAD_MARKERS = ("Skipping", "freshly-initialized", "could not be loaded")
# Builder arguments that change training or naming only, never the weights.
SAFE_OVERRIDES = frozenset(
    {"name", "seed", "beta", "reconstruction", "corruption_amount", "sparsity_weight",
     "sparsity_target"}
)


class PresetNotAvailableError(FileNotFoundError):
    """A preset file is in no cache, no shipped copy, and no mirror served it."""


# ------------------------------------------------------------------- places
def shipped_root():
    """The zoo root shipped with kerasae, or `None`.

    A wheel carries it as the package data `kerasae/_zoo/`; a source checkout
    (editable install) uses the repository's `zoo/` folder.
    """
    package = os.path.dirname(os.path.abspath(__file__))
    inside = os.path.join(package, "_zoo")
    if os.path.isfile(os.path.join(inside, INDEX_FILE)):
        return inside
    repo = os.path.dirname(package)
    checkout_zoo = os.path.join(repo, "zoo")
    if os.path.isfile(os.path.join(repo, "pyproject.toml")) and os.path.isdir(checkout_zoo):
        return checkout_zoo
    return None


def zoo_root(root=None):
    """The root whose index is used: `root`, else `$KERASAE_ZOO_ROOT`, else `shipped_root()`."""
    root = root if root is not None else os.environ.get(ROOT_ENV) or shipped_root()
    return None if root is None else os.path.abspath(os.fspath(root))


def resolve_cache_dir(cache_dir=None):
    """The cache directory: `cache_dir`, else `$KERASAE_CACHE`, else `~/.cache/kerasae/zoo`."""
    if cache_dir is not None:
        return os.path.abspath(os.fspath(cache_dir))
    if os.environ.get(CACHE_ENV):
        return os.path.abspath(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kerasae", "zoo")


def mirror_list(mirrors=None):
    """Mirror base URLs: `mirrors` (a list or a comma/space separated string), else
    `$KERASAE_ZOO_MIRRORS`, else `DEFAULT_MIRRORS`."""
    if mirrors is None:
        mirrors = os.environ.get(MIRRORS_ENV)
        if mirrors is None:
            return list(DEFAULT_MIRRORS)
    if isinstance(mirrors, str):
        mirrors = re.split(r"[,\s]+", mirrors)
    out = [str(m).strip() for m in mirrors if str(m).strip()]
    for m in out:
        if urllib.parse.urlparse(m).scheme not in ("http", "https", "file"):
            raise ValueError(
                "A mirror must be an http://, https:// or file:// base URL of a copy of "
                f"the zoo folder (the one holding {INDEX_FILE}). Received: mirror={m!r}"
            )
    return out


# -------------------------------------------------------------------- index
def _empty_index():
    return {"format": INDEX_FORMAT, "presets": {}}


def read_index(root=None):
    """The index of a zoo root as a dict (`{"format": 1, "presets": {...}}`)."""
    root = zoo_root(root)
    path = None if root is None else os.path.join(root, INDEX_FILE)
    if path is None or not os.path.isfile(path):
        return _empty_index()
    with open(path, encoding="utf-8") as f:
        index = json.load(f)
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        raise ValueError(
            f"{path} is not a kerasae zoo index of format {INDEX_FORMAT}; upgrade kerasae "
            f"or point root= at a matching zoo. Received: format={index.get('format')!r}"
        )
    return index


def list_presets(root=None):
    """Sorted names of the presets in the index."""
    return sorted(read_index(root)["presets"])


def _split_name(name):
    if not isinstance(name, str):
        raise TypeError(f"A preset name must be a string. Received: name={name!r}")
    base, _, version = name.partition("@")
    if version and not version.lstrip("v").isdigit():
        raise ValueError(
            f"A preset version is a number, e.g. 'conv_ae_fashion_mnist@1'. Received: name={name!r}"
        )
    return base, int(version.lstrip("v")) if version else None


def _lookup(index, name):
    base, version = _split_name(name)
    presets = index["presets"]
    if base not in presets:
        close = difflib.get_close_matches(base, list(presets), n=1)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        available = ", ".join(sorted(presets)) or "none (this zoo has no presets yet)"
        raise ValueError(
            f"Unknown preset {base!r}. {hint}Available: {available}. See `kerasae zoo list`. "
            f"Received: name={name!r}"
        )
    entry = presets[base]
    if version is None or version == entry["version"]:
        return base, entry
    for old in entry.get("previous_versions", []):
        if old["version"] == version:
            return base, dict(entry, **old)
    older = [o["version"] for o in entry.get("previous_versions", [])]
    versions = sorted([entry["version"]] + older)
    raise ValueError(
        f"Preset {base!r} has no version {version}; published versions: "
        f"{', '.join(map(str, versions))}. Received: name={name!r}"
    )


# ------------------------------------------------------------------- preset
@dataclasses.dataclass
class Preset:
    """A preset resolved against an index. Files are fetched and verified on demand."""

    name: str
    version: int
    entry: dict
    root: str = None
    cache: str = None
    mirrors: list = None
    progress: object = True

    @property
    def builder(self):
        return self.entry["builder"]

    @property
    def path(self):
        return self.entry["path"]

    @property
    def label(self):
        return f"{self.name}@{self.version}"

    def file(self, filename, use_shipped=True):
        """Local path of a verified copy of `filename` (cache, shipped copy, mirrors)."""
        return _resolve_file(self, filename, use_shipped=use_shipped)

    @property
    def config(self):
        if "_config" not in self.__dict__:
            with open(self.file("config.json"), encoding="utf-8") as f:
                config = json.load(f)
            if config.get("builder") != self.builder or not isinstance(config.get("kwargs"), dict):
                raise ValueError(
                    f"config.json of preset {self.label} does not name builder "
                    f"{self.builder!r} with a kwargs object. Received: config={config!r}"
                )
            self.__dict__["_config"] = config
        return self.__dict__["_config"]

    def metadata(self):
        with open(self.file("metadata.json"), encoding="utf-8") as f:
            return json.load(f)


def get_preset(name, *, root=None, cache_dir=None, mirrors=None, progress=True):
    """Resolves a preset name (`name` or `name@version`) against the zoo index.

    Args:
        name: preset name, e.g. `"conv_ae_fashion_mnist"` or `"conv_ae_fashion_mnist@1"`.
        root: zoo root holding `index.json` (and usually the files).
            Defaults to `$KERASAE_ZOO_ROOT`, else the copy shipped with kerasae.
        cache_dir: cache directory. Defaults to `$KERASAE_CACHE`, else
            `~/.cache/kerasae/zoo`.
        mirrors: base URLs to download from. Defaults to `$KERASAE_ZOO_MIRRORS`.
        progress: `True` (report downloads over 1 MiB on stderr), `False`, or a
            callable `progress(filename, done_bytes, total_bytes)`.

    Returns:
        A `Preset`; its `config.json` is fetched and verified already.
    """
    resolved_root = zoo_root(root)
    base, entry = _lookup(read_index(resolved_root), name)
    preset = Preset(base, int(entry["version"]), entry, resolved_root,
                    resolve_cache_dir(cache_dir), mirror_list(mirrors), progress)
    preset.config  # noqa: B018 - fetch and verify now, so errors surface early
    return preset


# ----------------------------------------------------------------- fetching
class _Failure(Exception):
    pass


def _relpath(preset, filename):
    return os.path.join(*preset.path.split("/"), filename)


def _resolve_file(preset, filename, use_shipped=True):
    spec = preset.entry["files"].get(filename)
    if spec is None:
        raise ValueError(
            f"Preset {preset.label} has no file {filename!r}; it has "
            f"{', '.join(sorted(preset.entry['files']))}. Received: filename={filename!r}"
        )
    rel = _relpath(preset, filename)
    cached = os.path.join(preset.cache, rel)
    tried = []
    candidates = [("cache", cached)]
    if use_shipped and preset.root:
        candidates.append(("shipped copy", os.path.join(preset.root, rel)))
    for where, path in candidates:
        if not os.path.isfile(path):
            tried.append(f"{where}: {path} (missing)")
            continue
        got = sha256_file(path)
        if got == spec["sha256"]:
            return path
        tried.append(f"{where}: {path} (sha256 {got[:12]}..., expected "
                     f"{spec['sha256'][:12]}...; ignored)")
    for base in preset.mirrors:
        url = base.rstrip("/") + "/" + urllib.parse.quote(f"{preset.path}/{filename}")
        try:
            _download(url, cached, spec, preset.progress, f"{preset.label}/{filename}")
            return cached
        except _Failure as e:
            tried.append(f"{url}: {e}")
    lines = "\n  ".join(tried)
    if not preset.mirrors:
        how = (f"No mirror is configured: set ${MIRRORS_ENV} or pass mirrors=[...] with the "
               "base URL of a copy of the zoo folder, or reinstall kerasae (the wheel ships "
               "the presets).")
        what = "is not available offline"
    else:
        how = "Check the mirror URLs and the network, or try again later."
        what = "could not be fetched from any mirror"
    raise PresetNotAvailableError(
        f"File {filename!r} of preset {preset.label} {what}. Tried:\n  {lines}\n{how} "
        f"Received: name={preset.name!r}"
    )


def _report(progress, label):
    if callable(progress):
        return lambda done, total: progress(label, done, total)
    if not progress:
        return None
    state = {"shown": -1}
    tty = sys.stderr.isatty()

    def report(done, total):
        if not total or total < PROGRESS_MIN_BYTES:
            return
        pct = int(100 * done / total)
        step = pct if tty else pct // 25 * 25
        if step == state["shown"]:
            return
        state["shown"] = step
        end = "\n" if done >= total or not tty else ""
        print(f"\rDownloading {label}: {done / 1e6:.1f}/{total / 1e6:.1f} MB ({pct}%)",
              end=end, file=sys.stderr, flush=True)

    return report


def _download(url, dest, spec, progress, label):
    """Streams `url` to a temporary file next to `dest`, verifies it, renames it."""
    expected_size, expected_sha = int(spec["bytes"]), spec["sha256"]
    folder = os.path.dirname(dest)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(dest) + ".",
                               suffix=".part")
    report = _report(progress, label)
    try:
        h = hashlib.sha256()
        done = 0
        with os.fdopen(fd, "wb") as out, \
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp:
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                done += len(chunk)
                if done > expected_size:
                    raise _Failure(f"more than the expected {expected_size} bytes; discarded")
                h.update(chunk)
                out.write(chunk)
                if report:
                    report(done, expected_size)
        if done != expected_size:
            raise _Failure(f"truncated: {done} of {expected_size} bytes; discarded")
        got = h.hexdigest()
        if got != expected_sha:
            raise _Failure(
                f"failed the sha256 check (expected {expected_sha[:12]}..., got {got[:12]}...); "
                "discarded, the cache is untouched"
            )
        os.replace(tmp, dest)
        tmp = None
    except urllib.error.HTTPError as e:
        raise _Failure(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise _Failure(f"unreachable ({e.reason})") from None
    except http.client.IncompleteRead as e:
        raise _Failure(f"truncated: {len(e.partial)} more bytes then the connection closed "
                       f"({done} of {expected_size} bytes); discarded") from None
    except (http.client.HTTPException, OSError) as e:
        raise _Failure(f"{type(e).__name__}: {e}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def pull(name, mirrors=None, cache_dir=None, *, root=None, progress=True):
    """Downloads every file of a preset into the cache (skipping verified ones).

    Unlike loading, `pull` does not use the shipped copy: it fills the cache
    from the mirrors, e.g. to prepare a machine or to fetch a preset that the
    installed package does not ship.

    Returns:
        The preset's folder in the cache.
    """
    resolved_root = zoo_root(root)
    base, entry = _lookup(read_index(resolved_root), name)
    preset = Preset(base, int(entry["version"]), entry, resolved_root,
                    resolve_cache_dir(cache_dir), mirror_list(mirrors), progress)
    for filename in sorted(entry["files"]):
        preset.file(filename, use_shipped=False)
    return os.path.join(preset.cache, *preset.path.split("/"))


def info(name, *, root=None, cache_dir=None, mirrors=None):
    """Index entry and metadata of a preset, with where each file is available."""
    preset = get_preset(name, root=root, cache_dir=cache_dir, mirrors=mirrors)
    files = {}
    for filename, spec in sorted(preset.entry["files"].items()):
        rel = _relpath(preset, filename)
        places = [where for where, base in (("cache", preset.cache), ("shipped", preset.root))
                  if base and os.path.isfile(os.path.join(base, rel))]
        files[filename] = dict(spec, available=places)
    entry = {k: v for k, v in preset.entry.items() if k not in ("files", "previous_versions")}
    return {"name": preset.name, **entry, "files": files,
            "previous_versions": [o["version"] for o in preset.entry.get("previous_versions", [])],
            "metadata": preset.metadata()}


# ------------------------------------------------------------------ loading
def _same(a, b):
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def _builder_function_name(builder):
    try:
        from kerasae.models.registry import get_builder

        return get_builder(builder).__name__
    except ValueError:
        return builder


def merge_preset_config(preset, builder_name, kwargs):
    """Builder kwargs of a preset's `config.json` merged with the caller's overrides.

    Overrides may change only what leaves the weights valid (`SAFE_OVERRIDES`:
    the name, seeds, loss weights); any other argument must equal the
    preset's value.

    Raises:
        ValueError: the preset belongs to another builder, or an override
            would change the architecture.
    """
    if preset.builder != builder_name:
        fn = _builder_function_name(preset.builder)
        raise ValueError(
            f"Preset {preset.name!r} holds weights for builder {preset.builder!r}, not "
            f"{builder_name!r}. Call kerasae.{fn}(weights={preset.name!r}) or "
            f"kerasae.zoo.load_model({preset.name!r}). Received: weights={preset.name!r}"
        )
    merged = dict(preset.config["kwargs"])
    for key, value in (kwargs or {}).items():
        if key in merged and not _same(merged[key], value) and key not in SAFE_OVERRIDES:
            raise ValueError(
                f"Preset {preset.name!r} was trained with {key}={merged[key]!r}; its weights "
                f"do not fit {key}={value!r}, so the override is refused. Drop the argument "
                f"to use the preset, or build without weights= and train. Arguments a preset "
                f"lets you change: {', '.join(sorted(SAFE_OVERRIDES))}. Received: {key}={value!r}"
            )
        if key not in merged and key not in SAFE_OVERRIDES:
            raise ValueError(
                f"Preset {preset.name!r} does not set {key!r}, so overriding it could change "
                f"the architecture its weights were trained for. Drop the argument. "
                f"Received: {key}={value!r}"
            )
        merged[key] = value
    return merged


def load_preset_weights(model, preset):
    """Loads the verified `model.weights.h5` of `preset` into `model`.

    Only HDF5 arrays are read (no pickles, no code). A weight file that does not
    fit the model is an error, never a partial load.
    """
    if getattr(model, "builder_name", None) != preset.builder:
        raise ValueError(
            f"Preset {preset.name!r} holds weights for builder {preset.builder!r}, but the "
            f"model comes from {getattr(model, 'builder_name', None)!r}. Use "
            f"kerasae.zoo.load_model({preset.name!r}). Received: model={model.name!r}"
        )
    path = preset.file(WEIGHTS_FILE)
    _load_weights_strict(model, path, preset.label)
    return model


def _load_weights_strict(model, path, label):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except ValueError as e:
            raise ValueError(
                f"The weights of {label} do not fit this model ({e}). Build it from the "
                f"preset's own config with kerasae.zoo.load_model. Received: weights={path!r}"
            ) from None
    # Keras only warns when part of a file does not match (and keeps the fresh
    # initial values there); for a preset that is an error, not a partial load.
    partial = [w for w in caught if any(s in str(w.message) for s in _PARTIAL_LOAD_MARKERS)]
    if partial:
        raise ValueError(
            f"The weights of {label} only partly fit this model: {partial[0].message} Build "
            f"it from the preset's own config with kerasae.zoo.load_model. "
            f"Received: weights={path!r}"
        )
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _bare_model(config):
    from kerasae.models.registry import get_builder

    return get_builder(config["builder"])(**config["kwargs"])


def _build(config, weights_path, label):
    model = _bare_model(config)
    _load_weights_strict(model, weights_path, label)
    return model


def load_model(name, *, root=None, cache_dir=None, mirrors=None, **overrides):
    """Builds a preset's model from its `config.json` and loads its verified weights.

    Args:
        name: preset name, optionally `name@version`.
        root, cache_dir, mirrors: see `get_preset`.
        **overrides: builder arguments to change; only `SAFE_OVERRIDES`
            (name, seed, loss weights) may differ from the preset.

    Returns:
        A `kerasae.models.Autoencoder`.

    Example:
        >>> model = kerasae.zoo.load_model("conv_ae_fashion_mnist")  # doctest: +SKIP
    """
    from kerasae.models.registry import get_builder

    preset = get_preset(name, root=root, cache_dir=cache_dir, mirrors=mirrors)
    kwargs = merge_preset_config(preset, preset.builder, overrides)
    model = get_builder(preset.builder)(**kwargs)
    return load_preset_weights(model, preset)


# -------------------------------------------------------------- verification
def verify_index(root=None):
    """Checks every file of every version in a zoo root against the index.

    Returns:
        A list of problems (empty when all files are present and match).
    """
    root = zoo_root(root)
    index = read_index(root)
    problems = []
    for name, entry in sorted(index["presets"].items()):
        for version in [entry] + list(entry.get("previous_versions", [])):
            for filename, spec in sorted(version["files"].items()):
                path = os.path.join(root, *version["path"].split("/"), filename)
                if not os.path.isfile(path):
                    problems.append(f"{name}@{version['version']}: {filename} is missing ({path})")
                    continue
                got = sha256_file(path)
                if got != spec["sha256"] or os.path.getsize(path) != spec["bytes"]:
                    problems.append(
                        f"{name}@{version['version']}: {filename} has sha256 {got} and "
                        f"{os.path.getsize(path)} bytes; the index says {spec['sha256']} "
                        f"and {spec['bytes']} bytes"
                    )
    return problems


# -------------------------------------------------------------- publishing
def _versions():
    import h5py
    import keras
    import numpy

    import kerasae

    out = {"kerasae": kerasae.__version__, "keras": keras.__version__,
           "backend": keras.backend.backend(), "numpy": numpy.__version__,
           "h5py": h5py.__version__, "python": platform.python_version()}
    try:
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    except ImportError:
        pass
    return out


def _write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _card(name, version, model, description, dataset, train_split, eval_split, license,
          params, recipe, evaluation, reference_metrics, intended_use, data_description,
          limitations, card_sections, weights_sha, weights_bytes):
    from kerasae.evaluate import METRIC_DOCS
    from kerasae.models.registry import get_builder

    fn = get_builder(model.builder_name).__name__
    metrics = evaluation["metrics"]
    settings = evaluation["settings"]
    kind = ("variational autoencoder" if model.variational else
            "denoising autoencoder" if getattr(model, "corruption", None) is not None
            else "autoencoder")
    intended_use = intended_use or (
        f"Reconstructing, encoding and (for a VAE) sampling {dataset} images of shape "
        f"{tuple(model.image_shape)}; a starting point for fine-tuning, feature extraction "
        "and anomaly scoring on similar data; a reference for comparing autoencoder variants."
    )
    data_description = data_description or (
        f"Trained on the `{train_split}` split of `{dataset}` (via `kerasae.data`), pixels "
        f"scaled to [0, 1]; evaluated on the `{eval_split}` split "
        f"({evaluation['examples']} images)."
    )
    limitations = limitations or (
        f"Trained only on {dataset}: inputs from other distributions reconstruct poorly. "
        "Reconstruction metrics are not perceptual quality. Small model meant for CPU use; "
        "not a state-of-the-art compressor or generator."
    )
    lines = [
        f"# {name} (version {version})", "", description, "",
        "| | |", "| --- | --- |",
        f"| Builder | `{model.builder_name}` (`kerasae.{fn}`), {'an' if kind[0] in 'aeiou' else 'a'} {kind} |",
        f"| Parameters | {params:,} |",
        f"| Weights | `{WEIGHTS_FILE}`, {weights_bytes:,} bytes, sha256 `{weights_sha}` |",
        f"| Data | `{dataset}`, trained on `{train_split}`, evaluated on `{eval_split}` |",
        f"| Licence | {license} |", "",
        "## Intended use", "", intended_use, "",
        "## Data", "", data_description, "",
        "## Training procedure", "",
        "Trained with:", "", "```bash", recipe["command"], "```", "",
    ]
    details = {k: v for k, v in recipe.items() if k != "command"}
    if details:
        lines += ["| setting | value |", "| --- | --- |"]
        lines += [f"| {k} | `{json.dumps(v)}` |" for k, v in sorted(details.items())]
        lines.append("")
    lines += [
        "Builder arguments (`config.json`):", "", "```json",
        json.dumps(model.builder_config, sort_keys=True), "```", "",
        "## Evaluation", "",
        f"Measured by `kerasae zoo evaluate {name} --split {eval_split}` on all "
        f"{evaluation['examples']} images of the `{eval_split}` split, with settings "
        f"`{json.dumps(settings, sort_keys=True)}`.", "",
        "| metric | this preset | reference | reference source | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    reference_metrics = reference_metrics or {}
    for key, value in metrics.items():
        refs = reference_metrics.get(key) or []
        refs = [refs] if isinstance(refs, dict) else list(refs)
        ref_values = "; ".join(_fmt(r["value"]) for r in refs) or "-"
        ref_sources = "; ".join(r.get("source", "-") for r in refs) or "-"
        lines.append(
            f"| {key} | {_fmt(value)} | {ref_values} | {ref_sources} | "
            f"{METRIC_DOCS.get(key, '')} |"
        )
    lines.append("")
    for title, text in (card_sections or {}).items():
        lines += [f"## {title}", "", str(text).strip(), ""]
    lines += ["## Limitations", "", limitations, "",
              "## Load", "", "```python", "import kerasae",
              f"model = kerasae.{fn}(weights={name!r})  # or kerasae.zoo.load_model({name!r})",
              "reconstructions = model.predict(images)  # float32 in [0, 1], shape "
              f"(n, {', '.join(map(str, model.image_shape))})",
              "```", ""]
    return "\n".join(lines)


def card_metrics(readme_text):
    """The `metric -> value` rows of a card's evaluation table (for consistency checks)."""
    out = {}
    section = readme_text.split("## Evaluation", 1)[-1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] not in ("metric", "") and not cells[0].startswith("---"):
            try:
                out[cells[0]] = float(cells[1])
            except ValueError:
                continue
    return out


def _default_publish_root():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(repo, "pyproject.toml")):
        raise ValueError(
            "publish() writes into a source checkout's zoo/ folder, and this kerasae is an "
            "installed package. Pass root= (e.g. the repository's zoo/ folder). Received: root=None"
        )
    return os.path.join(repo, "zoo")


def publish(model, name, *, version, description, dataset, recipe, license="Apache-2.0",
            train_split="train", eval_split="test", reference_metrics=None, intended_use=None,
            data_description=None, limitations=None, card_sections=None, extra_files=None,
            evaluation=None, root=None, max_weights_bytes=MAX_WEIGHTS_BYTES, data_kwargs=None):
    """Publishes `model` as a new preset version and adds it to the index.

    Writes `<root>/<name>/v<version>/` with `config.json` (from
    `model.builder_name` / `model.builder_config`), `model.weights.h5`,
    `metadata.json` and `README.md`, then pins every file by sha256 in
    `<root>/index.json`. The metrics in the metadata and the card are measured
    here by the same code as `kerasae zoo evaluate` (`evaluate_model`), on a
    model rebuilt from the written files, so the card and the command agree.
    An existing version is never overwritten.

    Args:
        model: a trained model from a registered builder.
        name: preset name, `<builder>_<dataset>[_<size>]`, lower snake case.
        version: integer version, greater than any published version of `name`.
        description: one or two sentences for the index and the card.
        dataset: `kerasae.data` name the model was trained on, e.g. `"fashion_mnist"`.
        recipe: dict with the exact `"command"` that trained the model, plus
            any settings worth recording (epochs, batch size, seed, ...).
        license: licence of the weights. Defaults to `"Apache-2.0"`.
        train_split: training split. Defaults to `"train"`.
        eval_split: split measured for the card. Defaults to `"test"`.
        reference_metrics: `{metric: {"value": v, "source": "..."}}` (or a list of
            such dicts per metric), published numbers shown beside ours in the
            card. Defaults to `None`.
        intended_use, data_description, limitations: card sections (markdown);
            sensible defaults are written when `None`.
        card_sections: `{title: markdown}` of extra card sections.
        extra_files: `{filename: text}` of extra files for the folder (e.g. a
            `train.sh`), pinned in the index like the others.
        evaluation: overrides of `kerasae.evaluate.DEFAULT_SETTINGS`.
        root: zoo root. Defaults to the repository's `zoo/` (source checkouts).
        max_weights_bytes: size limit of the weights. Defaults to 5 MB.
        data_kwargs: extra arguments for `kerasae.data.load_numpy`.

    Returns:
        The new preset folder.
    """
    from kerasae import data as data_lib
    from kerasae import evaluate as evaluate_lib

    builder_name = getattr(model, "builder_name", None)
    if not builder_name or getattr(model, "builder_config", None) is None:
        raise TypeError(
            "publish() needs a model made by a registered builder (it records "
            "builder_name and builder_config), e.g. kerasae.build('conv_ae', ...). "
            f"Received: model={type(model).__name__}"
        )
    if (not isinstance(name, str) or not _NAME.match(name)
            or not name.startswith(builder_name + "_")):
        raise ValueError(
            f"A preset name is lower snake case '<builder>_<dataset>[_<size>]' and starts "
            f"with the builder name, e.g. '{builder_name}_fashion_mnist'; hyperparameters "
            f"belong in config.json. Received: name={name!r}"
        )
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be an integer >= 1. Received: version={version!r}")
    if not isinstance(recipe, dict) or not isinstance(recipe.get("command"), str):
        raise ValueError(
            "recipe must be a dict holding the exact training command, e.g. "
            "{'command': 'kerasae train conv_ae --dataset fashion_mnist --epochs 20', "
            f"'epochs': 20}}. Received: recipe={recipe!r}"
        )
    try:
        json.dumps(recipe)
    except TypeError as e:
        raise TypeError(
            f"recipe must hold JSON values only ({e}). Received: recipe={recipe!r}"
        ) from None
    for fname in extra_files or {}:
        if not _EXTRA_FILE.match(fname) or fname in PRESET_FILES:
            raise ValueError(
                "Extra files are plain text (.md, .txt, .sh, .json, .yaml, .csv) with a simple "
                f"name, not one of {', '.join(PRESET_FILES)}. Received: filename={fname!r}"
            )
    root = os.path.abspath(os.fspath(root)) if root is not None else _default_publish_root()
    index = read_index(root)
    entry = index["presets"].get(name)
    published = [] if entry is None else [entry["version"]] + [
        o["version"] for o in entry.get("previous_versions", [])]
    rel = f"{name}/v{version}"
    folder = os.path.join(root, name, f"v{version}")
    if version in published or os.path.exists(folder):
        raise ValueError(
            f"Preset {name!r} version {version} is already published ({folder}); published "
            f"files are never changed. Publish version {max(published + [version]) + 1} "
            f"instead. Received: version={version}"
        )
    if published and version < max(published):
        raise ValueError(
            f"A new version must be newer than the published ones ({max(published)}). "
            f"Received: version={version}"
        )
    if entry is not None and entry["builder"] != builder_name:
        raise ValueError(
            f"Preset {name!r} belongs to builder {entry['builder']!r}; a new version cannot "
            f"switch to {builder_name!r}. Choose another name. Received: name={name!r}"
        )

    os.makedirs(os.path.join(root, name), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.join(root, name), prefix=f".v{version}.tmp-")
    try:
        config = {"builder": builder_name, "kwargs": json.loads(json.dumps(model.builder_config))}
        _write_json(os.path.join(tmp, "config.json"), config)
        weights_path = os.path.join(tmp, WEIGHTS_FILE)
        # Saved from a fresh, uncompiled build: weights only, no optimizer state.
        bare = _bare_model(config)
        try:
            bare.set_weights(model.get_weights())
        except ValueError as e:
            raise ValueError(
                f"A model rebuilt from builder_config does not have this model's weight "
                f"shapes ({e}); was the model changed after it was built? "
                f"Received: builder_config={model.builder_config!r}"
            ) from None
        bare.save_weights(weights_path)
        weights_bytes = os.path.getsize(weights_path)
        if weights_bytes > max_weights_bytes:
            raise ValueError(
                f"The weights take {weights_bytes:,} bytes; a preset may take at most "
                f"{max_weights_bytes:,} (the wheel ships every preset). Use a smaller "
                f"model. Received: weights_bytes={weights_bytes}"
            )
        # Rebuild from the written files: the card must describe what users load.
        rebuilt = _build(config, weights_path, f"{name}@{version}")
        mismatch = len(rebuilt.get_weights()) != len(model.get_weights()) or any(
            a.shape != b.shape or not (a == b).all()
            for a, b in zip(rebuilt.get_weights(), model.get_weights()))
        if mismatch:
            raise ValueError(
                f"A model rebuilt from builder_config does not reproduce this model's "
                f"weights, so {name!r} could not be loaded faithfully. Was the model changed "
                f"after it was built? Received: builder_config={model.builder_config!r}"
            )
        images, _ = data_lib.load_numpy(dataset, eval_split, **(data_kwargs or {}))
        evaluation = evaluate_lib.evaluate_model(rebuilt, images, **(evaluation or {}))
        weights_sha = sha256_file(weights_path)
        params = int(model.count_params())
        today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        metadata = {
            "name": name, "version": version, "builder": builder_name,
            "description": description, "license": license, "published": today,
            "parameters": params,
            "dataset": {"name": dataset, "train_split": train_split, "eval_split": eval_split,
                        "image_shape": list(model.image_shape)},
            "versions": _versions(),
            "recipe": recipe,
            "evaluation": {"command": f"kerasae zoo evaluate {name} --split {eval_split}",
                           "dataset": dataset, "split": eval_split, **evaluation},
            "reference_metrics": reference_metrics or {},
        }
        _write_json(os.path.join(tmp, "metadata.json"), metadata)
        card = _card(name, version, model, description, dataset, train_split, eval_split,
                     license, params, recipe, evaluation, reference_metrics, intended_use,
                     data_description, limitations, card_sections, weights_sha, weights_bytes)
        with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
            f.write(card)
        for fname, text in (extra_files or {}).items():
            with open(os.path.join(tmp, fname), "w", encoding="utf-8") as f:
                f.write(text)
        files = {f: {"sha256": sha256_file(os.path.join(tmp, f)),
                     "bytes": os.path.getsize(os.path.join(tmp, f))}
                 for f in sorted(os.listdir(tmp))}
        os.rename(tmp, folder)
        tmp = None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    new_entry = {
        "builder": builder_name, "version": version, "path": rel,
        "description": description, "dataset": dataset, "split": train_split,
        "eval_split": eval_split, "params": params, "license": license,
        "published": today, "files": files,
    }
    if entry is not None:
        previous = [{k: entry[k] for k in ("version", "path", "files", "published", "params",
                                           "description") if k in entry}]
        new_entry["previous_versions"] = previous + list(entry.get("previous_versions", []))
    index["presets"][name] = new_entry
    index["presets"] = dict(sorted(index["presets"].items()))
    fd, tmp_index = tempfile.mkstemp(dir=root, prefix=".index.", suffix=".json.tmp")
    os.close(fd)
    _write_json(tmp_index, index)
    os.replace(tmp_index, os.path.join(root, INDEX_FILE))
    return folder


# --------------------------------------------------------------------- CLI
def add_cli(subparsers):
    """Registers `kerasae zoo list | info | pull | evaluate`."""
    p = subparsers.add_parser("zoo", help="pretrained presets: list, info, pull, evaluate")
    zsub = p.add_subparsers(dest="zoo_command", required=True)

    def common(sp, mirrors=True):
        sp.add_argument("--root", default=None, help=f"zoo root with {INDEX_FILE} "
                        f"(default: ${ROOT_ENV}, else the copy shipped with kerasae)")
        sp.add_argument("--cache-dir", default=None,
                        help=f"cache directory (default: ${CACHE_ENV}, else ~/.cache/kerasae/zoo)")
        if mirrors:
            sp.add_argument("--mirror", action="append", default=None, metavar="URL",
                            help=f"mirror base URL, repeatable (default: ${MIRRORS_ENV})")

    sp = zsub.add_parser("list", help="list the presets")
    common(sp, mirrors=False)
    sp.set_defaults(func=_cli_list)
    sp = zsub.add_parser("info", help="a preset's index entry, metadata and files")
    sp.add_argument("name")
    sp.add_argument("--json", action="store_true", help="print JSON")
    common(sp)
    sp.set_defaults(func=_cli_info)
    sp = zsub.add_parser("pull", help="download a preset into the cache, verified")
    sp.add_argument("name")
    common(sp)
    sp.set_defaults(func=_cli_pull)
    sp = zsub.add_parser("evaluate", help="measure a preset on a split (the card's numbers)")
    sp.add_argument("name")
    sp.add_argument("--split", default="test")
    sp.add_argument("--json", default=None, metavar="OUT", help="also write the numbers here")
    sp.add_argument("--limit", type=int, default=None,
                    help="only the first N images (a quick check, not card numbers)")
    sp.add_argument("--batch-size", type=int, default=None)
    sp.add_argument("--nll-samples", type=int, default=None,
                    help="importance samples for the VAE NLL (default: as recorded)")
    sp.add_argument("--data-dir", default=None)
    sp.add_argument("--raw-dir", default=None)
    common(sp)
    sp.set_defaults(func=_cli_evaluate)


def _cli_list(args):
    index = read_index(args.root)
    if not index["presets"]:
        print(f"No presets in {zoo_root(args.root) or '(no zoo root)'}.")
        return 0
    print(f"{'name':34s} {'ver':>3s}  {'builder':18s} {'params':>9s}  description")
    for name, e in index["presets"].items():
        print(f"{name:34s} {e['version']:>3d}  {e['builder']:18s} {e['params']:>9,d}  "
              f"{e['description']}")
    return 0


def _cli_info(args):
    data = info(args.name, root=args.root, cache_dir=args.cache_dir, mirrors=args.mirror)
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    meta = data["metadata"]
    print(f"{data['name']} version {data['version']}: {data['description']}")
    print(f"  builder   {data['builder']}  ({data['params']:,} parameters)")
    print(f"  data      {data['dataset']} (trained on {data['split']}, evaluated on "
          f"{data['eval_split']})")
    print(f"  licence   {data['license']}")
    print(f"  trained   {meta['recipe']['command']}")
    for key, value in meta["evaluation"]["metrics"].items():
        print(f"  {key:14s} {_fmt(value)}")
    for filename, spec in data["files"].items():
        where = ", ".join(spec["available"]) or "remote only"
        print(f"  {filename:18s} {spec['bytes']:>10,d} bytes  sha256 {spec['sha256'][:16]}...  "
              f"[{where}]")
    if data["previous_versions"]:
        print(f"  older versions: {', '.join(map(str, data['previous_versions']))} "
              f"(load with '{data['name']}@N')")
    return 0


def _cli_pull(args):
    folder = pull(args.name, mirrors=args.mirror, cache_dir=args.cache_dir, root=args.root)
    print(f"{args.name}: verified files in {folder}")
    return 0


def _cli_evaluate(args):
    from kerasae.evaluate import evaluate_preset

    settings = {k: v for k, v in (("batch_size", args.batch_size),
                                  ("nll_samples", args.nll_samples)) if v is not None}
    result = evaluate_preset(args.name, split=args.split, limit=args.limit, settings=settings,
                             root=args.root, cache_dir=args.cache_dir, mirrors=args.mirror,
                             data_dir=args.data_dir, raw_dir=args.raw_dir)
    print(f"{result['preset']}@{result['version']} on {result['dataset']} {result['split']} "
          f"({result['examples']} images)")
    for key, value in result["metrics"].items():
        print(f"  {key:20s} {_fmt(value)}")
    if args.json:
        _write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0
