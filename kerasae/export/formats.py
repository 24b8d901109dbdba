"""The export formats and the names of what an export directory holds (light: no TensorFlow).

```
out_dir/
  manifest.json        versions, builder + config, input/latent spec, sha256 of
                       every file, reference tensors, measured parity
  saved_model/         signatures `encode`, `decode`, `reconstruct`
                       (`serving_default` = `reconstruct`), dynamic batch
  encoder.onnx         image -> code (VAE: z_mean, z_log_var)
  decoder.onnx         code -> reconstruction
  autoencoder.onnx     image -> reconstruction (only with `autoencoder_onnx=True`)
  encoder.tflite       LiteRT (formats including "litert"): image -> code
  decoder.tflite       LiteRT: code -> reconstruction
  encoder.int8.tflite  LiteRT int8 (`quantize="int8"`), and decoder.int8.tflite
  reference.npz        reference inputs and Keras outputs for conformance checks
```
"""

from kerasae._util.errors import KerasaeError

FORMATS = ("saved_model", "onnx", "litert")
DEFAULT_FORMATS = ("saved_model", "onnx")
QUANTIZE = ("int8", "int8-full")  # LiteRT post-training quantization schemes
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
LITERT_FILES = {"encoder": "encoder.tflite", "decoder": "decoder.tflite"}
LITERT_INT8_FILES = {"encoder": "encoder.int8.tflite", "decoder": "decoder.int8.tflite"}
# The signature each ONNX graph computes.
ROLE_SIGNATURE = {"encoder": "encode", "decoder": "decode", "autoencoder": "reconstruct"}
FORMAT_VERSION = 1
ANOMALY_SCORES = ("mse",)
# ONNX random generators plus any TensorFlow random op tf2onnx left unconverted.
RANDOM_ONNX_OPS = ("RandomNormal", "RandomNormalLike", "RandomUniform",
                   "RandomUniformLike", "Multinomial", "Bernoulli")
RESERVED = {"format", "format_version", "kerasae_version", "keras_version",
            "tensorflow_version", "tf2onnx_version", "onnx_version", "created",
            "model", "source", "input", "latent", "output", "signatures", "artifacts",
            "onnx", "litert", "reference", "files", "parity", "role"}


class ExportError(KerasaeError, RuntimeError):
    """The model cannot be exported as asked (unsupported or random ops)."""


class ParityError(ExportError):
    """A reloaded export differs from Keras by more than the tolerance."""

    def __init__(self, message, parity):
        super().__init__(message)
        self.parity = parity


def is_random_op(op_type):
    """Whether a TensorFlow or ONNX op type draws random numbers."""
    return op_type in RANDOM_ONNX_OPS or any(
        word in op_type for word in ("Random", "Multinomial", "TruncatedNormal", "Bernoulli"))


def describe_nodes(pairs, limit=4):
    """`"Op (node 'name'), ..."` of `(op, name)` pairs, the first `limit` of them."""
    shown = [f"{op} (node {name!r})" for op, name in pairs[:limit]]
    more = f" and {len(pairs) - limit} more" if len(pairs) > limit else ""
    return ", ".join(shown) + more


def random_ops_error(what, pairs):
    """The one error for random ops found in an exported graph."""
    return ExportError(
        f"The {what} contains random ops at inference: {describe_nodes(pairs)}. Exported "
        "graphs must be deterministic: draw noise only when training (keras layers take "
        "`training`), and give a sampler its noise as an explicit input. "
        f"Received: op_types={sorted({op for op, _ in pairs})}"
    )
