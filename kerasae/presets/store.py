"""Presets resolved against an index, their files fetched on demand: cache, shipped copy, mirrors.

A preset is a folder `<name>/v<version>/` under a zoo root, holding
`config.json` (builder name + keyword arguments, JSON only), `model.weights.h5`,
`metadata.json` (versions, dataset, training recipe, measured metrics) and
`README.md` (the model card). A file is used only when its sha256 matches the
index; published folders never change, so `name@version` still loads an older
one. A file pinned with `converted_from` (weights converted from a third party's
checkpoint) is not shipped: when no cache or mirror has it, it is made from its pinned
upstream files (`kerasae.presets.converted`).
"""

import dataclasses
import json
import os
import urllib.parse

from kerasae._util.errors import InvalidValue, KerasaeError
from kerasae._util.files import atomic_write, sha256_file
from kerasae.presets import converted as _converted
from kerasae.presets import download as _download
from kerasae.presets.index import lookup, read_index
from kerasae.presets.places import MIRRORS_ENV, mirror_list, resolve_cache_dir, zoo_root


class PresetNotAvailableError(KerasaeError, FileNotFoundError):
    """A preset file is in no cache, no shipped copy, and no mirror served it."""


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

    def relpath(self, filename):
        """`filename`'s path below a zoo root or the cache."""
        return os.path.join(*self.path.split("/"), filename)

    def file(self, filename, use_shipped=True):
        """Local path of a verified copy of `filename` (cache, shipped copy, mirrors)."""
        return resolve_file(self, filename, use_shipped=use_shipped)

    @property
    def config(self):
        """`config.json`: `{"builder": ..., "kwargs": {...}}`, read once and checked."""
        if "_config" not in self.__dict__:
            path, config = self._json("config.json")
            if config.get("builder") != self.builder or not isinstance(config.get("kwargs"), dict):
                raise _published_broken(
                    self, path, f"it does not name builder {self.builder!r} (as the index "
                    f"does) with a 'kwargs' object", f"config={config!r}"[:200])
            self.__dict__["_config"] = config
        return self.__dict__["_config"]

    def metadata(self):
        """`metadata.json`, read once; the fields kerasae reads are checked (`METADATA_FIELDS`)."""
        if "_metadata" not in self.__dict__:
            path, meta = self._json("metadata.json")
            problem = metadata_problem(meta)
            if problem:
                raise _published_broken(self, path, *problem)
            self.__dict__["_metadata"] = meta
        return self.__dict__["_metadata"]

    def _json(self, filename):
        """`(path, content)` of a verified JSON file of the preset; content not an object
        is refused."""
        path = self.file(filename)
        try:
            with open(path, encoding="utf-8") as f:
                value = json.load(f)
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError both
            raise _published_broken(self, path, f"it is not JSON ({e})",
                                    f"name={self.label!r}") from None
        if not isinstance(value, dict):
            raise _published_broken(self, path, f"it holds {_json_type(value)}, not an object",
                                    f"{filename}={value!r}"[:200])
        return path, value


# The fields of metadata.json that kerasae reads (the CLI, the Hub card, evaluation, int8
# calibration), checked in one place so that no reader meets a wrong type:
# (path, expected type, required). Other fields are the card's, written and read by
# publish only.
METADATA_FIELDS = (
    ("dataset", dict, True),
    ("dataset.name", str, True),
    ("dataset.train_split", str, False),
    ("dataset.eval_split", str, False),
    ("evaluation", dict, True),
    ("evaluation.metrics", dict, True),
    ("evaluation.settings", dict, False),
    ("evaluation.split", str, False),
    ("recipe", dict, True),
    ("recipe.command", str, True),
    ("recipe.export_tolerance", float, False),
    ("license", str, False),
    ("reference_metrics", dict, False),
)
_JSON_TYPES = {dict: "an object", str: "a string", float: "a number", list: "a list", bool: "a boolean",
               type(None): "null"}


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_type(value):
    return "a number" if _is_number(value) else _JSON_TYPES.get(type(value), type(value).__name__)


