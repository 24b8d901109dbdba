"""Which Keras backend will run, and a clear error when TensorFlow is missing.

Read without importing Keras or TensorFlow, so that light paths stay light.
"""

import importlib.util
import json
import os

from kerasae._util.errors import MissingDependency

INSTALL_HINT = (
    "Install it with one of:\n"
    "  pip install 'kerasae[cpu]'   # CPU wheel (tensorflow-cpu)\n"
    "  pip install 'kerasae[gpu]'   # CUDA build on Linux (tensorflow[and-cuda])\n"
    "or set KERAS_BACKEND to another installed Keras backend (jax, torch) for the "
    "builders only."
)


def keras_backend_name():
    """Returns the backend Keras will pick, without importing Keras."""
    name = os.environ.get("KERAS_BACKEND")
    if name:
        return name
    config = os.path.join(
        os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "keras.json"
    )
    try:
        with open(config) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def require_tensorflow(feature="kerasae"):
    """Raises `MissingDependency` (an `ImportError`) naming the install command when
    TensorFlow cannot be imported."""
    try:
        spec = importlib.util.find_spec("tensorflow")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise MissingDependency(
            f"{feature} needs TensorFlow, which is not installed. {INSTALL_HINT}"
        )
    try:
        import tensorflow  # noqa: F401
    except ImportError as e:
        raise MissingDependency(
            f"{feature} needs TensorFlow, but importing it failed ({e}). {INSTALL_HINT}"
        ) from e


def check_backend():
    """Fails early and clearly when the TensorFlow backend is chosen but not installed."""
    if keras_backend_name() == "tensorflow":
        require_tensorflow()
