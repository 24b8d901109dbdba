"""Which Keras backend will run, and a clear error when TensorFlow is missing.

Read without importing Keras or TensorFlow, so that light paths stay light.
"""

import importlib.util
import json
import os
import sys

from kerasae._util.errors import MissingDependency, NeedsTensorFlow

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


# What runs under Keras's JAX or PyTorch backend, and what does not: said in one line.
OTHER_BACKENDS = (
    "the builders, keras.Model.fit on them, .keras save and load and zoo presets work under "
    "any backend (model.fit under jax; the torch backend does not train kerasae's models); "
    "kerasae.fit, the exports, the uses and the command line need TensorFlow")


def require_tensorflow_backend(feature):
    """Raises `NeedsTensorFlow` in one line when Keras runs another backend than
    TensorFlow. Uncaught in a script (`python -c ...`), it prints that line alone and
    exits with status 1: a traceback would only show kerasae's own frames."""
    import keras  # only callers that already use Keras get here

    name = keras.backend.backend()
    if name == "tensorflow":
        return
    _one_line_when_uncaught(NeedsTensorFlow)
    raise NeedsTensorFlow(
        f"{feature} needs Keras's TensorFlow backend, and this process runs {name!r} "
        f"(KERAS_BACKEND={os.environ.get('KERAS_BACKEND', name)}): run it with "
        f"KERAS_BACKEND=tensorflow, or train with model.fit(...) yourself; {OTHER_BACKENDS}.")


def _one_line_when_uncaught(error_type):
    """A `sys.excepthook` that prints an uncaught `error_type` as one line (others go to
    the hook that was there)."""
    previous = sys.excepthook
    if getattr(previous, "kerasae_one_line", None) is error_type:
        return

    def hook(kind, value, tb):
        if issubclass(kind, error_type):
            print(f"{kind.__name__}: {value}", file=sys.stderr)
            return
        previous(kind, value, tb)

    hook.kerasae_one_line = error_type
    sys.excepthook = hook
