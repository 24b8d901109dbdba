"""The autoencoder families: one module each, found and imported here, so the registry is
complete once `kerasae.models` is imported.

A family module registers its builders with `@register_builder(name, example=...)`
(`kerasae.models.builder`): the builder and its contract (small example arguments,
export formats, uses) live together, and the registry-wide tests pick it up. Adding a
family is adding a module to this folder, a row to README's builder table and its name to
the Layout table's models row (README, "Adding a family").
"""

import importlib
import pkgutil

FAMILIES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)
                        if not m.name.startswith("_")))

for _name in FAMILIES:
    importlib.import_module(f"{__name__}.{_name}")
