"""Preset files made on the user's machine from published third-party checkpoints.

A file of a preset may be pinned with `converted_from` in the index instead of being
published as is (`tae_flux2`'s weights: TAEF2's PyTorch checkpoints, MIT):

    "model.weights.h5": {"sha256": ..., "bytes": ..., "converted_from": {
        "converter": "taesd", "repository": "madebyollin/taesd", "commit": <40 hex>,
        "license": "MIT", "url": "https://raw.githubusercontent.com/<repo>/<commit>/",
        "files": {"encoder": {"name": "taef2_encoder.pth", "sha256": ..., "bytes": ...},
                  "decoder": {...}}}}

kerasae ships neither the upstream files nor the converted one. On first use each
upstream file is taken from the cache (`sources/<repository>/<commit>/<name>`), else
from each mirror at that same path, else from the upstream `url`, and is used only
when its sha256 and size match the pin (downloads wait in a hidden folder of the cache
and join it only with a successful conversion). The converter (registered by name by the model
code: `kerasae.models.convert` registers `"taesd"`) reads them as data (no pickled
code runs) and writes the file beside its place in the cache; it is kept only when
its sha256 matches the pin as well, so a converter that reads the checkpoint otherwise
than when the preset was published, or a checkpoint that is not the pinned one, leaves
nothing in the cache.
"""

import os
import re
import tempfile
import urllib.parse

from kerasae._util.errors import InvalidValue, KerasaeError
from kerasae._util.files import sha256_file, staged_file
from kerasae.presets import download as _download

