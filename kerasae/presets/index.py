"""A zoo root's `index.json`: every preset, its versions and the sha256 of each file."""

import json
import os
import re

from kerasae._util.errors import InvalidType, InvalidValue
from kerasae._util.files import sha256_file
from kerasae._util.names import did_you_mean
from kerasae.presets.converted import origin_problem
from kerasae.presets.places import INDEX_FILE, zoo_root

INDEX_FORMAT = 1
WEIGHTS_FILE = "model.weights.h5"
PRESET_FILES = ("config.json", WEIGHTS_FILE, "metadata.json", "README.md")


def empty_index():
    return {"format": INDEX_FORMAT, "presets": {}}


_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _plain(name):
    return isinstance(name, str) and bool(_PLAIN.match(name)) and name not in (".", "..")


def check_index(index, where):
    """Refuses an index whose paths could leave the zoo folder or the cache.

    A preset's `path` is plain relative folder names joined by `/` (no `..`, no
    absolute path, no backslash), and its file names are plain names (no separator).
    """
    presets = index.get("presets")
    if not isinstance(presets, dict):
        raise InvalidValue(f"{where} has no 'presets' object. Received: presets={presets!r}"[:300])
    for name, entry in presets.items():
        for version in [entry] + list(entry.get("previous_versions", []) if isinstance(
                entry, dict) else []):
            path = version.get("path") if isinstance(version, dict) else None
            files = version.get("files") if isinstance(version, dict) else None
            bad = None
            if not isinstance(path, str) or not all(_plain(p) for p in path.split("/")):
                bad = f"path {path!r}"
            elif not isinstance(files, dict) or not all(_plain(f) for f in files):
                bad = f"file names {sorted(files) if isinstance(files, dict) else files!r}"
            if bad:
                raise InvalidValue(
                    f"{where} is refused: preset {name!r} has the {bad}, which could reach "
                    f"outside the zoo folder or the cache. A path is plain folder names joined "
                    f"by '/', a file name a plain name. Received: preset={name!r}"
                )
    return index


def read_index(root=None):
    """The index of a zoo root as a dict (`{"format": 1, "presets": {...}}`), checked."""
    root = zoo_root(root)
    path = None if root is None else os.path.join(root, INDEX_FILE)
    if path is None or not os.path.isfile(path):
        return empty_index()
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError both
        raise InvalidValue(
            f"{path} is not JSON ({e}), so it is no zoo index: restore it from the zoo's "
            f"source (reinstall kerasae for the shipped zoo), or point root= ($KERASAE_ZOO_ROOT) "
            f"at another zoo. Received: root={root!r}"
        ) from None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        raise InvalidValue(
            f"{path} is not a kerasae zoo index of format {INDEX_FORMAT}; upgrade kerasae "
            f"or point root= at a matching zoo. Received: format="
            f"{index.get('format') if isinstance(index, dict) else type(index).__name__!r}"
        )
    return check_index(index, path)


def list_presets(root=None):
    """Sorted names of the presets in the index."""
    return sorted(read_index(root)["presets"])


def split_name(name):
    """`"name@3"` -> `("name", 3)`; `"name"` -> `("name", None)`."""
    if not isinstance(name, str):
        raise InvalidType(f"A preset name must be a string. Received: name={name!r}")
    base, _, version = name.partition("@")
    if version and not version.lstrip("v").isdigit():
        raise InvalidValue(
            f"A preset version is a number, e.g. 'conv_ae_fashion_mnist@1'. Received: name={name!r}"
        )
    return base, int(version.lstrip("v")) if version else None


def published_versions(entry):
    """Every published version number of an index entry, newest first."""
    return [entry["version"]] + [o["version"] for o in entry.get("previous_versions", [])]


def lookup(index, name):
    """`(base name, entry of the asked version)` of `name` / `name@version` in `index`."""
    base, version = split_name(name)
    presets = index["presets"]
    if base not in presets:
        available = ", ".join(sorted(presets)) or (
            "none (no zoo index was found: a pip-installed kerasae ships one; from a "
            "source tree, install it with pip install -e . or set $KERASAE_ZOO_ROOT)")
        raise InvalidValue(
            f"Unknown preset {base!r}. {did_you_mean(base, presets)}Available: {available}. "
            f"See `kerasae zoo list`. Received: name={name!r}"
        )
    entry = presets[base]
    if version is None or version == entry["version"]:
        return base, entry
    for old in entry.get("previous_versions", []):
        if old["version"] == version:
            return base, dict(entry, **old)
    raise InvalidValue(
        f"Preset {base!r} has no version {version}; published versions: "
        f"{', '.join(map(str, sorted(published_versions(entry))))}. Received: name={name!r}"
    )


def verify_index(root=None):
    """Checks every file of every version in a zoo root against the index.

    Returns:
        A list of problems (empty when all files are present and match).
    """
    root = zoo_root(root)
    problems = []
    for name, entry in sorted(read_index(root)["presets"].items()):
        for version in [entry] + list(entry.get("previous_versions", [])):
            for filename, spec in sorted(version["files"].items()):
                path = os.path.join(root, *version["path"].split("/"), filename)
                if "converted_from" in spec:  # made on the user's machine, not shipped
                    problem = origin_problem(spec["converted_from"])
                    if problem:
                        problems.append(f"{name}@{version['version']}: {filename}: {problem}")
                    if not os.path.isfile(path):
                        continue
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
