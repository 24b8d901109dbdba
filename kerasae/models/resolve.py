"""What a model or weights argument names, resolved once: a preset, a file or a model object.

The one place that decides "preset or file", by the rule of
`kerasae.presets.names`: a name ending in `.keras` or `.h5` or holding a path
separator, or naming an existing file, is a file; any other name is a zoo preset
(`name[@version]`) or, as `hf://org/name[@revision]`, a Hugging Face Hub preset.
Builders' `weights=` and `kerasae train --weights` ask `resolve_weights`; export
and its int8 calibration, the uses, `.kae` decoding and the zoo ask
`resolve_model` (`resolve_preset` where only a preset will do).

The answer, a `ModelRef`, is handed on rather than resolved again. It carries
the model (built or loaded on first use) or the weights to load into a caller's
model (`load_into`); what a record keeps of it (`record`: a run's start point,
`manifest_source`: an export's source, `info`: a use's report and a `.kae`
header), with each file's sha256 computed once; and what the weights were
trained on (`metadata`: a preset's `metadata.json`, or the `run.json` beside a
training run's `.keras` file; `input_shape`, `training_data`).
"""

import copy
import dataclasses
import functools
import hashlib
import json
import os

import numpy as np

from kerasae import presets
from kerasae._util.errors import InvalidType, InvalidValue, MissingFile
from kerasae._util.files import sha256_file
from kerasae.data.folders import has_split_folders
from kerasae.models import registry
from kerasae.models.base import Autoencoder
from kerasae.models.start import (FILE_FIX, check_keras_path, keras_file_builder,
                                  load_keras_file, merge_config)

# Data a run was given in Python, which no later process can read again.
IN_MEMORY_ROUTES = ("array", "dataframe", "tf.data")
# how run.json says a table or series was read (kerasae.data.get_source's arguments)
TABLE_OPTIONS = ("columns", "label", "time_column", "impute", "window", "stride")

# kind -> what a use's report and a .kae header call the source (their format since v1)
_SOURCES = {"preset": "preset", "hub": "preset", "keras": "file", "weights.h5": "file",
            "memory": "memory"}


def from_config(config, **overrides):
    """A fresh model from `{"builder": name, "kwargs": {...}}` (a preset's `config.json`)."""
    return registry.model_builder(config["builder"])(**dict(config["kwargs"], **overrides))


def fresh_copy(model):
    """A new, untrained model with the architecture of `model`."""
    if getattr(model, "builder_name", None):
        return from_config({"builder": model.builder_name,
                            "kwargs": dict(model.builder_config or {})})
    return type(model).from_config(model.get_config())


def weights_sha256(model):
    """A fingerprint of a model's weights: sha256 over each weight's dtype, shape and bytes."""
    h = hashlib.sha256()
    for w in model.get_weights():
        w = np.ascontiguousarray(w)
        h.update(f"{w.dtype.str}{w.shape};".encode())
        h.update(w.tobytes())
    return h.hexdigest()


def _file_label(path):
    """`/.../runs/digits/model.keras` -> `digits/model.keras`: enough to tell runs apart."""
    parent = os.path.basename(os.path.dirname(path))
    return f"{parent}/{os.path.basename(path)}" if parent else os.path.basename(path)


