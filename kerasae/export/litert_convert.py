"""SavedModel signatures -> `.tflite` files: the converter, run in its own process.

`python -m kerasae.export.litert_convert JOBS.json` reads a list of jobs
`{"saved_model", "signature", "out", "scheme", "representative", "input"}` and
writes each `out`. `kerasae.export.litert` starts it once per export, because
`TFLiteConverter.convert()` keeps memory it never frees (TF 2.20 - 2.21).

Built-in ops only (no Flex / `SELECT_TF_OPS`: the LiteRT runtime of TF 2.20+
cannot run them). Schemes (float32 inputs and outputs in every case):

- `"float"`: float32 weights and activations;
- `"int8"`: int8 weights (dense layers per tensor, convolutions per channel) and
  int8 activations, calibrated on the representative inputs (`.npy`);
- `"int16x8"`: int8 weights as above, int16 activations.
"""

import json
import sys

SCHEMES = ("float", "int8", "int16x8")


def convert(job):
    """The `.tflite` bytes of `job` (see the module docstring)."""
    import numpy as np
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(job["saved_model"],
                                                         signature_keys=[job["signature"]])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    scheme = job.get("scheme") or "float"
    if scheme != "float":
        data = np.load(job["representative"], allow_pickle=False).astype("float32")
        name = job["input"]

        def representative():
            for i in range(0, len(data), 10):
                yield {name: data[i:i + 10]}

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        # Per-tensor dense weights: a per-channel dense layer stores a scale and a zero
        # point per output unit, which costs more than int8 saves on wide layers.
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if scheme == "int8" else
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return converter.convert()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        jobs = json.load(f)
    for job in jobs:
        if job.get("scheme", "float") not in SCHEMES:
            print(f"unknown scheme {job.get('scheme')!r}; one of {SCHEMES}", file=sys.stderr)
            return 2
        try:
            data = convert(job)
        except Exception as e:  # noqa: BLE001 - reported to the parent in one line
            print(f"{job['signature']} {job.get('scheme', 'float')}: {type(e).__name__}: "
                  f"{' '.join(str(e).split())[:2000]}", file=sys.stderr)
            return 1
        with open(job["out"], "wb") as f:
            f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
