"""The SavedModel stage: one `keras.export.ExportArchive` with three signatures.

`encode`, `decode` and `reconstruct` (also `serving_default`, the first endpoint
registered), a dynamic batch axis, and the export's metadata twice: as the
string variable collection `kerasae_metadata` (one variable) and as the file
`assets/kerasae.json`.
"""

import json
import os

import keras
import tensorflow as tf

from kerasae.export.formats import SAVED_MODEL_METADATA, ExportError

# `reconstruct` first: ExportArchive serves its first endpoint as `serving_default`.
SIGNATURES = ("reconstruct", "encode", "decode")


def write_saved_model(path, graphs, parts, meta):
    """Writes the SavedModel of the traced `graphs` (see `kerasae.export.graphs.trace`)."""
    text = json.dumps(meta, indent=2)
    archive = keras.export.ExportArchive()
    archive.track(parts.encoder)
    archive.track(parts.decoder)
    for name in SIGNATURES:
        archive.add_endpoint(name, graphs[name])  # traced already: no input_signature
    archive.add_variable_collection(
        "kerasae_metadata",
        [tf.Variable(text, trainable=False, dtype=tf.string, name="kerasae_metadata")])
    try:
        archive.write_out(path, verbose=False)
    except (OSError, tf.errors.OpError):
        raise  # the file system's own failure (a full disk, EIO): said as it is
    except Exception as e:  # noqa: BLE001 - re-raised with context
        raise ExportError(
            f"Writing the SavedModel failed: {type(e).__name__}: {e}. Every layer "
            "must run in a tf.function (keras.ops only). "
            f"Received: model={meta['model']['name']!r}"
        ) from e
    assets = os.path.join(path, "assets")
    os.makedirs(assets, exist_ok=True)
    with open(os.path.join(assets, SAVED_MODEL_METADATA), "w") as f:
        f.write(text + "\n")
