"""The builder registry: names -> builders and their contracts. A leaf: it imports no model code.

Family modules register their builders with `@register_builder(name, example=...)`
(from `kerasae.models.builder`); importing `kerasae.models` imports every family
module of `kerasae.models.families`, so the registry is complete by the time anyone
reads it.

A `Contract` is what a family promises and what the registry-wide tests run it
with: small constructor arguments, a sample batch of its own kind of input, the
export formats it supports, the uses that apply to it. A new family is one
module: its builder and its contract travel together.
"""

import dataclasses

import numpy as np

from kerasae._util.errors import InvalidValue
from kerasae._util.names import unknown_name_error

# What a model's input is, by its rank (batch axis excluded): a (height, width,
# channels) image with values in [0, 1], a (features,) record, a (steps, channels)
# window of a series; records and series take any float values.
INPUT_KINDS = {3: "image", 1: "vector", 2: "series"}
EXPORT_FORMATS = ("saved_model", "onnx", "litert")
USES = ("features", "reduce", "compress", "denoise", "anomaly", "generate")
USES_BY_KIND = {"image": USES, "vector": ("features", "reduce", "anomaly"),
                "series": ("features", "reduce", "anomaly")}

_BUILDERS = {}
_CONTRACTS = {}
# Builders of models that are not autoencoders (`colorizer`): presets may name them, the
# family-wide contracts do not run on them (`register_model`).
_MODEL_BUILDERS = {}


def input_kind(shape):
    """`"image"`, `"vector"` or `"series"`: the kind of input of this shape (no batch axis)."""
    kind = INPUT_KINDS.get(len(tuple(shape)))
    if kind is None:
        raise InvalidValue(
            "An autoencoder's input is an image (height, width, channels), a record "
            f"(features,) or a window of a series (steps, channels). Received: shape={shape}"
        )
    return kind


@dataclasses.dataclass(frozen=True)
class Contract:
    """What a registered family promises (see the module docstring).

    Attributes:
        example: small but real constructor arguments, `input_shape` included.
        exports: the export formats its models support.
        uses: the uses that apply to its models; `None`: every use for its kind of
            input (`USES_BY_KIND`).
    """

    example: dict
    exports: tuple = EXPORT_FORMATS
    uses: tuple = None

    @property
    def input_shape(self):
        return tuple(self.example["input_shape"])

    @property
    def input_kind(self):
        return input_kind(self.input_shape)

    def applies(self):
        """The uses that apply to this family's models."""
        return tuple(self.uses) if self.uses is not None else USES_BY_KIND[self.input_kind]

    def sample(self, n=16, seed=0):
        """`n` inputs of this family's kind and shape, float32: smooth images in [0, 1],
        correlated records and noisy periodic series on scales far from [0, 1]."""
        return sample_inputs(self.input_shape, n, seed)


def sample_inputs(shape, n=16, seed=0):
    """`n` float32 inputs of `shape` (see `Contract.sample`), the same for the same seed."""
    rng = np.random.default_rng(seed)
    kind = input_kind(shape)
    if kind == "image":
        h, w, c = shape
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w, 1)
        out = np.zeros((n, h, w, c))
        for _ in range(3):  # three soft blobs of random colour per image
            cy, cx = rng.uniform(0, 1, (2, n, 1, 1))
            width = rng.uniform(0.15, 0.5, (n, 1, 1))
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width ** 2))
            out += blob[..., None] * rng.uniform(0, 1, (n, 1, 1, c))
        out = out / out.reshape(n, -1).max(axis=1)[:, None, None, None] * 0.9 + 0.05
        return (out + rng.normal(0, 0.01, out.shape)).clip(0, 1).astype("float32")
    if kind == "vector":
        (features,) = shape
        latent = rng.normal(size=(n, 3))
        mix = rng.normal(size=(3, features))
        values = latent @ mix + 0.1 * rng.normal(size=(n, features))
        scale, offset = np.exp(rng.normal(0, 1.5, features)), rng.normal(0, 20, features)
        return (values * scale + offset).astype("float32")
    steps, channels = shape
    t = np.arange(steps)[None, :, None]
    period = rng.uniform(8, 32, (1, 1, channels))
    phase = rng.uniform(0, 2 * np.pi, (n, 1, channels))
    values = np.sin(2 * np.pi * t / period + phase) + 0.05 * rng.normal(size=(n, steps, channels))
    return (values * rng.uniform(1, 50, channels) + rng.normal(0, 100, channels)).astype(
        "float32")


def register(name, builder, contract):
    """Adds `builder` and its `Contract` under the snake_case `name`, once."""
    if name in _BUILDERS:
        raise InvalidValue(f"Builder {name!r} is already registered. Received: name={name!r}")
    if not isinstance(contract, Contract) or "input_shape" not in contract.example:
        raise InvalidValue(
            f"Builder {name!r} needs a contract: small example arguments with an input_shape "
            f"(register_builder(name, example=dict(..., input_shape=...))). "
            f"Received: contract={contract!r}"
        )
    unknown = set(contract.exports) - set(EXPORT_FORMATS)
    if unknown:
        raise InvalidValue(f"Builder {name!r} names unknown export formats {sorted(unknown)}; "
                           f"known: {', '.join(EXPORT_FORMATS)}. Received: exports="
                           f"{contract.exports!r}")
    _BUILDERS[name], _CONTRACTS[name] = builder, contract
    return builder


def register_model(name, builder):
    """Adds the builder of a model that is not an autoencoder family (no contract: the
    family-wide tests do not run on it), so that a preset's `config.json` can name it."""
    if name in _BUILDERS or name in _MODEL_BUILDERS:
        raise InvalidValue(f"Builder {name!r} is already registered. Received: name={name!r}")
    _MODEL_BUILDERS[name] = builder
    return builder


def model_builder(name):
    """The builder a preset's `config.json` names: a family's, else another model's
    (`register_model`), suggesting the closest name."""
    if name in _MODEL_BUILDERS:
        return _MODEL_BUILDERS[name]
    if name not in _BUILDERS:
        raise unknown_name_error("builder", name, [*_BUILDERS, *_MODEL_BUILDERS])
    return _BUILDERS[name]


def list_builders():
    """Returns the sorted names of all registered builders."""
    return sorted(_BUILDERS)


def get_builder(name):
    """Returns the builder registered under `name`, suggesting the closest name."""
    if name not in _BUILDERS:
        raise unknown_name_error("builder", name, list(_BUILDERS))
    return _BUILDERS[name]


def get_contract(name):
    """Returns the `Contract` of the builder registered under `name`."""
    get_builder(name)
    return _CONTRACTS[name]


def builder_of(function_name):
    """The registered builder whose function is called `function_name` (`"ConvAE"`), or None."""
    return next((b for b in _BUILDERS.values() if b.__name__ == function_name), None)


def build(builder, /, **kwargs):
    """Shorthand for `get_builder(builder)(**kwargs)`; `name=` is the model's own name."""
    return get_builder(builder)(**kwargs)
