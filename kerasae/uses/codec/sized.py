"""Version 3 of the `.kae` file: images of several sizes, coded with a model of any size.

A model of any size (`input_shape` with `None` height and width, e.g. `tae_flux2`)
gives each image a code of its own shape, so the header keeps one `image_shapes`
and one `code_shapes` entry per image (checked by
`kerasae.uses.codec.container.check_sized_header`). Codes are quantized per code
channel (`offset` and `scale` of each channel, from the min / max over every
image's code), and each image is range coded on its own (`payload_sizes`: its
segment's bytes), as rows of its code's positions with one adaptive context per
channel: an image's bits are exactly its segment's, as `kerasae.benchmarks.photos
--codec` counts them. Decoding crops each image back to its size (the model's
decoder returns whole multiples of its downsampling).
"""

import inspect
import os
import zlib

import numpy as np

from kerasae._util.errors import InvalidValue
from kerasae.models import predict
from kerasae.uses.codec import rangecoder
from kerasae.uses.codec.container import (CODER, VERSION_SIZED, KaeError, b64_floats, pack,
                                          sized_quantization)


def is_open_size(model):
    """Whether `model` takes images of any height and width."""
    shape = tuple(getattr(model, "image_shape", ()) or ())
    return len(shape) == 3 and shape[0] is None and shape[1] is None


def code_shape_at(model, image_shape):
    """The code shape `model`'s encoder gives an image of `image_shape` `(h, w, c)`."""
    out = model.encoder.compute_output_shape((1,) + tuple(int(d) for d in image_shape))
    if isinstance(out, list):  # a VAE's (z_mean, z_log_var)
        out = out[0]
    return [int(d) for d in out[1:]]


def fit_channel_quantization(codes, bits):
    """Per-channel `(offset, scale)` float32 mapping min..max over all `codes` (a list of
    `(h, w, channels)` arrays) onto `0..2**bits - 1`."""
    lo = np.min([c.reshape(-1, c.shape[-1]).min(axis=0) for c in codes], axis=0)
    hi = np.max([c.reshape(-1, c.shape[-1]).max(axis=0) for c in codes], axis=0)
    scale = ((hi.astype("float64") - lo) / ((1 << bits) - 1)).astype("float32")
    scale[~(scale > 0)] = 1.0  # a constant channel: every value is exactly `lo`
    return lo.astype("float32"), scale


def quantize_channels(code, offset, scale, bits):
    """One code `(h, w, c)` -> int64 symbols `(h * w, c)`."""
    flat = np.asarray(code, "float32").reshape(-1, code.shape[-1]).astype("float64")
    return np.clip(np.rint((flat - offset) / scale), 0, (1 << bits) - 1).astype("int64")


def dequantize_channels(symbols, offset, scale, code_shape):
    """Symbols `(h * w, c)` -> the code `(h, w, c)`, float32, as decoding computes it."""
    z = offset.astype("float32") + scale.astype("float32") * symbols.astype("float32")
    return z.reshape(tuple(code_shape)).astype("float32")


def encode_sized(ref, codes, image_shapes, bits, names=None):
    """Codes of images of several sizes -> `(file bytes, [symbols], header)` (version 3).

    `ref` is the `ModelRef` the header names; `codes` one `(h, w, c)` array per image,
    `image_shapes` each image's `(height, width, channels)`.
    """
    offset, scale = fit_channel_quantization(codes, bits)
    symbols = [quantize_channels(c, offset, scale, bits) for c in codes]
    segments = [rangecoder.encode(s.tolist(), 1 << bits) for s in symbols]
    payload = b"".join(segments)
    info = ref.info()
    header = {
        "model": {k: info[k] for k in ("name", "source", "file_sha256", "weights_sha256")},
        "image_shapes": [[int(d) for d in s] for s in image_shapes],
        "code_shapes": [[int(d) for d in c.shape] for c in codes],
        "count": len(codes),
        "quantization": {"bits": int(bits), "per": "channel",
                         "offset": b64_floats(offset), "scale": b64_floats(scale)},
        "coder": {"name": CODER, "increment": rangecoder.INCREMENT,
                  "limit": rangecoder.LIMIT, "contexts": "one per code channel, per image"},
        "payload_sizes": [len(s) for s in segments],
        "payload_bytes": len(payload),
        "payload_crc32": zlib.crc32(payload),
    }
    if names is not None:  # relative paths, written with "/" on every OS
        header["names"] = [str(n).replace(os.sep, "/") for n in names]
    return pack(header, payload, VERSION_SIZED), symbols, header


