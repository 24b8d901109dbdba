"""`kerasae.export.export`: one call writes one deployment directory, checked and whole.

Stages, one module each: `graphs` (float32 inference parts, traced
signatures), `saved_model` (ExportArchive), `onnx` (encoder / decoder graphs),
`manifest` (description, references, hashes), `parity` (every runtime against
Keras). Files are written to a temporary directory beside `out_dir` and renamed
into place at the end, so a failed export leaves nothing behind.
"""

import datetime
import json
import os

import numpy as np

from kerasae._util.files import staged_directory
from kerasae.export import checks, graphs, manifest, parity
from kerasae.export.formats import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_OPSET,
    DEFAULT_TOLERANCE,
    FORMATS,
    MANIFEST,
    ONNX_FILES,
    REFERENCE,
    SAVED_MODEL,
)
from kerasae.export.onnx import write_onnx
from kerasae.export.saved_model import write_saved_model
from kerasae.models.resolve import resolve_model


def _source(model):
    """`(model, source info)` for a model object, a .keras path or a preset."""
    if not isinstance(model, (str, os.PathLike)):
        return model, {"kind": "object"}  # any model with encoder and decoder parts
    ref = resolve_model(model)
    if ref.source == "file":
        return ref.model, {"kind": "keras_file", "path": os.path.basename(ref.path),
                           "sha256": ref.file_sha256}
    return ref.model, {"kind": "preset", "preset": ref.preset}


def export(model, out_dir, *, formats=FORMATS, opset=DEFAULT_OPSET,
           autoencoder_onnx=False, metadata=None, value_range=(0.0, 1.0),
           reference_inputs=None, batch_sizes=DEFAULT_BATCH_SIZES,
           tolerance=DEFAULT_TOLERANCE, check=True, force=False):
    """Exports an autoencoder as a SavedModel and ONNX files with a manifest.

    Every exported graph is deterministic (a VAE encoder returns `z_mean` and
    `z_log_var`; `reconstruct` decodes `z_mean`); an export whose graph holds a
    random op is refused. Before the directory appears, the export is reloaded
    and compared with Keras on the reference inputs at each of `batch_sizes`.

    Args:
        model: a `kerasae.models.Autoencoder` (any model with `encoder` and
            `decoder` functional sub-models), the path of a `.keras` file, or a
            zoo preset name.
        out_dir: directory to create. It must not exist unless `force=True`.
        formats: any of `"saved_model"`, `"onnx"`. Defaults to both.
        opset: ONNX opset. Defaults to `18`.
        autoencoder_onnx: also write `autoencoder.onnx` (image -> reconstruction).
            Defaults to `False`.
        metadata: optional JSON-able dict of extra top-level manifest entries,
            also stored in every artifact, e.g.
            `{"anomaly": {"score": "mse", "threshold": 0.0123}}`. Defaults to `None`.
        value_range: `(low, high)` of the input pixels the model was trained on.
            Defaults to `(0.0, 1.0)`.
        reference_inputs: optional array `(n, *image_shape)` of real inputs,
            `n >= max(batch_sizes)`; the first `max(batch_sizes)` go into
            `reference.npz` and the parity check. Defaults to `None`: seeded
            uniform noise in `value_range`.
        batch_sizes: batch sizes of the parity check. Defaults to `(1, 7)`.
        tolerance: max error allowed between Keras and each reloaded runtime,
            where the error is `max |runtime - keras| / max(1, max |keras|)`
            per output tensor (absolute for values within [-1, 1], relative to the
            tensor's scale above). Defaults to `1e-5`.
        check: run the parity check. Defaults to `True`.
        force: replace an existing `out_dir`. Defaults to `False`.

    Returns:
        The manifest, as a dict (also written to `out_dir/manifest.json`).

    Raises:
        FileExistsError: `out_dir` exists and `force` is not set.
        ParityError: a runtime differs from Keras by more than `tolerance`.
        ExportError: the graph has ops ONNX cannot express, or random ops.

    Example:

    >>> import kerasae
    >>> model = kerasae.build("conv_ae", latent_dim=8, input_shape=(8, 8, 1))
    >>> manifest = kerasae.export.export(model, "/tmp/conv_ae_export", force=True)
    >>> sorted(manifest["signatures"])
    ['decode', 'encode', 'reconstruct']
    """
    formats = checks.check_formats(formats)
    opset = checks.check_opset(opset) if "onnx" in formats else None
    tolerance = checks.check_tolerance(tolerance)
    batch_sizes = checks.check_batch_sizes(batch_sizes)
    value_range = checks.check_value_range(value_range)
    extra = checks.check_metadata(metadata)
    out_dir = os.path.abspath(os.fspath(out_dir))
    checks.check_out_dir(out_dir, force)

    model, source = _source(model)
    parts = graphs.inference_parts(model)
    x_ref = manifest.reference_inputs(reference_inputs, parts, batch_sizes, value_range)
    meta = manifest.describe(model, parts, source, extra, formats, opset, value_range,
                             autoencoder_onnx)
    fns = graphs.endpoints(parts)
    traced = graphs.trace(fns, parts)  # also refuses random ops, before any file exists
    with staged_directory(out_dir, replace=force) as tmp:
        reference = manifest.keras_reference(fns, parts, x_ref, extra)
        np.savez(os.path.join(tmp, REFERENCE), **reference)
        meta["reference"] = manifest.reference_info(parts, reference, batch_sizes, tolerance)
        roles = ["encoder", "decoder"] + (["autoencoder"] if autoencoder_onnx else [])
        if "saved_model" in formats:
            write_saved_model(os.path.join(tmp, SAVED_MODEL), traced, parts, meta)
        if "onnx" in formats:
            for role in roles:
                write_onnx(os.path.join(tmp, ONNX_FILES[role]), role, parts, meta, opset)
        result = dict(meta)
        # Only in the manifest: the artifacts themselves carry no timestamp.
        result["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds")
        if check:
            result["parity"] = _parity(tmp, fns, parts, x_ref, formats, batch_sizes,
                                       tolerance, autoencoder_onnx)
        result["files"] = manifest.hash_files(tmp)
        with open(os.path.join(tmp, MANIFEST), "w") as f:
            json.dump(result, f, indent=2, sort_keys=False)
            f.write("\n")
    return result


def _parity(folder, fns, parts, x_ref, formats, batch_sizes, tolerance, autoencoder_onnx):
    runners = {}
    if "onnx" in formats:
        code_name = "z_mean" if parts.variational else "code"
        runners.update(parity.onnx_runners(folder, code_name, autoencoder_onnx))
    if "saved_model" in formats:
        runners.update(parity.saved_model_runners(folder))
    return parity.check_parity(runners, fns, parts, x_ref, batch_sizes, tolerance)
