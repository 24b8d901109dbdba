"""Checks of `kerasae.export.export`'s arguments, before any work is done."""

import json
import math
import os

import numpy as np

from kerasae._util.errors import InvalidType, InvalidValue, PathExists
from kerasae._util.files import PathBusy, check_writable, writer_of
from kerasae._util.names import unknown_name_error
from kerasae.export.formats import (ANOMALY_SCORES, DEFAULT_OPSET, FORMATS, MANIFEST, MIN_OPSET,
                                    QUANTIZE, RESERVED)


def check_quantize(quantize, formats):
    """`None` or a LiteRT scheme of `QUANTIZE`; only with the `litert` format."""
    if quantize in (None, False, "none"):
        return None
    if quantize not in QUANTIZE:
        raise unknown_name_error("quantization", quantize, QUANTIZE, arg="quantize")
    if "litert" not in formats:
        raise InvalidValue(
            f"quantize={quantize!r} makes int8 LiteRT files: add 'litert' to the formats "
            f"(--formats saved_model,onnx,litert). Received: formats={formats!r}"
        )
    return quantize


def check_formats(formats):
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    formats = tuple(dict.fromkeys(formats))
    bad = [f for f in formats if f not in FORMATS]
    if not formats or bad:
        if bad:
            raise unknown_name_error("export format", bad[0], FORMATS, arg="formats")
        raise InvalidValue(
            f"Pick at least one export format of {', '.join(FORMATS)}. "
            f"Received: formats={formats!r}"
        )
    return formats


def _max_opset():
    from tf2onnx import constants

    return max(constants.OPSET_TO_IR_VERSION)


def check_opset(opset):
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise InvalidType(f"opset must be an int such as {DEFAULT_OPSET}. Received: opset={opset!r}")
    top = _max_opset()
    if not MIN_OPSET <= opset <= top:
        raise InvalidValue(
            f"ONNX opset {opset} is not supported: tf2onnx converts opsets "
            f"{MIN_OPSET}..{top} here. Use the default {DEFAULT_OPSET} unless a "
            f"runtime needs an older one. Received: opset={opset}"
        )
    return opset


def check_tolerance(tolerance):
    try:
        value = float(tolerance)
    except (TypeError, ValueError):
        raise InvalidType(f"tolerance must be a number. Received: tolerance={tolerance!r}") from None
    if not math.isfinite(value) or value < 0:
        raise InvalidValue(f"tolerance must be a finite number >= 0. Received: tolerance={tolerance!r}")
    return value


def check_batch_sizes(batch_sizes):
    sizes = tuple(batch_sizes) if isinstance(batch_sizes, (list, tuple)) else (batch_sizes,)
    if not sizes or any(isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1
                        for b in sizes):
        raise InvalidValue(
            "batch_sizes must be positive ints, e.g. (1, 7). "
            f"Received: batch_sizes={batch_sizes!r}"
        )
    return tuple(sorted({int(b) for b in sizes}))


def check_value_range(value_range):
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise InvalidValue(
            f"value_range must be (low, high), e.g. (0.0, 1.0). Received: value_range={value_range!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise InvalidValue(
            f"value_range must be finite with low < high. Received: value_range={value_range!r}"
        )
    return [low, high]


def check_metadata(metadata):
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidType(
            "metadata must be a dict of JSON values, e.g. "
            "{'anomaly': {'score': 'mse', 'threshold': 0.0123}}. "
            f"Received: metadata={metadata!r}"
        )
    clash = sorted(set(metadata) & RESERVED)
    if clash:
        raise InvalidValue(
            f"metadata key {clash[0]!r} is reserved for the manifest's own fields "
            f"({', '.join(sorted(RESERVED))}); nest it under another key. "
            f"Received: metadata keys={sorted(metadata)}"
        )
    try:
        # allow_nan=False: NaN/Infinity are not JSON and break other parsers.
        extra = json.loads(json.dumps(metadata, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise InvalidType(
            f"metadata must be JSON-serializable ({e}). Received: metadata={metadata!r}"
        ) from None
    if "anomaly" in extra:
        extra["anomaly"] = check_anomaly(extra["anomaly"])
    return extra


def check_anomaly(block):
    if not isinstance(block, dict) or "threshold" not in block:
        raise InvalidValue(
            "metadata['anomaly'] must be a dict with a numeric 'threshold' (and "
            "'score': 'mse'), e.g. {'score': 'mse', 'threshold': 0.0123}. "
            f"Received: anomaly={block!r}"
        )
    score = block.get("score", "mse")
    if score not in ANOMALY_SCORES:
        raise InvalidValue(
            f"Unknown anomaly score {score!r}: the clients compute "
            f"{', '.join(ANOMALY_SCORES)} (mean squared error between an image and "
            f"its reconstruction). Received: score={score!r}"
        )
    threshold = block["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (
        math.isfinite(threshold)
    ):
        raise InvalidValue(
            f"The anomaly threshold must be a finite number. Received: threshold={threshold!r}"
        )
    scale = block.get("scale")
    if scale is not None and (not isinstance(scale, (list, tuple)) or not scale or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and v > 0 for v in scale)):
        raise InvalidValue(
            "metadata['anomaly']['scale'] is the model's scale per input feature (the last "
            "axis): positive finite numbers, by which the clients divide the error before "
            f"squaring it. Received: scale={scale!r}"[:400]
        )
    out = dict(block, score=score, threshold=float(threshold))
    if scale is not None:
        out["scale"] = [float(v) for v in scale]
    return out


def is_export(folder):
    """Whether `folder` holds a kerasae export (its `manifest.json` says so)."""
    try:
        with open(os.path.join(folder, MANIFEST)) as f:
            return json.load(f).get("format") == "kerasae-export"
    except (OSError, ValueError, AttributeError):
        return False


def check_out_dir(out_dir, force):
    """`out_dir` may be created, or replaced with `force` if it is an export or empty.

    Anything else (a training run, the folder of the source model, your files) is
    refused even with `force`, and nothing is touched; so is a folder that another
    export is writing now (its staging folder, beside it, names a live process).
    """
    writer = writer_of(out_dir)
    if writer is not None:
        raise PathBusy(
            f"Another export (pid {writer}) is writing {out_dir!r} now. Wait for it to end, "
            f"then pick another output folder, or pass force=True (--force) to replace its "
            f"result. Received: out_dir={out_dir!r}"
        )
    if os.path.lexists(out_dir) and not force:
        raise PathExists(
            f"Output path {out_dir!r} already exists. Pick a new directory, or pass "
            f"force=True (--force) to replace an earlier export. Received: out_dir={out_dir!r}"
        )
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise PathExists(
            f"Output path {out_dir!r} exists and is not a directory; it is not "
            f"replaced even with force. Received: out_dir={out_dir!r}"
        )
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not is_export(out_dir):
        held = ", ".join(sorted(os.listdir(out_dir))[:4])
        raise PathExists(
            f"{out_dir!r} is not a kerasae export (it has no {MANIFEST}; it holds {held}...), "
            f"so it is not replaced even with force: force replaces only an earlier export "
            f"or an empty folder. Pick another output folder. Received: out_dir={out_dir!r}"
        )
    # Missing parent directories are created (as `mkdir -p`); a file in their place
    # is an error, and so is a parent kerasae cannot write to.
    check_writable(out_dir, "The export folder")
