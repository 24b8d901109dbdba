"""kerasae: autoencoders for Keras 3 on TensorFlow.

Builders (`ConvAE`, `ConvVAE`, ...), training under `tf.distribute`, datasets,
a pretrained zoo and exports to SavedModel / ONNX.
"""

__version__ = "0.1.0"

from kerasae._compat import check_backend as _check_backend

_check_backend()

from kerasae import data, layers, losses  # noqa: E402
from kerasae.models import (  # noqa: E402
    Autoencoder,
    ConvAE,
    ConvVAE,
    DenoisingConvAE,
    DenoisingStackedAE,
    DenseVAE,
    SparseStackedAE,
    StackedAE,
    build,
    get_builder,
    list_builders,
    pretrain_layerwise,
    register_builder,
)

# TensorFlow-only parts load on first use, so the builders import on any backend.
_LAZY = {"fit": ("kerasae.training", "fit"), "training": ("kerasae.training", None),
         "export": ("kerasae.export", None), "zoo": ("kerasae.zoo", None),
         "uses": ("kerasae.uses", None), "plots": ("kerasae.plots", None)}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'kerasae' has no attribute {name!r}")
    import importlib

    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attr is None else getattr(module, attr)


__all__ = [
    "Autoencoder", "ConvAE", "ConvVAE", "DenoisingConvAE", "DenoisingStackedAE",
    "DenseVAE", "SparseStackedAE", "StackedAE", "build", "data", "fit", "get_builder", "layers",
    "list_builders", "losses", "pretrain_layerwise", "register_builder",
]
