"""Stacked (deep) dense autoencoders: plain, sparse, denoising; layer-wise pretraining."""

import math
import random

import keras
import numpy as np

from kerasae._util.errors import InvalidType, InvalidValue
from kerasae.layers import SPARSITIES, Scale, SparsityPenalty
from kerasae.losses import RECONSTRUCTIONS
from kerasae.models import _validate
from kerasae.models import scaling as scaling_lib
from kerasae.models.parts import (dense_sizes, latent_heads, make_autoencoder, output_of,
                                 scaled_input, scaled_output, scaling_of)
from kerasae.models.builder import register_builder


BATCH_NORM = dict(momentum=0.9, epsilon=1e-5)  # PyTorch's (and PyOD's) constants


def hidden_block(x, units, activation, name, *, batch_norm=False, dropout=0.0,
                 kernel_initializer="glorot_uniform"):
    """`Dense(units, activation)`, or with `batch_norm` / `dropout` the block
    `Dense -> BatchNormalization -> activation -> Dropout` (PyOD's AutoEncoder's order)."""
    if not batch_norm and not dropout:
        return keras.layers.Dense(units, activation=activation, name=name,
                                  kernel_initializer=kernel_initializer)(x)
    x = keras.layers.Dense(units, name=name, kernel_initializer=kernel_initializer)(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn", **BATCH_NORM)(x)
    if activation is not None:
        x = keras.layers.Activation(activation, name=f"{name}_act")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def dense_encoder(input_shape, hidden_units, latent_dim, activation, *,
                  variational=False, code_activation=None, sparsity=None,
                  sparsity_weight=1e-3, sparsity_target=0.05, scaling=None, block=None):
    block = block or {}
    inputs = keras.Input(shape=input_shape, name="image")
    x = scaled_input(inputs, scaling)
    x = keras.layers.Flatten(name="flatten")(x) if len(input_shape) > 1 else x
    for i, units in enumerate(hidden_units):
        x = hidden_block(x, units, activation, f"dense_{i}", **block)
    if block.get("batch_norm") or block.get("dropout"):
        # a code with an activation is a hidden block too (PyOD's); a linear one is not
        code = (hidden_block(x, latent_dim, code_activation, "code", **block)
                if code_activation is not None and not variational
                else latent_heads(x, latent_dim, variational, code_activation))
    else:
        code = latent_heads(x, latent_dim, variational, code_activation)
    if sparsity is not None:
        code = SparsityPenalty(
            sparsity, weight=sparsity_weight, target=sparsity_target, name="sparsity"
        )(code)
    return keras.Model(inputs, code, name="encoder")


def dense_decoder(output_shape, hidden_units, latent_dim, activation, output_activation,
                  scaling=None, block=None):
    block = block or {}
    inputs = keras.Input(shape=(latent_dim,), name="code")
    x = inputs
    for i, units in enumerate(reversed(hidden_units)):
        # Distinct from the encoder's names: pretraining joins layers of both.
        x = hidden_block(x, units, activation, f"decoder_dense_{i}", **block)
    x = keras.layers.Dense(
        math.prod(output_shape), activation=output_activation, name="reconstruction",
        dtype="float32", kernel_initializer=block.get("kernel_initializer", "glorot_uniform"),
    )(x)
    if len(output_shape) > 1:
        x = keras.layers.Reshape(output_shape, name="reshape")(x)
    return keras.Model(inputs, scaled_output(x, scaling), name="decoder")


@register_builder("stacked_ae", example=dict(hidden_units=(32,), latent_dim=8,
                                               input_shape=(8, 8, 1)))
def StackedAE(
    *,
    hidden_units="auto",
    latent_dim="auto",
    activation="relu",
    code_activation=None,
    output_activation="auto",
    scaling="auto",
    sparsity=None,
    sparsity_weight=1e-3,
    sparsity_target=0.05,
    corruption=None,
    corruption_amount=0.2,
    reconstruction="mse",
    batch_norm=False,
    dropout=0.0,
    kernel_initializer="glorot_uniform",
    seed=None,
    input_shape=(28, 28, 1),
    weights=None,
    name="stacked_ae",
):
    """Instantiates a stacked (deep) dense autoencoder.

    The encoder is `Flatten -> Dense(hidden_units...) -> Dense(latent_dim)`; the
    decoder mirrors it and reshapes back to `input_shape`. Optional sparsity on
    the code and optional train-time corruption (denoising). Train it end to end
    with `fit`, or greedily layer by layer first with `pretrain_layerwise`. It takes
    images `(H, W, C)` in [0, 1] or records `(features,)` of any range: records are
    scaled inside the model (`scaling`), so it takes and gives raw values.

    Args:
        hidden_units: sizes of the hidden layers, outermost first (any depth,
            may be empty). `"auto"`: `(512, 256)` for images, none `()` for records.
            Defaults to `"auto"`.
        latent_dim: size of the code. `"auto"`: 64 for images, a quarter of the
            features (at least 1) for records. Defaults to `"auto"`.
        activation: hidden activation. Defaults to `"relu"`.
        code_activation: activation of the code layer; `None` means linear, or
            sigmoid when `sparsity="kl"` (which needs codes in (0, 1)).
            Defaults to `None`.
        output_activation: activation of the reconstruction; `"auto"` is a sigmoid
            for images (pixels in [0, 1]) and linear for records. Defaults to `"auto"`.
        scaling: `"auto"` (none for images, `"standard"` for records), `"standard"`
            (per-feature mean and standard deviation), `"minmax"` or `None`; fitted on
            the training data (`model.adapt`, done by `fit` itself) and saved with
            the model; the loss is measured in the scaled units. Defaults to `"auto"`.
        sparsity: `None`, `"l1"` (L1 activity penalty) or `"kl"` (KL-divergence
            sparsity penalty of sparse autoencoders). Defaults to `None`.
        sparsity_weight: penalty weight. Defaults to `1e-3`.
        sparsity_target: target mean activation rho for `"kl"`. Defaults to `0.05`.
        corruption: `None`, `"gaussian"`, `"masking"` or `"salt_and_pepper"`;
            applied to the input only when training. Defaults to `None`.
        corruption_amount: noise std (gaussian) or corrupted fraction, or a range
            `(low, high)` each example draws its own from (blind denoising).
            Defaults to `0.2`.
        reconstruction: `"mse"` or `"bce"`, averaged over pixels. Defaults to `"mse"`.
        batch_norm: each hidden layer becomes `Dense -> BatchNormalization(momentum
            0.9, epsilon 1e-5) -> activation`, and the code too when it has a
            `code_activation` (PyOD's AutoEncoder's blocks). Defaults to `False`.
        dropout: dropout rate after each such block (training only). Defaults to `0.0`.
        kernel_initializer: of every Dense layer, e.g. `"he_uniform"` (PyOD's).
            Defaults to `"glorot_uniform"`.
        seed: seed of the random layers (noise, sampling). The initial weights
            follow Keras's global seed: `keras.utils.set_random_seed`, which
            `kerasae.fit` calls with its own `seed` when it builds the model.
            Defaults to `None`.
        input_shape: shape of one input, e.g. `(28, 28, 1)` or `(784,)`.
            Defaults to `(28, 28, 1)`.
        weights: `None`, a zoo preset name, or a `.weights.h5` / `.keras` path.
            Defaults to `None`.
        name: model name. Defaults to `"stacked_ae"`.

    Returns:
        A `kerasae.models.Autoencoder` with `encoder` and `decoder` sub-models.

    Reference:
        Hinton & Salakhutdinov, "Reducing the dimensionality of data with neural
        networks", Science 2006; Bengio et al., "Greedy layer-wise training of
        deep networks", NIPS 2006.

    Example:
        >>> import kerasae
        >>> model = kerasae.StackedAE(hidden_units=(128,), latent_dim=16)
        >>> model.encoder.output.shape
        (None, 16)
    """
    input_shape = _validate.input_shape(input_shape)
    hidden_units, latent_dim = dense_sizes(hidden_units, latent_dim, input_shape, ((512, 256), 64))
    hidden_units = _validate.positive_ints(hidden_units, "hidden_units", allow_empty=True)
    latent_dim = _validate.positive_int(latent_dim, "latent_dim")
    activation = _validate.activation(activation, "activation")
    output_activation = output_of(output_activation, input_shape)
    scaling = scaling_of(scaling, input_shape)
    if sparsity is not None:
        _validate.choice(sparsity, "sparsity", SPARSITIES)
        _validate.non_negative_float(sparsity_weight, "sparsity_weight")
        target = _validate.non_negative_float(sparsity_target, "sparsity_target")
        if not 0.0 < target < 1.0:
            raise InvalidValue(f"`sparsity_target` must lie strictly between 0 and 1. "
                               f"Received: sparsity_target={sparsity_target!r}")
    if code_activation is None and sparsity == "kl":
        code_activation = "sigmoid"
    code_activation = _validate.activation(code_activation, "code_activation")
    if sparsity == "kl" and code_activation != "sigmoid":
        raise InvalidValue(
            "The KL sparsity penalty needs code activations in (0, 1); use "
            "code_activation='sigmoid' (or None) with sparsity='kl', or sparsity='l1'. "
            f"Received: code_activation={code_activation!r}"
        )
    _validate.choice(reconstruction, "reconstruction", RECONSTRUCTIONS, "reconstruction loss")
    seed = _validate.seed(seed)
    block = _block_options(batch_norm, dropout, kernel_initializer)
    encoder = dense_encoder(
        input_shape, hidden_units, latent_dim, activation,
        code_activation=code_activation, sparsity=sparsity,
        sparsity_weight=sparsity_weight, sparsity_target=sparsity_target, scaling=scaling,
        block=block,
    )
    decoder = dense_decoder(input_shape, hidden_units, latent_dim, activation, output_activation,
                            scaling, block)
    return make_autoencoder(encoder, decoder, name=name, reconstruction=reconstruction,
                            seed=seed, corruption=corruption,
                            corruption_amount=corruption_amount)


def _block_options(batch_norm, dropout, kernel_initializer):
    if not isinstance(batch_norm, bool):
        raise InvalidType(f"batch_norm is True or False. Received: batch_norm={batch_norm!r}")
    rate = _validate.non_negative_float(dropout, "dropout")
    if rate >= 1.0:
        raise InvalidValue(f"dropout is a rate in [0, 1). Received: dropout={dropout!r}")
    state = random.getstate()  # a Keras initializer draws its seed from Python's random
    try:
        keras.initializers.get(kernel_initializer)
    except (ValueError, TypeError) as e:
        raise InvalidValue("kernel_initializer is a Keras initializer name, e.g. "
                           "'glorot_uniform' or 'he_uniform'. "
                           f"Received: kernel_initializer={kernel_initializer!r}") from e
    finally:  # so checking it leaves the weights of the seeded build as they were
        random.setstate(state)
    return dict(batch_norm=batch_norm, dropout=rate, kernel_initializer=kernel_initializer)


@register_builder("sparse_stacked_ae", example=dict(hidden_units=(32,), latent_dim=8,
                                                      input_shape=(8, 8, 1)))
def SparseStackedAE(
    *,
    hidden_units="auto",
    latent_dim="auto",
    activation="relu",
    sparsity="kl",
    sparsity_weight=1e-3,
    sparsity_target=0.05,
    reconstruction="mse",
    scaling="auto",
    seed=None,
    input_shape=(28, 28, 1),
    weights=None,
    name="sparse_stacked_ae",
):
    """Instantiates a sparse stacked autoencoder (sigmoid code, KL sparsity penalty).

    `StackedAE` with `sparsity="kl"` by default; see `StackedAE` for the arguments.
    Pair it with `kerasae.pretrain_layerwise` for the classic recipe.

    Reference:
        Ng, "Sparse autoencoder", CS294A lecture notes, 2011.
    """
    return StackedAE(
        hidden_units=hidden_units, latent_dim=latent_dim, activation=activation,
        sparsity=sparsity, sparsity_weight=sparsity_weight,
        sparsity_target=sparsity_target, reconstruction=reconstruction, scaling=scaling,
        seed=seed, input_shape=input_shape, name=name,
    )


@register_builder("denoising_stacked_ae", example=dict(hidden_units=(32,), latent_dim=8,
                                                         input_shape=(8, 8, 1)))
def DenoisingStackedAE(
    *,
    hidden_units="auto",
    latent_dim="auto",
    activation="relu",
    corruption="gaussian",
    corruption_amount=0.2,
    reconstruction="mse",
    scaling="auto",
    seed=None,
    input_shape=(28, 28, 1),
    weights=None,
    name="denoising_stacked_ae",
):
    """Instantiates a stacked denoising autoencoder (train-time input corruption).

    `StackedAE` with `corruption="gaussian"`, `corruption_amount=0.2` (clipped to
    [0, 1] for images; for records, in units of each feature's spread) by default; see
    `StackedAE` for the arguments.

    Reference:
        Vincent et al., "Stacked denoising autoencoders", JMLR 2010.
    """
    return StackedAE(
        hidden_units=hidden_units, latent_dim=latent_dim, activation=activation,
        corruption=corruption, corruption_amount=corruption_amount,
        reconstruction=reconstruction, scaling=scaling, seed=seed, input_shape=input_shape,
        name=name,
    )


def pretrain_layerwise(model, x, *, epochs=1, batch_size=128, learning_rate=1e-3,
                       seed=None, verbose=0):
    """Greedy layer-wise pretraining of a stacked dense autoencoder, in place.

    Stage k trains the k-th encoder layer together with its mirror decoder layer
    as a one-hidden-layer autoencoder of the previous layer's output (stage 0
    reconstructs the input with the model's reconstruction loss and output
    activation; later stages reconstruct hidden activations with MSE). The
    stack's own layers are trained, so afterwards they hold exactly the
    pretrained weights; fine-tune the whole model with `fit` afterwards. The
    code stage keeps the model's sparsity penalty.

    Args:
        model: a model from `StackedAE` / `SparseStackedAE` / `DenoisingStackedAE`.
        x: numpy array of inputs, shape `(n,) + model.image_shape`: images in [0, 1],
            or raw records (scaled as the model scales them).
        epochs: epochs per stage. Defaults to `1`.
        batch_size: batch size. Defaults to `128`.
        learning_rate: Adam learning rate of each stage. Defaults to `1e-3`.
        seed: shuffling seed. Defaults to `None`.
        verbose: Keras verbosity. Defaults to `0`.

    Returns:
        A list with one dict per stage: `layer` (encoder layer name), `mirror`
        (decoder layer name), `units`, `loss` (per-epoch loss of the stage) and
        `weights` (copies of both layers' weights at the end of the stage).
    """
    encoder, decoder = model.encoder, model.decoder
    enc_layers = [l for l in encoder.layers if isinstance(l, keras.layers.Dense)]
    dec_layers = [l for l in decoder.layers if isinstance(l, keras.layers.Dense)]
    allowed = (keras.layers.InputLayer, keras.layers.Flatten, keras.layers.Dense,
               keras.layers.Reshape, SparsityPenalty, Scale)
    dense_only = all(isinstance(l, allowed) for l in encoder.layers + decoder.layers)
    if (getattr(model, "variational", False) or not dense_only
            or len(enc_layers) != len(dec_layers)):
        raise InvalidType(
            "pretrain_layerwise needs a stacked dense autoencoder (stacked_ae, "
            "sparse_stacked_ae, denoising_stacked_ae). "
            f"Received: model={model.name!r}"
        )
    x = np.asarray(x, dtype="float32")
    if x.shape[1:] != tuple(model.image_shape):
        raise InvalidValue(
            f"x must have shape (n, {', '.join(map(str, model.image_shape))}) for "
            f"{model.name}. Received: x.shape={x.shape}"
        )
    epochs = _validate.positive_int(epochs, "epochs")
    batch_size = _validate.positive_int(batch_size, "batch_size")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    sparsity = next((l for l in encoder.layers if isinstance(l, SparsityPenalty)), None)
    scale, _ = scaling_lib.scalers(model)
    if scale is not None:  # records: the stages learn the scaled values
        if not scaling_lib.adapted(model):
            scaling_lib.adapt(model, x)
        x = np.asarray(scale(x), dtype="float32")
    h = x.reshape(len(x), -1)
    history = []
    n = len(enc_layers)
    for k, enc in enumerate(enc_layers):
        dec = dec_layers[n - 1 - k]
        inputs = keras.Input(shape=(h.shape[1],), name="stage_input")
        z = inputs
        if k == 0 and model.corruption is not None:
            # Denoising: corrupt the stage-0 input like the full model does.
            z = model.corruption(z)
        z = enc(z)
        if k == n - 1 and sparsity is not None:
            z = sparsity(z)
        out = dec(z)
        stage = keras.Model(inputs, out, name=f"pretrain_stage_{k}")
        loss = "binary_crossentropy" if (k == 0 and model.reconstruction == "bce") else "mse"
        stage.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
        fit = stage.fit(h, h, epochs=epochs, batch_size=batch_size, shuffle=True,
                        verbose=verbose)
        history.append({
            "layer": enc.name, "mirror": dec.name, "units": int(enc.units),
            "loss": [float(v) for v in fit.history["loss"]],
            "weights": {"encoder": [np.array(w) for w in enc.get_weights()],
                        "decoder": [np.array(w) for w in dec.get_weights()]},
        })
        # The next stage learns to encode this layer's (fixed) output.
        if k < n - 1:
            h = np.concatenate(
                [np.asarray(enc(h[i:i + 4096])) for i in range(0, len(h), 4096)]
            ).astype("float32")
    return history
