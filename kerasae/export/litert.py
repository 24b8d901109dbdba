"""The LiteRT stage: `encoder.tflite` and `decoder.tflite`, float, and int8 on request.

Each file is converted from a SavedModel signature (`encode`, `decode`:
deterministic, a VAE encoder returns `z_mean` and `z_log_var`; transposed
convolutions and nearest upsampling rewritten as `kerasae.export.litert_graph`
says) in a subprocess (`kerasae.export.litert_convert`), with built-in ops only,
float32 inputs and outputs, and a dynamic batch axis (the interpreter resizes the
input).
The files are run in the LiteRT interpreter of `ai-edge-litert` (`tf.lite`'s own
is deprecated in TF 2.20+) for the parity check and the int8 measurements.

`quantize="int8"`: int8 weights everywhere; int8 activations in the encoder and
int16 activations in the decoder (8-bit decoder activations cost 0.6 dB PSNR on
the conv AE preset, 16-bit ones 0.01 dB, for 15 KB more). `"int8-full"`: 8-bit
activations in both, for integer-only accelerators. Both are calibrated on real
images and measured on other real images, image by image; the int8 parity
tolerance follows from that measurement.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from kerasae._util.errors import InvalidValue, MissingDependency
from kerasae._util.quiet import held_stderr
from kerasae.export.formats import LITERT_FILES, LITERT_INT8_FILES, ROLE_SIGNATURE, ExportError
from kerasae.export.manifest import to_numpy
from kerasae.export.parity import cropped, max_error
from kerasae.metrics import psnr

ROLE_INPUT = {"encoder": "image", "decoder": "code"}
SCHEMES = {"int8": {"encoder": "int8", "decoder": "int16x8"},
           "int8-full": {"encoder": "int8", "decoder": "int8"}}
CALIBRATION_IMAGES = 500
QUALITY_IMAGES = 1000
TOLERANCE_MARGIN = 1.5  # int8 parity tolerance = margin x the largest measured error
MIN_TOLERANCE = 1e-5


def interpreter_class():
    """`ai_edge_litert`'s `Interpreter`, or a clear error naming the install command."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        raise MissingDependency(
            f"LiteRT exports are run and checked in the LiteRT interpreter ({e}). Install "
            "it with: pip install 'kerasae[litert]' (ai-edge-litert)"
        ) from e
    return Interpreter


def _convert(jobs, tmp):
    """Runs the converter once for every `(role, out, scheme, representative)` in `jobs`."""
    path = os.path.join(tmp, "jobs.json")
    with open(path, "w") as f:
        json.dump([{"saved_model": saved, "signature": ROLE_SIGNATURE[role], "out": out,
                    "scheme": scheme, "representative": rep, "input": ROLE_INPUT[role]}
                   for saved, role, out, scheme, rep in jobs], f)
    proc = subprocess.run([sys.executable, "-m", "kerasae.export.litert_convert", path],
                          capture_output=True, text=True, timeout=3600)
    missing = [out for _, _, out, _, _ in jobs if not os.path.isfile(out)]
    if proc.returncode or missing:
        why = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        if "16x8-bit not yet supported" in why:  # the int8 scheme's 16-bit decoder
            raise ExportError(
                f"Converting to LiteRT failed: {why}. The 'int8' scheme's 16-bit "
                "activations have no LiteRT kernel for these ops (GroupNorm's, for one): "
                "export with quantize='int8-full' (--quantize int8-full, 8-bit "
                "throughout) or without quantize. Received: quantize='int8'")
        raise ExportError(
            f"Converting to LiteRT failed: {why}. LiteRT exports use built-in ops only; "
            f"export with formats=('saved_model', 'onnx') for layers outside them. "
            f"Received: formats including 'litert'"
        )


def ops_of(path):
    """The op names of a `.tflite` file, sorted."""
    interpreter = interpreter_class()(model_path=path)
    return sorted({d["op_name"] for d in interpreter._get_ops_details()})


class _Runner:
    """A signature runner whose first call (where LiteRT applies its CPU delegate and
    prints a note about it) runs with stderr held."""

    def __init__(self, runner):
        self._runner = runner
        self._first = True

    def __call__(self, **inputs):
        if self._first:
            self._first = False
            with held_stderr():
                return self._runner(**inputs)
        return self._runner(**inputs)


