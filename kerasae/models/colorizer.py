"""`Colorizer`: a U-Net from an image's luminance to its colours (not an autoencoder).

The model predicts the two chroma channels (Cb, Cr) of the YCbCr split of JPEG (ITU-R
BT.601, full range) from the luminance Y, and recombines them with Y into RGB inside the
model (`YCbCrToRGB`), so its input is a grey image and its output a colour image, both in
[0, 1]. The chroma is regressed (`bins=None`), or, with `bins=B`, classified over a
B x B grid of (Cb, Cr) bins and read as the annealed mean of the bins (`AnnealedMean`;
Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016): a regression's squared
error fades the colours of an ambiguous pixel toward the mean, a distribution does not. It is fully convolutional: any height and width, padded inside the model to a
multiple of `2 ** depth` (`EdgePad`: repeated edges) and cropped back (`CropLike`).

It is no autoencoder family (no encoder, no code): `register_model_builder` lets a preset
name it (`colorize_photos`) while the family-wide contracts leave it out.
"""

import keras
import numpy as np
from keras import ops

from kerasae._util.errors import InvalidValue
from kerasae.models import _validate
from kerasae.models.builder import register_model_builder
from kerasae.models.families.tiny import EdgePad

# RGB -> YCbCr of JPEG (BT.601, full range), on [0, 1] values (chroma centred on 0).
RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114],
                         [-0.168736, -0.331264, 0.5],
                         [0.5, -0.418688, -0.081312]], "float64")
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)  # R = Y + 1.402 Cr, ...


def rgb_to_ycbcr(rgb):
    """`(..., 3)` RGB in [0, 1] -> `(..., 3)` Y, Cb, Cr (numpy, float32)."""
    return (np.asarray(rgb, "float32") @ RGB_TO_YCBCR.T.astype("float32")).astype("float32")


def ycbcr_to_rgb(ycc):
    """`(..., 3)` Y, Cb, Cr -> `(..., 3)` RGB (numpy, float32, not clipped)."""
    return (np.asarray(ycc, "float32") @ YCBCR_TO_RGB.T.astype("float32")).astype("float32")


