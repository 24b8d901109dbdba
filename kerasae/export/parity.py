"""The parity check: every reloaded runtime against Keras, at several batch sizes.

The export is reloaded (onnxruntime sessions, `tf.saved_model.load`) and
compared with the Keras model on the reference inputs; the export fails with
the measured error when it exceeds the tolerance.
"""

import os

import numpy as np
import tensorflow as tf

from kerasae.export.formats import ONNX_FILES, SAVED_MODEL, ParityError
from kerasae.export.manifest import to_numpy


def _ort_session(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def max_error(got, want):
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


def cropped(outputs, image):
    """`outputs` with its `reconstruction` cut to the height and width of `image`: the
    decoder of a model of any size returns the padded grid (no-op for fixed sizes)."""
    recon = outputs.get("reconstruction")
    if recon is None or np.ndim(image) != 4 or np.ndim(recon) != 4:
        return outputs
    return dict(outputs, reconstruction=recon[:, :image.shape[1], :image.shape[2]])


def _run(session, feeds):
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def onnx_runners(folder, code_name, autoencoder_onnx):
    """`{runtime: {signature: fn(array) -> {output: array}}}` of the ONNX graphs."""
    enc = _ort_session(os.path.join(folder, ONNX_FILES["encoder"]))
    dec = _ort_session(os.path.join(folder, ONNX_FILES["decoder"]))
    runners = {"onnx": {
        "encode": lambda image: _run(enc, {"image": image}),
        "decode": lambda code: _run(dec, {"code": code}),
        "reconstruct": lambda image: cropped(
            _run(dec, {"code": _run(enc, {"image": image})[code_name]}), image),
    }}
    if autoencoder_onnx:
        full = _ort_session(os.path.join(folder, ONNX_FILES["autoencoder"]))
        runners["onnx_autoencoder"] = {"reconstruct": lambda image: _run(full, {"image": image})}
    return runners


def saved_model_runners(folder):
    """The three signatures of the reloaded SavedModel, as parity runners."""
    loaded = tf.saved_model.load(os.path.join(folder, SAVED_MODEL))

    def signature(name, arg):
        fn = loaded.signatures[name]
        return lambda value: {k: v.numpy() for k, v in fn(**{arg: tf.constant(value)}).items()}

    return {"saved_model": {"encode": signature("encode", "image"),
                            "decode": signature("decode", "code"),
                            "reconstruct": signature("reconstruct", "image")}}


def _compare(runners, fns, x, code_name, results, worst, tolerance, batch):
    want = {"encode": to_numpy(fns["encode"](x))}
    code = want["encode"][code_name]
    want["decode"] = to_numpy(fns["decode"](code))
    want["reconstruct"] = to_numpy(fns["reconstruct"](x))
    feeds = {"encode": x, "decode": code, "reconstruct": x}
    for runtime, table in runners.items():
        for name, fn in table.items():
            got = fn(feeds[name])
            for out, ref in want[name].items():
                d = max_error(got.get(out), ref) if out in got else float("inf")
                key = f"{name}/{out}"
                prev = results[runtime].get(key)
                results[runtime][key] = d if prev is None or not d <= prev else prev
                limit = tolerance[key] if isinstance(tolerance, dict) else tolerance
                if not d <= limit:  # also catches NaN
                    worst.append((runtime, key, batch, d))


def check_parity(runners, fns, parts, x_ref, batch_sizes, tolerance):
    """Max error per runtime and signature over `batch_sizes`; `ParityError` above `tolerance`.

    `runners` is `{runtime: {signature: fn}}` (see `onnx_runners`,
    `saved_model_runners`); `fns` are the Keras signatures they are checked against.
    `tolerance` is one number, or `{"signature/output": number}` (int8 files).
    """
    code_name = "z_mean" if parts.variational else "code"
    results = {runtime: {} for runtime in runners}
    worst = []
    xs = x_ref if isinstance(x_ref, list) else [x_ref]  # several sizes: a model of any size
    for x in xs:
        for b in batch_sizes:
            where = f"{b}, size {x.shape[1]}x{x.shape[2]}" if len(xs) > 1 else b
            _compare(runners, fns, x[:b], code_name, results, worst, tolerance, where)
    overall = max((v for r in results.values() for v in r.values()), default=0.0)
    reference = "keras (float32 copy of the mixed-precision model)" if parts.converted else "keras"
    parity = {"reference": reference, "tolerance": tolerance, "batch_sizes": list(batch_sizes),
              "max_error": results, "max": overall, "passed": not worst}
    if len(xs) > 1:
        parity["sizes"] = [list(x.shape[1:3]) for x in xs]
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