def signature_runner(path, signature, num_threads=None):
    """The signature runner of a `.tflite` file (LiteRT's delegate note held off stderr)."""
    cls = interpreter_class()
    with held_stderr():  # with num_threads the delegate is made here already
        interpreter = cls(model_path=path, num_threads=num_threads)
    return _Runner(interpreter.get_signature_runner(signature))


def _check_ops(path, role):
    ops = ops_of(path)
    foreign = [op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")]
    if foreign:
        raise ExportError(
            f"The LiteRT {role} holds ops outside LiteRT's built-in set: {foreign}. "
            f"Received: ops={ops}"
        )
    return ops


def write_litert(folder, saved_model, fns, parts, quantize=None, calibration=None):
    """Writes the float (and, with `quantize`, int8) `.tflite` files into `folder`;
    returns their manifest entry (ops, files, converter, interpreter)."""
    import tensorflow as tf

    interpreter_class()  # fail before converting when the interpreter is missing
    info = {"converter": f"tf.lite.TFLiteConverter (TensorFlow {tf.__version__}), built-in "
                         "ops only, in a subprocess",
            "interpreter": f"ai_edge_litert {_litert_version()}",
            "batch": ("dynamic batch, height and width" if parts.open_size else "dynamic") +
                     ": resize the input tensor (signature runners do it themselves)",
            "io": "float32 inputs and outputs", "files": dict(LITERT_FILES), "ops": {}}
    with tempfile.TemporaryDirectory(prefix="kerasae-litert-") as tmp:
        jobs = [(saved_model, role, os.path.join(folder, name), "float", None)
                for role, name in LITERT_FILES.items()]
        if quantize:
            code = to_numpy(fns["encode"](calibration))[parts.code_outputs[0]]
            for role, data in (("encoder", calibration), ("decoder", code)):
                rep = os.path.join(tmp, f"{role}.npy")
                np.save(rep, np.asarray(data, dtype="float32"), allow_pickle=False)
                jobs.append((saved_model, role, os.path.join(folder, LITERT_INT8_FILES[role]),
                             SCHEMES[quantize][role], rep))
        _convert(jobs, tmp)
        for _, role, out, scheme, _ in jobs:
            info["ops"][role if scheme == "float" else f"{role}_int8"] = _check_ops(out, role)
        if quantize:
            info["int8"] = {"scheme": quantize, "files": dict(LITERT_INT8_FILES),
                            "activations": SCHEMES[quantize],
                            "weights": "int8 (dense layers per tensor, convolutions per "
                                       "channel), int32 biases"}
    return info


def _litert_version():
    try:
        from importlib.metadata import version

        return version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - only informative
        return "unknown"


def runners(folder, code_name, files=LITERT_FILES, name="litert"):
    """`{name: {signature: fn(array) -> {output: array}}}` of a pair of `.tflite` files."""
    enc = signature_runner(os.path.join(folder, files["encoder"]), "encode")
    dec = signature_runner(os.path.join(folder, files["decoder"]), "decode")
    return {name: {"encode": lambda image: enc(image=image),
                   "decode": lambda code: dec(code=code),
                   "reconstruct": lambda image: cropped(
                       dec(code=enc(image=image)[code_name]), image)}}


def measure_int8(folder, fns, parts, images, note, chunk=250, given=None):
    """Quality of the int8 files against Keras and the float files on real `images`,
    and the parity tolerance that follows from it (`given`: the user's, for every output)."""
    code_name = parts.code_outputs[0]
    floats = runners(folder, code_name)["litert"]
    int8 = runners(folder, code_name, LITERT_INT8_FILES, "litert_int8")["litert_int8"]
    worst = {}  # "signature/output" -> largest error of one image

    def track(key, got, want):
        worst[key] = float(np.max([worst.get(key, 0.0), _worst_image(got, want)]))  # NaN stays

    chunks_of = {"keras": [], "litert": [], "litert_int8": []}  # reconstructions, by chunk
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk]
        want_codes = to_numpy(fns["encode"](x))
        code = want_codes[code_name]
        # (`reconstruct` is `decode` of the deterministic code: one Keras pass serves both)
        keras_x = to_numpy(fns["decode"](code))["reconstruction"]
        got_codes = int8["encode"](x)
        for out, ref in want_codes.items():
            track(f"encode/{out}", got_codes[out], ref)
        track("decode/reconstruction", int8["decode"](code)["reconstruction"], keras_x)
        chunks_of["keras"].append(keras_x)
        chunks_of["litert"].append(floats["reconstruct"](x)["reconstruction"])
        chunks_of["litert_int8"].append(int8["decode"](got_codes[code_name])["reconstruction"])
    recon = {k: np.concatenate([np.asarray(v, dtype="float32") for v in chunks])
             for k, chunks in chunks_of.items()}
    keras = recon["keras"]
    mse = {k: float(np.mean((v.astype("float64") - images) ** 2)) for k, v in recon.items()}
    track("reconstruct/reconstruction", recon["litert_int8"], keras)
    tolerance = {k: max(float(f"{TOLERANCE_MARGIN * v:.2g}"), MIN_TOLERANCE)
                 if given is None else float(given) for k, v in worst.items()}
    rule = (f"per output, {TOLERANCE_MARGIN} x the largest error of one image "
            f"(max |int8 - keras| / max(1, max |keras|)) measured on those images, at least "
            f"{MIN_TOLERANCE:g}" if given is None else
            f"given: {float(given):g} for every output (int8_tolerance=, --int8-tolerance)")
    sizes = {kind: sum(os.path.getsize(os.path.join(folder, f)) for f in files.values())
             for kind, files in (("float", LITERT_FILES), ("int8", LITERT_INT8_FILES))}
    keras_mse = mse["keras"]
    return {
        "quality": {"images": int(len(images)), "source": note,
                    "psnr_db": {"keras": psnr(keras_mse), "litert_float": psnr(mse["litert"]),
                                "litert_int8": psnr(mse["litert_int8"])},
                    "mse": {"keras": keras_mse, "litert_float": mse["litert"],
                            "litert_int8": mse["litert_int8"]},
                    "psnr_loss_db": psnr(keras_mse) - psnr(mse["litert_int8"]),
                    "int8_vs_keras_mse": float(np.mean((recon["litert_int8"] - keras) ** 2))},
        "bytes": sizes, "size_ratio": sizes["int8"] / sizes["float"],
        "tolerance": tolerance,
        "tolerance_rule": rule + "; the parity check runs on real images too",
        "max_error_measured": worst,
    }


