"""Serializable layers: VAE sampling, train-time corruption, code sparsity, scaling.

`Scale` maps raw records and series to standard (or min-max) units inside a model
and back, with statistics `scaling_stats` fits on the training data.

All randomness goes through `keras.random`. Each random layer accepts, besides
`training`, three optional call arguments used by `kerasae.fit` under
`tf.distribute`:

- `seed`: an int tensor of shape `(2,)`. When given, noise is drawn statelessly
  from it instead of from the layer's `SeedGenerator`. A `SeedGenerator` is a
  variable, so under a mirrored strategy every replica would draw the same noise.
- `replica_index`, `num_replicas`: the replica draws the noise of the whole
  global batch and keeps its own slice, so N replicas see exactly the noise that
  one device sees for the same global batch.
"""

import keras
import numpy as np
from keras import ops

from kerasae import losses
from kerasae._util.errors import InvalidValue

class _FixedSeed(keras.random.SeedGenerator):
    """Adapter that lets `keras.random` draw from an explicit seed tensor.

    `keras.random.*` accept an int or a `SeedGenerator`; a seed computed in the
    graph (per step) is neither, so it is wrapped here. No variable is created.
    """

    def __init__(self, value):  # noqa: D107 - deliberately skips the variable
        self._value = value

    def next(self, ordered=True):
        return self._value


def _draw(fn, shape, layer, seed, replica_index, num_replicas, dtype):
    source = layer.seed_generator if seed is None else _FixedSeed(seed)
    if num_replicas == 1:
        return fn(shape, dtype=dtype, seed=source)
    full_shape = (shape[0] * num_replicas,) + tuple(shape[1:])
    values = fn(full_shape, dtype=dtype, seed=source)
    start = [replica_index * shape[0]] + [0] * (len(shape) - 1)
    return ops.slice(values, start, shape)


def _normal(shape, dtype, seed):
    return keras.random.normal(shape, dtype=dtype, seed=seed)


def _uniform(shape, dtype, seed):
    return keras.random.uniform(shape, dtype=dtype, seed=seed)


@keras.saving.register_keras_serializable(package="kerasae")
class Sampling(keras.layers.Layer):
    """Reparameterised draw `z = z_mean + exp(z_log_var / 2) * eps`.

    At inference (`training=False`) it returns `z_mean`, so the full model's
    inference output equals `decoder(z_mean)` and is deterministic. Sampling is
    done in float32 whatever the dtype policy, and the log-variance is clamped to
    `log_var_range` first so that `exp` cannot overflow.

    Args:
        seed: int or `None`. Seed of the layer's `SeedGenerator`. Defaults to
            `None`.
        log_var_range: `(min, max)` clamp for `z_log_var`. Defaults to
            `(-20.0, 20.0)`.
    """

    def __init__(self, seed=None, log_var_range=(-20.0, 20.0), **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = seed
        self.log_var_range = tuple(float(v) for v in log_var_range)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None, seed=None, replica_index=0, num_replicas=1):
        z_mean, z_log_var = inputs
        z_mean = ops.cast(z_mean, "float32")
        if not training:
            return z_mean
        z_log_var = ops.clip(ops.cast(z_log_var, "float32"), *self.log_var_range)
        eps = _draw(
            _normal, ops.shape(z_mean), self, seed, replica_index, num_replicas,
            "float32",
        )
        return z_mean + ops.exp(0.5 * z_log_var) * eps

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed, "log_var_range": list(self.log_var_range)})
        return config


CORRUPTIONS = ("gaussian", "masking", "salt_and_pepper")


def amount_of(kind, amount):
    """A corruption amount checked: a float, or a `(low, high)` tuple of floats drawn per
    example; a std >= 0 for `"gaussian"`, a fraction in [0, 1] otherwise."""
    upper = float("inf") if kind == "gaussian" else 1.0
    ranged = isinstance(amount, (list, tuple))
    try:
        values = tuple(float(v) for v in amount) if ranged else (float(amount),)
    except (TypeError, ValueError):
        values = ()
    if (len(values) != (2 if ranged else 1) or not all(0.0 <= v <= upper and v < float("inf") for v in values)
            or values[0] > values[-1] or any(isinstance(v, bool) for v in
                                             (amount if ranged else (amount,)))):
        raise InvalidValue(
            "Corruption amount must be a number or a range [low, high] with low <= high, "
            "each >= 0 and finite (the noise std) for 'gaussian' and in [0, 1] (a fraction) "
            f"for {kind!r}. Received: amount={amount!r}"
        )
    return values if ranged else values[0]


