"""What a preset name names: `name[@version]` in a zoo index, or `hf://org/name[@revision]`
on the Hugging Face Hub. Every later stage asks here (through `kerasae.presets`)."""

import os

from kerasae.presets import hub, store


def get_preset(name, *, root=None, cache_dir=None, mirrors=None, progress=True):
    """A `Preset` (zoo) or `HubPreset` (`hf://...`); its `config.json` fetched and verified.

    Args:
        name: `"conv_ae_fashion_mnist"`, `"conv_ae_fashion_mnist@1"`, or
            `"hf://org/name"` / `"hf://org/name@revision"`.
        root, cache_dir, mirrors, progress: see `kerasae.presets.store.get_preset`
            (zoo presets only; the Hub has its own cache and endpoint settings).
    """
    if hub.is_hub_name(name):
        preset = hub.get_hub_preset(name, progress=progress)
        preset.config  # noqa: B018 - fetch and verify now, so errors surface early
        return preset
    return store.get_preset(name, root=root, cache_dir=cache_dir, mirrors=mirrors,
                            progress=progress)


def pull(name, mirrors=None, cache_dir=None, *, root=None, progress=True):
    """Downloads every file of a preset, verified: into kerasae's cache from a mirror (zoo),
    or into the Hugging Face cache (`hf://`). Returns the folder that holds them."""
    if not hub.is_hub_name(name):
        return store.pull(name, mirrors, cache_dir, root=root, progress=progress)
    preset = hub.get_hub_preset(name, progress=progress)
    paths = [preset.file(f) for f in sorted(preset.entry["files"])]
    return os.path.dirname(paths[0])


def info(name, *, root=None, cache_dir=None, mirrors=None):
    """Index entry (or hub manifest) and metadata of a preset, with where each file is."""
    if not hub.is_hub_name(name):
        return store.info(name, root=root, cache_dir=cache_dir, mirrors=mirrors)
    preset = get_preset(name)
    files = {f: dict(spec, available=["hub cache"]) for f, spec in
             sorted(preset.entry["files"].items())
             if _cached(preset, f)}
    files.update({f: dict(spec, available=[]) for f, spec in preset.entry["files"].items()
                  if f not in files})
    entry = {k: v for k, v in preset.entry.items() if k not in ("files", "path")}
    return {**entry, "name": preset.label, "files": dict(sorted(files.items())),
            "previous_versions": [], "hub": preset.record(), "metadata": preset.metadata()}


def _cached(preset, filename):
    from huggingface_hub import try_to_load_from_cache  # lazy: an optional dependency

    path = try_to_load_from_cache(preset.repo_id, filename, revision=preset.commit,
                                  cache_dir=hub.hub_settings()["cache_dir"])
    return isinstance(path, str) and os.path.isfile(path)
