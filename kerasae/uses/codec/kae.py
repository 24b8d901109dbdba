"""The `.kae` file: quantized autoencoder codes, range coded, with a JSON header.

The container (magic, version, checksummed header, payload) and its checks are
`kerasae.uses.codec.container`. Header keys:

- `model`: `name`, `source` (`preset` / `file` / `memory`), `file_sha256` and
  `weights_sha256` (sha256 over the weights' dtypes, shapes and bytes). Decoding
  refuses a model whose weights fingerprint differs.
- `image_shape`, `code_shape`, `count` (images in the file), optional `names`
  (each image's relative path, `/`-separated, as the encoder read it; decoding
  writes to safe, unique names, see `container.output_names`).
- `quantization`: `bits` (symbols are integers in `[0, 2**bits)`), and per code
  dimension `offset` and `scale` as base64 float32 (little-endian) arrays. A
  symbol `q` of dimension `j` stands for `offset[j] + scale[j] * q` (affine
  quantization: `offset` is the zero point in real units). Computed from the
  min / max of the codes being stored; a file whose values would overflow
  float32 is refused.
- `coder`: `adaptive-range-v1` with `increment` and `limit` (see
  `kerasae.uses.codec.rangecoder`): one adaptive frequency table per code
  dimension, each starting flat, so no probability model is stored.
- `payload_bytes`, `payload_crc32`.

That is version 2, images of one size. A model of any size writes version 3
(`kerasae.uses.codec.sized`): each image's own size and code shape, quantization
per code channel, one payload segment per image; `decode_bytes` reads both.
"""

import os
import zlib

import numpy as np

from kerasae import presets
from kerasae._util.errors import InvalidValue, KerasaeError, MissingFile
from kerasae._util.files import atomic_write
from kerasae.models import predict
from kerasae.models.resolve import resolve_model, resolve_preset
from kerasae.uses.codec import rangecoder
from kerasae.uses.codec.container import CODER, KaeError, b64_floats, pack, parse  # noqa: F401
from kerasae.uses.codec.container import VERSION_SIZED, parse_versioned, quantization
from kerasae.uses.codec.sized import decode_one, decode_sized, is_open_size
from kerasae.uses.inputs import model_for_images

SUFFIX = ".kae"


# -------------------------------------------------------------- quantization
def fit_quantization(codes, bits):
    """Per-dimension `(offset, scale)` float32 mapping min..max onto `0..2**bits - 1`."""
    flat = np.asarray(codes, dtype="float32").reshape(len(codes), -1)
    lo = flat.min(axis=0)
    hi = flat.max(axis=0)
    levels = (1 << bits) - 1
    scale = ((hi.astype("float64") - lo) / levels).astype("float32")
    scale[~(scale > 0)] = 1.0  # a constant dimension: every value is exactly `lo`
    return lo.astype("float32"), scale


def quantize(codes, offset, scale, bits):
    flat = np.asarray(codes, dtype="float32").reshape(len(codes), -1)
    q = np.rint((flat.astype("float64") - offset) / scale)
    return np.clip(q, 0, (1 << bits) - 1).astype("int64")


def dequantize(symbols, offset, scale, code_shape):
    z = offset.astype("float32") + scale.astype("float32") * symbols.astype("float32")
    return z.reshape((len(symbols),) + tuple(code_shape)).astype("float32")


def _b64(array):
    return b64_floats(array)


# ------------------------------------------------------------------ container
def encode_bytes(model, images, *, bits=8, names=None):
    """Images -> the bytes of a `.kae` file. Returns `(data, symbols, header)`."""
    ref = resolve_model(model)
    check_bits(bits)
    images = np.asarray(images, dtype="float32")
    model_for_images(ref, images)
    codes = predict.encode(ref.model, images)
    return encode_codes(ref, codes, bits, names)


def encode_codes(ref, codes, bits, names=None):
    """Codes of `ref.model` -> `(file bytes, symbols, header)` of a `.kae` file.

    `ref` is a `ModelRef` (it names the model in the header); `names`
    are optional per-image names (e.g. the source files).
    """
    offset, scale = fit_quantization(codes, bits)
    symbols = quantize(codes, offset, scale, bits)
    payload = rangecoder.encode(symbols.tolist(), 1 << bits)
    info = ref.info()
    header = {
        "model": {k: info[k] for k in ("name", "source", "file_sha256", "weights_sha256")},
        "image_shape": [int(d) for d in ref.model.image_shape],
        "code_shape": [int(d) for d in ref.model.code_shape],
        "count": int(len(codes)),
        "quantization": {"bits": int(bits), "offset": _b64(offset), "scale": _b64(scale)},
        "coder": {"name": CODER, "increment": rangecoder.INCREMENT,
                  "limit": rangecoder.LIMIT, "contexts": "one per code dimension"},
        "payload_bytes": len(payload),
        "payload_crc32": zlib.crc32(payload),
    }
    if names is not None:  # relative paths, written with "/" on every OS
        header["names"] = [str(n).replace(os.sep, "/") for n in names]
    return pack(header, payload), symbols, header


def check_bits(bits):
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 12:
        raise InvalidValue(
            f"bits must be an integer in [1, 12] (8 gives int8-like codes). Received: bits={bits!r}"
        )


def read_header(path):
    """The JSON header of a `.kae` file."""
    with open(path, "rb") as f:
        return parse(f.read(), repr(os.fspath(path)))[0]