def _bounds(amount):
    return amount if isinstance(amount, tuple) else (amount, amount)


@keras.saving.register_keras_serializable(package="kerasae")
class Corruption(keras.layers.Layer):
    """Train-time input corruption for denoising autoencoders.

    Active only when `training=True`; at inference it is the identity.

    - `"gaussian"`: adds `N(0, amount^2)` noise.
    - `"masking"`: sets a random fraction `amount` of the values to
      `value_range[0]` (masking noise of Vincent et al., 2008).
    - `"salt_and_pepper"`: sets a random fraction `amount` of the values to
      `value_range[0]` or `value_range[1]`, with equal probability.

    `amount` may be a range `(low, high)`: each example then draws its own amount
    uniformly from it (blind denoising: one model for a range of noise levels, as
    DnCNN-B's noise std in [0, 55/255]).

    Args:
        kind: one of `"gaussian"`, `"masking"`, `"salt_and_pepper"`.
            Defaults to `"gaussian"`.
        amount: noise standard deviation (gaussian) or corrupted fraction, or a
            range `(low, high)` of them drawn per example. Defaults to `0.2`.
        clip: whether to clip the corrupted input to `value_range` (the TF
            denoising tutorial clips to [0, 1]). Defaults to `True`.
        value_range: `(low, high)` of the clean data. Defaults to `(0.0, 1.0)`.
        seed: int or `None`. Defaults to `None`.

    Reference:
        Vincent et al., "Extracting and composing robust features with denoising
        autoencoders", ICML 2008.
    """

    def __init__(
        self, kind="gaussian", amount=0.2, clip=True, value_range=(0.0, 1.0),
        seed=None, **kwargs,
    ):
        super().__init__(**kwargs)
        if kind not in CORRUPTIONS:
            raise InvalidValue(
                f"Unknown corruption {kind!r}. Use one of {', '.join(CORRUPTIONS)}. "
                f"Received: kind={kind!r}"
            )
        self.kind = kind
        self.amount = amount_of(kind, amount)
        self.clip = bool(clip)
        self.value_range = tuple(float(v) for v in value_range)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None, seed=None, replica_index=0, num_replicas=1):
        least, most = _bounds(self.amount)
        if not training or most == 0.0:
            return inputs
        shape = ops.shape(inputs)
        low, high = self.value_range
        draw = lambda fn, shape=shape, seed=seed: _draw(  # noqa: E731
            fn, shape, self, seed, replica_index, num_replicas, self.compute_dtype
        )
        amount = least
        if most > least:  # one amount per example, from its own stream
            per_example = (shape[0],) + (1,) * (len(inputs.shape) - 1)
            level_seed = None if seed is None else seed + ops.convert_to_tensor([0, 7919], seed.dtype)
            amount = least + (most - least) * draw(_uniform, per_example, level_seed)
        if self.kind == "gaussian":
            out = inputs + amount * draw(_normal)
        else:
            u = draw(_uniform)
            hit = u < amount
            if self.kind == "masking":
                out = ops.where(hit, ops.cast(low, inputs.dtype), inputs)
            else:
                # The same uniform decides salt vs pepper: u < amount / 2 -> low.
                value = ops.where(u < amount / 2.0, low, high)
                out = ops.where(hit, ops.cast(value, inputs.dtype), inputs)
        if self.clip:
            out = ops.clip(out, low, high)
        return out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "kind": self.kind,
                "amount": list(self.amount) if isinstance(self.amount, tuple) else self.amount,
                "clip": self.clip,
                "value_range": list(self.value_range),
                "seed": self.seed,
            }
        )
        return config


SPARSITIES = ("l1", "kl")


