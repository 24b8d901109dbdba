"""The graphs LiteRT files are converted from: transposed convolutions rewritten.

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


def _covered(layer):
    if type(layer) is not keras.layers.Conv2DTranspose:
        return False
    c = layer.get_config()
    strides = tuple(c["strides"])
    return (c.get("output_padding") is None and tuple(c["dilation_rate"]) == (1, 1)
            and c.get("data_format", "channels_last") == "channels_last"
            and strides[0] == strides[1] and c["padding"] in ("same", "valid"))


def _rewrite(functional):
    """`(copy with covered layers replaced, number replaced)`; `functional` itself if none."""
    if not any(_covered(layer) for layer in functional.layers):
        return functional, 0
    pairs = []

    def clone(layer):
        if _covered(layer):
            c = layer.get_config()
            new = ZeroInsertionConv2D(c["filters"], c["kernel_size"], c["strides"],
                                      c["padding"], c["activation"], c["use_bias"],
                                      name=c["name"], dtype="float32")
        elif isinstance(layer, keras.Model):
            return layer  # shared as it is
        else:
            new = layer.__class__.from_config(layer.get_config())
        pairs.append((layer, new))
        return new

    copy = keras.models.clone_model(functional, clone_function=clone)
    for old, new in pairs:
        weights = [np.asarray(w) for w in old.get_weights()]
        if isinstance(new, ZeroInsertionConv2D):
            # Conv2DTranspose kernels are (kh, kw, out, in): flip the window, swap.
            weights[0] = np.ascontiguousarray(weights[0][::-1, ::-1].transpose(0, 1, 3, 2))
        new.set_weights(weights)
    return copy, sum(isinstance(new, ZeroInsertionConv2D) for _, new in pairs)


def litert_parts(parts):
    """`(parts for the LiteRT conversion, {"encoder": n, "decoder": n} layers rewritten)`."""
    encoder, n_enc = _rewrite(parts.encoder)
    decoder, n_dec = _rewrite(parts.decoder)
    rewritten = {"encoder": n_enc, "decoder": n_dec}
    if not n_enc and not n_dec:
        return parts, rewritten
    return Parts(encoder, decoder, parts.variational, parts.image_shape, parts.code_shape,
                 parts.policy, parts.converted), rewritten
