"""What an export records: the manifest's description, reference tensors, file hashes."""

import json
import math
import os

import numpy as np
from keras import ops

from kerasae._util.errors import InvalidValue
from kerasae._util.files import sha256_file
from kerasae._util.versions import versions
from kerasae.export.formats import (
    FORMAT_VERSION,
    LITERT_FILES,
    LITERT_INT8_FILES,
    MANIFEST,
    ONNX_FILES,
    REFERENCE,
    SAVED_MODEL,
    SAVED_MODEL_METADATA,
)


def reference_inputs(reference_inputs, parts, batch_sizes, value_range):
    n = max(batch_sizes)
    if reference_inputs is None:
        # Seeded so that re-exports of one model carry identical references.
        rng = np.random.default_rng(0)
        x = rng.uniform(value_range[0], value_range[1], size=(n,) + parts.image_shape)
        return x.astype("float32")
    x = np.asarray(reference_inputs, dtype="float32")
    if x.shape[1:] != parts.image_shape or x.shape[0] < n:
        raise InvalidValue(
            f"reference_inputs must have shape (n, {', '.join(map(str, parts.image_shape))}) "
            f"with n >= {n} (the largest parity batch size). "
            f"Received: shape={x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise InvalidValue("reference_inputs contain NaN or infinity. Received: non-finite values")
    return np.ascontiguousarray(x[:n])


def to_numpy(structure):
    return {k: np.asarray(ops.convert_to_numpy(v), dtype="float32") for k, v in structure.items()}


def keras_reference(fns, parts, x, extra):
    codes = to_numpy(fns["encode"](x))
    code = codes["z_mean"] if parts.variational else codes["code"]
    recon = to_numpy(fns["decode"](code))["reconstruction"]
    arrays = {"image": x, **codes}
    arrays["code"] = code
    arrays["reconstruction"] = recon
    if "anomaly" in extra:
        axes = tuple(range(1, x.ndim))
        # In the model's scaled units where it scales its input (records, series).
        scale = np.asarray(extra["anomaly"].get("scale") or [1.0], dtype="float64")
        err = (x.astype("float64") - recon) / scale
        arrays["score"] = np.mean(err ** 2, axis=axes).astype("float32")
    return arrays


def reference_info(parts, arrays, batch_sizes, tolerance):
    encode_out = {name: name for name in parts.code_outputs}
    info = {
        "file": REFERENCE,
        "batch_sizes": list(batch_sizes),
        "tolerance": tolerance,
        "arrays": {k: list(v.shape) for k, v in arrays.items()},
        # signature -> {"inputs": {tensor name: array}, "outputs": {...}}
        "endpoints": {
            "encode": {"inputs": {"image": "image"}, "outputs": encode_out},
            "decode": {"inputs": {"code": "code"},
                       "outputs": {"reconstruction": "reconstruction"}},
            "reconstruct": {"inputs": {"image": "image"},
                            "outputs": {"reconstruction": "reconstruction"}},
        },
    }
    if "score" in arrays:
        info["score"] = "score"
    return info


def describe(model, parts, source, extra, formats, opset, value_range, autoencoder_onnx,
             quantize=None, scaled=None):
    shape = lambda s: [None] + [int(d) for d in s]  # noqa: E731
    encode_outputs = {name: shape(parts.code_shape) for name in parts.code_outputs}
    image = {"image": shape(parts.image_shape)}
    meta = {"format": "kerasae-export", "format_version": FORMAT_VERSION}
    meta.update({f"{k}_version": v for k, v in versions("keras", "tensorflow").items()
                 if k != "python"})
    if "onnx" in formats:
        found = versions("tf2onnx", "onnx")
        meta["tf2onnx_version"], meta["onnx_version"] = found["tf2onnx"], found["onnx"]
    meta["model"] = {
        "name": getattr(model, "name", None),
        "builder": getattr(model, "builder_name", None),
        "config": json.loads(json.dumps(getattr(model, "builder_config", None), default=str)),
        "variational": parts.variational,
        "reconstruction_loss": getattr(model, "reconstruction", None),
        "dtype_policy": parts.policy,
        "exported_dtype": "float32",
    }
    meta["source"] = source
    meta["input"] = {
        "name": "image", "shape": shape(parts.image_shape), "dtype": "float32",
        "layout": "channels_last (NHWC)" if len(parts.image_shape) == 3 else "as built",
        "value_range": value_range,
        "scaling": (f"pixels mapped linearly to [{value_range[0]:g}, {value_range[1]:g}]; "
                    "for 8-bit images: value = pixel / 255"
                    if value_range == [0.0, 1.0] else
                    f"pixels mapped linearly to [{value_range[0]:g}, {value_range[1]:g}]"),
    }
    if scaled is not None:  # records, series: raw values in, raw values out
        meta["input"].update(value_range=None, scaling=(
            f"raw values of any range; the model scales each feature itself ({scaled}: "
            "(x - center) / scale, fitted on the training data) and its reconstruction "
            "is in the raw units too"))
    meta["latent"] = {
        "name": "code", "shape": shape(parts.code_shape),
        "size": int(math.prod(parts.code_shape)),
        "variational": parts.variational,
        "encoder_outputs": parts.code_outputs,
        "decoder_input": "code" + (" (z_mean, or a sample z_mean + exp(z_log_var / 2) * eps)"
                                   if parts.variational else ""),
    }
    meta["output"] = {"name": "reconstruction", "shape": shape(parts.image_shape),
                      "dtype": "float32", "value_range": meta["input"]["value_range"]}
    meta["signatures"] = {
        "encode": {"inputs": image, "outputs": encode_outputs},
        "decode": {"inputs": {"code": shape(parts.code_shape)},
                   "outputs": {"reconstruction": shape(parts.image_shape)}},
        "reconstruct": {"inputs": image,
                        "outputs": {"reconstruction": shape(parts.image_shape)}},
    }
    artifacts = {}
    if "saved_model" in formats:
        artifacts["saved_model"] = {"path": SAVED_MODEL,
                                    "signatures": ["encode", "decode", "reconstruct"],
                                    "serving_default": "reconstruct",
                                    "metadata_asset": f"assets/{SAVED_MODEL_METADATA}"}
    if "onnx" in formats:
        roles = ["encoder", "decoder"] + (["autoencoder"] if autoencoder_onnx else [])
        artifacts["onnx"] = {role: ONNX_FILES[role] for role in roles}
        meta["onnx"] = {"opset": opset, "batch_dim": "batch",
                        "graphs": {"encoder": "encode", "decoder": "decode",
                                   "autoencoder": "reconstruct"}}
    if "litert" in formats:
        artifacts["litert"] = dict(LITERT_FILES)
        if quantize:
            artifacts["litert_int8"] = dict(LITERT_INT8_FILES)
    meta["artifacts"] = artifacts
    meta.update(extra)
    return meta


def hash_files(directory):
    """Returns `{path: {"sha256", "bytes"}}` for every file under `directory`.

    Paths are relative, with `/` separators, sorted; `manifest.json` is left out.
    """
    out = {}
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, directory).replace(os.sep, "/")
            if rel == MANIFEST:
                continue
            out[rel] = {"sha256": sha256_file(path), "bytes": os.path.getsize(path)}
    return dict(sorted(out.items()))
