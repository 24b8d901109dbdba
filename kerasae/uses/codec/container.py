"""The `.kae` container: bytes <-> (header, payload), every field checked before decoding.

Version 2, all integers little-endian (version 1, without the header checksum,
is still read); version 3 has the same layout and a header of images of several
sizes (`check_sized_header`), written only for a model of any size:

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
crafted or damaged file costs time and memory bounded by its size. The
quantization's `offset` and `scale` must keep every symbol's value,
`offset + scale * q` for `q` up to `2**bits - 1`, finite in float32.

Image names are kept as the encoder saw them (relative paths, `/`-separated);
`output_names` turns them into safe, unique file names for decoding.
"""

import base64
import binascii
import json
import math
import struct
import unicodedata
import zlib

import numpy as np

from kerasae._util.errors import KerasaeError
from kerasae.uses.codec import rangecoder

MAGIC = b"\x89KAE\r\n\x1a\n"
VERSION = 2
VERSION_SIZED = 3  # images of several sizes: one size and code shape per image
READABLE_VERSIONS = (1, 2, 3)
CODER = "adaptive-range-v1"
MAX_HEADER_BYTES = 1 << 24
MAX_SIDE = 1 << 16
MAX_DIMS = 1 << 20
MAX_IMAGE_VALUES = 1 << 28  # one image's values (a 4000x3000 colour photo: 36M)
MODEL_SOURCES = ("preset", "file", "memory")


class KaeError(KerasaeError, ValueError):
    """A `.kae` file is damaged, truncated, crafted or of an unknown version."""


def pack(header, payload, version=VERSION):
    """The bytes of a version-2 file (`version=VERSION_SIZED`: a version-3 one)."""
    blob = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return MAGIC + struct.pack("<BII", version, len(blob), zlib.crc32(blob)) + blob + payload


def b64_floats(array):
    """float32 values as base64 of their little-endian bytes (a header's arrays)."""
    return base64.b64encode(np.asarray(array, dtype="<f4").tobytes()).decode("ascii")


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
    if version >= 2 and struct.unpack("<I", data[13:17])[0] != zlib.crc32(blob):
        raise KaeError(
            f"{source} has a damaged header: its checksum does not match. "
            f"Received: header_bytes={length}")
    try:
        header = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise KaeError(f"{source} has a damaged header ({e}).") from None
    return version, header, data[start + length:]


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


def _floats(q, key, dims, source):
    text = q.get(key)
    try:  # validate=True: a stray character is damage, not something to skip
        raw = base64.b64decode(text, validate=True) if isinstance(text, str) else None
    except (binascii.Error, ValueError):
        raw = None
    if raw is None or len(raw) != 4 * dims:
        raise _fail(source, f"quantization.{key} must hold {dims} float32 values in base64",
                    f"{key}={str(text)[:40]!r}")
    values = np.frombuffer(raw, dtype="<f4").astype("float32")
    if not np.isfinite(values).all() or (key == "scale" and not (values > 0).all()):
        raise _fail(source, f"quantization.{key} must hold finite values"
                    + (" > 0" if key == "scale" else ""), f"quantization.{key}=...")
    return values


def _quantization(q, dims, source):
    """`(bits, offset, scale)`, checked so that every symbol dequantizes to a finite float32."""
    if not isinstance(q, dict):
        raise _fail(source, "quantization must be an object", f"quantization={q!r}"[:200])
    bits = _int(q.get("bits"), 1, 12, "quantization.bits", source)
    offset, scale = _floats(q, "offset", dims, source), _floats(q, "scale", dims, source)
    top = np.float32((1 << bits) - 1)
    # Computed as dequantization computes it (float32); the value is monotonic in the
    # symbol, so the largest symbol bounds them all.
    with np.errstate(over="ignore", invalid="ignore"):
        span = scale * top
        last = offset + span
    for name, values, of in (("quantization.scale", span, scale),
                             ("quantization.offset", last, offset)):
        if not np.isfinite(values).all():
            worst = float(np.abs(of[~np.isfinite(values)]).max())
            raise _fail(source, f"{name} is out of range: offset + scale * {int(top)} must "
                        f"stay finite in float32 (below {float(np.finfo('float32').max):.4g})",
                        f"{name}={worst:.4g}")
    return bits, offset, scale


