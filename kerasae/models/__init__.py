"""Autoencoder families and the model-level services every later stage uses.

One module per family (`stacked`, `conv`, `variational`), each registering its
builders; `registry` (a leaf) maps names to builders, `builder` wraps them
(`weights=`, recorded configs), `start` resolves what `weights=` names (a
preset, a `.keras` or `.weights.h5` file) and merges its config, `base` holds
`Autoencoder` and `parts` what builders share, `resolve` loads a model argument
(object, `.keras` file, preset) and `predict` runs batched forward passes.
Importing this package registers every builder.
"""

from kerasae._util.backend import check_backend

check_backend()  # one clear message naming the install command, before Keras loads

from kerasae.models.base import Autoencoder  # noqa: E402
from kerasae.models.builder import register_builder  # noqa: E402
from kerasae.models.conv import ConvAE, DenoisingConvAE  # noqa: E402
from kerasae.models.registry import build, get_builder, list_builders  # noqa: E402
from kerasae.models.resolve import load_model, resolve_model  # noqa: E402
from kerasae.models.start import SAFE_OVERRIDES, load_keras_file  # noqa: E402
from kerasae.models.stacked import (  # noqa: E402
    DenoisingStackedAE,
    SparseStackedAE,
    StackedAE,
    pretrain_layerwise,
)
from kerasae.models.variational import ConvVAE, DenseVAE  # noqa: E402

__all__ = [
    "Autoencoder", "ConvAE", "ConvVAE", "DenoisingConvAE", "DenoisingStackedAE",
    "DenseVAE", "SAFE_OVERRIDES", "SparseStackedAE", "StackedAE", "build", "get_builder",
    "list_builders", "load_keras_file", "load_model", "pretrain_layerwise", "register_builder",
    "resolve_model",
]
