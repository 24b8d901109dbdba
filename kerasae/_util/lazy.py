"""Lazy package exports, so that `import kerasae` and `kerasae --help` stay light.

A package's `__init__` names what it exports and where it lives; the module is
imported on first access (PEP 562). TensorFlow and Keras load only when a name
that needs them is used.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings


def exports(package, table, fallback=None):
    """Returns `(__getattr__, __dir__)` for `package` from `table`.

    Args:
        package: the package's `__name__`.
        table: `{name: "module"}` (the module itself) or `{name: "module:attr"}`.
        fallback: `(test, "module")`: a name not in `table` for which `test(name)`
            holds is looked up in that module (e.g. builders by their function
            name, for families the table does not list).
    """

    def __getattr__(name):
        target = table.get(name)
        if target is None and fallback is not None and fallback[0](name):
            target = f"{fallback[1]}:{name}"
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, _, attr = target.partition(":")
        module = importlib.import_module(module_name)
        if not attr:
            return module
        try:
            return getattr(module, attr)
        except AttributeError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    def __dir__():
        return sorted(table)

    return __getattr__, __dir__


class _Then:
    """A loader that runs the real one, then imports `then` (see `after_import`)."""

    def __init__(self, loader, then):
        self._loader, self._then = loader, then

    def __getattr__(self, attr):  # everything else is the real loader's
        return getattr(self._loader, attr)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        # One shot: `name` is executed once (a find_spec() alone imports nothing).
        sys.meta_path[:] = [f for f in sys.meta_path
                            if not (isinstance(f, _AfterImport) and f.name == module.__name__)]
        self._loader.exec_module(module)
        package = self._then.split(".")[0] + "."
        if any(name.startswith(package)
               and getattr(getattr(m, "__spec__", None), "_initializing", False)
               for name, m in list(sys.modules.items())):
            return  # the package itself is importing Keras: it loads `then` in its own time
        try:
            importlib.import_module(self._then)
        except Exception as e:  # noqa: BLE001 - never break the user's own import
            warnings.warn(f"kerasae could not register its Keras classes ({e}); import "
                          f"{self._then} before loading kerasae models.", stacklevel=2)


class _AfterImport(importlib.abc.MetaPathFinder):
    def __init__(self, name, then):
        self.name, self.then = name, then

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Then(spec.loader, self.then)
        return spec


def after_import(name, then):
    """Imports the module `then` as soon as the top-level module `name` is imported.

    So `import kerasae` stays light, and `import keras` afterwards (or before)
    still registers kerasae's Keras classes, as `keras.saving.load_model` needs.
    """
    if name in sys.modules:
        importlib.import_module(then)
    elif not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(name, then))
