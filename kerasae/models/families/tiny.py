"""Tiny autoencoders of images of any size: the TAESD family (TAEF2's layout by default).

The encoder is a 3x3 convolution, residual blocks, and per stage a stride-2
convolution and more blocks; the decoder mirrors it with nearest upsampling. The
lowest resolution may hold blocks with a global branch (a 1x1 expansion,
`GroupNormalization` over the whole feature map, a 1x1 projection, added back).
`kerasae.models.convert` loads the published TAESD / TAEF2 checkpoints into it.
"""

import keras
import numpy as np
from keras import ops

from kerasae._util.errors import InvalidType, InvalidValue
from kerasae.losses import RECONSTRUCTIONS
from kerasae.models import _validate, tiles
from kerasae.models.base import Autoencoder
from kerasae.models.builder import register_builder
from kerasae.models.parts import corruption_layer

UPSAMPLING = ("nearest", "bilinear")
NORM_EPSILON = 1e-5  # PyTorch's GroupNorm default, which the published weights were trained with
NORM_EXPANSION = 4  # hidden width of the global branch, in multiples of `width`


@keras.saving.register_keras_serializable(package="kerasae")
class EdgePad(keras.layers.Layer):
    """Pads height and width up to a multiple of `multiple`, at the bottom and the right,
    by repeating the last row and column.

    The bottom and the right, so that the code's grid stays aligned with the image's top
    left corner (code cell (i, j) covers pixels from (i, j) * multiple); repeated edges
    rather than zeros, because the global branch normalises over the whole map and a band
    of black would shift its statistics (see `TinyAE`). Sizes unknown when the model is
    built are padded at run time.

    Args:
        multiple: the size to round up to. Defaults to `8`.
    """

    def __init__(self, multiple=8, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, inputs):
        x = inputs
        for axis in (1, 2):
            size = x.shape[axis]
            if size is None:  # known at run time only: the indices are computed in the graph
                size = ops.shape(x)[axis]
                index = ops.minimum(ops.arange(self._round(size)), size - 1)
            elif size % self.multiple:
                index = np.minimum(np.arange(self._round(size)), size - 1).astype("int32")
            else:
                continue
            x = ops.take(x, index, axis=axis)  # rows (columns) past the last repeat it
        return x

    def _round(self, size):
        """`size` rounded up to the multiple (an int, a tensor, or None). Non-negative
        operands only: ONNX converters write an integer floor division as `Div`, which
        truncates, so `-(-size // m)` would round down there."""
        m = self.multiple
        return None if size is None else (size + m - 1) // m * m

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, self._round(h), self._round(w), c)

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="kerasae")
class TinyAutoencoder(Autoencoder):
    """An `Autoencoder` whose reconstruction is cropped to the height and width of its
    input: a model built for any size (`None` height or width) decodes a padded grid,
    and only the model knows the size it was given. With a fixed size the decoder crops
    by itself and this is the plain `Autoencoder`."""

    def forward(self, x, training=False, **kwargs):
        x_hat, z_mean, z_log_var = super().forward(x, training=training, **kwargs)
        return crop_like(x_hat, x), z_mean, z_log_var

    @property
    def factor(self):
        """Pixels per code cell along each axis (8 for TAESD's layout)."""
        return 2 ** (len(self.builder_config["blocks"]) - 1)

    def _parts(self):
        """`(encoder head, encoder tail, decoder head, decoder tail)` for tiled mode: the
        lowest resolution's blocks (with the global branches, whose GroupNorm needs the
        whole map) are the encoder's tail and the decoder's head, run on the whole code
        grid (1/64 of the pixels); the rest runs in tiles. Tails and heads are `None`
        without global branches."""
        if "_tile_parts" not in self.__dict__:
            enc, dec, stages = self.encoder, self.decoder, len(self.builder_config["blocks"]) - 1
            if not self.builder_config["midblock_norm"] or stages == 0:
                parts = (enc, None, None, dec)
            else:
                enc_mid = enc.get_layer(f"down_{stages}").output
                dec_mid = dec.get_layer(f"upsample_{stages}").input
                parts = (keras.Model(enc.input, enc_mid), keras.Model(enc_mid, enc.output),
                         keras.Model(dec.input, dec_mid), keras.Model(dec_mid, dec.output))
            self.__dict__["_tile_parts"] = parts
        return self.__dict__["_tile_parts"]

    def encode(self, x, tile=None, overlap=None):
        """Codes of images `x` of any size; with `tile` (pixels, a multiple of `factor`),
        each image is encoded in overlapping tiles, blended (`kerasae.models.tiles`), and
        the codes come back as float32 numpy; `overlap` (pixels) defaults to a quarter of
        the tile, at most 64 (`tiles.default_overlap`)."""
        if tile is None:
            _no_overlap_alone(overlap)
            return super().encode(x)
        tile, overlap = tiles.check_tiling(tile, overlap, self.factor)
        head, tail, _, _ = self._parts()
        codes = []
        with tiles.quiet_retracing():
            for image in np.asarray(self._checked(x, "encode"), "float32"):
                mid = tiles.tiled(head.predict_on_batch,
                                  _edge_padded(image, self.factor), tile, overlap,
                                  1 / self.factor, align=self.factor)
                codes.append(mid if tail is None else tail.predict_on_batch(mid[None])[0])
        return _stacked(codes)

    def decode(self, z, tile=None, overlap=None):
        """Images decoded from codes `z`, `factor` times the code's size (an image whose
        size is off a multiple of `factor` comes back padded: `reconstruct` crops it);
        with `tile` (pixels of the image, a multiple of `factor`), decoded in
        overlapping tiles of the code, blended, as float32 numpy."""
        if tile is None:
            _no_overlap_alone(overlap)
            return super().decode(z)
        tile, overlap = tiles.check_tiling(tile, overlap, self.factor)
        _, _, head, tail = self._parts()
        f, out = self.factor, []
        with tiles.quiet_retracing():
            for code in np.asarray(z, "float32"):
                mid = code if head is None else head.predict_on_batch(code[None])[0]
                out.append(tiles.tiled(tail.predict_on_batch, mid, tile // f,
                                       overlap // f, f))
        return _stacked(out)

    def reconstruct(self, x, tile=None, overlap=None):
        """Deterministic reconstructions `decode(encode(x))`, cropped to the size of `x`;
        with `tile`, both run in overlapping tiles (memory follows the tile, not the image:
        a 4000x3000 photo needs well under 2 GB) and the result is float32 numpy."""
        if tile is None:
            _no_overlap_alone(overlap)
            return crop_like(super().reconstruct(x), x)
        out = self.decode(self.encode(x, tile, overlap), tile, overlap)
        return out[:, :np.shape(x)[1], :np.shape(x)[2]]


def _no_overlap_alone(overlap):
    if overlap is not None:
        raise InvalidValue("overlap applies to tiled mode only: pass tile= too (e.g. tile=512, "
                           f"overlap={overlap!r}). Received: tile=None, overlap={overlap!r}")


def _stacked(arrays):
    """`np.stack(arrays)`, without copying a single image (a large photo's output is
    hundreds of MB)."""
    return np.asarray(arrays[0])[None] if len(arrays) == 1 else np.stack(arrays)


def _edge_padded(image, multiple):
    """`image` (H, W, C) padded at the bottom and the right to multiples of `multiple` by
    repeating its last row and column (as `EdgePad` does inside the model)."""
    pad = [(0, -s % multiple) for s in image.shape[:2]] + [(0, 0)]
    return image if not any(after for _, after in pad) else np.pad(image, pad, mode="edge")


def crop_like(images, reference):
    """`images` cut at the bottom and the right to the height and width of `reference`."""
    if tuple(images.shape[1:3]) == tuple(reference.shape[1:3]) and None not in images.shape[1:3]:
        return images
    shape = ops.shape(reference)
    return images[:, :shape[1], :shape[2], :]


def _conv(filters, name, kernel=3, bias=True, activation=None, dtype=None):
    return keras.layers.Conv2D(filters, kernel, padding="same", use_bias=bias,
                               activation=activation, name=name, dtype=dtype)


def block(x, width, name, norm_groups=None):
    """A residual block: three 3x3 convolutions added to the input, then ReLU; with
    `norm_groups`, the global branch is added to the input first (both paths see it)."""
    if norm_groups:
        h = _conv(NORM_EXPANSION * width, f"{name}_expand", 1, bias=False)(x)
        h = keras.layers.GroupNormalization(norm_groups, epsilon=NORM_EPSILON,
                                            name=f"{name}_norm")(h)
        h = keras.layers.ReLU(name=f"{name}_norm_relu")(h)
        h = _conv(width, f"{name}_project", 1, bias=False)(h)
        x = keras.layers.Add(name=f"{name}_global")([x, h])
    h = _conv(width, f"{name}_conv_0", activation="relu")(x)
    h = _conv(width, f"{name}_conv_1", activation="relu")(h)
    h = _conv(width, f"{name}_conv_2")(h)
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([h, x]))


def _blocks(x, width, level, count, norm_groups):
    for i in range(count):
        x = block(x, width, f"block_{level}_{i}", norm_groups)
    return x


def tiny_encoder(input_shape, latent_channels, width, blocks, norm_groups):
    """Image -> raw code `(ceil(H / 2**stages), ceil(W / 2**stages), latent_channels)`."""
    stages = len(blocks) - 1
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if any(s is None or s % 2 ** stages for s in input_shape[:2]):
        x = EdgePad(2 ** stages, name="pad")(x)
    x = _conv(width, "conv_in")(x)
    x = _blocks(x, width, 0, blocks[0], norm_groups if stages == 0 else None)
    for level in range(1, stages + 1):
        # PyTorch pads a stride-2 convolution by one on every side; "same" would pad
        # only the bottom and right of an even size.
        x = keras.layers.ZeroPadding2D(1, name=f"down_pad_{level}")(x)
        x = keras.layers.Conv2D(width, 3, strides=2, use_bias=False, name=f"down_{level}")(x)
        x = _blocks(x, width, level, blocks[level], norm_groups if level == stages else None)
    return keras.Model(inputs, _conv(latent_channels, "code", dtype="float32")(x),
                       name="encoder")


def tiny_decoder(output_shape, latent_channels, width, blocks, norm_groups, *, code_clamp,
                 upsampling, clip_output):
    """Code -> image; fixed sizes are cropped back here, others by `TinyAutoencoder`."""
    stages = len(blocks) - 1
    height, width_px, channels = output_shape
    grid = [None if s is None else -(-s // 2 ** stages) for s in (height, width_px)]
    inputs = keras.Input(shape=(*grid, latent_channels), name="code")
    x = inputs
    if code_clamp is not None:  # soft clamp: code_clamp * tanh(code / code_clamp)
        x = keras.layers.Rescaling(1.0 / code_clamp, name="clamp_in")(x)
        x = keras.layers.Activation("tanh", name="clamp_tanh")(x)
        x = keras.layers.Rescaling(code_clamp, name="clamp_out")(x)
    x = _conv(width, "conv_in", activation="relu")(x)
    for level in range(stages, 0, -1):
        x = _blocks(x, width, level, blocks[level], norm_groups if level == stages else None)
        x = keras.layers.UpSampling2D(2, interpolation=upsampling, name=f"upsample_{level}")(x)
        x = _conv(width, f"up_{level}", bias=False)(x)
    x = _blocks(x, width, 0, blocks[0], norm_groups if stages == 0 else None)
    x = _conv(channels, "reconstruction", dtype="float32")(x)
    if clip_output:
        x = keras.layers.ReLU(max_value=1.0, name="clip", dtype="float32")(x)
    extra = [0 if s is None else g * 2 ** stages - s for s, g in zip((height, width_px), grid)]
    if any(extra):
        x = keras.layers.Cropping2D(((0, extra[0]), (0, extra[1])), name="crop",
                                    dtype="float32")(x)
    return keras.Model(inputs, x, name="decoder")


def _image_shape(value):
    """`(height, width, channels)`; height and width may be `None` (any size)."""
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise InvalidValue(
            "`input_shape` must be (height, width, channels), with None for a size left "
            f"open, e.g. (None, None, 3) or (512, 512, 3). Received: input_shape={value!r}")
    sizes = tuple(None if v is None else _validate.positive_int(v, f"input_shape[{i}]")
                  for i, v in enumerate(value[:2]))
    return sizes + (_validate.positive_int(value[2], "input_shape[2]"),)


def _blocks_arg(value):
    ints = isinstance(value, (list, tuple)) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value)
    if not ints or not value or min(value) < 0:
        raise (InvalidValue if ints else InvalidType)(
            "`blocks` is a tuple of block counts (integers >= 0), one per resolution, "
            f"full resolution first, e.g. (1, 3, 3, 3). Received: blocks={value!r}")
    return tuple(int(v) for v in value)


def _tiny_args(latent_channels, width, blocks, midblock_norm, norm_groups, code_clamp,
               upsampling, input_shape):
    latent_channels = _validate.positive_int(latent_channels, "latent_channels")
    width = _validate.positive_int(width, "width")
    blocks = _blocks_arg(blocks)
    groups = None
    if midblock_norm:
        groups = _validate.positive_int(norm_groups, "norm_groups")
        if (NORM_EXPANSION * width) % groups:
            raise InvalidValue(
                f"`norm_groups` must divide the global branch's {NORM_EXPANSION * width} "
                f"channels ({NORM_EXPANSION} x width {width}). Received: norm_groups={groups}")
    if code_clamp is not None and not _validate.non_negative_float(code_clamp, "code_clamp"):
        raise InvalidValue("`code_clamp` is a positive bound (3.0 in TAESD) or None. "
                           f"Received: code_clamp={code_clamp!r}")
    _validate.choice(upsampling, "upsampling", UPSAMPLING, "upsampling")
    return latent_channels, width, blocks, groups, _image_shape(input_shape)


@register_builder("tiny_ae", example=dict(latent_channels=4, width=8, blocks=(1, 0, 1),
                                          input_shape=(18, 14, 3)))
def TinyAE(
    *,
    latent_channels=32,
    width=64,
    blocks=(1, 3, 3, 3),
    midblock_norm=True,
    norm_groups=4,
    code_clamp=3.0,
    upsampling="nearest",
    clip_output=True,
    corruption=None,
    corruption_amount=0.2,
    reconstruction="mse",
    seed=None,
    input_shape=(256, 256, 3),
    weights=None,
    name="tiny_ae",
):
    """Instantiates a tiny autoencoder of images of any size (TAESD's design).

    Encoder: a 3x3 convolution and `blocks[0]` residual blocks at full resolution,
    then per stage a stride-2 convolution and `blocks[s]` blocks; a 3x3 convolution
    gives the raw code, `latent_channels` wide, at 1 / 2**stages of the size
    (`stages = len(blocks) - 1`). Decoder: the soft clamp
    `code_clamp * tanh(code / code_clamp)`, a 3x3 convolution, then per stage the
    blocks, a 2x upsampling and a convolution, the full-resolution blocks, and a 3x3
    convolution to the image. With `midblock_norm`, the blocks at the lowest
    resolution add a global branch (1x1 to 4 x width, `GroupNormalization` of
    `norm_groups` groups over the whole map, ReLU, 1x1 back). The defaults are TAEF2's
    layout (the FLUX.2 tiny autoencoder: 32 code channels at 1/8).

    Sizes that are not multiples of 2**stages are padded at the bottom and the right
    with repeated edge pixels inside the encoder, and the reconstruction is cropped
    back: on 18 crops of 6 photos with TAEF2's weights that scored 29.98 dB, against
    29.93 dB for mirrored pixels (which need a side longer than the padding) and
    28.85 dB for zeros. The code covers the padded grid.

    Args:
        latent_channels: channels of the code. Defaults to `32`.
        width: channels of every hidden layer. Defaults to `64`.
        blocks: residual blocks per resolution, full resolution first; one more
            entry than stride-2 stages. Defaults to `(1, 3, 3, 3)`.
        midblock_norm: the global branch in the lowest resolution's blocks.
            Defaults to `True`.
        norm_groups: groups of its `GroupNormalization`. Defaults to `4`.
        code_clamp: bound of the decoder's soft clamp of its input, or `None` for no
            clamp. Defaults to `3.0`.
        upsampling: `"nearest"` or `"bilinear"`. Defaults to `"nearest"`.
        clip_output: clip the reconstruction to [0, 1] (the decoder's own output is
            near [0, 1], not bounded). Pixels outside get no gradient: train from
            scratch with `False`. Defaults to `True`.
        corruption: `None`, `"gaussian"`, `"masking"` or `"salt_and_pepper"`
            train-time corruption (denoising). Defaults to `None`.
        corruption_amount: noise std (gaussian) or corrupted fraction, or a range
            `(low, high)` each example draws its own from (blind denoising).
            Defaults to `0.2`.
        reconstruction: `"mse"` or `"bce"`, averaged over pixels. Defaults to `"mse"`.
        seed: seed of the corruption layer. Defaults to `None`.
        input_shape: `(height, width, channels)`; height and width may be `None`
            (any size; the reconstruction is cropped by the model, the decoder alone
            returns the padded grid). Exports keep them dynamic (`kerasae.export`:
            SavedModel, ONNX and float LiteRT; int8 needs a fixed size).
            Defaults to `(256, 256, 3)`.
        weights: `None`, a zoo preset name, or a `.weights.h5` / `.keras` path.
            Defaults to `None`.
        name: model name. Defaults to `"tiny_ae"`.

    Returns:
        A `kerasae.models.Autoencoder` with `encoder` and `decoder` sub-models.

    Reference:
        Ollin Boer Bohan, "TAESD: Tiny AutoEncoder for Stable Diffusion",
        https://github.com/madebyollin/taesd

    Example:
        >>> import kerasae
        >>> model = kerasae.TinyAE(width=16, input_shape=(36, 52, 3))
        >>> model.encoder.output.shape
        (None, 5, 7, 32)
        >>> model.decoder.output.shape
        (None, 36, 52, 3)
    """
    latent_channels, width, blocks, groups, input_shape = _tiny_args(
        latent_channels, width, blocks, midblock_norm, norm_groups, code_clamp, upsampling,
        input_shape)
    _validate.choice(reconstruction, "reconstruction", RECONSTRUCTIONS, "reconstruction loss")
    seed = _validate.seed(seed)
    corruption = corruption_layer(corruption, corruption_amount, seed)
    enc = tiny_encoder(input_shape, latent_channels, width, blocks, groups)
    dec = tiny_decoder(input_shape, latent_channels, width, blocks, groups,
                       code_clamp=None if code_clamp is None else float(code_clamp),
                       upsampling=upsampling, clip_output=bool(clip_output))
    return TinyAutoencoder(enc, dec, reconstruction=reconstruction, seed=seed, name=name,
                           corruption=corruption)

