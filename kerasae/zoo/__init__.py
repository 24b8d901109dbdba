"""The preset zoo: list, inspect, pull and load pretrained presets; publish and measure new ones.

The store itself (index, cache, shipped copy, mirrors, sha256, strict loading)
is `kerasae.presets`, beneath the models; this package sits above models, data
and metrics: `publishing` writes a new preset version, `card` its model card,
`evaluate` measures the card's numbers (`kerasae zoo evaluate`), `hub` writes a
preset as a Hugging Face Hub repo folder (`kerasae zoo hub`).

Example:

```python
import kerasae
model = kerasae.ConvAE(weights="conv_ae_fashion_mnist")
model = kerasae.zoo.load_model("conv_ae_fashion_mnist")  # any builder
```
"""

from kerasae.models.builder import SAFE_OVERRIDES, merge_preset_config
from kerasae.models.resolve import load_model
from kerasae.presets import (
                             CACHE_ENV,
                             DEFAULT_MIRRORS,
                             INDEX_FILE,
                             INDEX_FORMAT,
                             MIRRORS_ENV,
                             PRESET_FILES,
                             ROOT_ENV,
                             WEIGHTS_FILE,
                             Preset,
                             PresetNotAvailableError,
                             get_preset,
                             info,
                             list_presets,
                             load_preset_weights,
                             mirror_list,
                             pull,
                             read_index,
                             resolve_cache_dir,
                             shipped_root,
                             verify_index,
                             zoo_root,
)
from kerasae.zoo.card import card_metrics
from kerasae.zoo.evaluate import evaluate_model, evaluate_preset
from kerasae.zoo.hub import hub_folder
from kerasae.zoo.publishing import MAX_WEIGHTS_BYTES, publish

__all__ = ["CACHE_ENV", "DEFAULT_MIRRORS", "INDEX_FILE", "INDEX_FORMAT", "MAX_WEIGHTS_BYTES",
           "MIRRORS_ENV", "PRESET_FILES", "Preset", "PresetNotAvailableError", "ROOT_ENV",
           "SAFE_OVERRIDES", "WEIGHTS_FILE", "card_metrics", "evaluate_model",
           "evaluate_preset", "get_preset", "hub_folder", "info", "list_presets", "load_model",
           "load_preset_weights", "merge_preset_config", "mirror_list", "publish", "pull",
           "read_index", "resolve_cache_dir", "shipped_root", "verify_index", "zoo_root"]
