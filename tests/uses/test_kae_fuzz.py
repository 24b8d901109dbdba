"""Hostile and damaged .kae files: a seeded loop of mutations of a real file.

Every case must end in a `KaeError` (or decode cleanly) within a time bound:
truncations, bit flips anywhere, inserted and deleted bytes, and crafted headers
whose checksums are recomputed (so only the field checks stand in the way).
"""

import json
import struct
import time
import zlib

import numpy as np
import pytest

from kerasae.uses.codec import kae
from kerasae.uses.codec.container import MAGIC, KaeError, max_symbols
from tests.helpers import build_tiny, digits_batch

CASES = 3000
SECONDS = 5.0  # per case; a clean refusal takes milliseconds


@pytest.fixture(scope="module")
def real():
    model = build_tiny("conv_ae")
    data, _, header = kae.encode_bytes(model, digits_batch(40), bits=8)
    return model, data, header


def craft(header, payload):
    blob = json.dumps(header).encode()
    return MAGIC + struct.pack("<BII", 2, len(blob), zlib.crc32(blob)) + blob + payload


def crafted_headers(header, payload):
    """Headers a hostile writer might send, each with a valid checksum."""
    q, coder = header["quantization"], header["coder"]
    bad = [
        {**header, "count": 10 ** 12}, {**header, "count": -5}, {**header, "count": 2.5},
        {**header, "count": max_symbols(len(payload), 256) // 8},  # within the bound
        {**header, "coder": {**coder, "increment": -24}}, {**header, "coder": {**coder, "limit": 0}},
        {**header, "coder": "adaptive-range-v1"},
        {**header, "quantization": {**q, "bits": 0}}, {**header, "quantization": {**q, "bits": "8"}},
        {**header, "quantization": {**q, "offset": q["offset"][:8]}},
        {**header, "quantization": {**q, "scale": "AAAAAA=="}},
        {**header, "code_shape": [0]}, {**header, "code_shape": [-1]},
        {**header, "code_shape": [1 << 20, 1 << 20]}, {**header, "image_shape": ["28"]},
        {**header, "payload_bytes": len(payload) + 1}, {**header, "names": ["a"]},
        {**header, "model": None}, {**header, "model": {"name": 3, "source": "preset"}},
        {k: v for k, v in header.items() if k != "coder"},
    ]
    nan_scale = np.full(8, np.nan, "<f4").tobytes()
    import base64

    bad.append({**header, "quantization": {**q, "scale": base64.b64encode(nan_scale).decode()}})
    out = [craft(h, payload) for h in bad]
    out.append(craft([header], payload))  # a list, not an object
    junk = bytes(np.random.default_rng(1).integers(0, 256, 900, dtype="uint8"))
    out.append(craft({**header, "count": max_symbols(900, 256) // 8, "payload_bytes": 900,
                      "payload_crc32": zlib.crc32(junk)}, junk))  # random symbols, big count
    return out


def mutations(data, header, rng):
    payload = data[17 + struct.unpack("<I", data[9:13])[0]:]
    yield from crafted_headers(header, payload)
    for _ in range(CASES):
        kind = rng.integers(4)
        b = bytearray(data)
        if kind == 0:
            yield bytes(b[: rng.integers(0, len(b))])
        elif kind == 1:
            for _ in range(rng.integers(1, 4)):
                i = rng.integers(len(b))
                b[i] ^= 1 << int(rng.integers(8))
            yield bytes(b)
        elif kind == 2:
            i = rng.integers(len(b))
            yield bytes(b[:i] + bytes(rng.integers(0, 256, rng.integers(1, 9), dtype="uint8"))
                        + b[i:])
        else:
            i = rng.integers(len(b))
            yield bytes(b[:i] + b[i + rng.integers(1, 9):])


def test_every_mutation_is_refused_or_decodes_within_the_time_bound(real):
    model, data, header = real
    refused = decoded = 0
    slowest = 0.0
    for case in mutations(data, header, np.random.default_rng(0)):
        start = time.perf_counter()
        try:
            images, _ = kae.decode_bytes(case, model)
        except KaeError:
            refused += 1
        else:
            decoded += 1
            assert np.isfinite(images).all()
        slowest = max(slowest, time.perf_counter() - start)
        assert slowest < SECONDS, f"a case took {slowest:.1f} s"
    assert refused > 0.95 * CASES  # almost every mutation is caught (checksums, sizes)
    assert decoded + refused >= CASES


def test_the_real_file_decodes(real):
    model, data, header = real
    images, back = kae.decode_bytes(data, model)
    assert back == header and images.shape == (40, 8, 8, 1)