@keras.saving.register_keras_serializable(package="kerasae")
class YCbCrToRGB(keras.layers.Layer):
    """`[Y (..., 1), CbCr (..., 2)]` -> RGB clipped to [0, 1] (BT.601, full range).

    Args:
        chroma_gain: factor on the chroma before the recombination; above 1 undoes part
            of the fading of a model trained on squared error. Defaults to `1.0`.
        mean_chroma: the training photos' mean `(cb, cr)`, unused here: kept in the
            layer's config so that a saved `.keras` file carries the colour cast of
            `colorize`'s mean-chroma baseline. Defaults to `None` (not known).
    """

    def __init__(self, chroma_gain=1.0, mean_chroma=None, **kwargs):
        super().__init__(**kwargs)
        self.chroma_gain = check_chroma_gain(chroma_gain)
        self.mean_chroma = None if mean_chroma is None else [float(v) for v in mean_chroma]
        self._matrix = YCBCR_TO_RGB.T.astype("float32")  # a constant, not a weight

    def call(self, inputs):
        y, cbcr = inputs
        ycc = ops.concatenate([y, cbcr * self.chroma_gain], axis=-1)
        return ops.clip(ops.matmul(ycc, ops.convert_to_tensor(self._matrix)), 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (3,)

    def get_config(self):
        return {**super().get_config(), "chroma_gain": self.chroma_gain,
                "mean_chroma": self.mean_chroma}


def rgb_layer(model):
    """The `YCbCrToRGB` layer of a colorizer (its `chroma_gain` and `mean_chroma`), or
    `None` for a model without one."""
    for layer in getattr(model, "layers", ()):
        if isinstance(layer, YCbCrToRGB):
            return layer
    return None


@keras.saving.register_keras_serializable(package="kerasae")
class CropLike(keras.layers.Layer):
    """`[x, reference]` -> `x` cropped at the bottom and the right to the reference's
    height and width (undoes `EdgePad`)."""

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(reference)
        return x[:, :shape[1], :shape[2]]

    def compute_output_shape(self, input_shape):
        x, reference = input_shape
        return (x[0], reference[1], reference[2], x[3])


def chroma_centres(bins):
    """The `(bins * bins, 2)` centres of the chroma bins: a grid over Cb and Cr in
    [-0.5, 0.5], Cb the slow axis (an odd `bins` puts grey, (0, 0), at a centre)."""
    axis = np.linspace(-0.5, 0.5, int(bins))
    cb, cr = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([cb.ravel(), cr.ravel()], axis=-1).astype("float32")


def annealed_mean(logits, bins, temperature):
    """numpy twin of `AnnealedMean`: `(..., bins * bins)` logits -> `(..., 2)` chroma."""
    z = np.asarray(logits, "float64") / float(temperature)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return (p @ chroma_centres(bins).astype("float64")).astype("float32")


@keras.saving.register_keras_serializable(package="kerasae")
class AnnealedMean(keras.layers.Layer):
    """Logits over the chroma bins (`chroma_centres(bins)`) -> `(Cb, Cr)`: the mean of
    the centres under `softmax(logits / temperature)`. Temperature 1 gives the
    distribution's mean (faded where it is spread), toward 0 its mode (vivid, but
    patchy); Zhang et al. used 0.38.

    Args:
        bins: bins per chroma axis (odd).
        temperature: in (0, 1]. Defaults to `0.38`.
    """

    def __init__(self, bins, temperature=0.38, **kwargs):
        super().__init__(**kwargs)
        self.bins = _bins(bins)
        self.temperature = _temperature(temperature)
        self._centres = chroma_centres(self.bins)  # a constant, not a weight

    def call(self, logits):
        p = ops.softmax(ops.cast(logits, "float32") / self.temperature, axis=-1)
        return ops.matmul(p, ops.convert_to_tensor(self._centres))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (2,)

    def get_config(self):
        return {**super().get_config(), "bins": self.bins, "temperature": self.temperature}


def _bins(value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
            not 3 <= value <= 65 or value % 2 == 0:
        raise InvalidValue("bins is the number of chroma bins per axis: an odd integer in "
                           f"[3, 65] (17: steps of 1/16), or None (--bins 0) to regress the "
                           f"chroma. Received: bins={value!r}")
    return int(value)


def _temperature(value):
    try:
        t = float(value)
    except (TypeError, ValueError):
        t = float("nan")
    if isinstance(value, bool) or not 0 < t <= 1:
        raise InvalidValue("temperature is in (0, 1]: 1 reads the mean of the chroma "
                           f"distribution, lower toward its mode. Received: temperature={value!r}")
    return t


def check_chroma_gain(value):
    """`chroma_gain` checked: a finite number above 0, as a float."""
    try:
        gain = float(value)
    except (TypeError, ValueError):
        gain = float("nan")
    if isinstance(value, bool) or not 0 < gain < float("inf"):
        raise InvalidValue(f"chroma_gain is a finite factor above 0 on the predicted chroma. "
                           f"Received: chroma_gain={value!r}")
    return gain


def check_reading(bins, temperature=None):
    """`(bins, temperature)` checked: `bins` `None` (or 0: regression) or odd in [3, 65],
    `temperature` `None` or in (0, 1] and given only with bins."""
    if bins is None or (not isinstance(bins, bool) and bins == 0):
        if temperature is not None:
            raise InvalidValue(
                f"temperature reads a distribution over chroma bins, and bins=None regresses "
                f"the chroma (as --bins 0 regresses the colour): drop one. Received: "
                f"temperature={temperature!r}")
        return None, None
    return _bins(bins), None if temperature is None else _temperature(temperature)


def chroma_model(model):
    """The part of a colorizer from luminance to its chroma `(Cb, Cr)` (shares weights)."""
    return keras.Model(model.input, model.get_layer("rgb").input[1])


def logits_model(model):
    """The part of a colorizer with `bins` from luminance to the bins' logits, or `None`."""
    if not any(isinstance(layer, AnnealedMean) for layer in model.layers):
        return None
    return keras.Model(model.input, model.get_layer("crop").output)


def shift_logits(model, shift):
    """Adds `shift` (one value per bin) to the bias of a bins colorizer's logits, in
    place: a reading that takes back part of its training's rebalancing
    (`kerasae.uses._colorbins.logit_shift`)."""
    layer = model.get_layer("chroma_logits")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, bias + np.asarray(shift, "float32").reshape(bias.shape)])


def _mean_chroma(value):
    """`value` as two finite floats `[cb, cr]` in [-0.5, 0.5], or an error."""
    try:
        pair = [float(v) for v in value]
    except (TypeError, ValueError):
        pair = []
    if len(pair) != 2 or not all(np.isfinite(v) and abs(v) <= 0.5 for v in pair):
        raise InvalidValue(
            "mean_chroma is the training photos' mean (Cb, Cr): two numbers in [-0.5, 0.5], "
            f"or None. Received: mean_chroma={value!r}")
    return pair


def _conv(x, filters, name, strides=1):
    return keras.layers.Conv2D(filters, 3, strides=strides, padding="same",
                               activation="relu", name=name)(x)


