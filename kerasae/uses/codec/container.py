"""The `.kae` container: bytes <-> (header, payload), every field checked before decoding.

Version 2, all integers little-endian (version 1, without the header checksum,
is still read):

    offset  size  field
    0       8     magic b"\\x89KAE\\r\\n\\x1a\\n" (PNG-style: catches text-mode mangling)
    8       1     format version, 2
    9       4     H, the header length in bytes (uint32)
    13      4     crc32 of the header bytes (uint32)
    17      H     header: a UTF-8 JSON object (see `kerasae.uses.codec.kae`)
    17+H    ...   payload: the range-coded symbols, image by image, dimension by dimension

A file is refused (`KaeError`) unless its header's checksum, every field's type
and range, and the payload's size and crc32 hold, and unless the payload can
hold the symbols the header promises at the coder's best compression: so a
crafted or damaged file costs time and memory bounded by its size.
"""

import binascii
import json
import math
import struct
import zlib

import numpy as np

from kerasae._util.errors import KerasaeError
from kerasae.uses.codec import rangecoder

MAGIC = b"\x89KAE\r\n\x1a\n"
VERSION = 2
READABLE_VERSIONS = (1, 2)
CODER = "adaptive-range-v1"
MAX_HEADER_BYTES = 1 << 24
MAX_SIDE = 1 << 16
MAX_DIMS = 1 << 20
MODEL_SOURCES = ("preset", "file", "memory")


class KaeError(KerasaeError, ValueError):
    """A `.kae` file is damaged, truncated, crafted or of an unknown version."""


KaeFormatError = KaeError  # the name before version 2


def pack(header, payload):
    """The bytes of a version-2 file."""
    blob = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return MAGIC + struct.pack("<BII", VERSION, len(blob), zlib.crc32(blob)) + blob + payload


def _fail(source, what, received):
    return KaeError(f"{source} is not a valid .kae file: {what}. Received: {received}")


def _split(data, source):
    if len(data) < 13 or data[:8] != MAGIC:
        raise KaeError(
            f"{source} is not a .kae file (bad magic bytes). Received: first_bytes={data[:8]!r}")
    version, length = struct.unpack("<BI", data[8:13])
    if version not in READABLE_VERSIONS:
        raise KaeError(
            f"{source} is .kae version {version}; this kerasae reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}. Received: version={version}")
    start = 13 if version == 1 else 17
    if length > MAX_HEADER_BYTES or start + length > len(data):
        raise KaeError(
            f"{source} is truncated or damaged: its header claims {length} bytes but the file "
            f"has {max(0, len(data) - start)} after the prefix. Received: file_bytes={len(data)}")
    blob = data[start:start + length]
    if version == 2 and struct.unpack("<I", data[13:17])[0] != zlib.crc32(blob):
        raise KaeError(
            f"{source} has a damaged header: its checksum does not match. "
            f"Received: header_bytes={length}")
    try:
        header = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise KaeError(f"{source} has a damaged header ({e}).") from None
    return header, data[start + length:]


def _int(value, lo, hi, name, source):
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(source, f"{name} must be an integer in [{lo}, {hi}]", f"{name}={value!r}")
    return value


def _shape(value, name, source, max_product):
    if not isinstance(value, list) or not 1 <= len(value) <= 3:
        raise _fail(source, f"{name} must be a list of 1 to 3 sizes", f"{name}={value!r}")
    sizes = [_int(v, 1, MAX_SIDE, f"{name}[{i}]", source) for i, v in enumerate(value)]
    if math.prod(sizes) > max_product:
        raise _fail(source, f"{name} is too large", f"{name}={value!r}")
    return sizes


def _model(info, source):
    if not isinstance(info, dict) or not isinstance(info.get("name"), str) or \
            info.get("source") not in MODEL_SOURCES:
        raise _fail(source, "model must name the model and its source "
                    f"({', '.join(MODEL_SOURCES)})", f"model={info!r}"[:200])
    for key in ("file_sha256", "weights_sha256", "path"):
        if info.get(key) is not None and not isinstance(info[key], str):
            raise _fail(source, f"model.{key} must be a string", f"{key}={info[key]!r}"[:200])


def max_symbols(payload_bytes, alphabet):
    """The most symbols `payload_bytes` can hold at the coder's best compression."""
    best = -math.log2(1.0 - (alphabet - 1) / rangecoder.LIMIT)  # bits of the likeliest symbol
    return int((payload_bytes + 8) * 8 / best)


def _quantization(q, dims, source):
    if not isinstance(q, dict):
        raise _fail(source, "quantization must be an object", f"quantization={q!r}"[:200])
    bits = _int(q.get("bits"), 1, 12, "quantization.bits", source)
    for key in ("offset", "scale"):
        text = q.get(key)
        try:
            raw = binascii.a2b_base64(text.encode("ascii")) if isinstance(text, str) else None
        except (binascii.Error, UnicodeEncodeError):
            raw = None
        if raw is None or len(raw) != 4 * dims:
            raise _fail(source, f"quantization.{key} must hold {dims} float32 values in base64",
                        f"{key}={str(text)[:40]!r}")
        values = np.frombuffer(raw, dtype="<f4")
        if not np.isfinite(values).all() or (key == "scale" and not (values > 0).all()):
            raise _fail(source, f"quantization.{key} must hold finite values"
                        + (" > 0" if key == "scale" else ""), f"{key}=...")
    return bits


def check_header(header, payload, source="<bytes>"):
    """Checks every field of a parsed header against `payload`; returns `header`."""
    if not isinstance(header, dict):
        raise _fail(source, "the header must be a JSON object", f"header={type(header).__name__}")
    missing = [k for k in ("model", "image_shape", "code_shape", "count", "quantization",
                           "coder", "payload_bytes", "payload_crc32") if k not in header]
    if missing:
        raise _fail(source, f"the header lacks {', '.join(missing)}", f"keys={sorted(header)}")
    _model(header["model"], source)
    _shape(header["image_shape"], "image_shape", source, 1 << 28)
    dims = math.prod(_shape(header["code_shape"], "code_shape", source, MAX_DIMS))
    bits = _quantization(header["quantization"], dims, source)
    coder = header["coder"]
    if not isinstance(coder, dict) or coder.get("name") != CODER or \
            coder.get("increment") != rangecoder.INCREMENT or coder.get("limit") != rangecoder.LIMIT:
        raise _fail(source, f"the coder must be {CODER} with increment {rangecoder.INCREMENT} "
                    f"and limit {rangecoder.LIMIT}", f"coder={coder!r}"[:200])
    if header["payload_bytes"] != len(payload) or header["payload_crc32"] != zlib.crc32(payload):
        raise KaeError(
            f"{source} is damaged or truncated: the payload does not match the size and "
            f"crc32 in its header. Received: payload_bytes={len(payload)}")
    count = _int(header["count"], 0, 1 << 40, "count", source)
    if count * dims > max_symbols(len(payload), 1 << bits):
        raise _fail(source, f"{count} images of {dims} codes cannot fit in {len(payload)} "
                    "payload bytes", f"count={count}")
    names = header.get("names")
    if names is not None and (not isinstance(names, list) or len(names) != count
                              or not all(isinstance(n, str) for n in names)):
        raise _fail(source, "names must be one string per image", "names=...")
    return header


def parse(data, source="<bytes>"):
    """Splits `.kae` bytes into `(header, payload)`, every field checked (see the module)."""
    header, payload = _split(bytes(data), source)
    return check_header(header, payload, source), payload
