"""Export an autoencoder for deployment: SavedModel, ONNX, metadata, parity check.

One call writes one directory:

```
out_dir/
  manifest.json        versions, builder + config, input/latent spec, sha256 of
                       every file, reference tensors, measured parity
  saved_model/         signatures `encode`, `decode`, `reconstruct`
                       (`serving_default` = `reconstruct`), dynamic batch
  encoder.onnx         image -> code (VAE: z_mean, z_log_var)
  decoder.onnx         code -> reconstruction
  autoencoder.onnx     image -> reconstruction (only with `autoencoder_onnx=True`)
  reference.npz        reference inputs and Keras outputs for conformance checks
```

Every exported graph is deterministic: a VAE encoder returns `z_mean` and
`z_log_var` and `reconstruct` decodes `z_mean`; an export whose graph holds a
random op is refused. Before the directory appears, the export is reloaded
(onnxruntime sessions and `tf.saved_model.load`) and compared with Keras on the
reference inputs at each of `batch_sizes`; it fails with the measured error when
the max error (absolute, relative above 1) exceeds `tolerance`. Files are written to a temporary
directory beside `out_dir` and renamed into place at the end, so a failed export
leaves nothing behind.

Example:

>>> import kerasae
>>> model = kerasae.build("conv_ae", latent_dim=8, input_shape=(8, 8, 1))
>>> manifest = kerasae.export.export(model, "/tmp/conv_ae_export", force=True)
>>> sorted(manifest["signatures"])
['decode', 'encode', 'reconstruct']
"""

import contextlib
import datetime
import json
import logging
import math
import os
import shutil
import tempfile

import numpy as np

from kerasae import _resolve
from kerasae._files import sha256_file

FORMATS = ("saved_model", "onnx")
DEFAULT_OPSET = 18
MIN_OPSET = 13
DEFAULT_TOLERANCE = 1e-5
DEFAULT_BATCH_SIZES = (1, 7)
MANIFEST = "manifest.json"
REFERENCE = "reference.npz"
SAVED_MODEL = "saved_model"
SAVED_MODEL_METADATA = "kerasae.json"
ONNX_FILES = {"encoder": "encoder.onnx", "decoder": "decoder.onnx",
              "autoencoder": "autoencoder.onnx"}
FORMAT_VERSION = 1
ANOMALY_SCORES = ("mse",)
# ONNX random generators plus any TensorFlow random op tf2onnx left unconverted.
RANDOM_ONNX_OPS = ("RandomNormal", "RandomNormalLike", "RandomUniform",
                   "RandomUniformLike", "Multinomial", "Bernoulli")
_RESERVED = {"format", "format_version", "kerasae_version", "keras_version",
             "tensorflow_version", "tf2onnx_version", "onnx_version", "created",
             "model", "source", "input", "latent", "output", "signatures", "artifacts",
             "onnx", "reference", "files", "parity", "role"}


class ExportError(RuntimeError):
    """The model cannot be exported as asked (unsupported or random ops)."""


class ParityError(ExportError):
    """A reloaded export differs from Keras by more than the tolerance."""

    def __init__(self, message, parity):
        super().__init__(message)
        self.parity = parity