def quantization(header, source="<bytes>"):
    """`(bits, offset, scale)` of a checked header: float32 arrays of one value per code dim."""
    dims = math.prod(header["code_shape"])
    return _quantization(header["quantization"], dims, source)


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
    bits = _quantization(header["quantization"], dims, source)[0]
    _check_coder(header["coder"], source)
    if header["payload_bytes"] != len(payload) or header["payload_crc32"] != zlib.crc32(payload):
        raise KaeError(
            f"{source} is damaged or truncated: the payload does not match the size and "
            f"crc32 in its header. Received: payload_bytes={len(payload)}")
    count = _int(header["count"], 0, 1 << 40, "count", source)
    if count * dims > max_symbols(len(payload), 1 << bits):
        raise _fail(source, f"{count} images of {dims} codes cannot fit in {len(payload)} "
                    "payload bytes", f"count={count}")
    _check_names(header.get("names"), count, source)
    return header


def _shapes(header, key, count, source):
    shapes = header[key]
    if not isinstance(shapes, list) or len(shapes) != count:
        raise _fail(source, f"{key} must list one shape per image ({count})",
                    f"{key}={str(shapes)[:80]}")
    out = [_shape(s, f"{key}[{i}]", source, MAX_IMAGE_VALUES) for i, s in enumerate(shapes)]
    if any(len(s) != 3 for s in out):
        raise _fail(source, f"{key} must hold (height, width, channels) per image",
                    f"{key}={str(shapes)[:80]}")
    return out


def sized_quantization(header, source="<bytes>"):
    """`(bits, offset, scale)` of a checked version-3 header: one value per code channel."""
    return _quantization(header["quantization"], header["code_shapes"][0][-1], source)


def check_sized_header(header, payload, source="<bytes>"):
    """Checks a version-3 header (images of several sizes) against `payload`; returns it.

    Beside version 2's `model`, `count`, `coder`, `names` and the payload's size and
    crc32: `image_shapes` and `code_shapes` (one `[height, width, channels]` each per
    image, the codes' channels all alike), `quantization` with one `offset` and
    `scale` per code channel (`per: "channel"`), and `payload_sizes`, the bytes of
    each image's own range-coded segment (contexts restart per image), which must
    add up to the payload and each hold its image's symbols.
    """
    if not isinstance(header, dict):
        raise _fail(source, "the header must be a JSON object", f"header={type(header).__name__}")
    missing = [k for k in ("model", "image_shapes", "code_shapes", "count", "quantization",
                           "coder", "payload_sizes", "payload_bytes", "payload_crc32")
               if k not in header]
    if missing:
        raise _fail(source, f"the header lacks {', '.join(missing)}", f"keys={sorted(header)}")
    _model(header["model"], source)
    count = _int(header["count"], 1, 1 << 24, "count", source)
    _shapes(header, "image_shapes", count, source)
    codes = _shapes(header, "code_shapes", count, source)
    if len({c[-1] for c in codes}) != 1 or codes[0][-1] > MAX_DIMS:
        raise _fail(source, "code_shapes must share one channel count",
                    f"channels={sorted({c[-1] for c in codes})[:8]}")
    q = header["quantization"]
    if not isinstance(q, dict) or q.get("per") != "channel":
        raise _fail(source, 'quantization.per must be "channel"', f"quantization={q!r}"[:200])
    bits = _quantization(q, codes[0][-1], source)[0]
    _check_coder(header["coder"], source)
    if header["payload_bytes"] != len(payload) or header["payload_crc32"] != zlib.crc32(payload):
        raise KaeError(
            f"{source} is damaged or truncated: the payload does not match the size and "
            f"crc32 in its header. Received: payload_bytes={len(payload)}")
    sizes = header["payload_sizes"]
    if not isinstance(sizes, list) or len(sizes) != count:
        raise _fail(source, "payload_sizes must list one size per image", "payload_sizes=...")
    sizes = [_int(n, 0, len(payload), f"payload_sizes[{i}]", source) for i, n in enumerate(sizes)]
    if sum(sizes) != len(payload):
        raise _fail(source, f"payload_sizes add up to {sum(sizes)}, not the payload's "
                    f"{len(payload)} bytes", f"payload_sizes sum={sum(sizes)}")
    for i, (code, n) in enumerate(zip(codes, sizes)):
        if math.prod(code) > max_symbols(n, 1 << bits):
            raise _fail(source, f"image {i}'s {math.prod(code)} codes cannot fit in its {n} "
                        "payload bytes", f"code_shapes[{i}]={code}")
    _check_names(header.get("names"), count, source)
    return header


def _check_coder(coder, source):
    if not isinstance(coder, dict) or coder.get("name") != CODER or \
            coder.get("increment") != rangecoder.INCREMENT or coder.get("limit") != rangecoder.LIMIT:
        raise _fail(source, f"the coder must be {CODER} with increment {rangecoder.INCREMENT} "
                    f"and limit {rangecoder.LIMIT}", f"coder={coder!r}"[:200])