@dataclasses.dataclass(eq=False)
class ModelRef:
    """A model or weights argument, resolved (see the module docstring).

    Attributes:
        kind: `"preset"` (zoo), `"hub"` (`hf://`), `"keras"`, `"weights.h5"` or
            `"memory"` (a model object).
        label: `name@version` of a preset, the path as given, or the model's name.
        path: the absolute path of a file, else `None`.
        preset: the `kerasae.presets.Preset` (or `HubPreset`), else `None`.
        given: the argument as the caller wrote it.
    """

    kind: str
    label: str
    path: str = None
    preset: object = None
    given: object = None

    @classmethod
    def of_preset(cls, preset, given=None):
        kind = "hub" if isinstance(preset, presets.HubPreset) else "preset"
        return cls(kind, preset.label, preset=preset, given=given or preset.label)

    @property
    def source(self):
        return _SOURCES[self.kind]

    @property
    def name(self):
        """What a report or a `.kae` header names: `name@version`, `run/model.keras` or the
        model's own name."""
        if self.kind == "memory":
            return self.given.name
        return _file_label(self.path) if self.path else self.label

    @property
    def what(self):
        return f"Preset {self.label!r}" if self.preset is not None else \
            f"The model in {self.label!r}"

    @functools.cached_property
    def _recorded(self):
        """`(builder name, builder kwargs)` the weights were trained with, `None` unknown."""
        if self.preset is not None:
            return self.preset.builder, dict(self.preset.config["kwargs"])
        if self.kind == "keras":
            return keras_file_builder(self.path)
        if self.kind == "memory":
            config = getattr(self.given, "builder_config", None)
            return (getattr(self.given, "builder_name", None),
                    None if config is None else dict(config))
        return None, None

    @property
    def builder(self):
        return self._recorded[0]

    @property
    def kwargs(self):
        return self._recorded[1]

    @property
    def input_shape(self):
        """The input shape (no batch axis) the weights were trained at, or `None`."""
        if self.kind == "memory":
            return tuple(self.given.image_shape)
        shape = (self.kwargs or {}).get("input_shape")
        return None if shape is None else tuple(shape)

    @functools.cached_property
    def sha256(self):
        """sha256 of the weights' file: a file's own (hashed once), or a preset's pin."""
        if self.preset is not None:
            return self.preset.entry.get("files", {}).get(presets.WEIGHTS_FILE, {}).get("sha256")
        return sha256_file(self.path) if self.path else None

    @functools.cached_property
    def weights_file(self):
        """A verified local copy of a preset's weights (fetched and hashed once)."""
        return self.preset.file(presets.WEIGHTS_FILE)

    @functools.cached_property
    def weights_sha256(self):
        return weights_sha256(self.model)

    @functools.cached_property
    def model(self):
        """The model, built or loaded on first use (a preset's: no `start_point`, as
        `kerasae.zoo.load_model` gives it)."""
        if self.kind == "memory":
            return self.given
        if self.preset is not None:
            return self.build()
        if self.kind == "keras":
            return load_keras_file(self.path)
        raise InvalidValue(
            f"{self.label!r} holds weights without an architecture: build the model with "
            f"the arguments they were trained with and pass weights={self.label!r}, or "
            f"pass a .keras file saved with model.save(...). Received: model={self.label!r}"
        )

    def at_size(self, image_shape):
        """`model`, or for a model of any size (`None` height and width) a twin built at
        `image_shape` with the same weights (it is fully convolutional), which then
        stands for it here: the uses count its code's size. The model of any size stays
        at `any_size` (compress writes its own file for it)."""
        model = self.model
        shape = tuple(model.image_shape)
        if len(shape) != 3 or None not in shape[:2] or len(image_shape) != 3:
            return model
        size = (int(image_shape[0]), int(image_shape[1]), shape[2])  # its own channels
        twin = registry.get_builder(model.builder_name)(
            **{**model.builder_config, "input_shape": size})
        twin.set_weights(model.get_weights())
        twin.start_point = getattr(model, "start_point", None)
        self.__dict__["model"], self.__dict__["any_size"] = twin, model
        return twin

    @property
    def fixed_from_any_size(self):  # `at_size` put a twin in place of a model of any size
        return "any_size" in self.__dict__

    def of_any_size(self):
        """This reference with its model of any size back in place of `at_size`'s twin
        (a copy: this one keeps the twin); itself when nothing was fixed."""
        if not self.fixed_from_any_size:
            return self
        ref = copy.copy(self)
        ref.__dict__["model"] = ref.__dict__.pop("any_size")
        return ref

    def build(self, **overrides):
        """A new model of a preset, its verified weights loaded; `overrides` may change
        only `kerasae.models.SAFE_OVERRIDES`."""
        kwargs = merge_config(self, self.builder, overrides)
        model = registry.model_builder(self.builder)(**kwargs)
        presets.load_weights_strict(model, self.weights_file, self.preset.label)
        return model

    def load_into(self, model):
        """Loads the weights into `model`, whole or not at all; records `start_point`."""
        if self.preset is not None:
            presets.load_weights_strict(model, self.weights_file, self.preset.label)
        elif self.kind == "weights.h5":
            presets.load_weights_strict(model, self.path, repr(self.label), FILE_FIX)
        else:
            source = self.__dict__.get("model") or load_keras_file(self.path)
            try:
                model.set_weights(source.get_weights())
            except ValueError as e:
                raise InvalidValue(
                    f"The weights in {self.label!r} do not fit this model ({e}). {FILE_FIX} "
                    f"Received: weights={self.label!r}"
                ) from None
        model.start_point = self.record()
        return model

    def record(self):
        """What `run.json` keeps of the start point (`model.start_point`)."""
        p = self.preset
        if self.kind == "hub":
            return {"kind": "hub", "name": p.label, "version": p.version, "commit": p.commit,
                    "sha256": self.sha256}
        if self.kind == "preset":
            return {"kind": "preset", "name": p.name, "version": p.version,
                    "sha256": self.sha256}
        return {"kind": self.kind, "path": self.path, "sha256": self.sha256}

    def manifest_source(self):
        """An export manifest's `source`."""
        if self.kind == "memory":
            return {"kind": "object"}
        if self.preset is None:
            return {"kind": "keras_file", "path": os.path.basename(self.path),
                    "sha256": self.sha256}
        source = {"kind": "preset", "preset": self.given, "version": self.preset.version,
                  "sha256": self.sha256}
        if self.kind == "hub":
            source["commit"] = self.preset.commit
        return source

    def info(self):
        """What a use reports of its model (and a `.kae` header keeps)."""
        model = self.model
        return {"name": self.name, "source": self.source, "path": self.path,
                "file_sha256": self.sha256, "weights_sha256": self.weights_sha256,
                "builder": getattr(model, "builder_name", None),
                "latent_dim": (None if None in tuple(model.code_shape)  # any size: open
                               else int(model.latent_dim)),
                "code_shape": list(model.code_shape),
                "image_shape": list(model.image_shape),
                "variational": bool(model.variational)}

    @functools.cached_property
    def _metadata(self):
        if self.preset is not None:
            return self.preset.metadata()  # its fields checked by the store
        if self.kind != "keras":
            return None
        run = os.path.join(os.path.dirname(self.path), "run.json")
        try:
            with open(run) as f:
                record = json.load(f)
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def metadata(self):
        """A preset's `metadata.json`, the `run.json` of the training run beside a `.keras`
        file, or `None`."""
        return self._metadata

    def training_data(self):
        """`(dataset, split, resize, options)` the weights were trained on, or `None` where
        unknown; `options` are how a table or series was read (its columns, label, time
        column, imputation, window and stride: `kerasae.data.get_source`'s arguments)."""
        meta = self.metadata()
        if meta is None:
            return None
        d = meta.get("dataset")
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            return None
        if self.preset is not None:
            return d["name"], d.get("train_split", "train"), "crop", {}
        if d.get("route") in IN_MEMORY_ROUTES:  # nothing on disk to read again
            return None
        # A run's data where it was: the absolute path run.json records (a relative name
        # means the folder the run started in), its training split, its size and crop.
        name = d["path"] if isinstance(d.get("path"), str) and os.path.exists(d["path"]) \
            else d["name"]
        if d.get("route") in ("folder", "cache"):
            split = "train" if os.path.isdir(name) and has_split_folders(name) else "all"
        else:
            split = "train"
        options = {k: d[k] for k in TABLE_OPTIONS if d.get(k) is not None}
        if options.get("columns") is not None:
            options["columns"] = list(options["columns"])
        return name, split, d.get("resize") or "crop", options