@keras.saving.register_keras_serializable(package="kerasae")
class SparsityPenalty(keras.layers.Layer):
    """Identity layer that adds a sparsity penalty on the code to the model loss.

    - `"l1"`: `weight * mean_over_batch(sum_j |h_j|)` (L1 activity penalty).
    - `"kl"`: `weight * sum_j KL(target || rho_hat_j)`, where `rho_hat_j` is the
      mean activation of unit j over the batch; needs activations in (0, 1),
      i.e. a sigmoid code (Ng, "Sparse autoencoder", CS294A notes).

    A layer rather than an `activity_regularizer` because Keras divides activity
    penalties by the batch size, which is right for L1 but wrong for the KL
    penalty, which is already a function of batch means.

    Args:
        kind: `"l1"` or `"kl"`. Defaults to `"kl"`.
        weight: penalty weight (beta in the notes). Defaults to `1e-3`.
        target: target mean activation rho for `"kl"`. Defaults to `0.05`.
    """

    def __init__(self, kind="kl", weight=1e-3, target=0.05, **kwargs):
        super().__init__(**kwargs)
        if kind not in SPARSITIES:
            raise InvalidValue(
                f"Unknown sparsity {kind!r}. Use one of {', '.join(SPARSITIES)} or "
                f"None. Received: sparsity={kind!r}"
            )
        if float(weight) < 0:
            raise InvalidValue(
                f"Sparsity weight must be >= 0. Received: sparsity_weight={weight}"
            )
        if not 0.0 < float(target) < 1.0:
            raise InvalidValue(
                "Sparsity target (rho) must be strictly between 0 and 1. "
                f"Received: sparsity_target={target}"
            )
        self.kind = kind
        self.weight = float(weight)
        self.target = float(target)

    def call(self, inputs, training=None):
        h = ops.cast(inputs, "float32")
        if self.kind == "l1":
            penalty = ops.mean(ops.sum(ops.abs(h), axis=-1))
        else:
            penalty = ops.sum(losses.kl_sparsity(self.target, ops.mean(h, axis=0)))
        self.add_loss(self.weight * penalty)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"kind": self.kind, "weight": self.weight, "target": self.target})
        return config


SCALINGS = ("standard", "minmax")


@keras.saving.register_keras_serializable(package="kerasae")
class Scale(keras.layers.Layer):
    """Per-feature scaling inside the model: `(x - center) / scale` on the last axis, or its
    inverse (`invert=True`), so a model takes and gives raw values.

    `center` and `scale` are weights (not trained) that `Autoencoder.adapt` fits on the
    training data: the mean and standard deviation (`"standard"`) or the minimum and the
    range (`"minmax"`); a constant feature gets scale 1, never a division by zero. They
    are saved with the model, so `.keras`, SavedModel, ONNX and LiteRT files take raw
    values. `seen` counts the examples they were fitted on (0: not fitted yet).

    Args:
        features: size of the last axis (features of a record, channels of a series).
        method: `"standard"` or `"minmax"`. Defaults to `"standard"`.
        invert: the inverse map (the decoder's last layer). Defaults to `False`.
    """

    def __init__(self, features, method="standard", invert=False, **kwargs):
        super().__init__(**kwargs)
        if method not in SCALINGS:
            raise InvalidValue(f"Unknown scaling {method!r}. Use one of "
                               f"{', '.join(SCALINGS)}. Received: scaling={method!r}")
        self.features, self.method, self.invert = int(features), method, bool(invert)
        self.center = self.add_weight(shape=(self.features,), initializer="zeros",
                                      trainable=False, name="center", dtype="float32")
        self.scale = self.add_weight(shape=(self.features,), initializer="ones",
                                     trainable=False, name="scale", dtype="float32")
        self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                    name="seen", dtype="float32")

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        return x * self.scale + self.center if self.invert else (x - self.center) / self.scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"features": self.features, "method": self.method,
                       "invert": self.invert})
        return config


def scaling_stats(batches, method="standard"):
    """`(center, scale, count)` over the last axis of every value of `batches` (arrays),
    in one streaming pass (Chan et al.'s parallel mean and variance); a constant
    feature gets scale 1."""
    count, mean, m2, low, high = 0, None, None, None, None
    for batch in batches:
        x = np.asarray(batch, dtype="float64").reshape(-1, np.shape(batch)[-1])
        if not len(x):
            continue
        n, m = len(x), x.mean(axis=0)
        v = ((x - m) ** 2).sum(axis=0)
        if mean is None:
            count, mean, m2, low, high = n, m, v, x.min(axis=0), x.max(axis=0)
            continue
        delta, total = m - mean, count + n
        mean = mean + delta * n / total
        m2 = m2 + v + delta ** 2 * count * n / total
        low, high, count = np.minimum(low, x.min(axis=0)), np.maximum(high, x.max(axis=0)), total
    if mean is None:
        raise InvalidValue("Scaling needs at least one example to fit on. Received: 0 examples")
    if method == "minmax":
        center, scale = low, high - low
    else:
        center, scale = mean, np.sqrt(m2 / count)
    scale = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(center)), scale, 1.0)
    return center.astype("float32"), scale.astype("float32"), count
