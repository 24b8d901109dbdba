"""What a `model` argument names: a `.keras` file or a zoo preset.

One rule for every command that takes a model (export and the uses): a name that
ends in `.keras` or holds a path separator is a file, and so is any name of an
existing file; any other bare name is a zoo preset. So a training run's directory
named like a preset (`kerasae train ... --out conv_ae_fashion_mnist`) does not
hide the preset.
"""

import os


def names_a_file(text):
    """Whether `text` (a model argument) names a `.keras` file rather than a preset."""
    return text.endswith(".keras") or os.sep in text or "/" in text or os.path.isfile(text)


def load_keras_file(text):
    """Loads a kerasae autoencoder from a `.keras` file (safe_mode), with clear errors."""
    if not os.path.isfile(text):
        hint = (f" It is a directory: a training run writes "
                f"{os.path.join(text, 'model.keras')!r}." if os.path.isdir(text) else "")
        raise FileNotFoundError(
            f"No model file at {text!r} (the path does not exist as a file).{hint} Pass a "
            f".keras file saved with model.save(...) or a zoo preset name. "
            f"Received: model={text!r}"
        )
    if not text.endswith(".keras"):
        raise ValueError(
            "Models load from .keras files only (a safe format, no pickles; SavedModel "
            "and .h5 files are not re-loaded). Save with model.save('model.keras'). "
            f"Received: model={text!r}"
        )
    import keras

    from kerasae.models import Autoencoder  # also registers the layers for safe_mode

    try:
        loaded = keras.saving.load_model(text, safe_mode=True)
    except Exception as e:  # keras raises several types for a bad archive
        raise ValueError(
            f"Could not load {text!r} as a Keras model ({type(e).__name__}: {e}). "
            f"Received: model={text!r}"
        ) from e
    if not isinstance(loaded, Autoencoder):
        raise TypeError(
            f"{text!r} holds a {type(loaded).__name__}, not a kerasae Autoencoder. "
            f"Received: model={text!r}"
        )
    return loaded


def zoo_module(text):
    """`kerasae.zoo`, or a clear error when this install has no zoo."""
    try:
        from kerasae import zoo
    except ModuleNotFoundError as e:
        if e.name != "kerasae.zoo":
            raise
        raise ValueError(
            f"{text!r} is not a file, and zoo presets are unavailable in this install "
            f"(kerasae.zoo is missing). Pass a .keras path. Received: model={text!r}"
        ) from None
    return zoo
