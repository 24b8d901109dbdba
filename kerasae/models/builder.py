"""`@register_builder`: keyword-only builders that record their config and take `weights=`.

`weights=` is `None`, a `.weights.h5` / `.keras` file, or a zoo preset name
(`name` or `name@version`); which one follows the single rule of
`kerasae.presets.names`. The config a preset or a kerasae `.keras` file records
is merged with the caller's arguments: only arguments that leave the weights
valid (`SAFE_OVERRIDES`) may differ (see `kerasae.models.start`).
"""

import functools
import inspect

from kerasae._util.errors import InvalidType
from kerasae._util.names import did_you_mean
from kerasae.models import registry
from kerasae.models.resolve import ModelRef, resolve_weights
from kerasae.models.start import SAFE_OVERRIDES, merge_config

__all__ = ["SAFE_OVERRIDES", "merge_preset_config", "register_builder", "register_model_builder"]


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


def register_builder(name, *, example, exports=registry.EXPORT_FORMATS, uses=None):
    """Registers a builder function under a snake_case `name`, with its contract.

    The wrapped builder records its registry name and the keyword arguments it
    was called with on the returned model (`model.builder_name`,
    `model.builder_config`), and handles the fixed `weights=` argument: `None`,
    a `.weights.h5` / `.keras` path, or a zoo preset name. A model built from
    weights records where they came from in `model.start_point` (kind, name and
    version or path, sha256).

    Args:
        name: the registry name, e.g. `"conv_ae"`.
        example: small but real constructor arguments with an `input_shape`; the
            registry-wide tests build, train, save, export and use the family with
            them, on inputs of its kind (`kerasae.models.registry.Contract`).
        exports: the export formats its models support. Defaults to all.
        uses: the uses that apply to its models. Defaults to every use for its
            kind of input.
    """
    contract = registry.Contract(dict(example), tuple(exports),
                                 None if uses is None else tuple(uses))

    def decorator(fn):
        return registry.register(name, _recording(name, fn), contract)

    return decorator


def register_model_builder(name):
    """Registers the builder of a model that is not an autoencoder (e.g. `colorizer`).

    The builder takes `weights=` and records `builder_name` / `builder_config` as
    `register_builder`'s do, so a preset can name it; it has no contract, and the
    family-wide tests and `list_builders()` leave it out (`registry.register_model`).
    """

    def decorator(fn):
        return registry.register_model(name, _recording(name, fn))

    return decorator


def _recording(name, fn):
    """`fn` wrapped: keyword-only, `weights=` resolved and loaded, its config recorded."""
    defaults = _defaults(fn)

    @functools.wraps(fn)
    def builder(*args, weights=None, **kwargs):
        _check_kwargs(fn, args, kwargs, defaults)
        start = resolve_weights(weights)
        if start is not None:
            kwargs = merge_config(start, name, kwargs)
        config = {k: v for k, v in defaults.items() if k != "weights"}
        config.update(kwargs)
        model = fn(**kwargs)
        model.builder_name = name
        model.builder_config = _jsonable(config)
        model.start_point = None
        if start is not None:
            start.load_into(model)
        return model

    return builder


def merge_preset_config(preset, builder_name, kwargs):
    """Builder kwargs of a preset's `config.json` merged with the caller's overrides.

    Overrides may change only what leaves the weights valid (`SAFE_OVERRIDES`:
    the name, seeds, corruption, loss weights); any other argument must equal
    the preset's value.

    Raises:
        ValueError: the preset belongs to another builder, or an override
            would change the architecture.
    """
    start = ModelRef.of_preset(preset)
    return merge_config(start, builder_name, kwargs)


def _jsonable(value):
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value
