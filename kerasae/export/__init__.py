"""Export an autoencoder for deployment: SavedModel, ONNX, a manifest, a parity check.

One stage per module: `formats` (what a directory holds; light), `checks`
(arguments), `graphs` (inference parts, traced signatures), `saved_model`,
`onnx`, `manifest`, `parity`, and `bundle` (`export`, which runs them). Names
load on first use, so the command line reads the formats without TensorFlow.
"""

from kerasae._util import lazy as _lazy

__getattr__, __dir__ = _lazy.exports(__name__, {
    "DEFAULT_BATCH_SIZES": "kerasae.export.formats:DEFAULT_BATCH_SIZES",
    "DEFAULT_OPSET": "kerasae.export.formats:DEFAULT_OPSET",
    "DEFAULT_TOLERANCE": "kerasae.export.formats:DEFAULT_TOLERANCE",
    "ExportError": "kerasae.export.formats:ExportError",
    "FORMATS": "kerasae.export.formats:FORMATS",
    "MANIFEST": "kerasae.export.formats:MANIFEST",
    "ONNX_FILES": "kerasae.export.formats:ONNX_FILES",
    "ParityError": "kerasae.export.formats:ParityError",
    "REFERENCE": "kerasae.export.formats:REFERENCE",
    "SAVED_MODEL": "kerasae.export.formats:SAVED_MODEL",
    "export": "kerasae.export.bundle:export",
    "hash_files": "kerasae.export.manifest:hash_files",
})

__all__ = ["DEFAULT_BATCH_SIZES", "DEFAULT_OPSET", "DEFAULT_TOLERANCE", "ExportError",
           "FORMATS", "MANIFEST", "ONNX_FILES", "ParityError", "REFERENCE", "SAVED_MODEL",
           "export", "hash_files"]