def _unet(x, width, depth, global_context=False):
    """Two convolutions per level (the first of stride 2 below the top), three at the
    bottom, transposed-convolution upsampling with skips."""
    skips = []
    for level in range(depth):
        filters = width * 2 ** min(level, 3)
        x = _conv(x, filters, f"enc_{level}_a", strides=2 if level else 1)
        x = _conv(x, filters, f"enc_{level}_b")
        skips.append(x)
    filters = width * 2 ** min(depth, 3)
    x = _conv(x, filters, "bottom_a", strides=2)
    x = _conv(x, filters, "bottom_b")
    x = _conv(x, filters, "bottom_c")
    if global_context:  # the whole image's mean features, added everywhere (a scene prior)
        g = keras.layers.GlobalAveragePooling2D(keepdims=True, name="context_pool")(x)
        g = keras.layers.Conv2D(filters, 1, activation="relu", name="context")(g)
        x = keras.layers.Add(name="context_add")([x, g])
    for level in reversed(range(depth)):
        filters = width * 2 ** min(level, 3)
        # a learned x2 upsampling: UpSampling2D(nearest) blocks a LiteRT conversion at an
        # open size and (bilinear) predict() on partly unknown shapes
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, activation="relu",
                                         name=f"up_{level}")(x)
        x = keras.layers.Concatenate(name=f"skip_{level}")([x, skips[level]])
        x = _conv(x, filters, f"dec_{level}_a")
        x = _conv(x, filters, f"dec_{level}_b")
    return x


@register_model_builder("colorizer")
def Colorizer(*, width=8, depth=4, global_context=False, chroma_gain=1.0, mean_chroma=None,
              bins=None, temperature=None, input_shape=(None, None, 1), weights=None,
              name="colorizer"):
    """Instantiates a colorizer: a U-Net from luminance to RGB.

    The U-Net predicts the chroma (Cb, Cr) of BT.601's YCbCr from the luminance Y;
    `YCbCrToRGB` recombines them with Y, so the output's luminance is the input's.

    Args:
        width: filters of the first level; each level below doubles them (up to 8x).
            Defaults to `8`.
        depth: stride-2 stages down to the bottom (each halves the size); inputs are
            padded to a multiple of `2 ** depth`. Defaults to `4`.
        global_context: add the image's mean bottom features to every position (a
            scene-level prior). Defaults to `False`.
        chroma_gain: factor on the predicted chroma (`YCbCrToRGB`). Defaults to `1.0`.
        bins: `None` (or 0) to regress (Cb, Cr); or an odd number in [3, 65] of bins per
            chroma axis, to predict a distribution over `bins * bins` bins
            (`chroma_centres`) read by `AnnealedMean`. Defaults to `None`.
        temperature: `AnnealedMean`'s, in (0, 1] (lower: more vivid), with `bins` only.
            Defaults to `None` (0.38 with `bins`).
        mean_chroma: the training photos' mean `(cb, cr)`, kept in the saved model for
            `colorize`'s mean-chroma baseline (the model does not use it). Defaults to
            `None` (not known).
        input_shape: `(height, width, 1)`, `None` for an open size. Defaults to
            `(None, None, 1)` (any size).
        weights: `None`, a `.weights.h5` / `.keras` file or a preset name
            (`"colorize_photos"`). Defaults to `None`.
        name: the model's name. Defaults to `"colorizer"`.

    Returns:
        A functional `keras.Model` from `(batch, height, width, 1)` luminance in [0, 1]
        to `(batch, height, width, 3)` RGB in [0, 1].

    Example:

    ```python
    model = kerasae.models.colorizer.Colorizer(weights="colorize_photos")
    rgb = model.predict(grey[None, ..., None])[0]  # grey: (h, w) in [0, 1]
    ```
    """
    width = _validate.positive_int(width, "width")
    depth = _validate.positive_int(depth, "depth")
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3 \
            or input_shape[2] != 1:
        raise InvalidValue(
            "A colorizer reads luminance only: input_shape is (height, width, 1), None "
            "for an open size, e.g. (None, None, 1). Received: "
            f"input_shape={input_shape!r}")
    if mean_chroma is not None:
        mean_chroma = _mean_chroma(mean_chroma)
    bins, temperature = check_reading(bins, temperature)
    if bins is not None and temperature is None:
        temperature = 0.38
    grey = keras.Input(tuple(input_shape), name="grey")
    x = EdgePad(2 ** depth, name="pad")(grey)
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="centre")(x)
    x = _unet(x, width, depth, bool(global_context))
    if bins is None:
        cbcr = keras.layers.Conv2D(2, 1, name="chroma", dtype="float32")(x)
        cbcr = CropLike(name="crop")([cbcr, grey])
    else:  # logits of the bins, cropped, read as their annealed mean
        logits = keras.layers.Conv2D(bins * bins, 1, name="chroma_logits", dtype="float32")(x)
        logits = CropLike(name="crop")([logits, grey])
        cbcr = AnnealedMean(bins, temperature, name="chroma")(logits)
    rgb = YCbCrToRGB(chroma_gain, mean_chroma, name="rgb")([grey, cbcr])
    return keras.Model(grey, rgb, name=name)
