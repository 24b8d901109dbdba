"""`@register_builder`: keyword-only builders that record their config and take `weights=`.

`weights=` is `None`, a `.weights.h5` / `.keras` file, or a zoo preset name
(`name` or `name@version`); which one follows the single rule of
`kerasae.presets.names`. A preset's `config.json` is merged with the caller's
arguments: only arguments that leave the weights valid (`SAFE_OVERRIDES`) may
differ from the preset.
"""

import functools
import inspect
import json
import os

import keras

from kerasae import presets
from kerasae._util.errors import InvalidType, InvalidValue, MissingFile
from kerasae._util.names import did_you_mean
from kerasae.models import registry

# Builder arguments that change training or naming only, never the weights.
SAFE_OVERRIDES = frozenset(
    {"name", "seed", "beta", "reconstruction", "corruption_amount", "sparsity_weight",
     "sparsity_target"}
)


def _defaults(fn):
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _check_kwargs(fn, args, kwargs, defaults):
    if args:
        raise InvalidType(
            f"{fn.__name__} takes keyword arguments only. "
            f"Received: {len(args)} positional argument(s)"
        )
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        valid = sorted(k for k in defaults if k != "weights")
        raise InvalidType(
            f"{fn.__name__} got unexpected argument(s) {', '.join(unknown)}. "
            f"{did_you_mean(unknown[0], valid)}Valid arguments: "
            f"{', '.join(valid)}. Received: {unknown[0]}={kwargs[unknown[0]]!r}"
        )


def register_builder(name):
    """Registers a builder function under a snake_case `name`.

    The wrapped builder records its registry name and the keyword arguments it
    was called with on the returned model (`model.builder_name`,
    `model.builder_config`), and handles the fixed `weights=` argument: `None`,
    a `.weights.h5` / `.keras` path, or a zoo preset name.
    """

    def decorator(fn):
        defaults = _defaults(fn)

        @functools.wraps(fn)
        def builder(*args, weights=None, **kwargs):
            _check_kwargs(fn, args, kwargs, defaults)
            preset = None
            if isinstance(weights, str) and not presets.names_a_file(weights):
                preset = presets.get_preset(weights)
                kwargs = merge_preset_config(preset, name, kwargs)
            config = {k: v for k, v in defaults.items() if k != "weights"}
            config.update(kwargs)
            model = fn(**kwargs)
            model.builder_name = name
            model.builder_config = _jsonable(config)
            if preset is not None:
                presets.load_preset_weights(model, preset)
            elif weights is not None:
                load_weights_file(model, weights)
            return model

        builder.registry_name = name
        return registry.register(name, builder)

    return decorator


def _same(a, b):
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def _builder_function_name(builder):
    try:
        return registry.get_builder(builder).__name__
    except ValueError:
        return builder


def merge_preset_config(preset, builder_name, kwargs):
    """Builder kwargs of a preset's `config.json` merged with the caller's overrides.

    Overrides may change only what leaves the weights valid (`SAFE_OVERRIDES`:
    the name, seeds, loss weights); any other argument must equal the
    preset's value.

    Raises:
        ValueError: the preset belongs to another builder, or an override
            would change the architecture.
    """
    if preset.builder != builder_name:
        fn = _builder_function_name(preset.builder)
        raise InvalidValue(
            f"Preset {preset.name!r} holds weights for builder {preset.builder!r}, not "
            f"{builder_name!r}. Call kerasae.{fn}(weights={preset.name!r}) or "
            f"kerasae.zoo.load_model({preset.name!r}). Received: weights={preset.name!r}"
        )
    merged = dict(preset.config["kwargs"])
    for key, value in (kwargs or {}).items():
        if key in merged and not _same(merged[key], value) and key not in SAFE_OVERRIDES:
            raise InvalidValue(
                f"Preset {preset.name!r} was trained with {key}={merged[key]!r}; its weights "
                f"do not fit {key}={value!r}, so the override is refused. Drop the argument "
                f"to use the preset, or build without weights= and train. Arguments a preset "
                f"lets you change: {', '.join(sorted(SAFE_OVERRIDES))}. Received: {key}={value!r}"
            )
        if key not in merged and key not in SAFE_OVERRIDES:
            raise InvalidValue(
                f"Preset {preset.name!r} does not set {key!r}, so overriding it could change "
                f"the architecture its weights were trained for. Drop the argument. "
                f"Received: {key}={value!r}"
            )
        merged[key] = value
    return merged


def load_weights_file(model, path):
    """Loads `.weights.h5` or `.keras` weights into `model`, with clear errors."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MissingFile(
            f"Weights file {path!r} does not exist. Pass None, a zoo preset name "
            f"(see `kerasae zoo list`) or the path of a .weights.h5 / .keras file. "
            f"Received: weights={path!r}"
        )
    if path.endswith(".keras"):
        source = keras.saving.load_model(path, safe_mode=True)
        model.set_weights(source.get_weights())
    elif path.endswith(".weights.h5"):
        model.load_weights(path)
    else:
        raise InvalidValue(
            "Weights must be a .weights.h5 or .keras file (no pickles). "
            f"Received: weights={path!r}"
        )


def _jsonable(value):
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value