def metadata_problem(meta):
    """`None`, or `(what is wrong, "field=value")` of a preset's metadata (see
    `METADATA_FIELDS`); metric values and evaluation settings must be numbers."""
    for path, kind, required in METADATA_FIELDS:
        parent, _, key = path.rpartition(".")
        holder = meta if not parent else meta[parent]
        if key not in holder:
            if required:
                return f"it has no '{path}'", f"keys={sorted(holder)}"
            continue
        if not isinstance(holder[key], kind):
            return (f"'{path}' is {_json_type(holder[key])}, not {_JSON_TYPES[kind]}",
                    f"{path}={holder[key]!r}"[:200])
    for path in ("evaluation.metrics", "evaluation.settings"):
        group, _, key = path.partition(".")
        for name, value in (meta[group].get(key) or {}).items():
            if not _is_number(value):
                return (f"'{path}.{name}' is {_json_type(value)}, not a number",
                        f"{name}={value!r}"[:200])
    return reference_metrics_problem(meta.get("reference_metrics"))


def reference_metrics_problem(references):
    """`None`, or `(what is wrong, "metric=value")` of `reference_metrics`: `{metric:
    {"value": number, "source": text}}`, or a list of such per metric."""
    if references is not None and not isinstance(references, dict):
        return (f"'reference_metrics' is {_json_type(references)}, not an object",
                f"reference_metrics={references!r}"[:200])
    for name, refs in (references or {}).items():
        refs = refs if isinstance(refs, list) else [refs]
        if not all(isinstance(r, dict) and _is_number(r.get("value")) and
                   isinstance(r.get("source", ""), str) for r in refs):
            return (f"'reference_metrics.{name}' is not {{\"value\": a number, \"source\": "
                    f"text}} (or a list of such)", f"{name}={refs!r}"[:200])
    return None


def _published_broken(preset, path, what, received):
    """The error for a preset file that matches its pin (so it is as published) but is unusable."""
    return InvalidValue(
        f"{os.path.basename(path)} of preset {preset.label} ({path}) is refused: {what}. It "
        f"matches its pinned sha256, so it was published so: republish the preset as a new "
        f"version with kerasae.zoo.publish (or fix the file and pin its new sha256), and "
        f"meanwhile use another version. Received: {received}"
    )


def _resolve(name, root, cache_dir, mirrors, progress):
    resolved_root = zoo_root(root)
    base, entry = lookup(read_index(resolved_root), name)
    return Preset(base, int(entry["version"]), entry, resolved_root,
                  resolve_cache_dir(cache_dir), mirror_list(mirrors), progress)


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
    preset = _resolve(name, root, cache_dir, mirrors, progress)
    preset.config  # noqa: B018 - fetch and verify now, so errors surface early
    return preset


def resolve_file(preset, filename, use_shipped=True):
    """Local path of a verified copy of one file of `preset`; see `Preset.file`."""
    spec = preset.entry["files"].get(filename)
    if spec is None:
        raise InvalidValue(
            f"Preset {preset.label} has no file {filename!r}; it has "
            f"{', '.join(sorted(preset.entry['files']))}. Received: filename={filename!r}"
        )
    rel = preset.relpath(filename)
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
            _download.download(url, cached, spec, preset.progress, f"{preset.label}/{filename}")
            return cached
        except _download.DownloadFailure as e:
            tried.append(f"{url}: {e}")
    if "converted_from" in spec:  # made here from its pinned upstream files
        try:
            return _converted.convert_file(preset, filename, spec, cached)
        except _converted.SourceUnavailable as e:
            before = "".join(f"\n  {t}" for t in tried)  # e.g. a damaged cached copy
            raise PresetNotAvailableError(
                f"{e}" + (f"\nBefore that, {filename} itself was tried:{before}" if before
                          else "")) from None
    raise _not_available(preset, filename, tried)


