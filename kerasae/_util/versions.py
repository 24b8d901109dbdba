"""kerasae's version and the versions of what it runs on, recorded in every artifact."""

import importlib.metadata
import platform
import sys

__version__ = "0.1.0"

# The distributions an artifact records, under the names that record them.
_DISTRIBUTIONS = {"keras": "keras", "numpy": "numpy", "h5py": "h5py",
                  "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-intel",
                                 "tensorflow-macos", "tf-nightly"),
                  "tf2onnx": "tf2onnx", "onnx": "onnx", "onnxruntime": "onnxruntime"}


def _installed(module, names):
    loaded = getattr(sys.modules.get(module), "__version__", None)
    if isinstance(loaded, str):
        return loaded  # what actually runs, if it is imported already
    for name in (names,) if isinstance(names, str) else names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def versions(*names):
    """`{"kerasae": ..., "python": ..., name: version}` for each installed one of `names`.

    From the module if it is imported, else from its installed distribution's
    metadata, so nothing is imported here.
    `names` default to keras, tensorflow and numpy.
    """
    out = {"kerasae": __version__, "python": platform.python_version()}
    for name in names or ("keras", "tensorflow", "numpy"):
        version = _installed(name, _DISTRIBUTIONS.get(name, name))
        if version is not None:
            out[name] = version
    return out
