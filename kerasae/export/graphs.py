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
    """Float32 inference encoder/decoder plus what the export needs to know.

    `image_shape` and `code_shape` may hold `None` for the height and width of a model
    of any size (`open_size`): its graphs take any size, its encoder pads to a multiple
    of the code's cell and `reconstruct` crops back to the input's size.
    """

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
    def open_size(self):
        """True for a model of any height and width (`None` in `image_shape`)."""
        return None in self.image_shape

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
    _check_shapes(image_shape, code_shape)
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


def _check_shapes(image_shape, code_shape):
    """Fixed shapes, or an image model of any height and width with known channels."""
    fixed = None not in image_shape + code_shape
    open_image = (len(image_shape) == 3 == len(code_shape) and None not in
                  (image_shape[2], code_shape[2]))
    if not (fixed or open_image):
        raise InvalidValue(
            "Export needs fixed shapes, except the height and width of an image model "
            "of any size (its channels, and every axis of records and series, must be "
            "known): build the model with a fixed input_shape. "
            f"Received: image_shape={image_shape}, code_shape={code_shape}"
        )


def crop_to(images, reference):
    """`images` (a decoded grid) cut at the bottom and the right to the height and width
    of `reference` (the input it came from), in the graph."""
    shape = tf.shape(reference)
    return images[:, :shape[1], :shape[2], :]


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
    open_size = parts.open_size

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
        recon = decode(out[0] if variational else out)
        if open_size:  # the decoder returns the padded grid: back to the input's size
            recon = {"reconstruction": crop_to(recon["reconstruction"], image)}
        return recon

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
