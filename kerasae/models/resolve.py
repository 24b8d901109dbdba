"""What a model argument names, loaded: a model object, a `.keras` file or a zoo preset.

One rule for every command that takes a model (export, the uses, `.kae`
decoding), the one of `kerasae.presets.names`: a name ending in `.keras` or
holding a path separator, or naming an existing file, is a file; any other bare
name is a preset.
"""

import dataclasses
import hashlib
import os

import numpy as np

from kerasae import presets
from kerasae._util.errors import InvalidType
from kerasae._util.files import sha256_file
from kerasae.models import registry
from kerasae.models.base import Autoencoder
from kerasae.models.builder import merge_preset_config
from kerasae.models.start import load_keras_file


def from_config(config, **overrides):
    """A fresh model from `{"builder": name, "kwargs": {...}}` (a preset's `config.json`)."""
    return registry.get_builder(config["builder"])(**dict(config["kwargs"], **overrides))


def fresh_copy(model):
    """A new, untrained model with the architecture of `model`."""
    if getattr(model, "builder_name", None):
        return from_config({"builder": model.builder_name,
                            "kwargs": dict(model.builder_config or {})})
    return type(model).from_config(model.get_config())


def load_model(name, *, root=None, cache_dir=None, mirrors=None, **overrides):
    """Builds a preset's model from its `config.json` and loads its verified weights.

    Args:
        name: preset name, optionally `name@version`.
        root, cache_dir, mirrors: see `kerasae.presets.get_preset`.
        **overrides: builder arguments to change; only `SAFE_OVERRIDES`
            (name, seed, loss weights) may differ from the preset.

    Returns:
        A `kerasae.models.Autoencoder`.

    Example:
        >>> model = kerasae.zoo.load_model("conv_ae_fashion_mnist")  # doctest: +SKIP
    """
    preset = presets.get_preset(name, root=root, cache_dir=cache_dir, mirrors=mirrors)
    kwargs = merge_preset_config(preset, preset.builder, overrides)
    model = registry.get_builder(preset.builder)(**kwargs)
    return presets.load_preset_weights(model, preset)


def weights_sha256(model):
    """A fingerprint of a model's weights: sha256 over each weight's dtype, shape and bytes."""
    h = hashlib.sha256()
    for w in model.get_weights():
        w = np.ascontiguousarray(w)
        h.update(f"{w.dtype.str}{w.shape};".encode())
        h.update(w.tobytes())
    return h.hexdigest()


@dataclasses.dataclass
class ModelRef:
    """A resolved model and where it came from (`source`: preset, file or memory)."""

    model: object
    name: str
    source: str
    path: str = None
    file_sha256: str = None
    weights_sha256: str = None
    preset: str = None

    def info(self):
        return {"name": self.name, "source": self.source, "path": self.path,
                "file_sha256": self.file_sha256, "weights_sha256": self.weights_sha256,
                "builder": getattr(self.model, "builder_name", None),
                "latent_dim": int(self.model.latent_dim),
                "code_shape": list(self.model.code_shape),
                "image_shape": list(self.model.image_shape),
                "variational": bool(self.model.variational)}


def _file_label(text):
    """`runs/digits/model.keras` -> `digits/model.keras`: enough to tell runs apart."""
    path = os.path.abspath(text)
    parent = os.path.basename(os.path.dirname(path))
    return f"{parent}/{os.path.basename(path)}" if parent else os.path.basename(path)


def resolve_model(model):
    """An `Autoencoder`, a `.keras` path or a zoo preset name -> `ModelRef`."""
    if isinstance(model, ModelRef):
        return model
    if isinstance(model, Autoencoder):
        return ModelRef(model, model.name, "memory", weights_sha256=weights_sha256(model))
    if not isinstance(model, (str, os.PathLike)):
        raise InvalidType(
            "model must be a kerasae Autoencoder, a .keras file or a zoo preset name. "
            f"Received: model={type(model).__name__}"
        )
    text = os.fspath(model)
    if presets.names_a_file(text):
        loaded = load_keras_file(text)
        return ModelRef(loaded, _file_label(text), "file",
                        path=os.path.abspath(text), file_sha256=sha256_file(text),
                        weights_sha256=weights_sha256(loaded))
    preset = presets.get_preset(text)
    loaded = load_model(preset.label)
    weights = preset.entry.get("files", {}).get(presets.WEIGHTS_FILE, {}).get("sha256")
    # name@version, so a .kae header names exactly the weights that decode it.
    return ModelRef(loaded, preset.label, "preset", file_sha256=weights,
                    weights_sha256=weights_sha256(loaded), preset=text)
