"""What weights were trained as: a kerasae `.keras` file read safely, and a recorded
config merged with the caller's arguments.

What a model or weights argument names is decided in `kerasae.models.resolve`. A
preset and a kerasae `.keras` file carry the builder and the arguments their
weights were trained with, so `weights=` merges those with the caller's
arguments: settings that hold no weights (`SAFE_OVERRIDES`: name, seed,
corruption, loss weights) may change, anything else must match. A `.weights.h5`
file carries no config: the model must be built as it was, and weights that do
not fit whole are an error.
"""

import json
import os
import zipfile
import zlib

import keras

from kerasae import presets
from kerasae._util.errors import InvalidType, InvalidValue, KerasaeError, MissingFile
from kerasae.data.image_options import shape_fits
from kerasae.models import registry
from kerasae.models.base import Autoencoder
from kerasae.presets.weights import load_archive_weights

# Builder arguments that change training, noise or naming only, never the weights.
SAFE_OVERRIDES = frozenset(
    {"name", "seed", "beta", "reconstruction", "corruption", "corruption_amount",
     "sparsity", "sparsity_weight", "sparsity_target"}
)
FILE_FIX = "Build the model with the arguments its weights were trained with."
ARCHIVE_FIX = ("The archive's weights do not match its own config.json, so it is damaged. "
               "Save the model again with model.save(...).")
CONFIG_MEMBER = "config.json"
# What model.save writes into a .keras zip (Keras's own member names).
KERAS_MEMBERS = ("metadata.json", CONFIG_MEMBER, presets.WEIGHTS_FILE)
MAX_CONFIG_BYTES = 4 << 20


def _check_archive(text):
    if not zipfile.is_zipfile(text):
        raise InvalidValue(
            f"{text!r} is not a .keras archive (a zip file): it is damaged, truncated or "
            f"another kind of file. Save the model again with model.save(...). "
            f"Received: model={text!r}"
        )


def _read_config(archive, text):
    """The archive's `config.json`, parsed; its declared size is bounded before reading."""
    size = archive.getinfo(CONFIG_MEMBER).file_size
    if size > MAX_CONFIG_BYTES:
        raise InvalidValue(
            f"The {CONFIG_MEMBER} inside {text!r} declares {size:,} bytes; a model's config "
            f"takes a few kilobytes (at most {MAX_CONFIG_BYTES:,} are read). Save the model "
            f"again with model.save(...). Received: model={text!r}"
        )
    return json.loads(archive.read(CONFIG_MEMBER))


def _unreadable(text, e):
    return InvalidValue(
        f"{text!r} is not a readable .keras archive ({type(e).__name__}: {e}). Save the "
        f"model again with model.save(...). Received: model={text!r}"
    )


# What zipfile and json raise for a damaged archive (RecursionError: JSON nested too deep;
# RuntimeError: an encrypted member).
_ARCHIVE_ERRORS = (KeyError, ValueError, RecursionError, RuntimeError, EOFError,
                   NotImplementedError, zipfile.BadZipFile, zlib.error, OSError)


def keras_file_builder(text):
    """`(builder name, builder arguments)` recorded in a kerasae `.keras` file, read from
    its `config.json` alone (nothing is built); `(None, None)` if it records none."""
    _check_archive(text)
    try:
        with zipfile.ZipFile(text) as archive:
            config = _read_config(archive, text)
    except KerasaeError:
        raise
    except _ARCHIVE_ERRORS as e:
        raise _unreadable(text, e) from None
    inner = config.get("config") if isinstance(config, dict) else None
    if not isinstance(inner, dict) or not isinstance(inner.get("builder_config"), dict):
        return None, None
    return inner.get("builder_name"), dict(inner["builder_config"])


def load_keras_file(text):
    """Loads a kerasae autoencoder from a `.keras` file (safe_mode), with clear errors.

    The model is built from the archive's `config.json`; its `model.weights.h5`
    is checked against that model (declared size, then every dataset's path,
    shape and dtype, then finite values) before Keras reads a checked copy.
    """
    check_keras_path(text)
    # One open file for every check and the load: what was checked is what loads.
    try:
        with open(text, "rb") as raw, zipfile.ZipFile(raw) as archive:
            _check_members(archive, text)
            loaded = _model_from_config(_read_config(archive, text), text)
            load_archive_weights(loaded, archive, repr(text), ARCHIVE_FIX,
                                 f"model={text!r}")
    except KerasaeError:
        raise
    except _ARCHIVE_ERRORS as e:
        raise _unreadable(text, e) from None
    return loaded


def check_keras_path(text):
    """Refuses, before anything is read, a model path that is not an existing `.keras`
    archive (a zip file)."""
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
    _check_archive(text)


