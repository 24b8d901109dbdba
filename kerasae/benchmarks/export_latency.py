"""Encoder (or decoder) latency of an export: onnxruntime vs SavedModel vs LiteRT vs Keras.

    python -m kerasae.benchmarks.export_latency [--builder conv_ae | --preset NAME]
        [--repeats 50] [--batch-sizes 1,256] [--arg latent_dim=32] [--no-litert]
        [--part encoder|decoder] [--json]

`--part decoder` times the decoder on the codes of the same images (a VAE's z_mean).

Builds the model (default: `conv_ae` with its default config, 28x28x1) or loads
a preset, exports it with `kerasae.export.export` (parity check included) to a
temporary directory, then times the encoder on the same input in each runtime:

- `onnxruntime`: `InferenceSession.run` on `encoder.onnx` (CPU provider)
- `saved_model`: the `encode` signature of `tf.saved_model.load(...)`
- `litert`: the `encode` signature runner of `encoder.tflite` in `ai_edge_litert`
- `litert_int8`: the same for `encoder.int8.tflite` (`quantize="int8"`). A preset
  calibrates on its training data; a freshly built model on 64 uniform random
  images like the timed ones (latency does not depend on what calibrated it).
- `keras_call`: `model.encoder(x, training=False)` (eager direct call)
- `keras_predict`: `model.encoder.predict(x)`

`--threads N` sets the intra-op threads of onnxruntime and the LiteRT
interpreters (default: onnxruntime's own choice, and all CPUs for LiteRT).
The LiteRT rows are left out when `ai-edge-litert` is not installed.

Calls are interleaved round by round (one of each per round), so load from
other processes hits every runtime alike; the median per runtime and batch
size is reported with its ratio to onnxruntime. Every runtime's output is
converted to numpy inside the timed call.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from kerasae.cli.args import parse_kwargs

TARGETS = (("keras_predict", 1, 10.0), ("saved_model", 1, 1.5))
EXACT = 1e-4  # every float runtime must agree with Keras this closely


def _median_ms(samples):
    return 1e3 * statistics.median(samples)


def _first(output):
    """The code (VAE: z_mean), or the decoder's reconstruction, from any runtime's output
    structure, as numpy."""
    import numpy as np

    if isinstance(output, dict):
        output = next(output[k] for k in ("code", "z_mean", "reconstruction") if k in output)
    elif isinstance(output, (list, tuple)):
        output = output[0]
    return np.asarray(output)


def _has_litert():
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


# part -> (signature, its input)
PARTS = {"encoder": ("encode", "image"), "decoder": ("decode", "code")}


def _litert_runners(out, threads, part):
    # lazy: the benchmark's --help stays light
    from kerasae.export.litert import signature_runner

    signature, arg = PARTS[part]

    def runner(name):
        sig = signature_runner(os.path.join(out, name), signature, num_threads=threads)
        return lambda x: sig(**{arg: x})

    return {"litert": runner(f"{part}.tflite"), "litert_int8": runner(f"{part}.int8.tflite")}


def _runners(model, out, threads, litert, part="encoder"):
    """`{runtime: fn(x)}` for the exported encoder (or decoder) in `out` and the Keras
    model."""
    import keras
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = int(threads)
    session = ort.InferenceSession(os.path.join(out, f"{part}.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    signature, arg = PARTS[part]
    sig = tf.saved_model.load(os.path.join(out, "saved_model")).signatures[signature]
    net = getattr(model, part)
    out_names = [o.name for o in session.get_outputs()]
    runners = {
        "onnxruntime": lambda x: session.run(out_names, {arg: x}),
        "saved_model": lambda x: {k: v.numpy() for k, v in sig(**{arg: tf.constant(x)}).items()},
        "keras_call": lambda x: keras.tree.map_structure(np.asarray, net(x, training=False)),
        "keras_predict": lambda x: net.predict(x, batch_size=len(x), verbose=0),
    }
    if litert:
        runners.update(_litert_runners(out, threads or os.cpu_count(), part))
    return runners


def _time(runners, x, repeats, warmup):
    """Checks every runtime against Keras on `x`, then times interleaved rounds;
    returns `(median ms per runtime, int8 max abs error or None)`."""
    import numpy as np

    first = {name: _first(fn(x)) for name, fn in runners.items()}  # warms up too
    int8_error = None
    for name, got in first.items():
        diff = float(np.abs(got - first["keras_call"]).max())
        if name == "litert_int8":
            int8_error = diff  # quantized: reported, not required to be exact
        elif diff > EXACT:
            raise RuntimeError(f"{name} differs from Keras by {diff:.3g} at batch {len(x)}")
    for _ in range(warmup):
        for fn in runners.values():
            fn(x)
    samples = {name: [] for name in runners}
    for _ in range(repeats):
        for name, fn in runners.items():
            t = time.perf_counter()
            fn(x)
            samples[name].append(time.perf_counter() - t)
    return {name: _median_ms(v) for name, v in samples.items()}, int8_error


def _targets(by, batch_sizes, litert):
    targets = []
    for runtime, b, need in TARGETS:
        if (runtime, b) in by:
            ratio = by[(runtime, b)]["x_onnxruntime"]
            targets.append({"claim": f"onnxruntime >= {need:g}x {runtime} at batch {b}",
                            "measured": ratio, "met": ratio >= need})
    for b in batch_sizes if litert else ():
        for name in ("litert", "litert_int8"):
            ratio = by[(name, b)]["median_ms"] / by[("saved_model", b)]["median_ms"]
            targets.append({"claim": f"{name} time / saved_model time at batch {b}",
                            "measured": ratio, "met": None})
    return targets


def run(builder="conv_ae", builder_kwargs=None, batch_sizes=(1, 256), repeats=50,
        warmup=5, seed=0, threads=None, preset=None, litert=True, part="encoder"):
    """Returns `{"rows": [...], "targets": [...], ...}`; see the module docstring."""
    import keras
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    # lazy: the benchmark's --help stays light
    from kerasae.export.bundle import export
    from kerasae.models import build, load_model

    keras.utils.set_random_seed(seed)
    model = load_model(preset) if preset else build(builder, **(builder_kwargs or {}))
    litert = litert and _has_litert()
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="kerasae-bench-") as tmp:
        out = os.path.join(tmp, "export")
        t0 = time.perf_counter()
        lite = {}
        if litert:
            lite = {"formats": ("saved_model", "onnx", "litert"), "quantize": "int8",
                    "representative": None if preset else
                    rng.random((64,) + tuple(model.image_shape), dtype=np.float32)}
        manifest = export(preset or model, out, **lite)
        export_s = time.perf_counter() - t0
        runners = _runners(model, out, threads, litert, part)
        rows, int8_error = [], {}
        for b in batch_sizes:
            x = rng.random((b,) + tuple(model.image_shape), dtype=np.float32)
            if part == "decoder":  # the codes of those images (a VAE's z_mean)
                x = keras.tree.flatten(model.encoder(x, training=False))[0]
                x = np.asarray(x, dtype=np.float32)
            medians, error = _time(runners, x, repeats, warmup)
            if error is not None:
                int8_error[b] = error
            for name, ms in medians.items():
                rows.append({"runtime": name, "batch": b, "median_ms": ms,
                             "images_per_s": b / (ms / 1e3),
                             "x_onnxruntime": ms / medians["onnxruntime"]})
    versions = {"onnxruntime": ort.__version__, "tensorflow": tf.__version__,
                "keras": keras.__version__}
    if litert:
        versions["ai_edge_litert"] = manifest["litert"]["interpreter"].split()[-1]
    by = {(r["runtime"], r["batch"]): r for r in rows}
    return {"builder": preset or builder, "part": part, "config": model.builder_config,
            "repeats": repeats,
            "export_seconds": export_s, "parity_max_error": manifest["parity"]["max"],
            "int8_max_abs_error": int8_error, "versions": versions,
            "cpu_count": os.cpu_count(), "rows": rows,
            "targets": _targets(by, batch_sizes, litert)}


def format_table(result):
    lines = [f"{result.get('part', 'encoder')} latency, {result['builder']} "
             f"(input {tuple(result['config']['input_shape'])}), median of "
             f"{result['repeats']} interleaved calls, {result['cpu_count']} CPUs; "
             + ", ".join(f"{k} {v}" for k, v in result["versions"].items()),
             f"export took {result['export_seconds']:.1f} s, parity max error "
             f"{result['parity_max_error']:.2g}"
             + "".join(f"; int8 max |error| at batch {b}: {e:.3g}"
                       for b, e in result["int8_max_abs_error"].items()), "",
             f"{'runtime':15s} {'batch':>5s} {'median ms':>10s} {'images/s':>10s} "
             f"{'time / onnxruntime':>19s}"]
    for r in result["rows"]:
        lines.append(f"{r['runtime']:15s} {r['batch']:5d} {r['median_ms']:10.3f} "
                     f"{r['images_per_s']:10.0f} {r['x_onnxruntime']:18.2f}x")
    lines.append("")
    for t in result["targets"]:
        verdict = "" if t["met"] is None else "  met" if t["met"] else "  NOT met"
        lines.append(f"{t['claim']}: {t['measured']:.2f}x{verdict}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m kerasae.benchmarks.export_latency",
                                description=__doc__.splitlines()[0])
    p.add_argument("--builder", default="conv_ae")
    p.add_argument("--preset", default=None, help="time a zoo preset instead of --builder")
    p.add_argument("--no-litert", action="store_true", help="leave out the LiteRT rows")
    p.add_argument("--arg", action="append", metavar="KEY=VALUE",
                   help="builder argument, JSON values, e.g. --arg latent_dim=32")
    p.add_argument("--batch-sizes", default="1,256")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=None,
                   help="onnxruntime intra-op threads (default: onnxruntime's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--part", default="encoder", choices=sorted(PARTS),
                   help="time the encoder (images in) or the decoder (codes in)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    result = run(args.builder, parse_kwargs(args.arg),
                 [int(b) for b in args.batch_sizes.split(",")], args.repeats,
                 args.warmup, args.seed, args.threads, args.preset, not args.no_litert,
                 args.part)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