def _not_available(preset, filename, tried):
    lines = "\n  ".join(tried)
    if not preset.mirrors:
        how = (f"No mirror is configured: set ${MIRRORS_ENV} or pass mirrors=[...] with the "
               "base URL of a copy of the zoo folder, or reinstall kerasae (the wheel ships "
               "the presets).")
        what = "is not available offline"
    else:
        how = "Check the mirror URLs and the network, or try again later."
        what = "could not be fetched from any mirror"
    return PresetNotAvailableError(
        f"File {filename!r} of preset {preset.label} {what}. Tried:\n  {lines}\n{how} "
        f"Received: name={preset.name!r}"
    )


def pull(name, mirrors=None, cache_dir=None, *, root=None, progress=True):
    """Downloads every file of a preset into the cache (skipping verified ones).

    Unlike loading, `pull` does not use the shipped copy: it fills the cache
    from the mirrors, e.g. to prepare a machine or to fetch a preset that the
    installed package does not ship.

    Returns:
        The preset's folder in the cache.
    """
    preset = _resolve(name, root, cache_dir, mirrors, progress)
    shipped = preset.root and all(os.path.isfile(os.path.join(preset.root, preset.relpath(f)))
                                  for f in preset.entry["files"])
    if not preset.mirrors and shipped:
        raise PresetNotAvailableError(
            f"No mirror is configured, so {preset.label} cannot be pulled into the cache; it "
            f"needs no pull: the installed kerasae ships it ({preset.root}), and loading it "
            f"works offline. To fill the cache from a copy of the zoo, set "
            f"${MIRRORS_ENV} or pass --mirror URL. Received: name={name!r}"
        )
    files = preset.entry["files"]  # converted files first: a refusal leaves the cache as it was
    converts = _converted.has_converted(files)
    for filename in sorted(files, key=lambda f: ("converted_from" not in files[f], f)):
        try:
            preset.file(filename, use_shipped=False)
        except PresetNotAvailableError:
            # A preset converted here has its card, config and metadata shipped (verified).
            if not (converts and "converted_from" not in files[filename]
                    and _copy_shipped(preset, filename)):
                raise
    return os.path.join(preset.cache, *preset.path.split("/"))


def _copy_shipped(preset, filename):
    """Copies the verified shipped copy of `filename` into the cache; whether it did."""
    spec = preset.entry["files"][filename]
    shipped = os.path.join(preset.root or "", preset.relpath(filename))
    if not preset.root or not os.path.isfile(shipped) or sha256_file(shipped) != spec["sha256"]:
        return False
    with open(shipped, "rb") as f:
        atomic_write(os.path.join(preset.cache, preset.relpath(filename)), f.read())
    return True


def info(name, *, root=None, cache_dir=None, mirrors=None):
    """Index entry and metadata of a preset, with where each file is available."""
    preset = get_preset(name, root=root, cache_dir=cache_dir, mirrors=mirrors)
    files = {}
    for filename, spec in sorted(preset.entry["files"].items()):
        rel = preset.relpath(filename)
        places = [where for where, base in (("cache", preset.cache), ("shipped", preset.root))
                  if base and os.path.isfile(os.path.join(base, rel))]
        files[filename] = dict(spec, available=places)
    entry = {k: v for k, v in preset.entry.items() if k not in ("files", "previous_versions")}
    return {"name": preset.name, **entry, "files": files,
            "previous_versions": [o["version"] for o in preset.entry.get("previous_versions", [])],
            "metadata": preset.metadata(), "train_sh": _train_lines(preset, files)}


def _train_lines(preset, files):
    """The command lines of the preset's `train.sh` where a checked copy is here (the
    recipe as today's defaults need it; `metadata.json` keeps the command as it was run),
    else `None`."""
    spec = files.get("train.sh")
    for where, base in (("cache", preset.cache), ("shipped", preset.root)):
        path = os.path.join(base or "", preset.relpath("train.sh"))
        if spec and where in spec["available"] and sha256_file(path) == spec["sha256"]:
            with open(path, encoding="utf-8") as f:
                return [line.strip() for line in f if line.startswith("kerasae ")]
    return None