def _text(value, arg, expected):
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidType(f"{arg} must be {expected}. Received: {arg}={type(value).__name__}")
    return os.fspath(value)


def resolve_preset(name, *, root=None, cache_dir=None, mirrors=None, progress=True):
    """A preset name (`name[@version]`, `hf://...`) -> `ModelRef`; no file rule applies.

    Args:
        root, cache_dir, mirrors, progress: see `kerasae.presets.get_preset`.
    """
    text = _text(name, "name", "a zoo preset name (`kerasae zoo list`) or hf://ORG/NAME")
    preset = presets.get_preset(text, root=root, cache_dir=cache_dir, mirrors=mirrors,
                                progress=progress)
    return ModelRef.of_preset(preset, given=text)


def resolve_model(model, *, root=None, cache_dir=None, mirrors=None, progress=True):
    """An `Autoencoder`, a `.keras` path or a preset name (or a `ModelRef`) -> `ModelRef`.

    A file is checked now (it exists, is a `.keras` zip) and loaded on first use
    of `.model`; a preset's `config.json` is fetched and verified now.

    Args:
        root, cache_dir, mirrors, progress: where presets come from; see
            `kerasae.presets.get_preset`.
    """
    if isinstance(model, ModelRef):
        return model
    if isinstance(model, Autoencoder):
        return ModelRef("memory", model.name, given=model)
    text = _text(model, "model", "a kerasae Autoencoder, a .keras file or a zoo preset name")
    if not presets.names_a_file(text):
        return resolve_preset(text, root=root, cache_dir=cache_dir, mirrors=mirrors,
                              progress=progress)
    check_keras_path(text)
    return ModelRef("keras", text, path=os.path.abspath(text), given=text)