def _check_members(archive, text):
    """A kerasae `.keras` file holds what `model.save` writes and nothing else (no assets:
    Keras would extract them to disk)."""
    names = archive.namelist()
    if (len(names) != len(set(names)) or not set(names) <= set(KERAS_MEMBERS)
            or not {CONFIG_MEMBER, presets.WEIGHTS_FILE} <= set(names)):
        shown = ", ".join(repr(n) for n in names[:6]) + (", ..." if len(names) > 6 else "")
        raise InvalidValue(
            f"{text!r} is not a .keras file of a kerasae model: it holds {shown}, where "
            f"model.save writes {', '.join(KERAS_MEMBERS)}, once each. Save the model again "
            f"with model.save(...). Received: model={text!r}"
        )


def _model_from_config(config, text):
    """The model `config` describes, built (and compiled) as `keras.saving.load_model`
    builds it under safe_mode, without weights yet. (Keras also wraps this in its
    private ObjectSharingScope; a kerasae config shares only dtype policies.)"""
    try:
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as e:  # keras raises several types for a bad config
        raise InvalidValue(
            f"Could not load {text!r} as a Keras model ({type(e).__name__}: {e}). "
            f"Received: model={text!r}"
        ) from e
    if not isinstance(model, Autoencoder):
        raise InvalidType(
            f"{text!r} holds a {type(model).__name__}, not a kerasae Autoencoder. "
            f"Received: model={text!r}"
        )
    return model


def _same(a, b):
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def _function_name(builder):
    try:
        return registry.model_builder(builder).__name__
    except ValueError:
        return None


def _fixes_open_size(key, trained, value):
    """Whether `value` only fixes the open (`None`) axes of a trained `input_shape`: the
    weights of a model of any size fit every size (e.g. crops of 64 to fine-tune TAEF2)."""
    return (key == "input_shape" and isinstance(trained, (list, tuple))
            and isinstance(value, (list, tuple)) and None in trained
            and shape_fits(tuple(trained), tuple(value)))


def merge_config(start, builder_name, kwargs):
    """The caller's builder `kwargs` merged over what `start`'s weights were trained with.

    `start` is a `kerasae.models.resolve.ModelRef` (its `builder`, `kwargs`,
    `preset`, `label` and `what`).

    Only `SAFE_OVERRIDES` may differ (and an `input_shape` that fixes the open axes of
    a model of any size); an argument the start point does not set
    may not be added (it could change the architecture). Without a recorded
    config (a `.weights.h5` file) the caller's arguments are used as given.

    Raises:
        InvalidValue: the weights belong to another builder, or an override
            would change what the weights fit.
    """
    kwargs = dict(kwargs or {})
    if start.builder is not None and start.builder != builder_name:
        function = _function_name(start.builder)
        name = start.preset.name if start.preset is not None else start.label
        call = (f"kerasae.{function}(weights={name!r})" if function
                else f"the {start.builder!r} builder")
        load = (f"kerasae.zoo.load_model({name!r})" if start.preset is not None
                else f"kerasae.models.load_keras_file({name!r})")
        raise InvalidValue(
            f"{start.what} holds weights for builder {start.builder!r}, not "
            f"{builder_name!r}. Call {call} or {load}. Received: weights={name!r}"
        )
    if start.kwargs is None:
        return kwargs
    merged = dict(start.kwargs)
    safe = ", ".join(sorted(SAFE_OVERRIDES))
    for key, value in kwargs.items():
        if key in merged and not _same(merged[key], value) and key not in SAFE_OVERRIDES \
                and not _fixes_open_size(key, merged[key], value):
            raise InvalidValue(
                f"{start.what} was trained with {key}={merged[key]!r}; its weights do not fit "
                f"{key}={value!r}, so the override is refused. Drop the argument to use "
                f"those weights, or train without them. Arguments you may change: {safe}. "
                f"Received: {key}={value!r}"
            )
        if key not in merged and key not in SAFE_OVERRIDES:
            raise InvalidValue(
                f"{start.what} does not set {key!r}, so overriding it could change the "
                f"architecture its weights were trained for. Drop the argument. "
                f"Received: {key}={value!r}"
            )
        merged[key] = value
    return merged


def start_recipe(model):
    """The `recipe` of the zoo preset `model` is or starts from (its `start_point`: kept
    by fine-tuning and by `ModelRef.at_size`), or `{}`: what the preset's publisher
    measured for it (`fine_tune_learning_rate`, `export_tolerance`)."""
    start = getattr(model, "start_point", None) or {}
    if start.get("kind") != "preset":
        return {}
    try:
        meta = presets.get_preset(f"{start['name']}@{start['version']}").metadata()
    except KerasaeError:  # not in the default zoo (loaded from another root)
        return {}
    return dict(meta["recipe"])
