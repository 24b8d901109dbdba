"""Builder registry: `@register_builder("conv_ae")`, `list_builders()`, `get_builder()`."""

import difflib
import functools
import inspect

_BUILDERS = {}


def _did_you_mean(name, choices):
    close = difflib.get_close_matches(str(name), choices, n=1)
    return f"Did you mean {close[0]!r}? " if close else ""


def unknown_name_error(what, name, choices, arg="name"):
    """A ValueError for an unknown name that lists the choices and the closest."""
    return ValueError(
        f"Unknown {what} {name!r}. {_did_you_mean(name, choices)}"
        f"Available: {', '.join(sorted(choices))}. Received: {arg}={name!r}"
    )


def register_builder(name):
    """Registers a builder function under a snake_case `name`.

    The wrapped builder records its registry name and the keyword arguments it
    was called with on the returned model (`model.builder_name`,
    `model.builder_config`), and handles the fixed `weights=` argument: `None`,
    a `.weights.h5` / `.keras` path, or a zoo preset name.
    """

    def decorator(fn):
        if name in _BUILDERS:
            raise ValueError(f"Builder {name!r} is already registered.")
        signature = inspect.signature(fn)
        defaults = {
            k: p.default
            for k, p in signature.parameters.items()
            if p.default is not inspect.Parameter.empty
        }

        @functools.wraps(fn)
        def builder(*args, weights=None, **kwargs):
            if args:
                raise TypeError(
                    f"{fn.__name__} takes keyword arguments only. "
                    f"Received: {len(args)} positional argument(s)"
                )
            unknown = sorted(set(kwargs) - set(defaults))
            if unknown:
                valid = sorted(k for k in defaults if k != "weights")
                raise TypeError(
                    f"{fn.__name__} got unexpected argument(s) {', '.join(unknown)}. "
                    f"{_did_you_mean(unknown[0], valid)}Valid arguments: "
                    f"{', '.join(valid)}. Received: {unknown[0]}={kwargs[unknown[0]]!r}"
                )
            preset = None
            if isinstance(weights, str) and _is_preset_name(weights):
                from kerasae import zoo

                preset = zoo.get_preset(weights)
                kwargs = zoo.merge_preset_config(preset, name, kwargs)
            config = {k: v for k, v in defaults.items() if k != "weights"}
            config.update(kwargs)
            model = fn(**kwargs)
            model.builder_name = name
            model.builder_config = _jsonable(config)
            if preset is not None:
                from kerasae import zoo

                zoo.load_preset_weights(model, preset)
            elif weights is not None:
                load_weights_file(model, weights)
            return model

        builder.registry_name = name
        _BUILDERS[name] = builder
        return builder

    return decorator


def _is_preset_name(value):
    return not value.endswith((".h5", ".keras")) and "/" not in value and "\\" not in value


def load_weights_file(model, path):
    """Loads `.weights.h5` or `.keras` weights into `model`, with clear errors."""
    import os

    import keras

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
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
        raise ValueError(
            "Weights must be a .weights.h5 or .keras file (no pickles). "
            f"Received: weights={path!r}"
        )


def _jsonable(value):
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def list_builders():
    """Returns the sorted names of all registered builders."""
    _import_families()
    return sorted(_BUILDERS)


def get_builder(name):
    """Returns the builder registered under `name`, suggesting the closest name."""
    _import_families()
    if name not in _BUILDERS:
        raise unknown_name_error("builder", name, list(_BUILDERS))
    return _BUILDERS[name]


def build(name, **kwargs):
    """Shorthand for `get_builder(name)(**kwargs)`."""
    return get_builder(name)(**kwargs)


def _import_families():
    # Importing the family modules registers their builders.
    from kerasae.models import conv, stacked, variational  # noqa: F401