def resolve_weights(weights):
    """`weights=`: `None`, a preset name or a `.keras` / `.weights.h5` path (or a `ModelRef`
    of one) -> `ModelRef` or `None`."""
    if weights is None:
        return None
    if isinstance(weights, ModelRef) and weights.kind != "memory":
        return weights
    text = _text(weights, "weights", "None, a zoo preset name or a .keras / .weights.h5 path")
    if not presets.names_a_file(text):
        return resolve_preset(text)
    if not os.path.isfile(text):
        raise MissingFile(
            f"Weights file {text!r} does not exist. Pass None, a zoo preset name (see "
            f"`kerasae zoo list`) or the path of a .keras / .weights.h5 file. "
            f"Received: weights={text!r}"
        )
    if not text.endswith((".weights.h5", ".keras")):
        raise InvalidValue(
            "Weights must be a .weights.h5 or .keras file (no pickles). "
            f"Received: weights={text!r}"
        )
    kind = "weights.h5" if text.endswith(".weights.h5") else "keras"
    return ModelRef(kind, text, path=os.path.abspath(text), given=text)


def load_model(name, *, root=None, cache_dir=None, mirrors=None, **overrides):
    """Builds a preset's model from its `config.json` and loads its verified weights.

    Args:
        name: preset name, optionally `name@version`, or `hf://org/name[@revision]`.
        root, cache_dir, mirrors: see `kerasae.presets.get_preset`.
        **overrides: builder arguments to change; only
            `kerasae.models.SAFE_OVERRIDES` (name, seed, loss weights) may differ
            from the preset.

    Returns:
        A `kerasae.models.Autoencoder`.

    Example:
        >>> model = kerasae.zoo.load_model("conv_ae_fashion_mnist")  # doctest: +SKIP
    """
    ref = resolve_preset(name, root=root, cache_dir=cache_dir, mirrors=mirrors)
    return ref.build(**overrides)