# ------------------------------------------------------------------ public API
def export(model, out_dir, *, formats=FORMATS, opset=DEFAULT_OPSET,
           autoencoder_onnx=False, metadata=None, value_range=(0.0, 1.0),
           reference_inputs=None, batch_sizes=DEFAULT_BATCH_SIZES,
           tolerance=DEFAULT_TOLERANCE, check=True, force=False):
    """Exports an autoencoder as a SavedModel and ONNX files with a manifest.

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
    """
    formats = _check_formats(formats)
    opset = _check_opset(opset) if "onnx" in formats else None
    tolerance = _check_tolerance(tolerance)
    batch_sizes = _check_batch_sizes(batch_sizes)
    value_range = _check_value_range(value_range)
    extra = _check_metadata(metadata)
    out_dir = os.path.abspath(os.fspath(out_dir))
    _check_out_dir(out_dir, force)

    model, source = _resolve_model(model)
    parts = _inference_parts(model)
    x_ref = _reference_inputs(reference_inputs, parts, batch_sizes, value_range)
    meta = _describe(model, parts, source, extra, formats, opset, value_range,
                     autoencoder_onnx)

    fns = _endpoints(parts)
    graphs = _trace(fns, parts)  # also refuses random ops, before any file exists
    with _staging(out_dir, force) as tmp:
        reference = _keras_reference(fns, parts, x_ref, extra)
        np.savez(os.path.join(tmp, REFERENCE), **reference)
        meta["reference"] = _reference_info(parts, reference, batch_sizes, tolerance)
        if "saved_model" in formats:
            _write_saved_model(os.path.join(tmp, SAVED_MODEL), graphs, parts, meta)
        if "onnx" in formats:
            roles = ["encoder", "decoder"] + (["autoencoder"] if autoencoder_onnx else [])
            for role in roles:
                _write_onnx(os.path.join(tmp, ONNX_FILES[role]), role, graphs, parts,
                            meta, opset)
        manifest = dict(meta)
        # Only in the manifest: the artifacts themselves carry no timestamp.
        manifest["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds")
        if check:
            manifest["parity"] = _parity(tmp, fns, parts, x_ref, formats, batch_sizes,
                                         tolerance, autoencoder_onnx)
        manifest["files"] = hash_files(tmp)
        with open(os.path.join(tmp, MANIFEST), "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=False)
            f.write("\n")
    return manifest


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


# ------------------------------------------------------------------ validation
def _check_formats(formats):
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    formats = tuple(dict.fromkeys(formats))
    bad = [f for f in formats if f not in FORMATS]
    if not formats or bad:
        from kerasae.models.registry import unknown_name_error

        if bad:
            raise unknown_name_error("export format", bad[0], FORMATS, arg="formats")
        raise ValueError(
            f"Pick at least one export format of {', '.join(FORMATS)}. "
            f"Received: formats={formats!r}"
        )
    return formats


def _max_opset():
    from tf2onnx import constants

    return max(constants.OPSET_TO_IR_VERSION)


def _check_opset(opset):
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise TypeError(f"opset must be an int such as {DEFAULT_OPSET}. Received: opset={opset!r}")
    top = _max_opset()
    if not MIN_OPSET <= opset <= top:
        raise ValueError(
            f"ONNX opset {opset} is not supported: tf2onnx converts opsets "
            f"{MIN_OPSET}..{top} here. Use the default {DEFAULT_OPSET} unless a "
            f"runtime needs an older one. Received: opset={opset}"
        )
    return opset


def _check_tolerance(tolerance):
    try:
        value = float(tolerance)
    except (TypeError, ValueError):
        raise TypeError(f"tolerance must be a number. Received: tolerance={tolerance!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"tolerance must be a finite number >= 0. Received: tolerance={tolerance!r}")
    return value


def _check_batch_sizes(batch_sizes):
    sizes = tuple(batch_sizes) if isinstance(batch_sizes, (list, tuple)) else (batch_sizes,)
    if not sizes or any(isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1
                        for b in sizes):
        raise ValueError(
            "batch_sizes must be positive ints, e.g. (1, 7). "
            f"Received: batch_sizes={batch_sizes!r}"
        )
    return tuple(sorted({int(b) for b in sizes}))


def _check_value_range(value_range):
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"value_range must be (low, high), e.g. (0.0, 1.0). Received: value_range={value_range!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(
            f"value_range must be finite with low < high. Received: value_range={value_range!r}"
        )
    return [low, high]


def _check_metadata(metadata):
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise TypeError(
            "metadata must be a dict of JSON values, e.g. "
            "{'anomaly': {'score': 'mse', 'threshold': 0.0123}}. "
            f"Received: metadata={metadata!r}"
        )
    clash = sorted(set(metadata) & _RESERVED)
    if clash:
        raise ValueError(
            f"metadata key {clash[0]!r} is reserved for the manifest's own fields "
            f"({', '.join(sorted(_RESERVED))}); nest it under another key. "
            f"Received: metadata keys={sorted(metadata)}"
        )
    try:
        # allow_nan=False: NaN/Infinity are not JSON and break other parsers.
        extra = json.loads(json.dumps(metadata, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"metadata must be JSON-serializable ({e}). Received: metadata={metadata!r}"
        ) from None
    if "anomaly" in extra:
        extra["anomaly"] = _check_anomaly(extra["anomaly"])
    return extra


def _check_anomaly(block):
    if not isinstance(block, dict) or "threshold" not in block:
        raise ValueError(
            "metadata['anomaly'] must be a dict with a numeric 'threshold' (and "
            "'score': 'mse'), e.g. {'score': 'mse', 'threshold': 0.0123}. "
            f"Received: anomaly={block!r}"
        )
    score = block.get("score", "mse")
    if score not in ANOMALY_SCORES:
        raise ValueError(
            f"Unknown anomaly score {score!r}: the clients compute "
            f"{', '.join(ANOMALY_SCORES)} (mean squared error between an image and "
            f"its reconstruction). Received: score={score!r}"
        )
    threshold = block["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (
        math.isfinite(threshold)
    ):
        raise ValueError(
            f"The anomaly threshold must be a finite number. Received: threshold={threshold!r}"
        )
    return dict(block, score=score, threshold=float(threshold))


def _check_out_dir(out_dir, force):
    if os.path.lexists(out_dir) and not force:
        raise FileExistsError(
            f"Output path {out_dir!r} already exists. Pick a new directory, or pass "
            f"force=True (--force) to replace it. Received: out_dir={out_dir!r}"
        )
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(
            f"Output path {out_dir!r} exists and is not a directory; it is not "
            f"replaced even with force. Received: out_dir={out_dir!r}"
        )
    # Missing parent directories are created (as `mkdir -p`); a file in their place
    # is an error.
    parent = os.path.dirname(os.path.abspath(out_dir))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise NotADirectoryError(
            f"The output cannot be created below {parent!r}: it is a file, not a "
            f"directory. Pick another output path. Received: out_dir={out_dir!r}"
        )


# --------------------------------------------------------------------- sources
def _resolve_model(model):
    """Returns `(model, source info)` for a model object, a .keras path or a preset."""
    if not isinstance(model, (str, os.PathLike)):
        return model, {"kind": "object"}
    text = os.fspath(model)
    if _resolve.names_a_file(text):
        loaded = _resolve.load_keras_file(text)
        return loaded, {"kind": "keras_file", "path": os.path.basename(text),
                        "sha256": sha256_file(text)}
    # The zoo's own errors name the closest preset and list the valid ones.
    return _resolve.zoo_module(text).load_model(text), {"kind": "preset", "preset": text}


# --------------------------------------------------------------- model parts
class _Parts:
    """Float32 inference encoder/decoder plus what the export needs to know."""

    def __init__(self, encoder, decoder, variational, image_shape, code_shape,
                 policy, converted):
        self.encoder = encoder
        self.decoder = decoder
        self.variational = variational
        self.image_shape = image_shape
        self.code_shape = code_shape
        self.policy = policy
        self.converted = converted

    @property
    def code_outputs(self):
        return ["z_mean", "z_log_var"] if self.variational else ["code"]


def _inference_parts(model):
    import keras

    encoder = getattr(model, "encoder", None)
    decoder = getattr(model, "decoder", None)
    if not (isinstance(encoder, keras.Model) and isinstance(decoder, keras.Model)):
        raise TypeError(
            "export needs a kerasae autoencoder: a model with `encoder` and `decoder` "
            "sub-models, as returned by kerasae.build(...). "
            f"Received: model={type(model).__name__}"
        )
    if not getattr(model, "built", False) or not _has_inputs(encoder) or not _has_inputs(decoder):
        raise ValueError(
            f"Model {getattr(model, 'name', '?')!r} is not built: its encoder and "
            "decoder need known input shapes. Build it with a builder "
            "(kerasae.build(...)) or call it once on a batch before exporting. "
            f"Received: model.built={getattr(model, 'built', False)}"
        )
    outputs = encoder.outputs if isinstance(encoder.outputs, list) else [encoder.outputs]
    variational = bool(getattr(model, "variational", len(outputs) == 2))
    if variational and len(outputs) != 2:
        raise ValueError(
            "A variational encoder must return [z_mean, z_log_var]. "
            f"Received: {len(outputs)} encoder output(s)"
        )
    image_shape = tuple(encoder.inputs[0].shape[1:])
    code_shape = tuple(decoder.inputs[0].shape[1:])
    if any(d is None for d in image_shape + code_shape):
        raise ValueError(
            "Export needs fixed image and code shapes (only the batch axis may be "
            f"dynamic). Received: image_shape={image_shape}, code_shape={code_shape}"
        )
    policies = sorted({layer.dtype_policy.name for m in (encoder, decoder)
                       for layer in _all_layers(m)})
    mixed = [p for p in policies if p != "float32"]
    converted = False
    if mixed:
        # float16/bfloat16 graphs export poorly (Cast chains, no ORT CPU kernels
        # for some ops) and lose the 1e-5 parity; deployment gets float32.
        encoder, decoder = _float32_copy(encoder), _float32_copy(decoder)
        converted = True
    policy = mixed[0] if mixed else "float32"
    return _Parts(encoder, decoder, variational, image_shape, code_shape, policy, converted)


def _has_inputs(functional):
    try:
        return bool(functional.inputs)
    except (AttributeError, ValueError):
        return False


def _all_layers(model):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


def _float32_copy(functional):
    import keras

    def clone(layer):
        config = layer.get_config()
        if "dtype" in config:
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    with _float32_policy():
        copy = keras.models.clone_model(functional, clone_function=clone)
    copy.set_weights([np.asarray(w, dtype="float32") for w in functional.get_weights()])
    return copy


@contextlib.contextmanager
def _float32_policy():
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


# ----------------------------------------------------------------- references
def _reference_inputs(reference_inputs, parts, batch_sizes, value_range):
    n = max(batch_sizes)
    if reference_inputs is None:
        # Seeded so that re-exports of one model carry identical references.
        rng = np.random.default_rng(0)
        x = rng.uniform(value_range[0], value_range[1], size=(n,) + parts.image_shape)
        return x.astype("float32")
    x = np.asarray(reference_inputs, dtype="float32")
    if x.shape[1:] != parts.image_shape or x.shape[0] < n:
        raise ValueError(
            f"reference_inputs must have shape (n, {', '.join(map(str, parts.image_shape))}) "
            f"with n >= {n} (the largest parity batch size). "
            f"Received: shape={x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("reference_inputs contain NaN or infinity. Received: non-finite values")
    return np.ascontiguousarray(x[:n])


def _endpoints(parts):
    """The three signatures as Python functions of named tensors -> dicts."""
    encoder, decoder, variational = parts.encoder, parts.decoder, parts.variational

    def encode(image):
        out = encoder(image, training=False)
        if variational:
            return {"z_mean": out[0], "z_log_var": out[1]}
        return {"code": out}

    def decode(code):
        return {"reconstruction": decoder(code, training=False)}

    def reconstruct(image):
        out = encoder(image, training=False)
        # A VAE decodes the mean: deterministic, no sampler in the graph.
        return decode(out[0] if variational else out)

    return {"encode": encode, "decode": decode, "reconstruct": reconstruct}


def _numpy(structure):
    from keras import ops

    return {k: np.asarray(ops.convert_to_numpy(v), dtype="float32") for k, v in structure.items()}


def _keras_reference(fns, parts, x, extra):
    codes = _numpy(fns["encode"](x))
    code = codes["z_mean"] if parts.variational else codes["code"]
    recon = _numpy(fns["decode"](code))["reconstruction"]
    arrays = {"image": x, **codes}
    arrays["code"] = code
    arrays["reconstruction"] = recon
    if "anomaly" in extra:
        axes = tuple(range(1, x.ndim))
        arrays["score"] = np.mean((x - recon) ** 2, axis=axes).astype("float32")
    return arrays


def _reference_info(parts, arrays, batch_sizes, tolerance):
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


# ------------------------------------------------------------------- metadata
def _versions():
    import keras
    import tensorflow as tf

    import kerasae

    return {"kerasae_version": kerasae.__version__, "keras_version": keras.__version__,
            "tensorflow_version": tf.__version__}


def _describe(model, parts, source, extra, formats, opset, value_range, autoencoder_onnx):
    shape = lambda s: [None] + [int(d) for d in s]  # noqa: E731
    encode_outputs = {name: shape(parts.code_shape) for name in parts.code_outputs}
    image = {"image": shape(parts.image_shape)}
    meta = {"format": "kerasae-export", "format_version": FORMAT_VERSION}
    meta.update(_versions())
    if "onnx" in formats:
        import onnx
        import tf2onnx

        meta["tf2onnx_version"] = tf2onnx.__version__
        meta["onnx_version"] = onnx.__version__
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
    meta["latent"] = {
        "name": "code", "shape": shape(parts.code_shape),
        "size": int(math.prod(parts.code_shape)),
        "variational": parts.variational,
        "encoder_outputs": parts.code_outputs,
        "decoder_input": "code" + (" (z_mean, or a sample z_mean + exp(z_log_var / 2) * eps)"
                                   if parts.variational else ""),
    }
    meta["output"] = {"name": "reconstruction", "shape": shape(parts.image_shape),
                      "dtype": "float32", "value_range": value_range}
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
    meta["artifacts"] = artifacts
    meta.update(extra)
    return meta


# ------------------------------------------------------------------ SavedModel
def _specs(parts, signature):
    import tensorflow as tf

    image = tf.TensorSpec((None,) + parts.image_shape, tf.float32, name="image")
    code = tf.TensorSpec((None,) + parts.code_shape, tf.float32, name="code")
    return [code] if signature == "decode" else [image]


def _trace(fns, parts):
    """`tf.function`s of the three signatures, traced and checked for random ops."""
    import tensorflow as tf

    graphs = {}
    for name, fn in fns.items():
        function = tf.function(fn, input_signature=_specs(parts, name), autograph=False)
        graph_def = function.get_concrete_function().graph.as_graph_def()
        nodes = list(graph_def.node)
        for library_fn in graph_def.library.function:
            nodes.extend(library_fn.node_def)
        random = sorted({(n.op, n.name) for n in nodes if _is_random_op(n.op)})
        if random:
            raise ExportError(
                f"The {name!r} signature contains random ops at inference: "
                f"{_describe_nodes(random)}. Exported graphs must be deterministic: "
                "draw noise only when training (keras layers take `training`), and "
                "give a sampler its noise as an explicit input. "
                f"Received: op_types={sorted({op for op, _ in random})}"
            )
        graphs[name] = function
    return graphs


def _is_random_op(op_type):
    return any(word in op_type for word in ("Random", "Multinomial", "TruncatedNormal",
                                            "Bernoulli"))


def _write_saved_model(path, graphs, parts, meta):
    import tensorflow as tf

    module = tf.Module()
    module.encoder = parts.encoder
    module.decoder = parts.decoder
    text = json.dumps(meta, indent=2)
    asset_dir = tempfile.mkdtemp(prefix="kerasae-asset-")
    try:
        asset = os.path.join(asset_dir, SAVED_MODEL_METADATA)
        with open(asset, "w") as f:
            f.write(text + "\n")
        module.kerasae_metadata = tf.Variable(text, trainable=False, dtype=tf.string,
                                              name="kerasae_metadata")
        module.kerasae_metadata_file = tf.saved_model.Asset(asset)
        signatures = {}
        for name, function in graphs.items():
            setattr(module, name, function)
            signatures[name] = function.get_concrete_function()
        signatures["serving_default"] = signatures["reconstruct"]
        try:
            tf.saved_model.save(module, path, signatures=signatures)
        except Exception as e:  # noqa: BLE001 - re-raised with context
            raise ExportError(
                f"Writing the SavedModel failed: {type(e).__name__}: {e}. Every layer "
                "must run in a tf.function (keras.ops only). "
                f"Received: model={meta['model']['name']!r}"
            ) from e
    finally:
        shutil.rmtree(asset_dir, ignore_errors=True)


# ------------------------------------------------------------------------ ONNX
_ROLE_SIGNATURE = {"encoder": "encode", "decoder": "decode", "autoencoder": "reconstruct"}


@contextlib.contextmanager
def _quiet_tf2onnx():
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _write_onnx(path, role, graphs, parts, meta, opset):
    import onnx

    signature = _ROLE_SIGNATURE[role]
    specs = _specs(parts, signature)
    function = graphs[signature]
    with _quiet_tf2onnx():
        import tf2onnx

        try:
            from keras.src.export.tf2onnx_lib import patch_tf2onnx
        except ImportError:  # private Keras API; tf2onnx mostly works without it
            patch_tf2onnx = None
        if patch_tf2onnx is not None:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # its np.object probe
                patch_tf2onnx()  # numpy 2 fixes, as keras.Model.export(format="onnx") does
        try:
            proto, _ = tf2onnx.convert.from_function(function, input_signature=specs,
                                                     opset=opset)
        except Exception as e:  # noqa: BLE001 - re-raised with context
            raise ExportError(
                f"tf2onnx could not convert the {role} ({type(e).__name__}: {e}). "
                f"Received: role={role!r}, opset={opset}"
            ) from e
    outputs = list(meta["signatures"][signature]["outputs"])
    _check_graph(proto, role)
    _finish_graph(proto, role, outputs, meta)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:  # noqa: BLE001 - onnx raises several types
        raise ExportError(
            f"The exported {role} graph fails onnx.checker ({e}). Received: role={role!r}"
        ) from e
    onnx.save(proto, path)


def _check_graph(proto, role):
    import onnx

    nodes = _all_nodes(proto.graph)
    random = sorted({(n.op_type, n.name) for n in nodes
                     if n.op_type in RANDOM_ONNX_OPS or _is_random_op(n.op_type)}, key=str)
    if random:
        raise ExportError(
            f"The {role} graph contains random ops at inference: "
            f"{_describe_nodes(random)}. Exported graphs must be deterministic: draw "
            "noise only when training (keras layers take `training`), and give a "
            "sampler its noise as an explicit input. "
            f"Received: op_types={sorted({t for t, _ in random})}"
        )
    unsupported = sorted({(n.op_type, n.name) for n in nodes
                          if not onnx.defs.has(n.op_type, n.domain or "")}, key=str)
    if unsupported:
        raise ExportError(
            f"The {role} uses operations that ONNX cannot express: "
            f"{_describe_nodes(unsupported)}. Replace the layer that produces them, or "
            "export with formats=('saved_model',). "
            f"Received: op_types={sorted({t for t, _ in unsupported})}"
        )


def _all_nodes(graph):
    out = []
    for node in graph.node:
        out.append(node)
        for attr in node.attribute:
            if attr.g is not None and attr.g.node:
                out.extend(_all_nodes(attr.g))
            for g in attr.graphs:
                out.extend(_all_nodes(g))
    return out


def _describe_nodes(pairs, limit=4):
    shown = [f"{op} (node {name!r})" for op, name in pairs[:limit]]
    more = f" and {len(pairs) - limit} more" if len(pairs) > limit else ""
    return ", ".join(shown) + more


def _finish_graph(proto, role, output_order, meta):
    """Orders outputs, names the batch axis `batch`, stores the metadata."""
    graph = proto.graph
    by_name = {o.name: o for o in graph.output}
    missing = [n for n in output_order if n not in by_name]
    if missing or len(by_name) != len(output_order):
        raise ExportError(
            f"The {role} graph has outputs {sorted(by_name)}; expected {output_order}. "
            f"Received: role={role!r}"
        )
    ordered = [by_name[n] for n in output_order]
    del graph.output[:]
    graph.output.extend(ordered)
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = "batch"
    graph.name = f"kerasae_{role}"
    graph.doc_string = "converted by tf2onnx"  # not the traced function's numbered name
    proto.doc_string = (f"kerasae {role} of {meta['model']['name']!r} "
                        f"({meta['model']['builder']}); see metadata_props['kerasae'].")
    del proto.metadata_props[:]
    entries = {"kerasae": json.dumps(dict(meta, role=role)), "role": role,
               "signature": _ROLE_SIGNATURE[role]}
    for key in meta:
        if key not in _RESERVED:  # user metadata, e.g. "anomaly", for quick access
            entries[key] = json.dumps(meta[key])
    for key, value in entries.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value


# ---------------------------------------------------------------------- parity
def _ort_session(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _max_error(got, want):
    """max |got - want| / max(1, max |want|): absolute for tensors within [-1, 1],
    relative to the tensor's largest magnitude above.

    float32 rounding grows with the magnitude of the values summed: a code unit
    of a conv encoder is a dot product over thousands of activations, and a unit
    that lands near zero by cancellation carries the rounding of its large terms.
    The tensor's scale tracks that, an element's own value does not, so a fixed
    absolute bound (or one relative per element) fails correct exports of large
    activations; pixels in [0, 1] are held to the absolute bound.
    """
    got, want = np.asarray(got, dtype="float64"), np.asarray(want, dtype="float64")
    if got.shape != want.shape:
        return float("inf")
    if got.size == 0:
        return 0.0
    error = np.abs(got - want) / max(1.0, float(np.max(np.abs(want))))
    return float("nan") if np.isnan(error).any() else float(error.max())


def _parity(tmp, fns, parts, x_ref, formats, batch_sizes, tolerance, autoencoder_onnx):
    """Max error per runtime and signature, over `batch_sizes`."""
    code_name = "z_mean" if parts.variational else "code"
    runners = {}
    if "onnx" in formats:
        enc = _ort_session(os.path.join(tmp, ONNX_FILES["encoder"]))
        dec = _ort_session(os.path.join(tmp, ONNX_FILES["decoder"]))

        def run(session, feeds):
            names = [o.name for o in session.get_outputs()]
            return dict(zip(names, session.run(names, feeds)))

        def onnx_reconstruct(image):
            return run(dec, {"code": run(enc, {"image": image})[code_name]})

        runners["onnx"] = {
            "encode": lambda image: run(enc, {"image": image}),
            "decode": lambda code: run(dec, {"code": code}),
            "reconstruct": onnx_reconstruct,
        }
        if autoencoder_onnx:
            full = _ort_session(os.path.join(tmp, ONNX_FILES["autoencoder"]))
            runners["onnx_autoencoder"] = {
                "reconstruct": lambda image: run(full, {"image": image})}
    if "saved_model" in formats:
        import tensorflow as tf

        loaded = tf.saved_model.load(os.path.join(tmp, SAVED_MODEL))
        sigs = {name: loaded.signatures[name] for name in fns}

        def sm(name, arg):
            return lambda value: {k: v.numpy() for k, v in
                                  sigs[name](**{arg: tf.constant(value)}).items()}

        runners["saved_model"] = {"encode": sm("encode", "image"),
                                  "decode": sm("decode", "code"),
                                  "reconstruct": sm("reconstruct", "image")}
    results = {runtime: {} for runtime in runners}
    worst = []
    for b in batch_sizes:
        x = x_ref[:b]
        want = {"encode": _numpy(fns["encode"](x))}
        code = want["encode"][code_name]
        want["decode"] = _numpy(fns["decode"](code))
        want["reconstruct"] = _numpy(fns["reconstruct"](x))
        feeds = {"encode": x, "decode": code, "reconstruct": x}
        for runtime, table in runners.items():
            for name, fn in table.items():
                got = fn(feeds[name])
                for out, ref in want[name].items():
                    d = _max_error(got.get(out), ref) if out in got else float("inf")
                    key = f"{name}/{out}"
                    prev = results[runtime].get(key)
                    results[runtime][key] = d if prev is None or not d <= prev else prev
                    if not d <= tolerance:  # also catches NaN
                        worst.append((runtime, key, b, d))
    overall = max((v for r in results.values() for v in r.values()), default=0.0)
    reference = "keras (float32 copy of the mixed-precision model)" if parts.converted else "keras"
    parity = {"reference": reference, "tolerance": tolerance, "batch_sizes": list(batch_sizes),
              "max_error": results, "max": overall, "passed": not worst}
    if worst:
        lines = "; ".join(f"{r} {k} at batch {b}: {d:.3g}" for r, k, b, d in worst[:6])
        raise ParityError(
            f"Export parity check failed: reloaded exports differ from Keras by more "
            f"than the tolerance ({lines}). Nothing was written. Check for layers that "
            f"behave differently in graph mode, or raise the tolerance if the error is "
            f"expected. Received: tolerance={tolerance}",
            parity,
        )
    return parity


# ---------------------------------------------------------------------- output
@contextlib.contextmanager
def _staging(out_dir, force):
    """Yields a temp dir beside `out_dir`; on success renames it into place."""
    parent, base = os.path.split(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide it from a server's user
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        if os.path.lexists(out_dir):
            if not force:  # appeared while we were exporting
                raise FileExistsError(
                    f"Output path {out_dir!r} appeared during the export; not replaced. "
                    f"Received: out_dir={out_dir!r}"
                )
            old = tempfile.mkdtemp(prefix=f".{base}.old.tmp-", dir=parent)
            os.rmdir(old)
            os.rename(out_dir, old)
            try:
                os.rename(tmp, out_dir)
            except BaseException:
                os.rename(old, out_dir)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ------------------------------------------------------------------------- CLI
def add_cli(subparsers):
    """Registers `kerasae export SOURCE OUT_DIR ...`."""
    p = subparsers.add_parser(
        "export", help="export a model to SavedModel + ONNX with a manifest",
        description="Export an autoencoder (a .keras file or a zoo preset name) to one "
        "directory: saved_model/ (signatures encode, decode, reconstruct), encoder.onnx, "
        "decoder.onnx, reference.npz and manifest.json. The export is reloaded and "
        "compared with Keras before it is written.",
    )
    p.add_argument("source", help="path of a .keras file, or a zoo preset name")
    p.add_argument("out_dir", help="directory to create")
    p.add_argument("--formats", default=",".join(FORMATS),
                   help="comma-separated subset of saved_model,onnx (default: both)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset (default: {DEFAULT_OPSET})")
    p.add_argument("--autoencoder", action="store_true",
                   help="also write autoencoder.onnx (image -> reconstruction)")
    p.add_argument("--metadata", default=None, metavar="JSON|@FILE",
                   help="extra manifest entries as JSON, or @file.json; e.g. "
                   "'{\"anomaly\": {\"score\": \"mse\", \"threshold\": 0.0123}}'")
    p.add_argument("--reference", default=None, metavar="FILE.npy",
                   help="reference inputs (.npy, or .npz with an 'image' array)")
    p.add_argument("--value-range", default="0,1", metavar="LOW,HIGH",
                   help="input value range (default: 0,1)")
    p.add_argument("--batch-sizes", default=",".join(map(str, DEFAULT_BATCH_SIZES)),
                   help="parity-check batch sizes (default: 1,7)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="max |runtime - keras| / max(1, max |keras|) per output (default: "
                        f"{DEFAULT_TOLERANCE:g})")
    p.add_argument("--no-check", action="store_true", help="skip the parity check")
    p.add_argument("--force", action="store_true", help="replace an existing OUT_DIR")
    p.set_defaults(func=_cli_export)


def _cli_list(text, name, convert):
    try:
        return [convert(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--{name} takes comma-separated numbers. Received: {name}={text!r}") from None


def _cli_metadata(text):
    if text is None:
        return None
    if text.startswith("@"):
        with open(text[1:]) as f:
            text = f.read()
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError(f"--metadata is not valid JSON ({e}). Received: metadata={text!r}") from None


def _cli_reference(path):
    if path is None:
        return None
    if not os.path.exists(path):
        raise FileNotFoundError(f"Reference file {path!r} does not exist. Received: reference={path!r}")
    data = np.load(path, allow_pickle=False)
    if isinstance(data, np.lib.npyio.NpzFile):
        if "image" not in data:
            raise ValueError(f"{path!r} has no 'image' array. Received: arrays={list(data)}")
        return data["image"]
    return data


def _cli_export(args):
    import sys

    try:
        manifest = export(
            args.source, args.out_dir, formats=args.formats, opset=args.opset,
            autoencoder_onnx=args.autoencoder, metadata=_cli_metadata(args.metadata),
            value_range=_cli_list(args.value_range, "value-range", float),
            reference_inputs=_cli_reference(args.reference),
            batch_sizes=_cli_list(args.batch_sizes, "batch-sizes", int),
            tolerance=args.tolerance, check=not args.no_check, force=args.force,
        )
    except (FileExistsError, ExportError) as e:
        print(f"kerasae export: error: {e}", file=sys.stderr)
        return 2
    print(f"exported {manifest['model']['name']} to {os.path.abspath(args.out_dir)}")
    for rel, info in manifest["files"].items():
        print(f"  {rel:48s} {info['bytes']:>10d}  sha256 {info['sha256'][:16]}...")
    parity = manifest.get("parity")
    if parity:
        print(f"parity vs Keras at batch sizes {parity['batch_sizes']}: max error "
              f"{parity['max']:.3g} (tolerance {parity['tolerance']:g})")
    return 0