def _check_names(names, count, source):
    if names is not None and (not isinstance(names, list) or len(names) != count
                              or not all(isinstance(n, str) for n in names)):
        raise _fail(source, "names must be one string per image", "names=...")


def parse(data, source="<bytes>"):
    """Splits `.kae` bytes into `(header, payload)`, every field checked (see the module)."""
    return parse_versioned(data, source)[1:]


def parse_versioned(data, source="<bytes>"):
    """`(version, header, payload)` of `.kae` bytes, every field checked for its version."""
    version, header, payload = _split(bytes(data), source)
    check = check_sized_header if version == VERSION_SIZED else check_header
    return version, check(header, payload, source), payload


# ---------------------------------------------------------------- image names
MAX_SEGMENT_BYTES = 96  # per folder or file name (file systems allow 255)
MAX_NAME_BYTES = 200  # a whole relative path, before a renaming suffix and the extension
# Names Windows reserves for devices, with any extension ("con.png" opens the console).
_RESERVED = {"con", "prn", "aux", "nul", "conin$", "conout$"} | {
    f"{d}{i}" for d in ("com", "lpt") for i in range(1, 10)}
_FORBIDDEN = set('<>:"|?*')  # not allowed in Windows file names; separators are split on


def _safe_part(text):
    """One folder or file name that every OS accepts alike, or `""`."""
    # Control, format (bidi overrides, zero widths), surrogate and line-separator
    # characters would hide, spoof or fail; NFC so that macOS's NFD gives the same name.
    text = "".join("_" if c in _FORBIDDEN or unicodedata.category(c) in
                   ("Cc", "Cf", "Cs", "Zl", "Zp") else c for c in text)
    text = unicodedata.normalize("NFC", text).strip(" .")  # no hidden, '.', '..' or 'x.'
    text = text.encode("utf-8")[:MAX_SEGMENT_BYTES].decode("utf-8", "ignore").rstrip(" .")
    return "_" + text if text.split(".")[0].rstrip(" ").lower() in _RESERVED else text


def _drop_suffix(name):
    """`a/img0.png` -> `a/img0`; a leading dot is not a suffix (`.x` stays)."""
    head, _, last = name.rpartition("/")
    if "." in last.lstrip("."):
        last = last.rsplit(".", 1)[0]
    return f"{head}/{last}" if head else last


def _safe_path(name, index):
    """`(folders, stem)` of a stored name; a name with nothing left is `image<index>`."""
    *folders, stem = _drop_suffix(name.replace("\\", "/")).split("/")
    folders = [f for f in map(_safe_part, folders) if f]
    stem = _safe_part(stem)
    if not stem:  # "dir/" names its folder; "", ".." and "/" name nothing
        stem = folders.pop() if folders else f"image{index}"
    while folders and len("/".join(folders + [stem]).encode("utf-8")) > MAX_NAME_BYTES:
        folders.pop()  # the deepest folders go first; the file keeps its own name
    return folders, stem


def output_names(names, suffix=".png"):
    """Stored image names -> safe, unique relative paths (`/`-separated) to write them to.

    Each name keeps its folders, made safe on every OS (no absolute paths, `..`,
    empty parts, control characters or reserved device names; length-limited).
    Names that then collide, ignoring case as Windows and macOS do, get a suffix
    (`img0-1.png`). Returns `(paths, renamed, changed)`: how many got a suffix,
    and how many were changed to be safe.
    """
    names = [str(n) for n in names]
    placed = [_safe_path(n, i) for i, n in enumerate(names)]
    spelling = {}  # one spelling per folder, the first seen, so "A/" and "a/" are one folder
    for folders, _ in placed:
        for depth in range(1, len(folders) + 1):
            spelling.setdefault("/".join(folders[:depth]).casefold(), folders[depth - 1])
    taken = set(spelling)  # folders first: no file may take a folder's name
    last = {}  # the last suffix given to a name: many equal names stay linear, not quadratic
    paths, renamed, changed = [], 0, 0
    for name, (folders, stem) in zip(names, placed):
        base = "/".join([spelling["/".join(folders[:d]).casefold()]
                         for d in range(1, len(folders) + 1)] + [stem])
        n = last.get(base.casefold(), 0)
        path = f"{base}-{n}{suffix}" if n else base + suffix
        while path.casefold() in taken:
            n += 1
            path = f"{base}-{n}{suffix}"
        last[base.casefold()] = n
        taken.add(path.casefold())
        paths.append(path)
        renamed += n > 0
        changed += base != _drop_suffix(name)
    return paths, renamed, changed
