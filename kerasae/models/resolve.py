"""What a model argument names, loaded: a model object, a `.keras` file or a zoo preset.

One rule for every command that takes a model (export, the uses, `.kae`
decoding), the one of `kerasae.presets.names`: a name ending in `.keras` or
holding a path separator, or naming an existing file, is a file; any other bare
name is a preset.
"""

import dataclasses
import hashlib
import os
import zipfile

import keras
import numpy as np

from kerasae import presets
from kerasae._util.errors import InvalidType, InvalidValue, MissingFile
from kerasae._util.files import sha256_file
from kerasae.models import registry
from kerasae.models.base import Autoencoder
from kerasae.models.builder import merge_preset_config


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


def load_keras_file(text):
    """Loads a kerasae autoencoder from a `.keras` file (safe_mode), with clear errors."""
    if not os.path.isfile(text):
        hint = (f" It is a directory: a training run writes "
                f"{os.path.join(text, 'model.keras')!r}." if os.path.isdir(text) else "")
        raise MissingFile(
            f"No model file at {text!r} (the path does not exist as a file).{hint} Pass a "
            f".keras file saved with model.save(...) or a zoo preset name. "
            f"Received: model={text!r}"
        )
    if not text.endswith(".keras"):
        raise InvalidValue(
            "Models load from .keras files only (a safe format, no pickles; SavedModel "
            "and .h5 files are not re-loaded). Save with model.save('model.keras'). "
            f"Received: model={text!r}"
        )
    if not zipfile.is_zipfile(text):
        raise InvalidValue(
            f"{text!r} is not a .keras archive (a zip file): it is damaged, truncated or "
            f"another kind of file. Save the model again with model.save(...). "
            f"Received: model={text!r}"
        )
    try:
        loaded = keras.saving.load_model(text, safe_mode=True)
    except Exception as e:  # keras raises several types for a bad archive
        raise InvalidValue(
            f"Could not load {text!r} as a Keras model ({type(e).__name__}: {e}). "
            f"Received: model={text!r}"
        ) from e
    if not isinstance(loaded, Autoencoder):
        raise InvalidType(
            f"{text!r} holds a {type(loaded).__name__}, not a kerasae Autoencoder. "
            f"Received: model={text!r}"
        )
    return loaded


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
        return ModelRef(loaded, os.path.splitext(os.path.basename(text))[0], "file",
                        path=os.path.abspath(text), file_sha256=sha256_file(text),
                        weights_sha256=weights_sha256(loaded))
    preset = presets.get_preset(text)
    loaded = load_model(preset.label)
    weights = preset.entry.get("files", {}).get(presets.WEIGHTS_FILE, {}).get("sha256")
    # name@version, so a .kae header names exactly the weights that decode it.
    return ModelRef(loaded, preset.label, "preset", file_sha256=weights,
                    weights_sha256=weights_sha256(loaded), preset=text)
