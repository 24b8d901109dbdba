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
import shutil

import numpy as np

from kerasae._util.backend import require_tensorflow_backend
from kerasae._util.errors import InvalidValue
from kerasae._util.files import staged_directory
from kerasae.export import checks, graphs, litert, manifest, parity
from kerasae.export.formats import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_FORMATS,
    DEFAULT_OPSET,
    DEFAULT_TOLERANCE,
    LITERT_INT8_FILES,
    MANIFEST,
    ONNX_FILES,
    REFERENCE,
    SAVED_MODEL,
)
from kerasae.export.litert_graph import litert_parts
from kerasae.export.onnx import write_onnx
from kerasae.export.samples import quantization_images
from kerasae.export.saved_model import write_saved_model
from kerasae.models import scaling
from kerasae.models.resolve import ModelRef, resolve_model
from kerasae.models.start import start_recipe


def _resolve(model):
    """`(ModelRef or None, model)`: a .keras path or a preset is resolved once, and its
    `ModelRef` serves the manifest and the int8 calibration too."""
    if not isinstance(model, (str, os.PathLike, ModelRef)):
        return None, model  # any model with encoder and decoder parts
    ref = resolve_model(model)
    return ref, ref.model


def _tolerance(ref, model):
    """The parity tolerance of the recipe of the preset the model is or starts from
    (`export_tolerance`; a copy made by `at_size` keeps it), else the default."""
    if ref is not None and ref.preset is not None:
        return ref.preset.metadata()["recipe"].get("export_tolerance", DEFAULT_TOLERANCE)
    return start_recipe(model).get("export_tolerance", DEFAULT_TOLERANCE)


