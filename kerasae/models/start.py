"""Where a model's weights start: a zoo preset, a `.keras` file or a `.weights.h5` file.

`weights=` of every builder (and `kerasae train --weights`) names one of them,
by the single rule of `kerasae.presets.names`. A preset and a kerasae `.keras`
file carry the builder and the arguments their weights were trained with, so
those are merged with the caller's arguments: settings that hold no weights
(`SAFE_OVERRIDES`: name, seed, corruption, loss weights) may change, anything
else must match. A `.weights.h5` file carries no config: the model must be
built as it was, and weights that do not fit whole are an error.
"""

import dataclasses
import json
import os
import zipfile
import zlib

import keras

from kerasae import presets
from kerasae._util.errors import InvalidType, InvalidValue, KerasaeError, MissingFile
from kerasae._util.files import sha256_file
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


@dataclasses.dataclass
class StartPoint:
    """Weights to start from, and what they were trained as (`None`: not known)."""

    kind: str  # "preset", "keras" or "weights.h5"
    label: str  # "name@version" of a preset, else the path
    builder: str = None
    kwargs: dict = None
    path: str = None
    sha256: str = None
    preset: object = None

    @property
    def what(self):
        return f"Preset {self.label!r}" if self.kind == "preset" else f"The model in {self.label!r}"

    def record(self):
        """What `run.json` keeps of the start point."""
        if self.kind == "preset" and isinstance(self.preset, presets.HubPreset):
            return {"kind": "hub", "name": self.preset.label, "version": self.preset.version,
                    "commit": self.preset.commit, "sha256": self.sha256}
        if self.kind == "preset":
            return {"kind": "preset", "name": self.preset.name, "version": self.preset.version,
                    "sha256": self.sha256}
        return {"kind": self.kind, "path": self.path, "sha256": self.sha256}

    def load_into(self, model):
        """Loads the weights into `model`, whole or not at all."""
        if self.kind == "preset":
            presets.load_preset_weights(model, self.preset)
        elif self.kind == "weights.h5":
            presets.load_weights_strict(model, self.path, repr(self.label), FILE_FIX)
        else:
            source = load_keras_file(self.path)
            try:
                model.set_weights(source.get_weights())
            except ValueError as e:
                raise InvalidValue(
                    f"The weights in {self.label!r} do not fit this model ({e}). {FILE_FIX} "
                    f"Received: weights={self.label!r}"
                ) from None
        model.start_point = self.record()
        return model


def resolve_start(weights):
    """`None`, a preset name or a `.keras` / `.weights.h5` path -> `StartPoint` or `None`."""
    if weights is None:
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise InvalidType(
            "weights must be None, a zoo preset name or a .keras / .weights.h5 path. "
            f"Received: weights={type(weights).__name__}"
        )
    text = os.fspath(weights)
    if not presets.names_a_file(text):
        preset = presets.get_preset(text)
        spec = preset.entry.get("files", {}).get(presets.WEIGHTS_FILE, {})
        return StartPoint("preset", preset.label, preset.builder,
                          dict(preset.config["kwargs"]), sha256=spec.get("sha256"),
                          preset=preset)
    if not os.path.isfile(text):
        raise MissingFile(
            f"Weights file {text!r} does not exist. Pass None, a zoo preset name (see "
            f"`kerasae zoo list`) or the path of a .keras / .weights.h5 file. "
            f"Received: weights={text!r}"
        )
    path = os.path.abspath(text)
    if text.endswith(".weights.h5"):
        return StartPoint("weights.h5", text, path=path, sha256=sha256_file(path))
    if not text.endswith(".keras"):
        raise InvalidValue(
            "Weights must be a .weights.h5 or .keras file (no pickles). "
            f"Received: weights={text!r}"
        )
    builder, kwargs = keras_file_builder(text)
    return StartPoint("keras", text, builder, kwargs, path=path, sha256=sha256_file(path))


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
        return registry.get_builder(builder).__name__
    except ValueError:
        return None


def merge_config(start, builder_name, kwargs):
    """The caller's builder `kwargs` merged over what `start`'s weights were trained with.

    Only `SAFE_OVERRIDES` may differ; an argument the start point does not set
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
        load = (f"kerasae.zoo.load_model({name!r})" if start.kind == "preset"
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
        if key in merged and not _same(merged[key], value) and key not in SAFE_OVERRIDES:
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
