"""Image decoding and sizing inside the `tf.data` pipeline (TensorFlow ops only).

Decoding reads PNG, JPEG, BMP, GIF (the first frame) and WebP with
`tf.io.decode_image`, converting to the colour mode asked for. Sizing follows
one of three rules when the stored size differs from `image_size`:

- `"crop"` (the default): the largest centred window of the target aspect
  ratio, then resized; nothing is distorted and no border is invented, so a
  model does not spend capacity on padding;
- `"pad"`: resized to fit inside the target, then padded with black, centred;
- `"stretch"`: resized to the target, the aspect ratio changed.

Resizing is bilinear with antialiasing, rounded back to uint8, so every later
epoch (and the on-disk cache) holds the same bytes.
"""

from kerasae._util.errors import InvalidType, InvalidValue

COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}
RESIZE_MODES = ("crop", "pad", "stretch")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def read_at(shape, resize="crop"):
    """The folder options (`image_size`, `color_mode`, `resize`) that read images at
    `shape`, a model's `(height, width, channels)` input; `{}` for any other shape."""
    modes = {c: mode for mode, c in COLOR_MODES.items()}
    if shape is None or len(shape) != 3 or int(shape[-1]) not in modes:
        return {}
    return {"image_size": (int(shape[0]), int(shape[1])),
            "color_mode": modes[int(shape[-1])], "resize": resize}


def parse_image_size(value):
    """`64`, `"64"`, `"64x48"`, `(64, 48)` -> `(height, width)`; `None` stays `None`."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
        try:
            value = [int(p) for p in parts]
        except ValueError:
            raise InvalidValue(
                "image_size is a size such as 64 (square) or 64x48 (height x width). "
                f"Received: image_size={value!r}"
            ) from None
    if isinstance(value, bool):
        raise InvalidType(f"image_size must be an int or (height, width). Received: {value!r}")
    sizes = [value, value] if isinstance(value, int) else list(value)
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                  for s in sizes):
        raise InvalidValue(
            "image_size is a positive size such as 64 or (64, 48) (height, width). "
            f"Received: image_size={value!r}"
        )
    return tuple(sizes)


def check_modes(color_mode, resize):
    if color_mode is not None and color_mode not in COLOR_MODES:
        raise InvalidValue(
            f"color_mode must be one of {', '.join(COLOR_MODES)} (or None: as the files "
            f"are). Received: color_mode={color_mode!r}"
        )
    if resize not in RESIZE_MODES:
        raise InvalidValue(
            f"resize must be one of {', '.join(RESIZE_MODES)}. Received: resize={resize!r}"
        )


def decode(data, channels):
    """Encoded image bytes -> uint8 `(H, W, channels)` (first frame of a GIF).

    Decoded in the file's own channels, then converted (not every decoder converts:
    BMP and GIF have no grayscale output), so a grayscale file stays exact.
    """
    import tensorflow as tf

    x = tf.io.decode_image(data, channels=0, expand_animations=False, dtype=tf.uint8)
    x.set_shape([None, None, None])
    native = tf.shape(x)[-1]
    gray_alpha = tf.logical_or(native == 1, native == 2)
    if channels == 1:
        out = tf.cond(gray_alpha, lambda: x[..., :1],
                      lambda: tf.image.rgb_to_grayscale(x[..., :3]))
    else:
        rgb = tf.cond(gray_alpha, lambda: tf.repeat(x[..., :1], 3, axis=-1),
                      lambda: x[..., :3])
        if channels == 3:
            out = rgb
        else:
            opaque = tf.fill(tf.concat([tf.shape(x)[:2], [1]], 0), tf.constant(255, tf.uint8))
            alpha = tf.cond(tf.logical_or(native == 2, native == 4), lambda: x[..., -1:],
                            lambda: opaque)
            out = tf.concat([rgb, alpha], axis=-1)
    out.set_shape([None, None, channels])
    return out


def fit(x, size, mode):
    """A uint8 `(H, W, C)` image sized to `size = (height, width)` by `mode` (see above)."""
    import tensorflow as tf

    x = _sized(tf.cast(x, tf.float32), size, mode)
    x = tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)
    return tf.ensure_shape(x, [size[0], size[1], None])


def fit_float(x, size, mode):
    """A float `(H, W, C)` image in [0, 1] sized as `fit` sizes uint8 ones (not rounded)."""
    import tensorflow as tf

    x = tf.clip_by_value(_sized(tf.cast(x, tf.float32), size, mode), 0.0, 1.0)
    return tf.ensure_shape(x, [size[0], size[1], None])


def _sized(x, size, mode):
    import tensorflow as tf

    height, width = size
    h, w = tf.shape(x)[0], tf.shape(x)[1]
    if mode == "crop":
        # The largest centred window of the target's aspect ratio.
        scale = tf.minimum(tf.cast(h, tf.float64) / height, tf.cast(w, tf.float64) / width)
        ch = tf.cast(tf.round(scale * height), tf.int32)
        cw = tf.cast(tf.round(scale * width), tf.int32)
        x = tf.image.crop_to_bounding_box(x, (h - ch) // 2, (w - cw) // 2, ch, cw)
        return tf.image.resize(x, size, antialias=True)
    if mode == "pad":
        return tf.image.resize_with_pad(x, height, width, antialias=True)
    return tf.image.resize(x, size, antialias=True)