def export(model, out_dir, *, formats=DEFAULT_FORMATS, opset=DEFAULT_OPSET,
           autoencoder_onnx=False, metadata=None, value_range=(0.0, 1.0),
           reference_inputs=None, batch_sizes=DEFAULT_BATCH_SIZES,
           tolerance=None, check=True, force=False, quantize=None,
           representative=None, quality_images=None, int8_tolerance=None):
    """Exports an autoencoder as a SavedModel, ONNX and LiteRT files with a manifest.

    Every exported graph is deterministic (a VAE encoder returns `z_mean` and
    `z_log_var`; `reconstruct` decodes `z_mean`); an export whose graph holds a
    random op is refused. Before the directory appears, the export is reloaded
    and compared with Keras on the reference inputs at each of `batch_sizes`.

    Args:
        model: a `kerasae.models.Autoencoder` (any model with `encoder` and
            `decoder` functional sub-models), the path of a `.keras` file, a
            zoo preset name, or a `kerasae.models.resolve.ModelRef` of one.
        out_dir: directory to create. It must not exist unless `force=True`.
        formats: any of `"saved_model"`, `"onnx"`, `"litert"` (`encoder.tflite`,
            `decoder.tflite`; see `kerasae.export.litert`). Defaults to
            `("saved_model", "onnx")`.
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
            tensor's scale above). Defaults to `None`: the preset's own
            (`recipe.export_tolerance` in its metadata: `tae_flux2`'s is 1e-4, a deep
            model whose float32 sums differ more between runtimes), else `1e-5`.
        check: run the parity check. Defaults to `True`.
        force: replace an existing `out_dir`. Defaults to `False`.
        quantize: `None`, `"int8"` or `"int8-full"`: also write
            `encoder.int8.tflite` and `decoder.int8.tflite` (see
            `kerasae.export.litert`), with their size and quality loss in the
            manifest. Needs `"litert"` in `formats`. Defaults to `None`.
        representative: real images to calibrate int8 on: an array or a dataset;
            `None` is the model's training data where it is known (a preset, a
            training run). See `kerasae.export.samples`.
        quality_images: real images the int8 loss is measured on. Defaults to
            `None` (see `kerasae.export.samples`).
        int8_tolerance: max error of the int8 files against Keras, for every output,
            checked on real images. Defaults to `None`: per output, 1.5x the largest
            error of one image measured on the quality images (the manifest states
            the rule and the values); `tolerance` applies to the float files only.

    Returns:
        The manifest, as a dict (also written to `out_dir/manifest.json`).

    Raises:
        FileExistsError: `out_dir` exists and `force` is not set (or appeared meanwhile).
        BlockingIOError: another export is writing `out_dir` now (its pid is named).
        OSError: the disk filled up (`errno.ENOSPC`); nothing was written.
        ParityError: a runtime differs from Keras by more than `tolerance`.
        ExportError: the graph has ops ONNX cannot express, or random ops.

    Example:

    >>> import kerasae
    >>> model = kerasae.build("conv_ae", latent_dim=8, input_shape=(8, 8, 1))
    >>> manifest = kerasae.export.export(model, "/tmp/conv_ae_export", force=True)
    >>> sorted(manifest["signatures"])
    ['decode', 'encode', 'reconstruct']
    """
    require_tensorflow_backend("kerasae.export.export")
    formats = checks.check_formats(formats)
    quantize = checks.check_quantize(quantize, formats)
    if not quantize and (representative is not None or quality_images is not None
                         or int8_tolerance is not None):
        raise InvalidValue(
            "representative=, quality_images= and int8_tolerance= are for an int8 export: "
            "add quantize='int8' (--quantize int8) and 'litert' to the formats. Received: "
            "quantize=None"
        )
    opset = checks.check_opset(opset) if "onnx" in formats else None
    tolerance = None if tolerance is None else checks.check_tolerance(tolerance)
    if int8_tolerance is not None:
        int8_tolerance = checks.check_tolerance(int8_tolerance)
    batch_sizes = checks.check_batch_sizes(batch_sizes)
    value_range = checks.check_value_range(value_range)
    extra = checks.check_metadata(metadata)
    out_dir = os.path.abspath(os.fspath(out_dir))
    checks.check_out_dir(out_dir, force)

    ref, model = _resolve(model)
    tolerance = _tolerance(ref, model) if tolerance is None else tolerance
    source = ref.manifest_source() if ref is not None else {"kind": "object"}
    parts = graphs.inference_parts(model)
    if quantize and parts.open_size:
        raise InvalidValue(
            "An int8 export calibrates at one image size, and this model takes any size: "
            "export a copy of fixed size, e.g. kerasae.models.resolve.resolve_model(model)"
            ".at_size((H, W, C)). Received: "
            f"image_shape={parts.image_shape}, quantize={quantize!r}")
    extra, reference_inputs = _scaled(model, parts, extra, reference_inputs, batch_sizes)
    x_ref = manifest.reference_inputs(reference_inputs, parts, batch_sizes, value_range)
    meta = manifest.describe(model, parts, source, extra, formats, opset, value_range,
                             autoencoder_onnx, quantize, scaled=scaling.scale_kind(model))
    samples = (quantization_images(representative, quality_images, ref, parts)
               if quantize else None)
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
        lite = _litert(tmp, traced, fns, parts, meta, formats, quantize, samples,
                       int8_tolerance)
        result = dict(meta)
        if lite is not None:
            result["litert"] = lite
        # Only in the manifest: the artifacts themselves carry no timestamp.
        result["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds")
        if check:
            result["parity"] = _parity(tmp, fns, parts, x_ref, formats, batch_sizes,
                                       tolerance, autoencoder_onnx)
            if quantize:
                # On real images (given references, else the measured ones): int8 files
                # are calibrated for images, not for the default noise references.
                x_int8 = x_ref if reference_inputs is not None else samples[1]
                int8 = litert.runners(tmp, parts.code_outputs[0], LITERT_INT8_FILES,
                                      "litert_int8")
                result["parity"]["litert_int8"] = parity.check_parity(
                    int8, fns, parts, x_int8, batch_sizes, lite["int8"]["tolerance"])
                result["parity"]["litert_int8"]["inputs"] = (
                    "the reference inputs" if reference_inputs is not None else
                    f"the quality images ({samples[2]['quality']})")
        result["files"] = manifest.hash_files(tmp)
        with open(os.path.join(tmp, MANIFEST), "w") as f:
            json.dump(result, f, indent=2, sort_keys=False)
            f.write("\n")
    return result