def latency(folder, parts, image, repeats=15):
    """Median ms of one call at batch 1 of each float and int8 file, interleaved (the
    manifest's figure; `kerasae.benchmarks.export_latency` measures more carefully)."""
    code_name = parts.code_outputs[0]
    calls = {}
    for kind, files in (("float", LITERT_FILES), ("int8", LITERT_INT8_FILES)):
        run = runners(folder, code_name, files, kind)[kind]
        code = run["encode"](image)[code_name]
        calls[("encoder", kind)] = lambda run=run: run["encode"](image)
        calls[("decoder", kind)] = lambda run=run, code=code: run["decode"](code)
    times = {key: [] for key in calls}
    for _ in range(repeats):
        for key, call in calls.items():
            start = time.perf_counter()
            call()
            times[key].append(1e3 * (time.perf_counter() - start))
    return {part: {kind: round(float(np.median(times[(part, kind)])), 3)
                   for kind in ("float", "int8")} for part in ("encoder", "decoder")}


def _worst_image(got, want):
    """The largest `max_error` of one image of the batch. `max_error` scales by the
    largest reference value of what it is given, so a batch's figure is never above its
    worst image's: this bounds the parity check at every batch size (batch 1 included)
    on these images, where the figure of a whole chunk would not."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return float("inf")
    return float(np.max([max_error(g, w) for g, w in zip(got, want)]))


def as_images(data, parts, what):
    """Real images for calibration or measurement: float32 `(n,) + image_shape` in [0, 1]."""
    x = np.asarray(data)
    x = x.astype("float32") / 255.0 if x.dtype == np.uint8 else x.astype("float32")
    if x.ndim == len(parts.image_shape) and tuple(x.shape[1:]) == parts.image_shape[:-1]:
        x = x[..., None]
    if tuple(x.shape[1:]) != tuple(parts.image_shape) or len(x) == 0 or \
            not math.isfinite(float(x.sum())):
        raise InvalidValue(
            f"The {what} must be finite images of shape (n, "
            f"{', '.join(map(str, parts.image_shape))}). Received: shape={x.shape}"
        )
    return x
