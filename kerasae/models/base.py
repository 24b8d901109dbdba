"""The `Autoencoder` model every builder returns (the parts builders share are in `parts`)."""

import math

import keras
from keras import ops

from kerasae import losses
from kerasae._util.errors import InvalidType, InvalidValue
from kerasae.data import ranges
from kerasae.layers import Sampling
from kerasae.models import registry, scaling


@keras.saving.register_keras_serializable(package="kerasae")
class Autoencoder(keras.Model):
    """An autoencoder made of standalone `encoder` and `decoder` functional models.

    `call(x)` runs optional train-time corruption, the encoder, (for a VAE) the
    sampling layer, and the decoder. The loss is part of the model, so
    `model.compile(optimizer="adam"); model.fit(x)` trains it without a `loss=`:

    - AE: reconstruction error averaged over pixels (`"mse"` by default), plus
      any penalties added by layers (code sparsity).
    - VAE: reconstruction error summed over pixels (the builder's choice) plus
      `beta` times the analytic KL, reported as `reconstruction_loss` and
      `kl_loss`.

    If `fit` is given `(x, y)` pairs, an image batch `y` is the target (e.g. clean
    images for noisy inputs); labels `y` (another shape) are ignored and the
    target is `x` itself, as without `y`.

    Args:
        encoder: functional model; image -> code (VAE: `[z_mean, z_log_var]`).
        decoder: functional model; code -> image.
        corruption: optional `kerasae.layers.Corruption` applied to the input
            when training.
        variational: whether the encoder returns `[z_mean, z_log_var]`.
        beta: weight of the KL term (beta-VAE). Defaults to `1.0`.
        reconstruction: one of `kerasae.losses.RECONSTRUCTIONS`. Defaults to `"mse"`.
        seed: seed of the sampling layer. Defaults to `None`.
    """

    def __init__(
        self, encoder, decoder, corruption=None, variational=False, beta=1.0,
        reconstruction="mse", seed=None, builder_name=None, builder_config=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.corruption = corruption
        self.variational = bool(variational)
        self.beta = float(beta)
        self.reconstruction = reconstruction
        self.seed = seed
        self.sampling = Sampling(seed=seed, name="sampling") if self.variational else None
        self.builder_name = builder_name
        self.builder_config = builder_config
        self.loss_terms = ["reconstruction_loss"] + (["kl_loss"] if self.variational else [])
        self._trackers = [keras.metrics.Mean(name=n) for n in self.loss_terms]
        self._last_code = None
        # The sub-models are built functional models, so this model is built too
        # (also when rebuilt by from_config, e.g. to clone into a strategy scope).
        self.build(encoder.inputs[0].shape)

    # ----------------------------------------------------------------- shapes
    @property
    def image_shape(self):
        """Shape of one input (an image, a record or a window), without the batch axis."""
        return tuple(self.encoder.inputs[0].shape[1:])

    def adapt(self, data):
        """Fits the model's scaling (records and series) on `data`: an array, a
        `kerasae.data.Source` or a `tf.data.Dataset`; `fit` does it once by itself.
        Returns the number of examples seen (0 for a model without scaling)."""
        return scaling.adapt(self, data)

    @property
    def input_kind(self):
        """`"image"`, `"vector"` or `"series"`: what the input is, by its shape (see
        `kerasae.models.registry.input_kind`)."""
        return registry.input_kind(self.image_shape)

    @property
    def code_shape(self):
        """Shape of one code (the decoder's input), without the batch axis."""
        return tuple(self.decoder.inputs[0].shape[1:])

    @property
    def latent_dim(self):
        """Number of values in one code (the product of `code_shape`)."""
        return int(math.prod(self.code_shape))

    def build(self, input_shape=None):
        """Marks the model built: its sub-models are built functional models already."""
        self.built = True

    # ---------------------------------------------------------------- forward
    def forward(self, x, training=False, sample=None, seed=None, replica_index=0,
                num_replicas=1):
        """Returns `(reconstruction, z_mean, z_log_var)`; the last two are `None` for an AE.

        `sample` (VAE) draws `z` instead of using `z_mean`; it defaults to
        `training`. `seed` / `replica_index` / `num_replicas` are forwarded to
        the random layers (see `kerasae.layers`).
        """
        sample = training if sample is None else sample
        self._check_input(x)
        rand = {"seed": None if seed is None else ops.cast(seed, "int32"),
                "replica_index": replica_index, "num_replicas": num_replicas}
        h = x
        if self.corruption is not None:
            # Distinct noise streams for corruption and sampling.
            cseed = rand if seed is None else dict(rand, seed=rand["seed"] + 7919)
            scale, unscale = scaling.scalers(self)
            if scale is None:
                h = self.corruption(h, training=training, **cseed)
            else:  # noise in the scaled units: a fraction of each feature's spread
                h = unscale(self.corruption(scale(h), training=training, **cseed))
        code = self.encoder(h, training=training)
        if self.variational:
            z_mean, z_log_var = code
            z = self.sampling([z_mean, z_log_var], training=sample, **rand)
            return self.decoder(z, training=training), z_mean, z_log_var
        return self.decoder(code, training=training), None, None

    def call(self, inputs, training=False):
        """Reconstructions of `inputs`; with `training=True` the input is corrupted
        (denoising models) and a VAE samples its code."""
        x_hat, z_mean, z_log_var = self.forward(inputs, training=training)
        # Read by compute_loss within the same step (as Keras does for add_loss).
        object.__setattr__(self, "_last_code", (z_mean, z_log_var))
        return x_hat

    def _check_input(self, x):
        shape = tuple(x.shape[1:])
        expected = self.image_shape
        if len(shape) != len(expected) or any(
            s is not None and e is not None and s != e for s, e in zip(shape, expected)
        ):
            hint = ""
            if len(shape) + 1 == len(expected) and tuple(shape) == expected[:-1]:
                hint = " Add a channel axis, e.g. x[..., None]."
            raise InvalidValue(
                f"Input batch has shape {tuple(x.shape)} but {self.name} expects "
                f"(None, {', '.join(str(d) for d in expected)}).{hint} "
                f"Received: shape={tuple(x.shape)}"
            )

    # ------------------------------------------------------------------- loss
    def per_example_terms(self, x, x_hat, z_mean=None, z_log_var=None):
        """Per-example loss terms, float32, shape `(batch,)` each.

        Returns a dict with `loss`, `reconstruction_loss` and (VAE) `kl_loss`.
        The model's own penalties (`model.losses`) are batch-level and not
        included here.
        """
        reduction = "sum" if self.variational else "mean"
        scale, _ = scaling.scalers(self)
        if scale is not None:  # measured in the scaled units: every feature counts alike
            x, x_hat = scale(x), scale(x_hat)
        variance = None  # "gaussian": the batch's mean squared error, the global batch's
        if self.reconstruction == "gaussian" and _replicas() is not None:
            variance = _replicas().global_mean
        rec = losses.reconstruction_loss(x, x_hat, self.reconstruction, reduction, variance)
        terms = {"loss": rec, "reconstruction_loss": rec}
        if self.variational:
            kl = losses.kl_divergence(z_mean, z_log_var)
            terms["kl_loss"] = kl
            terms["loss"] = rec + self.beta * kl
        return terms

    def penalty(self):
        """Sum of batch-level penalties added by layers (sparsity, regularizers)."""
        if not self.losses:
            return ops.zeros((), "float32")
        return ops.sum(ops.stack([ops.cast(v, "float32") for v in self.losses]))

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """Configures the model for `fit`; the loss is part of the model, so there is no `loss=`.

        Args:
            optimizer: a Keras optimizer name or instance. Defaults to `"rmsprop"`
                (as `keras.Model.compile`).
            loss: must be `None`: the reconstruction (and KL) loss is the model's own.
            **kwargs: the other arguments of `keras.Model.compile` (`metrics`,
                `steps_per_execution`, `jit_compile`, ...).
        """
        if loss is not None:
            raise InvalidValue(
                f"The loss is part of {self.name} (reconstruction_loss, and kl_loss for a "
                "VAE; set reconstruction and beta when building it), so "
                "compile() takes no loss: call compile(optimizer=...). "
                f"Received: loss={loss!r}"
            )
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        """Compiles as a saved model was compiled (`keras.saving.load_model` calls this)."""
        config = dict(keras.saving.deserialize_keras_object(config) or {})
        if config.pop("loss", None) is not None:
            return  # saved by a build that allowed compile(loss=...): load uncompiled
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def _target(self, x, y, y_pred):
        """What the reconstruction is compared with: `y` if it is an image batch, else `x`."""
        if y is None:
            return x
        if len(y.shape) != len(y_pred.shape):
            return x  # (images, labels): the labels carry no loss
        if any(a is not None and b is not None and a != b
               for a, b in zip(y.shape[1:], y_pred.shape[1:])):
            raise InvalidValue(
                f"Targets y of shape {tuple(y.shape)} do not match the reconstructions "
                f"{tuple(y_pred.shape)}. Pass (noisy, clean) image pairs, (images, labels), "
                f"or images alone. Received: y.shape={tuple(y.shape)}"
            )
        return y

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The batch loss Keras's trainer minimises: the mean per-example loss (see
        `per_example_terms`), plus layer penalties, per replica."""
        target = self._target(x, y, y_pred)
        z_mean, z_log_var = self._last_code or (None, None)
        terms = self.per_example_terms(target, y_pred, z_mean, z_log_var)
        for tracker, name in zip(self._trackers, self.loss_terms):
            tracker.update_state(terms[name], sample_weight=sample_weight)
        per_example = terms["loss"]
        if sample_weight is not None:
            sw = ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
            loss = ops.sum(per_example * sw) / ops.maximum(ops.sum(sw), 1e-12)
        else:
            loss = ops.mean(per_example)
        loss = loss + self.penalty()
        return _scale_for_replicas(loss)

    # ------------------------------------------------------ training, inference
    def _checked(self, x, method):
        """`x`, with a warning (once) when its images leave [0, 1] (see `kerasae.data.ranges`)."""
        where = f"{self.name}.{method}()"
        if x is None or isinstance(x, (dict, list)) or self.input_kind != "image":
            return x  # records and series take any values (kerasae.data scales them)
        if keras.backend.backend() == "tensorflow" and type(x).__module__.startswith(
                "tensorflow") and hasattr(x, "element_spec"):
            return ranges.check_dataset(x, where)  # a tf.data.Dataset
        if hasattr(x, "shape") and hasattr(x, "dtype") and len(x.shape) >= 2:
            ranges.check_array(x, where)
        return x

    def fit(self, x=None, y=None, *args, **kwargs):
        """Trains the model: `keras.Model.fit`, with the model's own loss (no `y` needed).

        Images must be float in [0, 1] (a warning, once, otherwise); records and
        series take raw values, and their scaling is fitted on `x` the first time.
        `y`, if given, is the target when it is a batch of inputs (e.g. clean images
        for noisy `x`) and ignored when it holds labels. For data that does not fit
        in memory use `kerasae.fit`, which reads it batch by batch.

        Args:
            x: inputs (numpy or tensor), a `tf.data.Dataset` of batches (or `(inputs,
                targets)` batches), or what `keras.Model.fit` accepts.
            y: optional targets (see above).
            *args, **kwargs: the other arguments of `keras.Model.fit`
                (`epochs`, `batch_size`, `validation_data`, `callbacks`, ...).

        Returns:
            A Keras `History`.
        """
        if hasattr(x, "element_spec") and len(args) < 7:
            # A dataset keeps its own order; Keras would warn that shuffle=True is ignored.
            kwargs.setdefault("shuffle", False)
        if x is not None:
            scaling.adapt_unless_adapted(self, x)
        x = self._checked(x, "fit")
        if isinstance(kwargs.get("validation_data"), tuple):
            self._checked(kwargs["validation_data"][0], "fit(validation_data)")
        elif kwargs.get("validation_data") is not None:
            kwargs["validation_data"] = self._checked(kwargs["validation_data"],
                                                      "fit(validation_data)")
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """The model's losses on `x`: `keras.Model.evaluate` (images in [0, 1], as `fit`)."""
        return super().evaluate(self._checked(x, "evaluate"), y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """Reconstructions of `x` in batches: `keras.Model.predict`, as numpy.

        Deterministic: no corruption, and a VAE decodes `z_mean`. Images in
        [0, 1] (a warning, once, otherwise).
        """
        return super().predict(self._checked(x, "predict"), *args, **kwargs)

    def encode(self, x):
        """Codes of images `x`: the encoder's output (a VAE's `z_mean`).

        Args:
            x: images `(n,) + image_shape`, float in [0, 1].

        Returns:
            A backend tensor `(n,) + code_shape`. For large arrays, call
            `model.encoder.predict(x, batch_size=...)` (a VAE's first output is
            `z_mean`).
        """
        self._checked(x, "encode")
        code = self.encoder(x, training=False)
        return code[0] if self.variational else code

    def decode(self, z):
        """Images decoded from codes `z` (the decoder's output, in [0, 1]).

        Args:
            z: codes `(n,) + code_shape`, e.g. from `encode`, interpolated, or
                (VAE) drawn from N(0, I).

        Returns:
            A backend tensor `(n,) + image_shape`.
        """
        return self.decoder(z, training=False)

    def reconstruct(self, x):
        """Deterministic reconstructions `decode(encode(x))`: no corruption, `z_mean`
        for a VAE (`call(x, training=True)` corrupts and samples instead).

        Args:
            x: images `(n,) + image_shape`, float in [0, 1].

        Returns:
            A backend tensor of the shape of `x`.
        """
        return self.decode(self.encode(x))

    def sample(self, n, seed=None):
        """Decodes `n` draws from the prior N(0, I). Variational models only.

        Args:
            n: number of images.
            seed: an int (or a `keras.random.SeedGenerator`) for repeatable draws.
                Defaults to `None`.

        Returns:
            A backend tensor `(n,) + image_shape`.

        Raises:
            TypeError: the model is not a VAE.
        """
        if not self.variational:
            raise InvalidType(
                f"{self.name} is not a variational autoencoder; sampling from a prior "
                f"needs one (its encoder returns z_mean and z_log_var). "
                f"Received: model={self.name!r}"
            )
        z = keras.random.normal((int(n),) + self.code_shape, seed=seed)
        return self.decoder(z, training=False)

    # ---------------------------------------------------------- serialization
    def get_config(self):
        """The serialisable config: both sub-models, the corruption layer, the loss
        settings and the builder's name and arguments (`.keras` files store it)."""
        config = super().get_config()
        serialize = keras.saving.serialize_keras_object
        config.update({
            "encoder": serialize(self.encoder), "decoder": serialize(self.decoder),
            "corruption": None if self.corruption is None else serialize(self.corruption),
            "variational": self.variational, "beta": self.beta,
            "reconstruction": self.reconstruction, "seed": self.seed,
            "builder_name": self.builder_name, "builder_config": self.builder_config,
        })
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """The model of `get_config`'s output (Keras's loader calls this)."""
        config = dict(config)
        for key in ("encoder", "decoder", "corruption"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(
                    config[key], custom_objects=custom_objects
                )
        return cls(**config)


def _replicas():
    """`kerasae.models.replicas` under TensorFlow, else `None` (no replicas)."""
    if keras.backend.backend() != "tensorflow":
        return None
    # lazy: TensorFlow-only, and the builders also run under other Keras backends
    from kerasae.models import replicas
    return replicas


def _scale_for_replicas(loss):
    """Divides by the replica count under `tf.distribute`, as Keras's own losses do:
    Keras's TF trainer sums gradients over replicas and un-scales the reported loss,
    so a custom `compute_loss` must return the per-replica share."""
    return loss if _replicas() is None else _replicas().scale_for_replicas(loss)