def _litert(folder, traced, fns, parts, meta, formats, quantize, samples,
            int8_tolerance=None):
    """The LiteRT files (from the export's SavedModel, or a temporary one) and their entry."""
    if "litert" not in formats:
        return None
    lite_parts, rewritten = litert_parts(parts)
    saved = os.path.join(folder, SAVED_MODEL)
    temporary = "saved_model" not in formats or lite_parts is not parts
    if temporary:
        if lite_parts is not parts:
            traced = graphs.trace(graphs.endpoints(lite_parts), lite_parts)
        saved = os.path.join(folder, ".litert-saved-model")
        write_saved_model(saved, traced, lite_parts, meta)
    try:
        info = litert.write_litert(folder, saved, fns, parts, quantize,
                                   samples[0] if samples else None)
    finally:
        if temporary:
            shutil.rmtree(saved, ignore_errors=True)
    if any(rewritten.values()):
        info["transposed_convolutions"] = {
            "rewritten": rewritten,
            "as": "zero insertion (RESHAPE, PAD) + padding + stride-1 CONV_2D, the same "
                  "function: TRANSPOSE_CONV with a dynamic batch gives wrong outputs under "
                  "LiteRT's XNNPACK delegate on resized inputs (kerasae.export.litert_graph)"}
    if quantize:
        calibration, quality, notes = samples
        info["int8"].update(litert.measure_int8(folder, fns, parts, quality, notes["quality"],
                                                given=int8_tolerance),
                            latency_ms_batch_1=litert.latency(folder, parts, quality[:1]),
                            calibration={"images": int(len(calibration)),
                                         "source": notes["calibration"]})
    return info


def _parity(folder, fns, parts, x_ref, formats, batch_sizes, tolerance, autoencoder_onnx):
    runners = {}
    if "litert" in formats:
        runners.update(litert.runners(folder, parts.code_outputs[0]))
    if "onnx" in formats:
        code_name = "z_mean" if parts.variational else "code"
        runners.update(parity.onnx_runners(folder, code_name, autoencoder_onnx))
    if "saved_model" in formats:
        runners.update(parity.saved_model_runners(folder))
    return parity.check_parity(runners, fns, parts, x_ref, batch_sizes, tolerance)


def _scaled(model, parts, extra, reference_inputs, batch_sizes):
    """For a model that scales its input (records, series): the anomaly block's scale
    (the model's own unless given, checked against the input's last axis), and, unless
    given, reference inputs drawn on the data's own scale (its centre and spread)."""
    scaler, _ = scaling.scalers(model)
    if scaler is None:
        return extra, reference_inputs
    spread, center = scaler.scale.numpy(), scaler.center.numpy()
    block = extra.get("anomaly")
    if block is not None:
        block = dict(block, scale=block.get("scale") or [float(v) for v in spread])
        if len(block["scale"]) != parts.image_shape[-1]:
            raise InvalidValue(
                f"metadata['anomaly']['scale'] needs one value per input feature "
                f"({parts.image_shape[-1]}). Received: {len(block['scale'])} values")
        extra = dict(extra, anomaly=block)
    if reference_inputs is None:  # seeded, so re-exports carry identical references
        rng = np.random.default_rng(0)
        noise = rng.standard_normal((max(batch_sizes),) + tuple(parts.image_shape))
        reference_inputs = (center + spread * noise).astype("float32")
    return extra, reference_inputs
