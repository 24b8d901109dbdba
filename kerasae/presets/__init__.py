"""The read-only preset store: index, cache -> shipped copy -> mirrors, sha256, strict loading.

It never builds a model: it hands verified files to the model code that asks
(`kerasae.models`, beneath which it stands), so presets and models form no
circle. Modules: `places` (where presets live), `index` (`index.json`),
`download` (verified downloads), `store` (`Preset`: the zoo's cache -> shipped
copy -> mirrors), `hub` (`hf://` presets from the Hugging Face Hub, verified by
their manifest; `hub_http` talks to the endpoint, `hub_cache` lays out the
Hugging Face cache), `lookup` (`get_preset`, `pull`, `info` for either), `weights`
(strict loading), `names` (file or preset?), `converted` (a file made here from pinned
upstream files by a converter the model code registers), `torch_state` (PyTorch state
dicts as numpy, no pickled code run).
"""

from kerasae.presets.index import (
                                   INDEX_FORMAT,
                                   PRESET_FILES,
                                   WEIGHTS_FILE,
                                   list_presets,
                                   lookup,
                                   published_versions,
                                   read_index,
                                   split_name,
                                   verify_index,
)
from kerasae.presets.names import names_a_file
from kerasae.presets.places import (
                                   CACHE_ENV,
                                   DEFAULT_MIRRORS,
                                   INDEX_FILE,
                                   MIRRORS_ENV,
                                   ROOT_ENV,
                                   checkout_zoo,
                                   mirror_list,
                                   resolve_cache_dir,
                                   shipped_root,
                                   zoo_root,
)
from kerasae.presets.hub import HubPreset, is_hub_name
from kerasae.presets.lookup import get_preset, info, pull
from kerasae.presets.store import Preset, PresetNotAvailableError
from kerasae.presets.weights import load_preset_weights, load_weights_strict

__all__ = ["CACHE_ENV", "DEFAULT_MIRRORS", "INDEX_FILE", "INDEX_FORMAT", "MIRRORS_ENV",
           "PRESET_FILES", "HubPreset", "Preset", "PresetNotAvailableError", "ROOT_ENV", "WEIGHTS_FILE",
           "checkout_zoo", "get_preset", "info", "is_hub_name", "list_presets", "load_preset_weights",
           "load_weights_strict", "lookup", "mirror_list", "names_a_file", "published_versions",
           "pull", "read_index", "resolve_cache_dir", "shipped_root", "split_name",
           "verify_index", "zoo_root"]