SOURCES_DIR = "sources"
_CONVERTERS = {}
_REPOSITORY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*/[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ConversionFailed(KerasaeError, ValueError):
    """Upstream files were fetched and verified but their conversion is not the pinned file."""


class SourceUnavailable(KerasaeError, FileNotFoundError):
    """An upstream file is in no cache and no mirror or upstream URL served it verified."""


def register_converter(name):
    """Decorator: registers `fn(sources, kwargs, out_path)` as converter `name`.

    `sources` maps the roles of `converted_from["files"]` to verified local paths,
    `kwargs` are the builder arguments of the preset's `config.json`, and the function
    writes the converted file to `out_path`.
    """
    def register(fn):
        _CONVERTERS[name] = fn
        return fn
    return register


def has_converted(files):
    """Whether an index entry's `files` hold one made here from upstream files."""
    return any("converted_from" in spec for spec in files.values())


def _converter(name, label):
    if name not in _CONVERTERS:
        raise InvalidValue(
            f"Preset {label} is converted by {name!r}, which is not registered here: the "
            f"model code registers its converters (import kerasae.models, or load the preset "
            f"through kerasae.zoo.load_model / kerasae zoo pull). Known: "
            f"{sorted(_CONVERTERS) or 'none'}. Received: converter={name!r}")
    return _CONVERTERS[name]


def origin_problem(origin):
    """`None`, or what is wrong with a `converted_from` entry (its names become paths)."""
    if not isinstance(origin, dict):
        return f"converted_from is not an object ({origin!r})"[:200]
    checks = [("converter", str, None), ("repository", str, _REPOSITORY),
              ("commit", str, _COMMIT), ("license", str, None), ("files", dict, None)]
    for key, kind, pattern in checks:
        value = origin.get(key)
        if not isinstance(value, kind) or (pattern and not pattern.match(value)):
            return f"converted_from.{key} is {value!r}"[:200]
    if "url" in origin and urllib.parse.urlparse(str(origin["url"])).scheme not in (
            "http", "https", "file"):
        return f"converted_from.url is {origin['url']!r}, not an http(s):// or file:// URL"
    for role, spec in origin["files"].items():
        if not (isinstance(spec, dict) and _NAME.match(str(spec.get("name", "")))
                and spec.get("name") not in (".", "..")
                and _SHA256.match(str(spec.get("sha256", "")))
                and isinstance(spec.get("bytes"), int) and spec["bytes"] > 0):
            return (f"converted_from.files.{role} is not {{\"name\": a plain file name, "
                    f"\"sha256\": 64 hex digits, \"bytes\": a size}}: {spec!r}")[:300]
    return None


def _source_rel(origin, name):
    return "/".join([SOURCES_DIR, origin["repository"], origin["commit"], name])


def fetch_source(preset, origin, role, staging):
    """Local path of the verified upstream file `role`: its cached copy, else a download
    (mirrors, then the upstream URL) into the folder `staging`."""
    spec = origin["files"][role]
    rel = _source_rel(origin, spec["name"])
    cached = os.path.join(preset.cache, *rel.split("/"))
    tried = []
    if os.path.isfile(cached):
        if sha256_file(cached) == spec["sha256"] and os.path.getsize(cached) == spec["bytes"]:
            return cached
        tried.append(f"cache: {cached} (not the pinned file; ignored)")
    urls = [m.rstrip("/") + "/" + urllib.parse.quote(rel) for m in preset.mirrors]
    if origin.get("url"):
        urls.append(origin["url"].rstrip("/") + "/" + urllib.parse.quote(spec["name"]))
    for url in urls:
        try:
            dest = os.path.join(staging, spec["name"])
            _download.download(url, dest, spec, preset.progress,
                               f"{origin['repository']}/{spec['name']}")
            return dest
        except _download.DownloadFailure as e:
            tried.append(f"{url}: {e}")
    lines = "\n  ".join(tried) or "(no mirror and no upstream URL)"
    raise SourceUnavailable(
        f"{spec['name']} of {origin['repository']} at commit {origin['commit'][:12]} (the "
        f"upstream file preset {preset.label} is converted from) could not be fetched; "
        f"nothing was cached. Tried:\n  {lines}\nServe it from a mirror at <mirror>/{rel} "
        f"(set $KERASAE_ZOO_MIRRORS or pass --mirror URL), or check the network. Received: "
        f"name={preset.name!r}")


def _keep_sources(preset, origin, sources):
    """Moves the downloaded upstream files from staging to their places in the cache."""
    for role, path in sources.items():
        rel = _source_rel(origin, origin["files"][role]["name"])
        cached = os.path.join(preset.cache, *rel.split("/"))
        if os.path.abspath(path) != os.path.abspath(cached):
            os.makedirs(os.path.dirname(cached), exist_ok=True)
            os.replace(path, cached)


def convert_file(preset, filename, spec, dest):
    """Makes `dest`, the pinned file `filename` of `preset`, from its upstream files.

    Raises:
        SourceUnavailable: an upstream file could not be fetched verified.
        ConversionFailed: the converted file is not the pinned one (nothing kept).
    """
    origin = spec["converted_from"]
    problem = origin_problem(origin)
    if problem:
        raise InvalidValue(f"The index entry of preset {preset.label} is refused: {problem}. "
                           f"Received: file={filename!r}")
    convert = _converter(origin["converter"], preset.label)
    suffix = ".weights.h5" if filename.endswith(".weights.h5") else os.path.splitext(filename)[1]
    os.makedirs(preset.cache, exist_ok=True)
    # Downloads wait in a hidden folder: nothing reaches the cache unless all of it converts.
    with tempfile.TemporaryDirectory(dir=preset.cache, prefix=".converting-") as staging:
        sources = {role: fetch_source(preset, origin, role, staging)
                   for role in sorted(origin["files"])}
        with staged_file(dest, suffix=suffix) as tmp:
            _convert(preset, filename, spec, origin, convert, sources, tmp)
        _keep_sources(preset, origin, sources)
    return dest


def _convert(preset, filename, spec, origin, convert, sources, tmp):
    """Runs the converter into `tmp` and checks the result against the pin."""
    try:
        convert(sources, dict(preset.config["kwargs"]), tmp)
    except (KerasaeError, ValueError) as e:  # the readers refused the files
        raise ConversionFailed(
            f"The upstream files of preset {preset.label} ({origin['repository']} at "
            f"commit {origin['commit'][:12]}) match their pins but were refused when "
            f"read; nothing was cached: {e}") from None
    got = sha256_file(tmp)
    if got != spec["sha256"]:
        raise ConversionFailed(
            f"{filename} of preset {preset.label}, converted from {origin['repository']} "
            f"at commit {origin['commit'][:12]} by {origin['converter']!r}, has sha256 "
            f"{got[:12]}..., not the pinned {spec['sha256'][:12]}...; it was discarded "
            f"and nothing was cached. The upstream files matched their pins, so the "
            f"conversion itself differs (another Keras or h5py writes other bytes: "
            f"versions in the preset's metadata.json). Install those versions, or use a "
            f"mirror that serves the converted file. Received: name={preset.name!r}")
