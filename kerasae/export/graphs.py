"""The graphs an export is made of: float32 inference parts, the three signatures, traced.

Every exported graph is deterministic: a VAE encoder returns `z_mean` and
`z_log_var` and `reconstruct` decodes `z_mean`; a signature whose traced graph
holds a random op is refused before any file exists.
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf

from kerasae._util.errors import InvalidType, InvalidValue
from kerasae.export.formats import is_random_op, random_ops_error


class Parts:
    """Float32 inference encoder/decoder plus what the export needs to know."""

    def __init__(self, encoder, decoder, variational, image_shape, code_shape,
                 policy, converted):
        self.encoder = encoder
        self.decoder = decoder
        self.variational = variational
        self.image_shape = image_shape
        self.code_shape = code_shape
        self.policy = policy
        self.converted = converted

    @property
    def code_outputs(self):
        return ["z_mean", "z_log_var"] if self.variational else ["code"]


def inference_parts(model):
    encoder = getattr(model, "encoder", None)
    decoder = getattr(model, "decoder", None)
    if not (isinstance(encoder, keras.Model) and isinstance(decoder, keras.Model)):
        raise InvalidType(
            "export needs a kerasae autoencoder: a model with `encoder` and `decoder` "
            "sub-models, as returned by kerasae.build(...). "
            f"Received: model={type(model).__name__}"
        )
    if not getattr(model, "built", False) or not _has_inputs(encoder) or not _has_inputs(decoder):
        raise InvalidValue(
            f"Model {getattr(model, 'name', '?')!r} is not built: its encoder and "
            "decoder need known input shapes. Build it with a builder "
            "(kerasae.build(...)) or call it once on a batch before exporting. "
            f"Received: model.built={getattr(model, 'built', False)}"
        )
    outputs = encoder.outputs if isinstance(encoder.outputs, list) else [encoder.outputs]
    variational = bool(getattr(model, "variational", len(outputs) == 2))
    if variational and len(outputs) != 2:
        raise InvalidValue(
            "A variational encoder must return [z_mean, z_log_var]. "
            f"Received: {len(outputs)} encoder output(s)"
        )
    image_shape = tuple(encoder.inputs[0].shape[1:])
    code_shape = tuple(decoder.inputs[0].shape[1:])
    if any(d is None for d in image_shape + code_shape):
        raise InvalidValue(
            "Export needs fixed image and code shapes (only the batch axis may be "
            f"dynamic). Received: image_shape={image_shape}, code_shape={code_shape}"
        )
    policies = sorted({layer.dtype_policy.name for m in (encoder, decoder)
                       for layer in _all_layers(m)})
    mixed = [p for p in policies if p != "float32"]
    converted = False
    if mixed:
        # float16/bfloat16 graphs export poorly (Cast chains, no ORT CPU kernels
        # for some ops) and lose the 1e-5 parity; deployment gets float32.
        encoder, decoder = _float32_copy(encoder), _float32_copy(decoder)
        converted = True
    policy = mixed[0] if mixed else "float32"
    return Parts(encoder, decoder, variational, image_shape, code_shape, policy, converted)


def _has_inputs(functional):
    try:
        return bool(functional.inputs)
    except (AttributeError, ValueError):
        return False


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


def _float32_copy(functional):
    def clone(layer):
        config = layer.get_config()
        if "dtype" in config:
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    with _float32_policy():
        copy = keras.models.clone_model(functional, clone_function=clone)
    copy.set_weights([np.asarray(w, dtype="float32") for w in functional.get_weights()])
    return copy


@contextlib.contextmanager
def _float32_policy():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def endpoints(parts):
    """The three signatures as Python functions of named tensors -> dicts."""
    encoder, decoder, variational = parts.encoder, parts.decoder, parts.variational

    def encode(image):
        out = encoder(image, training=False)
        if variational:
            return {"z_mean": out[0], "z_log_var": out[1]}
        return {"code": out}

    def decode(code):
        return {"reconstruction": decoder(code, training=False)}

    def reconstruct(image):
        out = encoder(image, training=False)
        # A VAE decodes the mean: deterministic, no sampler in the graph.
        return decode(out[0] if variational else out)

    return {"encode": encode, "decode": decode, "reconstruct": reconstruct}


def specs(parts, signature):
    image = tf.TensorSpec((None,) + parts.image_shape, tf.float32, name="image")
    code = tf.TensorSpec((None,) + parts.code_shape, tf.float32, name="code")
    return [code] if signature == "decode" else [image]


def trace(fns, parts):
    """`tf.function`s of the three signatures, traced and checked for random ops."""
    graphs = {}
    for name, fn in fns.items():
        function = tf.function(fn, input_signature=specs(parts, name), autograph=False)
        graph_def = function.get_concrete_function().graph.as_graph_def()
        nodes = list(graph_def.node)
        for library_fn in graph_def.library.function:
            nodes.extend(library_fn.node_def)
        random = sorted({(n.op, n.name) for n in nodes if is_random_op(n.op)})
        if random:
            raise random_ops_error(f"{name!r} signature", random)
        graphs[name] = function
    return graphs