def check_model_sizes(ref, header, source):
    """Raises unless `ref.model` decodes every code of the header at its image's size."""
    model = ref.model
    for i, (image, code) in enumerate(zip(header["image_shapes"], header["code_shapes"])):
        fixed = tuple(model.image_shape)
        if not is_open_size(model) and tuple(image) != fixed:
            raise KaeError(
                f"{source} holds images of several sizes ({image[0]}x{image[1]} among them) "
                f"but {ref.name} takes {fixed[0]}x{fixed[1]} only: decode it with the model "
                f"of any size it was encoded with. Received: model={ref.name!r}")
        if image[-1] != model.image_shape[-1] or code_shape_at(model, image) != list(code):
            raise KaeError(
                f"{source} holds a code of shape {tuple(code)} for a {image[0]}x{image[1]}"
                f"x{image[2]} image (image {i}) but {ref.name} gives "
                f"{tuple(code_shape_at(model, image[:2] + [model.image_shape[-1]]))}. "
                f"Received: model={ref.name!r}")


def decode_one(model, code, image_shape, tile=None):
    """One code `(h, w, c)` -> its image, cropped to `image_shape`; with `tile`, decoded
    in overlapping tiles (a model with tiled mode, `TinyAE`)."""
    z = np.asarray(code, "float32")[None]
    if tile is None:
        image = predict.decode(model, z, batch_size=1)[0]
    elif "tile" in inspect.signature(model.decode).parameters:
        image = np.asarray(model.decode(z, tile=tile))[0]
    else:
        raise InvalidValue(f"{model.name} has no tiled mode; leave tile out. "
                           f"Received: tile={tile!r}")
    return image[:image_shape[0], :image_shape[1]]


def decode_sized(header, payload, ref, source="<bytes>", tile=None):
    """A checked version-3 header and its payload -> the images (a list, each at its own
    size), decoded by `ref.model`. Every segment is range decoded before the model runs,
    so a damaged file is refused before any image is decoded."""
    check_model_sizes(ref, header, source)
    bits, offset, scale = sized_quantization(header, source)
    coder, codes, start = header["coder"], [], 0
    for i, (n, code_shape) in enumerate(zip(header["payload_sizes"], header["code_shapes"])):
        segment, start = payload[start:start + n], start + n
        try:
            symbols = rangecoder.decode(segment, int(np.prod(code_shape[:-1])), code_shape[-1],
                                        1 << bits, int(coder["increment"]), int(coder["limit"]))
        except rangecoder.Exhausted as e:
            raise KaeError(f"{source} is damaged or truncated: image {i}: {e}. "
                           f"Received: payload_sizes[{i}]={n}") from None
        codes.append(dequantize_channels(np.asarray(symbols, "int64"), offset, scale,
                                         code_shape))
    images = []
    for i, code in enumerate(codes):
        image = decode_one(ref.model, code, header["image_shapes"][i], tile)
        if not np.isfinite(image).all():
            raise KaeError(f"{source} holds codes that {ref.name} decodes to non-finite "
                           f"pixels (image {i}): the file is damaged or crafted. "
                           f"Received: quantization.scale max={float(scale.max()):.4g}")
        images.append(image)
    return images
