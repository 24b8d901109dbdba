"""Encoder latency of an export: onnxruntime vs reloaded SavedModel vs Keras, one run.

    python -m kerasae.benchmarks.export_latency [--builder conv_ae] [--repeats 50]
        [--batch-sizes 1,256] [--arg latent_dim=32] [--json]

Builds the model (default: `conv_ae` with its default config, 28x28x1), exports
it with `kerasae.export.export` (parity check included) to a temporary
directory, then times the encoder four ways on the same input:

- `onnxruntime`: `InferenceSession.run` on `encoder.onnx` (CPU provider)
- `saved_model`: the `encode` signature of `tf.saved_model.load(...)`
- `keras_call`: `model.encoder(x, training=False)` (eager direct call)
- `keras_predict`: `model.encoder.predict(x)`

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


def _median_ms(samples):
    return 1e3 * statistics.median(samples)


def _first(output):
    """The code (VAE: z_mean) from any runtime's output structure, as numpy."""
    import numpy as np

    if isinstance(output, dict):
        output = output["code"] if "code" in output else output["z_mean"]
    elif isinstance(output, (list, tuple)):
        output = output[0]
    return np.asarray(output)


def run(builder="conv_ae", builder_kwargs=None, batch_sizes=(1, 256), repeats=50,
        warmup=5, seed=0, threads=None):
    """Returns `{"rows": [...], "targets": [...], ...}`; see the module docstring."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    # lazy: the benchmark's --help stays light
    from kerasae.export.bundle import export
    from kerasae.models import build

    keras.utils.set_random_seed(seed)
    model = build(builder, **(builder_kwargs or {}))
    with tempfile.TemporaryDirectory(prefix="kerasae-bench-") as tmp:
        out = os.path.join(tmp, "export")
        t0 = time.perf_counter()
        manifest = export(model, out, formats=("saved_model", "onnx"))
        export_s = time.perf_counter() - t0
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = int(threads)
        session = ort.InferenceSession(os.path.join(out, "encoder.onnx"), options,
                                       providers=["CPUExecutionProvider"])
        loaded = tf.saved_model.load(os.path.join(out, "saved_model"))
        encode_sig = loaded.signatures["encode"]
        encoder = model.encoder
        out_names = [o.name for o in session.get_outputs()]

        runners = {
            "onnxruntime": lambda x: session.run(out_names, {"image": x}),
            "saved_model": lambda x: {k: v.numpy() for k, v in
                                      encode_sig(image=tf.constant(x)).items()},
            "keras_call": lambda x: keras.tree.map_structure(
                np.asarray, encoder(x, training=False)),
            "keras_predict": lambda x: encoder.predict(x, batch_size=len(x), verbose=0),
        }
        rng = np.random.default_rng(seed)
        rows = []
        for b in batch_sizes:
            x = rng.random((b,) + tuple(model.image_shape), dtype=np.float32)
            first = {name: _first(fn(x)) for name, fn in runners.items()}  # warms up too
            for name, got in first.items():
                diff = float(np.abs(got - first["keras_call"]).max())
                if diff > 1e-4:
                    raise RuntimeError(f"{name} differs from Keras by {diff:.3g} at batch {b}")
            for _ in range(warmup):
                for fn in runners.values():
                    fn(x)
            samples = {name: [] for name in runners}
            for _ in range(repeats):
                for name, fn in runners.items():
                    t = time.perf_counter()
                    fn(x)
                    samples[name].append(time.perf_counter() - t)
            base = _median_ms(samples["onnxruntime"])
            for name in runners:
                ms = _median_ms(samples[name])
                rows.append({"runtime": name, "batch": b, "median_ms": ms,
                             "images_per_s": b / (ms / 1e3), "x_onnxruntime": ms / base})
    by = {(r["runtime"], r["batch"]): r for r in rows}
    targets = []
    for runtime, b, need in TARGETS:
        if (runtime, b) in by:
            ratio = by[(runtime, b)]["x_onnxruntime"]
            targets.append({"claim": f"onnxruntime >= {need:g}x {runtime} at batch {b}",
                            "measured": ratio, "met": ratio >= need})
    return {"builder": builder, "config": model.builder_config, "repeats": repeats,
            "export_seconds": export_s, "parity_max_error": manifest["parity"]["max"],
            "versions": {"onnxruntime": ort.__version__, "tensorflow": tf.__version__,
                         "keras": keras.__version__},
            "cpu_count": os.cpu_count(), "rows": rows, "targets": targets}


def format_table(result):
    lines = [f"encoder latency, {result['builder']} "
             f"(input {tuple(result['config']['input_shape'])}), median of "
             f"{result['repeats']} interleaved calls, {result['cpu_count']} CPUs; "
             f"onnxruntime {result['versions']['onnxruntime']}, "
             f"tensorflow {result['versions']['tensorflow']}, keras {result['versions']['keras']}",
             f"export took {result['export_seconds']:.1f} s, parity max error "
             f"{result['parity_max_error']:.2g}", "",
             f"{'runtime':15s} {'batch':>5s} {'median ms':>10s} {'images/s':>10s} "
             f"{'time / onnxruntime':>19s}"]
    for r in result["rows"]:
        lines.append(f"{r['runtime']:15s} {r['batch']:5d} {r['median_ms']:10.3f} "
                     f"{r['images_per_s']:10.0f} {r['x_onnxruntime']:18.2f}x")
    lines.append("")
    for t in result["targets"]:
        lines.append(f"{t['claim']}: {t['measured']:.1f}x  {'met' if t['met'] else 'NOT met'}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m kerasae.benchmarks.export_latency",
                                description=__doc__.splitlines()[0])
    p.add_argument("--builder", default="conv_ae")
    p.add_argument("--arg", action="append", metavar="KEY=VALUE",
                   help="builder argument, JSON values, e.g. --arg latent_dim=32")
    p.add_argument("--batch-sizes", default="1,256")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=None,
                   help="onnxruntime intra-op threads (default: onnxruntime's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    result = run(args.builder, parse_kwargs(args.arg),
                 [int(b) for b in args.batch_sizes.split(",")], args.repeats,
                 args.warmup, args.seed, args.threads)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
