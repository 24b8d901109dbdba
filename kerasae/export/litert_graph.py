"""The graphs LiteRT files are converted from: transposed convolutions and nearest
upsampling rewritten (2-D, and 1-D the same way along one axis).

A Keras `Conv2DTranspose` becomes LiteRT's `TRANSPOSE_CONV`, whose output shape is
a tensor computed at run time when the batch axis is dynamic. With LiteRT's
default CPU delegate (XNNPACK), a decoder holding one returns wrong outputs on a
resized input in about one interpreter in eight (ai-edge-litert 2.3, measured on
the conv VAE preset's decoder at batch 250: 10 of 64 fresh interpreters; 0 of 64
without the delegate, with a fixed batch, or at the default batch 1).

So the LiteRT export computes each such layer as the same function written with
ops whose shapes are known when the input is resized: zeros inserted between the
input pixels (`RESHAPE` and `PAD`, along each spatial axis), padded, and a
stride-1 `CONV_2D` with the kernel flipped and its channel axes swapped. It costs
about strides^2 times the multiply-adds of those layers; the parity check
compares the result with the original Keras model. Layers it does not cover
(dilation, `output_padding`, `channels_first`, unequal strides) stay as they are.

A Keras `UpSampling2D` (nearest) is `ops.repeat`, which TensorFlow writes with a
dynamic batch as `Tile` and a `Reshape` to a shape computed from `Shape` at run
time: the graph loses the height, width and channels of its output. The
converter recovers part of them, but a second upsampling loses the channels
again, and a `Conv2D` whose input channels are unknown has no LiteRT kernel
("'tf.Conv2D' op is neither a custom op nor a flex op": every upsample decoder
with two stages or more). The export writes it as `RESHAPE` and `CONCATENATION`
with constant shapes (the same values, bit for bit), so every shape but the
batch stays known.
"""

import keras
import numpy as np
import tensorflow as tf

from kerasae.export.graphs import Parts


class ZeroInsertionConv2D(keras.layers.Layer):
    """`Conv2DTranspose(filters, kernel_size, strides, padding)` as zero insertion
    and a stride-1 convolution (see the module docstring). Export-only: it runs in
    TensorFlow graphs, and takes its weights from the layer it replaces."""

    def __init__(self, filters, kernel_size, strides, padding, activation=None,
                 use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.stride = int(strides[0])
        self.padding = padding
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias

    def build(self, input_shape):
        kh, kw = self.kernel_size
        self.kernel = self.add_weight(name="kernel", shape=(kh, kw, input_shape[-1],
                                                             self.filters))
        self.bias = self.add_weight(name="bias", shape=(self.filters,)) if self.use_bias \
            else None

    def _pads(self):
        """(before, after) per spatial axis, after zero insertion to `size * stride`."""
        pads = []
        for k in self.kernel_size:
            if self.padding == "same":
                half = max(k - self.stride, 0) // 2  # TF's SAME: the smaller half first
                pads.append((k - 1 - half, half))
            else:  # valid: output size * stride + max(k - stride, 0)
                pads.append((k - 1, max(k - self.stride, 0)))
        return pads

    def call(self, x):
        s = self.stride
        if s > 1:  # RESHAPE and PAD only (int16 activations have kernels for both)
            _, h, w, c = x.shape
            x = tf.pad(tf.reshape(x, (-1, w, 1, c)), [[0, 0], [0, 0], [0, s - 1], [0, 0]])
            x = tf.reshape(x, (-1, h, 1, w * s * c))
            x = tf.pad(x, [[0, 0], [0, 0], [0, s - 1], [0, 0]])
            x = tf.reshape(x, (-1, h * s, w * s, c))
        (t, b), (left, right) = self._pads()
        x = tf.pad(x, [[0, 0], [t, b], [left, right], [0, 0]])
        y = tf.nn.conv2d(x, self.kernel, strides=1, padding="VALID")
        if self.use_bias:
            y = tf.nn.bias_add(y, self.bias)
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        (t, b), (left, right) = self._pads()
        h, w = (None if d is None else d * self.stride + p[0] + p[1] - k + 1
                for d, p, k in zip(input_shape[1:3], ((t, b), (left, right)),
                                   self.kernel_size))
        return (input_shape[0], h, w, self.filters)


class RepeatUpSampling2D(keras.layers.Layer):
    """`UpSampling2D(size, interpolation="nearest")` with every shape but the batch
    known in the graph (see the module docstring). Export-only: it runs in
    TensorFlow graphs, has no weights, and needs known channels; an unknown height or
    width (a model of any size) is read from the input at run time."""

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(int(s) for s in size)

    def call(self, x):
        _, h, w, c = x.shape
        sh, sw = self.size
        if h is None or w is None:  # a model of any size: the shapes come from the input,
            # with the channels a constant so that the next convolution knows them
            dims = tf.shape(x)
            b, h, w = dims[0], dims[1], dims[2]
            row, out = tf.stack([-1, 1, w * sw * c]), tf.stack([b, h * sh, w * sw, c])
        else:
            row, out = (-1, 1, w * sw * c), (-1, h * sh, w * sw, c)
        # Each pixel repeated sw times along the width, then each row sh times: RESHAPE
        # and CONCATENATION (kernels for int8 and int16 activations), rank 3 at most.
        x = tf.concat([tf.reshape(x, (-1, 1, c))] * sw, axis=1)
        x = tf.concat([tf.reshape(x, row)] * sh, axis=1)
        return tf.reshape(x, out)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        times = lambda d, s: None if d is None else d * s  # noqa: E731
        return (b, times(h, self.size[0]), times(w, self.size[1]), c)


class ZeroInsertionConv1D(keras.layers.Layer):
    """`Conv1DTranspose` as zero insertion and a stride-1 convolution (as
    `ZeroInsertionConv2D`, along one axis). Export-only."""

    def __init__(self, filters, kernel_size, strides, padding, activation=None,
                 use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = int(filters), int(kernel_size[0])
        self.stride, self.padding = int(strides[0]), padding
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(self.kernel_size, input_shape[-1],
                                                             self.filters))
        self.bias = self.add_weight(name="bias", shape=(self.filters,)) if self.use_bias \
            else None

    def _pad(self):
        k, s = self.kernel_size, self.stride
        if self.padding == "same":
            half = max(k - s, 0) // 2
            return k - 1 - half, half
        return k - 1, max(k - s, 0)

    def call(self, x):
        s = self.stride
        _, t, c = x.shape
        if s > 1:
            x = tf.pad(tf.reshape(x, (-1, 1, c)), [[0, 0], [0, s - 1], [0, 0]])
            x = tf.reshape(x, (-1, t * s, c))
        x = tf.pad(x, [[0, 0], self._pad(), [0, 0]])
        y = tf.nn.conv1d(x, self.kernel, stride=1, padding="VALID")
        if self.use_bias:
            y = tf.nn.bias_add(y, self.bias)
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        before, after = self._pad()
        t = input_shape[1]
        t = None if t is None else t * self.stride + before + after - self.kernel_size + 1
        return (input_shape[0], t, self.filters)


class RepeatUpSampling1D(keras.layers.Layer):
    """`UpSampling1D(size)` with the steps and channels known in the graph. Export-only."""

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)

    def call(self, x):
        _, t, c = x.shape
        x = tf.concat([tf.reshape(x, (-1, 1, c))] * self.size, axis=1)
        return tf.reshape(x, (-1, t * self.size, c))

    def compute_output_shape(self, input_shape):
        b, t, c = input_shape
        return (b, None if t is None else t * self.size, c)


