"""kerasae: autoencoders for Keras 3 on TensorFlow.

Builders (`ConvAE`, `ConvVAE`, ...), training under `tf.distribute`, datasets,
a pretrained zoo and exports to SavedModel / ONNX.

Names load on first use, so `import kerasae` (and `kerasae --help`) costs no
TensorFlow import; `kerasae.ConvAE` loads Keras. Importing Keras (before or
after kerasae) registers kerasae's Keras classes, so `keras.saving.load_model`
reads kerasae models.
"""

from kerasae._util import lazy as _lazy
from kerasae._util import quiet as _quiet
from kerasae._util.versions import __version__  # noqa: F401

# TensorFlow's native info / warning lines stay off stderr unless the user set
# TF_CPP_MIN_LOG_LEVEL (0 shows them all); see kerasae._util.quiet.
_quiet.quiet_tensorflow()

__getattr__, __dir__ = _lazy.exports(__name__, {
    # builders and the model API
    "Autoencoder": "kerasae.models:Autoencoder",
    "Colorizer": "kerasae.models.colorizer:Colorizer",
    "ConvAE": "kerasae.models:ConvAE",
    "ConvVAE": "kerasae.models:ConvVAE",
    "DenoisingConvAE": "kerasae.models:DenoisingConvAE",
    "DenoisingStackedAE": "kerasae.models:DenoisingStackedAE",
    "DenseVAE": "kerasae.models:DenseVAE",
    "SparseStackedAE": "kerasae.models:SparseStackedAE",
    "StackedAE": "kerasae.models:StackedAE",
    "build": "kerasae.models:build",
    "get_builder": "kerasae.models:get_builder",
    "list_builders": "kerasae.models:list_builders",
    "pretrain_layerwise": "kerasae.models:pretrain_layerwise",
    "register_builder": "kerasae.models:register_builder",
    "fit": "kerasae.training:fit",
    "KerasaeError": "kerasae._util.errors:KerasaeError",
    # the stages of the road
    "data": "kerasae.data",
    "export": "kerasae.export",
    "layers": "kerasae.layers",
    "losses": "kerasae.losses",
    "metrics": "kerasae.metrics",
    "models": "kerasae.models",
    "plots": "kerasae.plots",
    "presets": "kerasae.presets",
    "training": "kerasae.training",
    "uses": "kerasae.uses",
    "zoo": "kerasae.zoo",
}, fallback=(lambda name: name[:1].isupper(), "kerasae.models"))  # any family's builder

# Keras's loader finds kerasae's classes by their registered names: register them
# whenever Keras is (or gets) imported, so `keras.saving.load_model` works after
# `import kerasae` without making this import pull in TensorFlow.
_lazy.after_import("keras", "kerasae.models")

__all__ = [
    "Autoencoder", "Colorizer", "ConvAE", "ConvVAE", "DenoisingConvAE", "DenoisingStackedAE",
    "DenseVAE", "KerasaeError", "SparseStackedAE", "StackedAE", "build", "data", "fit",
    "get_builder", "layers", "list_builders", "losses", "pretrain_layerwise", "register_builder",
]
