"""Batched forward passes over numpy arrays: encode, decode, reconstruct.

Direct calls per batch, not `predict`: no `tf.function` is traced per model (an
anomaly sweep runs many fresh models) and batches of varying size do not
retrace. Outputs are float32 numpy arrays.
"""

import numpy as np

from kerasae._util.errors import InvalidValue

BATCH = 256
# Values (of the input or the output, whichever is larger) a batch may hold when no batch
# size is given: 256 Fashion-MNIST images, 42 64x64 colour ones. A convolution's
# activations are several times its input, so a batch of 256 large images would take
# gigabytes.
BATCH_VALUES = 1 << 19


def batch_for(submodel, x):
    """The batch size for `submodel` on `x`: `BATCH`, fewer for large inputs or outputs."""
    sizes = [int(np.prod(np.shape(x)[1:]))]
    shapes = getattr(submodel, "output_shape", None)
    for shape in shapes if isinstance(shapes, list) else [shapes]:
        if shape is not None and None not in tuple(shape[1:]):
            sizes.append(int(np.prod(shape[1:])))
    return int(max(1, min(BATCH, BATCH_VALUES // max(1, max(sizes)))))


def run_batched(submodel, x, batch_size=None):
    """`submodel(x)` in batches of `batch_size` (default `batch_for`), outputs
    concatenated (a list for several)."""
    batch_size = batch_for(submodel, x) if batch_size is None else int(batch_size)
    outs = []
    for i in range(0, len(x), batch_size):
        out = submodel(np.asarray(x[i:i + batch_size], dtype="float32"), training=False)
        outs.append([np.asarray(o) for o in out] if isinstance(out, (list, tuple))
                    else np.asarray(out))
    if not outs:
        raise InvalidValue(f"No images to run. Received: shape={tuple(np.shape(x))}")
    if isinstance(outs[0], list):
        return [np.concatenate([o[j] for o in outs]) for j in range(len(outs[0]))]
    return np.concatenate(outs)


def encode(model, x, batch_size=None):
    """Codes as float32 numpy, `(n,) + code_shape` (VAE: `z_mean`)."""
    out = run_batched(model.encoder, x, batch_size)
    if model.variational:
        out = out[0]
    return np.asarray(out, dtype="float32")


def decode(model, z, batch_size=None):
    """Images decoded from codes `z`, float32 numpy."""
    return np.asarray(run_batched(model.decoder, z, batch_size), dtype="float32")


def reconstruct(model, x, batch_size=None):
    """Deterministic reconstructions `decoder(encoder(x))` (VAE: `decoder(z_mean)`)."""
    return decode(model, encode(model, x, batch_size), batch_size)
