"""Autoencoder families and the model-level services every later stage uses.

One module per family in `families` (`stacked`, `conv`, `variational`, found
and imported there), each registering its builders with their contracts;
`registry` (a leaf) maps names to builders and contracts, `builder` wraps them
(`weights=`, recorded configs), `resolve` decides once what a model or weights
argument names (object, `.keras` / `.weights.h5` file, preset) and carries it as a
`ModelRef`, `start` reads `.keras` files and merges a recorded config, `base` holds
`Autoencoder` and `parts` what builders share, and `predict` runs batched forward
passes.
Importing this package registers every builder.
"""

from kerasae._util.backend import check_backend

check_backend()  # one clear message naming the install command, before Keras loads

from kerasae.models.base import Autoencoder  # noqa: E402
from kerasae.models.builder import register_builder  # noqa: E402
from kerasae.models import families  # noqa: E402, F401 - registers every builder
from kerasae.models import convert  # noqa: E402, F401 - registers the zoo's "taesd" converter
from kerasae.models.families.conv import ConvAE, DenoisingConvAE  # noqa: E402
from kerasae.models import colorizer  # noqa: E402, F401 - registers the "colorizer" builder
from kerasae.models.resolve import load_model, resolve_model  # noqa: E402
from kerasae.models.start import SAFE_OVERRIDES, load_keras_file  # noqa: E402
from kerasae.models.families.stacked import (  # noqa: E402
    DenoisingStackedAE,
    SparseStackedAE,
    StackedAE,
    pretrain_layerwise,
)
from kerasae.models.families.variational import ConvVAE, DenseVAE  # noqa: E402
from kerasae.models.registry import (  # noqa: E402
    build,
    builder_of,
    get_builder,
    get_contract,
    list_builders,
)

__all__ = [
    "Autoencoder", "ConvAE", "ConvVAE", "DenoisingConvAE", "DenoisingStackedAE",
    "DenseVAE", "SAFE_OVERRIDES", "SparseStackedAE", "StackedAE", "build", "get_builder",
    "get_contract", "list_builders", "load_keras_file", "load_model", "pretrain_layerwise",
    "register_builder", "resolve_model",
]


def __getattr__(name):
    """A builder by its function name (`kerasae.models.ConvAE`), also for families added
    after this list was written."""
    builder = builder_of(name)
    if builder is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return builder
