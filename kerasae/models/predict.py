"""Batched forward passes over numpy arrays: encode, decode, reconstruct.

Direct calls per batch, not `predict`: no `tf.function` is traced per model (an
anomaly sweep runs many fresh models) and batches of varying size do not
retrace. Outputs are float32 numpy arrays.
"""

import numpy as np

from kerasae._util.errors import InvalidValue

BATCH = 256


def run_batched(submodel, x, batch_size=BATCH):
    """`submodel(x)` in batches of `batch_size`, outputs concatenated (a list for several)."""
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


def encode(model, x, batch_size=BATCH):
    """Codes as float32 numpy, `(n,) + code_shape` (VAE: `z_mean`)."""
    out = run_batched(model.encoder, x, batch_size)
    if model.variational:
        out = out[0]
    return np.asarray(out, dtype="float32")


def decode(model, z, batch_size=BATCH):
    """Images decoded from codes `z`, float32 numpy."""
    return np.asarray(run_batched(model.decoder, z, batch_size), dtype="float32")


def reconstruct(model, x, batch_size=BATCH):
    """Deterministic reconstructions `decoder(encoder(x))` (VAE: `decoder(z_mean)`)."""
    return decode(model, encode(model, x, batch_size), batch_size)
