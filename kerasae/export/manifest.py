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


# The sizes a model of any height and width is checked at, when no reference inputs
# are given: one a multiple of 8, one odd on both axes (padded inside, cropped back).
OPEN_SIZES = ((64, 64), (45, 71))


def _fits(shape, image_shape):
    return len(shape) == len(image_shape) and all(
        want is None or got == want for got, want in zip(shape, image_shape))


def reference_inputs(reference_inputs, parts, batch_sizes, value_range):
    """The parity inputs: an array `(n,) + image_shape`; for a model of any size, a list
    of such arrays, one per size (`OPEN_SIZES`, or the given ones)."""
    n = max(batch_sizes)
    if reference_inputs is None:
        # Seeded so that re-exports of one model carry identical references.
        rng = np.random.default_rng(0)
        sizes = OPEN_SIZES if parts.open_size else [parts.image_shape[:-1]]
        xs = [rng.uniform(value_range[0], value_range[1],
                          size=(n,) + tuple(size) + parts.image_shape[-1:]).astype("float32")
              for size in sizes]
        return xs if parts.open_size else xs[0]
    given = list(reference_inputs) if parts.open_size and isinstance(
        reference_inputs, (list, tuple)) else [reference_inputs]
    xs = [_checked_reference(x, parts, n) for x in given]
    return xs if parts.open_size else xs[0]


def _checked_reference(x, parts, n):
    x = np.asarray(x, dtype="float32")
    if not _fits(x.shape[1:], parts.image_shape) or x.shape[0] < n:
        want = ", ".join("any" if d is None else str(d) for d in parts.image_shape)
        more = (" (a model of any size: one array, or a list of arrays of several sizes)"
                if parts.open_size else "")
        raise InvalidValue(
            f"reference_inputs must have shape (n, {want}) with n >= {n} (the largest "
            f"parity batch size){more}. Received: shape={x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise InvalidValue("reference_inputs contain NaN or infinity. Received: non-finite values")
    return np.ascontiguousarray(x[:n])


def size_key(x):
    """`"HxW"`: the name of an image size in the reference file of a model of any size."""
    return f"{x.shape[1]}x{x.shape[2]}"


def to_numpy(structure):
    return {k: np.asarray(ops.convert_to_numpy(v), dtype="float32") for k, v in structure.items()}


def keras_reference(fns, parts, x, extra):
    """The reference arrays: Keras's outputs on the parity inputs `x` (a list of arrays of
    several sizes for a model of any size: the first under the plain names, the others
    with their size appended, e.g. `image_45x71`)."""
    if not parts.open_size:
        return _arrays(fns, parts, x, extra, "")
    arrays = {}
    for i, xi in enumerate(x):
        arrays.update(_arrays(fns, parts, xi, extra, "" if i == 0 else "_" + size_key(xi)))
    return arrays


def _arrays(fns, parts, x, extra, suffix):
    codes = to_numpy(fns["encode"](x))
    code = codes["z_mean"] if parts.variational else codes["code"]
    decoded = to_numpy(fns["decode"](code))["reconstruction"]
    recon = to_numpy(fns["reconstruct"](x))["reconstruction"] if parts.open_size else decoded
    arrays = {"image": x, **codes}
    arrays["code"] = code
    if parts.open_size:  # the padded grid the decoder returns; reconstruct crops it
        arrays["decoded"] = decoded
    arrays["reconstruction"] = recon
    if "anomaly" in extra:
        axes = tuple(range(1, x.ndim))
        # In the model's scaled units where it scales its input (records, series).
        scale = np.asarray(extra["anomaly"].get("scale") or [1.0], dtype="float64")
        err = (x.astype("float64") - recon) / scale
        arrays["score"] = np.mean(err ** 2, axis=axes).astype("float32")
    return {name + suffix: value for name, value in arrays.items()}


def _endpoints(parts, suffix=""):
    """signature -> {"inputs": {tensor name: array}, "outputs": {...}}"""
    n = lambda name: name + suffix  # noqa: E731
    return {
        "encode": {"inputs": {"image": n("image")},
                   "outputs": {name: n(name) for name in parts.code_outputs}},
        "decode": {"inputs": {"code": n("code")}, "outputs": {
            "reconstruction": n("decoded" if parts.open_size else "reconstruction")}},
        "reconstruct": {"inputs": {"image": n("image")},
                        "outputs": {"reconstruction": n("reconstruction")}},
    }


def reference_info(parts, arrays, batch_sizes, tolerance):
    info = {
        "file": REFERENCE,
        "batch_sizes": list(batch_sizes),
        "tolerance": tolerance,
        "arrays": {k: list(v.shape) for k, v in arrays.items()},
        "endpoints": _endpoints(parts),
    }
    if parts.open_size:
        # Further sizes of a model of any size, each with its arrays (the first size is
        # `endpoints`): a client checks every one.
        info["sizes"] = [list(arrays["image"].shape[1:3])]
        info["more_sizes"] = []
        for name, value in arrays.items():
            if name.startswith("image_"):
                suffix = name[len("image"):]
                info["sizes"].append(list(value.shape[1:3]))
                info["more_sizes"].append({"size": list(value.shape[1:3]),
                                           "endpoints": _endpoints(parts, suffix)})
    if "score" in arrays:
        info["score"] = "score"
    return info


def describe(model, parts, source, extra, formats, opset, value_range, autoencoder_onnx,
             quantize=None, scaled=None):
    shape = lambda s: [None] + [None if d is None else int(d) for d in s]  # noqa: E731
    encode_outputs = {name: shape(parts.code_shape) for name in parts.code_outputs}
    image = {"image": shape(parts.image_shape)}
    meta = {"format": "kerasae-export", "format_version": FORMAT_VERSION}
    meta.update({f"{k}_version": v for k, v in versions("keras", "tensorflow").items()
                 if k != "python"})
    if "onnx" in formats:
        found = versions("tf2onnx", "onnx")
        meta["tf2onnx_version"], meta["onnx_version"] = found["tf2onnx"], found["onnx"]
    meta["model"] = {
        # a preset's name where the model is one (the Keras model is named by its builder)
        "name": source.get("preset") or getattr(model, "name", None),
        "keras_name": getattr(model, "name", None),
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
    if parts.open_size:
        meta["input"]["size"] = _any_size(getattr(model, "factor", None))
    meta["latent"] = {
        "name": "code", "shape": shape(parts.code_shape),
        "size": None if parts.open_size else int(math.prod(parts.code_shape)),
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


def _any_size(f):
    """The manifest's words for a model of any size whose code cell is `f` pixels."""
    return "any height and width (and batch)" + (
        f": the encoder pads them to multiples of {f} (repeated edge pixels), the code grid "
        f"is ceil(H / {f}) x ceil(W / {f}), `decode` returns {f} times the code's size (the "
        "padded grid) and `reconstruct` crops it back to the input's size; the ONNX decoder "
        "and the LiteRT decoder return the padded grid too: crop it to the input's height "
        "and width" if f else "")


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
