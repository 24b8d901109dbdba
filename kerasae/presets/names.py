"""The one rule for what a model or weights argument names: a file, or a zoo preset.

A name that ends in `.keras` or `.h5` (`.weights.h5` included) or holds a path
separator is a file, and so is the name of any existing file; any other bare
name is a preset (`name` or `name@version`), and so is `hf://org/name` (on the
Hugging Face Hub). So a training run's directory named
like a preset (`kerasae train ... --out conv_ae_fashion_mnist`) does not hide the
preset, and a preset never shadows a file the user pointed at.
"""

import os

FILE_SUFFIXES = (".keras", ".h5")


def names_a_file(text):
    """Whether `text` names a file rather than a zoo preset (see the module docstring)."""
    text = os.fspath(text)
    if text.startswith("hf://"):
        return False  # a preset on the Hugging Face Hub
    return (text.endswith(FILE_SUFFIXES) or os.sep in text or "/" in text
            or os.path.isfile(text))
