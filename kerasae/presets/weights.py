"""Strict weight loading: a preset's `model.weights.h5` fits the model whole or not at all.

Only HDF5 arrays are read (no pickles, no code). Before Keras reads anything,
`kerasae.presets.h5check` compares the file's layout with the model's own
(every dataset's path, shape and dtype, from metadata alone), so a dataset
that declares more than its variable holds (a compressed or fill-value bomb)
is refused before it is read; the data are then read one dataset at a time,
refused if NaN or infinite, into a fresh copy that Keras loads. Keras only
warns when part of a weights file does not match a model (and keeps the fresh
initial values there); for a preset that is an error, not a partial load. A
refused load leaves the model's weights as they were.
"""

import io
import os
import tempfile
import warnings

import h5py

from kerasae._util.errors import InvalidValue
from kerasae.presets import h5check
from kerasae.presets.index import WEIGHTS_FILE

_PARTIAL_LOAD_MARKERS = ("Skipping", "freshly-initialized", "could not be loaded")


PRESET_FIX = "Build it from the preset's own config with kerasae.zoo.load_model."
_UNSAFE_FIX = ("A Keras weights file holds plain datasets only, so this one is damaged or "
               "was made to do harm; nothing was read into the model. Use weights written "
               "by Keras (model.save_weights or model.save).")
_NONFINITE_FIX = ("Saving refuses such weights, so the file is damaged; nothing was read into "
                  "the model. Use another file, or train again.")


def _refusal(e, label, fix, received):
    if e.kind == "mismatch":
        text = f"The weights of {label} do not fit this model: {e.detail}; nothing was read. {fix}"
    elif e.kind == "nonfinite":
        text = f"The weights of {label} hold NaN or infinite values: {e.detail}. {_NONFINITE_FIX}"
    else:
        text = f"The weights of {label} are refused: {e.detail}. {_UNSAFE_FIX}"
    return InvalidValue(f"{text} Received: {received}")


class _Expected:
    """The layout of `model`'s own weights file, written to `folder` by Keras."""

    def __init__(self, model, folder):
        self.path = os.path.join(folder, "expected.weights.h5")
        model.save_weights(self.path)
        self.bytes = os.path.getsize(self.path)
        self.h5 = h5py.File(self.path, "r")
        self.layout = h5check.read_layout(self.h5, max_links=1 << 30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.h5.close()

    def checked_copy(self, source, folder, label, received):
        """Checks the weights file `source` (a path or file object) and copies its
        bounded, finite data to a new file in `folder`; returns that file's path."""
        try:
            opened = h5py.File(source, "r")
        except OSError as e:
            raise InvalidValue(
                f"The weights of {label} are not a readable HDF5 file ({e}). Use a "
                f".weights.h5 file written by model.save_weights(...). Received: {received}"
            ) from None
        copy = os.path.join(folder, "checked.weights.h5")
        with opened, h5py.File(copy, "w") as out:
            found = h5check.read_layout(opened, h5check.max_links(self.layout))
            paths = h5check.compare(found, self.layout)
            h5check.copy_checked(opened, paths, self.h5, out)
        return copy


def _load_copy(model, copy, label, fix, received, strict):
    """Keras loads the checked `copy`; on any failure the model gets its weights back."""
    before = model.get_weights()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(copy)
        except ValueError as e:
            model.set_weights(before)
            raise InvalidValue(
                f"The weights of {label} do not fit this model ({e}). {fix} "
                f"Received: {received}"
            ) from None
    partial = [w for w in caught if any(s in str(w.message) for s in _PARTIAL_LOAD_MARKERS)]
    if partial and strict:
        model.set_weights(before)
        raise InvalidValue(
            f"The weights of {label} only partly fit this model: {partial[0].message} {fix} "
            f"Received: {received}"
        )
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def load_weights_strict(model, path, label, fix=PRESET_FIX):
    """Loads the `.weights.h5` file `path` into `model`; a partial fit is an error.

    `fix` ends the error message: what to do when the weights do not fit.
    """
    received = f"weights={path!r}"
    with tempfile.TemporaryDirectory(prefix="kerasae-weights-") as folder:
        with _Expected(model, folder) as expected:
            try:
                copy = expected.checked_copy(path, folder, label, received)
            except h5check.Refused as e:
                raise _refusal(e, label, fix, received) from None
        _load_copy(model, copy, label, fix, received, strict=True)


def load_archive_weights(model, archive, label, fix, received):
    """Loads the `model.weights.h5` member of the open `.keras` zip `archive` into
    `model` (built from the archive's config), checked as `load_weights_strict` does.

    The member's declared size is checked before anything is extracted. Keras's
    own warnings (an optimizer state it skips) pass through, as
    `keras.saving.load_model` lets them.
    """
    info = archive.getinfo(WEIGHTS_FILE)
    with tempfile.TemporaryDirectory(prefix="kerasae-weights-") as folder, \
            _Expected(model, folder) as expected:
        try:
            limit = h5check.file_budget(expected.layout, expected.bytes)
            if info.file_size > limit:
                raise InvalidValue(
                    f"The {WEIGHTS_FILE} inside {label} declares {info.file_size:,} bytes, but "
                    f"the weights of this model take at most {limit:,}; nothing was "
                    f"extracted. {_UNSAFE_FIX} Received: {received}"
                )
            # zipfile stops at the declared size, which was just bounded.
            source = io.BytesIO(archive.read(WEIGHTS_FILE))
            copy = expected.checked_copy(source, folder, label, received)
        except h5check.Refused as e:
            raise _refusal(e, label, fix, received) from None
        _load_copy(model, copy, label, fix, received, strict=False)


def load_preset_weights(model, preset):
    """Loads the verified `model.weights.h5` of `preset` into `model` (same builder only)."""
    if getattr(model, "builder_name", None) != preset.builder:
        raise InvalidValue(
            f"Preset {preset.name!r} holds weights for builder {preset.builder!r}, but the "
            f"model comes from {getattr(model, 'builder_name', None)!r}. Use "
            f"kerasae.zoo.load_model({preset.name!r}). Received: model={model.name!r}"
        )
    load_weights_strict(model, preset.file(WEIGHTS_FILE), preset.label)
    return model