def decode_bytes(data, model=None, source="<bytes>", tile=None):
    """`.kae` bytes -> `(images, header)`.

    `model` defaults to the header's zoo preset when its files are here already
    (or its model file, if it still exists): decoding never downloads a model
    the caller did not name. A model with other weights than the encoder's is
    refused. A version-3 file (images of several sizes, `kerasae.uses.codec.sized`)
    gives a list of images, each at its own size; `tile` decodes them in tiles.
    """
    version, header, payload = parse_versioned(data, source)
    if version == VERSION_SIZED:
        ref = _checked_model(header, model, source)
        return decode_sized(header, payload, ref, source, tile), header
    ref = _model_for(header, model, source)
    tiled = None if tile is None else ref.of_any_size().model  # fixed to the file's size
    if tiled is not None and not is_open_size(tiled):
        raise InvalidValue(f"tile applies to a model of any size with a tiled mode "
                           f"(tiny_ae); {ref.name} takes {tuple(tiled.image_shape)}: "
                           f"leave tile out. Received: tile={tile!r}")
    bits, offset, scale = quantization(header, source)
    code_shape = tuple(header["code_shape"])
    dims = int(np.prod(code_shape))
    coder = header["coder"]
    try:
        rows = rangecoder.decode(payload, int(header["count"]), dims, 1 << bits,
                                 int(coder["increment"]), int(coder["limit"]))
    except rangecoder.Exhausted as e:
        raise KaeError(f"{source} is damaged: {e}. Received: count={header['count']}") from None
    symbols = np.asarray(rows, dtype="int64").reshape(int(header["count"]), dims)
    if not len(symbols):
        return np.zeros((0,) + tuple(ref.model.image_shape), "float32"), header
    codes = dequantize(symbols, offset, scale, code_shape)
    if not np.isfinite(codes).all():  # the header check bounds them; this is the guard
        raise KaeError(f"{source} decodes to non-finite codes. Received: "
                       f"quantization.scale max={float(scale.max()):.4g}")
    if tiled is None or not len(codes):
        images = predict.decode(ref.model, codes)
    else:  # tiles of the model of any size itself
        images = np.stack([decode_one(tiled, c, header["image_shape"], tile) for c in codes])
    if not np.isfinite(images).all():
        raise KaeError(
            f"{source} holds codes (up to {float(np.abs(codes).max()):.4g}) that "
            f"{ref.name} decodes to non-finite pixels: the file is damaged or crafted. "
            f"Received: quantization.scale max={float(scale.max()):.4g}")
    return images, header


def _local_model(info, source):
    """The model a header names (resolved), if it loads without a download; else one line saying
    to pass it explicitly (a header is data: it must not make kerasae go online)."""
    name, kind = info.get("name"), info.get("source")
    if kind == "preset" and presets.is_hub_name(name):
        why = "a Hugging Face Hub preset"
    elif kind == "preset":
        try:  # no mirrors: the index, config.json and weights from the cache or the wheel
            ref = resolve_preset(name, mirrors=[], progress=False)
            ref.weights_file  # noqa: B018 - verified here once, then loaded from this copy
            return ref
        except KerasaeError:
            why = "a zoo preset whose files are not here"
    elif kind == "file" and info.get("path") and os.path.isfile(info["path"]):
        return info["path"]
    else:
        raise InvalidValue(
            f"{source} was encoded with the model {name!r} (a {kind} model, not a zoo "
            f"preset): pass that model to decode it, model=... (--model PATH.keras). "
            f"Received: model=None")
    raise InvalidValue(
        f"{source} was encoded with {name!r}, {why}, and decoding never downloads what a "
        f"file names: pass the model explicitly (--model NAME, or model=... in Python) "
        f"and it is fetched as usual. Received: model=None")


def _model_for(header, model, source):
    ref = resolve_model(_local_model(header.get("model", {}), source) if model is None
                        else model)
    ref.at_size(header.get("image_shape") or ())  # a model of any size: the file's size
    if tuple(ref.model.code_shape) != tuple(header["code_shape"]):
        raise KaeError(
            f"{source} holds codes of shape {tuple(header['code_shape'])} but {ref.name} "
            f"decodes {tuple(ref.model.code_shape)}. Received: model={ref.name!r}"
        )
    return _checked_model(header, ref, source)


def _checked_model(header, model, source):
    """The model (resolved) whose weights are the encoder's, else a `KaeError`."""
    info = header.get("model", {})
    ref = resolve_model(_local_model(info, source) if model is None else model)
    expected = info.get("weights_sha256")
    if expected and ref.weights_sha256 != expected:
        raise KaeError(
            f"{source} was encoded with {info.get('name')!r} (weights sha256 "
            f"{expected[:12]}...) but {ref.name!r} has other weights "
            f"({ref.weights_sha256[:12]}...); its decoder would not match. "
            f"Received: model={ref.name!r}"
        )
    return ref


def encode_file(model, images, path, *, bits=8, names=None):
    """Writes images as a `.kae` file (atomically). Returns the header plus `file_bytes`."""
    data, _, header = encode_bytes(model, images, bits=bits, names=names)
    atomic_write(path, data)
    return dict(header, file_bytes=len(data))


def decode_file(path, model=None, tile=None):
    """Reads a `.kae` file. Returns `(images, header)`; images float32 in [0, 1] (a list
    of them at their own sizes for a version-3 file)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFile(f"No such .kae file: {path!r}. Received: path={path!r}")
    with open(path, "rb") as f:
        data = f.read()
    return decode_bytes(data, model, repr(path), tile)

