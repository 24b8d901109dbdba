"""Strict weight loading: a preset's `model.weights.h5` fits the model whole or not at all.

Only HDF5 arrays are read (no pickles, no code). Keras only warns when part of
a weights file does not match a model (and keeps the fresh initial values
there); for a preset that is an error, not a partial load.
"""

import warnings

from kerasae._util.errors import InvalidValue
from kerasae.presets.index import WEIGHTS_FILE

_PARTIAL_LOAD_MARKERS = ("Skipping", "freshly-initialized", "could not be loaded")


PRESET_FIX = "Build it from the preset's own config with kerasae.zoo.load_model."


def load_weights_strict(model, path, label, fix=PRESET_FIX):
    """Loads the `.weights.h5` file `path` into `model`; a partial fit is an error.

    `fix` ends the error message: what to do when the weights do not fit.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except ValueError as e:
            raise InvalidValue(
                f"The weights of {label} do not fit this model ({e}). {fix} "
                f"Received: weights={path!r}"
            ) from None
    partial = [w for w in caught if any(s in str(w.message) for s in _PARTIAL_LOAD_MARKERS)]
    if partial:
        raise InvalidValue(
            f"The weights of {label} only partly fit this model: {partial[0].message} {fix} "
            f"Received: weights={path!r}"
        )
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def load_preset_weights(model, preset):
    """Loads the verified `model.weights.h5` of `preset` into `model` (same builder only)."""
    if getattr(model, "builder_name", None) != preset.builder:
        raise InvalidValue(
            f"Preset {preset.name!r} holds weights for builder {preset.builder!r}, but the "
            f"model comes from {getattr(model, 'builder_name', None)!r}. Use "
            f"kerasae.zoo.load_model({preset.name!r}). Received: model={model.name!r}"
        )
    load_weights_strict(model, preset.file(WEIGHTS_FILE), preset.label)
    return model