_COVERED = (keras.layers.UpSampling2D, keras.layers.Conv2DTranspose, keras.layers.UpSampling1D,
            keras.layers.Conv1DTranspose)


def _replacement(layer):
    """The export-only layer that computes `layer` for LiteRT, or None to keep it."""
    if type(layer) not in _COVERED:
        return None
    c = layer.get_config()
    if c.get("data_format", "channels_last") != "channels_last":
        return None
    if type(layer) is keras.layers.UpSampling1D:
        return RepeatUpSampling1D(c["size"], name=c["name"], dtype="float32")
    if type(layer) is keras.layers.Conv1DTranspose:
        if c.get("output_padding") is None and tuple(c["dilation_rate"]) == (1,) and \
                c["padding"] in ("same", "valid"):
            return ZeroInsertionConv1D(c["filters"], c["kernel_size"], c["strides"],
                                       c["padding"], c["activation"], c["use_bias"],
                                       name=c["name"], dtype="float32")
        return None
    if type(layer) is keras.layers.UpSampling2D:
        return (RepeatUpSampling2D(c["size"], name=c["name"], dtype="float32")
                if c["interpolation"] == "nearest" else None)  # others resize to a constant size
    strides = tuple(c["strides"])
    if (c.get("output_padding") is None and tuple(c["dilation_rate"]) == (1, 1)
            and strides[0] == strides[1] and c["padding"] in ("same", "valid")):
        return ZeroInsertionConv2D(c["filters"], c["kernel_size"], strides, c["padding"],
                                   c["activation"], c["use_bias"], name=c["name"],
                                   dtype="float32")
    return None


def _rewrite(functional):
    """`(copy with covered layers replaced, {replacement class name: number})`;
    `functional` itself (and `{}`) when it holds none."""
    if not any(_replacement(layer) for layer in functional.layers):
        return functional, {}
    pairs = []

    def clone(layer):
        if isinstance(layer, keras.Model):
            return layer  # shared as it is
        new = _replacement(layer) or layer.__class__.from_config(layer.get_config())
        pairs.append((layer, new))
        return new

    copy = keras.models.clone_model(functional, clone_function=clone)
    counts = {}
    for old, new in pairs:
        weights = [np.asarray(w) for w in old.get_weights()]
        if isinstance(new, ZeroInsertionConv2D):
            # Conv2DTranspose kernels are (kh, kw, out, in): flip the window, swap.
            weights[0] = np.ascontiguousarray(weights[0][::-1, ::-1].transpose(0, 1, 3, 2))
        elif isinstance(new, ZeroInsertionConv1D):  # (k, out, in) likewise
            weights[0] = np.ascontiguousarray(weights[0][::-1].transpose(0, 2, 1))
        new.set_weights(weights)
        if type(new) is not type(old):
            counts[type(new).__name__] = counts.get(type(new).__name__, 0) + 1
    return copy, counts


def litert_parts(parts):
    """`(parts for the LiteRT conversion, {"encoder": n, "decoder": n} transposed
    convolutions rewritten)`; `parts` itself when no layer is rewritten."""
    encoder, n_enc = _rewrite(parts.encoder)
    decoder, n_dec = _rewrite(parts.decoder)
    rewritten = {role: n.get("ZeroInsertionConv2D", 0) + n.get("ZeroInsertionConv1D", 0)
                 for role, n in (("encoder", n_enc), ("decoder", n_dec))}
    if encoder is parts.encoder and decoder is parts.decoder:
        return parts, rewritten
    return Parts(encoder, decoder, parts.variational, parts.image_shape, parts.code_shape,
                 parts.policy, parts.converted), rewritten
