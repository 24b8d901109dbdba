"""Scaling inside a model (records and series): which layers scale, fitting them, scores.

A model of records `(features,)` or series windows `(steps, channels)` starts its
encoder with a `kerasae.layers.Scale` layer named `scale` and ends its decoder with
the inverse, named `unscale`: it takes and returns raw values, and its loss and
anomaly scores are measured in the scaled units, so every feature counts alike
whatever its range. `adapt` fits both layers on training data, streaming.
"""

import numpy as np

from kerasae._util.errors import InvalidType
from kerasae.layers import Scale, scaling_stats
from kerasae.models import predict

SCALE, UNSCALE = "scale", "unscale"
_CHUNK = 4096


def _layer(submodel, name):
    layer = next((lay for lay in submodel.layers if lay.name == name), None)
    return layer if isinstance(layer, Scale) else None


def scalers(model):
    """`(scale, unscale)` layers of a model, or `(None, None)` for one without scaling."""
    return _layer(model.encoder, SCALE), _layer(model.decoder, UNSCALE)


def batches(data):
    """Arrays of examples from an array, a `kerasae.data.Source` or a `tf.data.Dataset`
    (of batches, or of `(inputs, targets)` batches)."""
    if hasattr(data, "batches") and hasattr(data, "load_batch"):  # a kerasae Source
        for _, batch in data.batches(_CHUNK):
            yield batch
        return
    if hasattr(data, "element_spec"):  # a tf.data.Dataset
        for element in data.as_numpy_iterator():
            yield element[0] if isinstance(element, tuple) else element
        return
    if not hasattr(data, "shape"):
        raise InvalidType(
            "adapt takes an array, a kerasae.data.Source or a tf.data.Dataset of examples. "
            f"Received: data={type(data).__name__}")
    for start in range(0, len(data), _CHUNK):
        yield np.asarray(data[start:start + _CHUNK], dtype="float32")


def adapt(model, data):
    """Fits the model's scaling on `data` (see `batches`); returns the number of examples
    seen, or 0 for a model without scaling."""
    scale, unscale = scalers(model)
    if scale is None:
        return 0
    center, spread, count = scaling_stats(batches(data), scale.method)
    for layer in (scale, unscale):
        layer.center.assign(center)
        layer.scale.assign(spread)
        layer.seen.assign(float(count))
    return int(count)


def adapt_unless_adapted(model, data):
    """The one hook of every training entry point (`kerasae.fit`, `Autoencoder.fit`): a
    model of records or series whose scaling is not fitted yet is fitted on `data`, its
    training data; a fitted scaling (a preset, a resumed run, `model.adapt`) is kept."""
    if not adapted(model):
        adapt(model, data)


def adapted(model):
    """Whether the model's scaling has been fitted (True for a model without scaling)."""
    scale, _ = scalers(model)
    return scale is None or float(scale.seen.numpy()) > 0


def scores(model, x, batch_size=256, spread=None):
    """One anomaly score per example: the mean squared reconstruction error over all its
    values, in the model's scaled units (raw units for a model without scaling; a
    VAE decodes `z_mean`), or each last-axis feature's error divided by `spread`."""
    x = np.asarray(x, dtype="float32")
    recon = predict.reconstruct(model, x, batch_size=batch_size)
    err = (x.astype("float64") - recon) ** 2
    scale, _ = scalers(model)
    if spread is not None:
        err = err / np.asarray(spread, dtype="float64") ** 2
    elif scale is not None:
        err = err / np.asarray(scale.scale.numpy(), dtype="float64") ** 2
    return err.reshape(len(x), -1).mean(axis=1)


def scale_spec(model):
    """What a client needs to score as `scores` does: the scale per last-axis feature, or
    `None` (see `kerasae.export`'s anomaly block)."""
    scale, _ = scalers(model)
    return None if scale is None else [float(v) for v in scale.scale.numpy()]


def scale_kind(model):
    """The model's input scaling (`"standard"`, `"minmax"`), or `None` where it has none."""
    scale, _ = scalers(model)
    return None if scale is None else scale.method
