"""The builder registry: names -> builder functions. A leaf: it imports no model code.

Family modules register their builders with `@register_builder` (from
`kerasae.models.builder`); importing `kerasae.models` imports every family, so
the registry is complete by the time anyone reads it.
"""

from kerasae._util.errors import InvalidValue
from kerasae._util.names import unknown_name_error

_BUILDERS = {}


def register(name, builder):
    """Adds `builder` under the snake_case `name`; a name is registered once."""
    if name in _BUILDERS:
        raise InvalidValue(f"Builder {name!r} is already registered. Received: name={name!r}")
    _BUILDERS[name] = builder
    return builder


def list_builders():
    """Returns the sorted names of all registered builders."""
    return sorted(_BUILDERS)


def get_builder(name):
    """Returns the builder registered under `name`, suggesting the closest name."""
    if name not in _BUILDERS:
        raise unknown_name_error("builder", name, list(_BUILDERS))
    return _BUILDERS[name]


def build(builder, /, **kwargs):
    """Shorthand for `get_builder(builder)(**kwargs)`; `name=` is the model's own name."""
    return get_builder(builder)(**kwargs)
