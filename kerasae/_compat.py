"""Backend checks that must run before Keras is imported."""

import importlib.util
import json
import os

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
    """Raises a helpful ImportError when TensorFlow cannot be imported."""
    try:
        spec = importlib.util.find_spec("tensorflow")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise ImportError(
            f"{feature} needs TensorFlow, which is not installed. {INSTALL_HINT}"
        )
    try:
        import tensorflow  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"{feature} needs TensorFlow, but importing it failed ({e}). "
            f"{INSTALL_HINT}"
        ) from e


def check_backend():
    """Called once at package import: fail early and clearly without TF."""
    import sys

    if keras_backend_name() != "tensorflow":
        return
    try:
        require_tensorflow()
    except ImportError as e:
        if os.path.basename(sys.argv[0] or "") == "kerasae":
            # The console script: one clear message, no traceback.
            print(f"kerasae: {e}", file=sys.stderr)
            raise SystemExit(1) from None
        raise
