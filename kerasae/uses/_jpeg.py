"""JPEG beside a codec: round trips with Pillow, the quality at a given PSNR, and the
per-image table of bits per pixel and PSNR that `compress` and
`kerasae.benchmarks.photos --codec` report alike."""

import io
import struct

import numpy as np

from kerasae._util.errors import InvalidValue
from kerasae.metrics import mean_mse, psnr
from kerasae.uses.result import to_uint8


def jpeg_round_trip(images, quality):
    """JPEG-encodes every image with Pillow (optimized Huffman tables, baseline).

    Returns `(decoded float32 images, file bytes per image, scan bytes per image)`;
    scan bytes are the entropy-coded segment alone, without markers and tables.
    """
    from PIL import Image

    u8 = to_uint8(images)
    channels = u8.shape[-1]
    if channels not in (1, 3):
        raise InvalidValue(
            f"JPEG takes 1 or 3 channels. Received: channels={channels}"
        )
    decoded = np.empty(u8.shape, dtype="float32")
    sizes = np.empty(len(u8), dtype="int64")
    scans = np.empty(len(u8), dtype="int64")
    for i, img in enumerate(u8):
        buf = io.BytesIO()
        pil = Image.fromarray(img[..., 0] if channels == 1 else img,
                              "L" if channels == 1 else "RGB")
        pil.save(buf, format="JPEG", quality=int(quality), optimize=True)
        data = buf.getvalue()
        sizes[i] = len(data)
        scans[i] = jpeg_scan_bytes(data)
        with Image.open(io.BytesIO(data)) as back:
            arr = np.asarray(back, dtype="float32") / 255.0
        decoded[i] = arr[..., None] if channels == 1 else arr
    return decoded, sizes, scans


def jpeg_scan_bytes(data):
    """Bytes of the entropy-coded scan of a baseline JPEG (after SOS, before EOI)."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise InvalidValue(f"Not a JPEG marker at byte {pos}. Received: byte={data[pos]}")
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker == 0xDA:
            start = pos + 2 + length
            end = len(data) - 2 if data[-2:] == b"\xff\xd9" else len(data)
            return end - start
        pos += 2 + length
    raise InvalidValue("No SOS marker in the JPEG data. Received: bytes=" + str(len(data)))


def jpeg_at_psnr(images, target_psnr, cache=None):
    """Pillow quality (1..100) whose PSNR (of the mean MSE) is nearest `target_psnr`.

    PSNR grows with quality, so a binary search brackets the target; the nearer
    of the two bracketing qualities wins. Returns `(best, cache)`.
    """
    cache = {} if cache is None else cache

    def run(q):
        if q not in cache:
            dec, sizes, scans = jpeg_round_trip(images, q)
            cache[q] = {"quality": q, "psnr_db": psnr(mean_mse(images, dec)),
                        "bits_per_image": float(sizes.mean() * 8),
                        "scan_bits_per_image": float(scans.mean() * 8), "decoded": dec}
        return cache[q]

    lo, hi = 1, 100
    if run(hi)["psnr_db"] <= target_psnr:
        best = run(hi)
    elif run(lo)["psnr_db"] >= target_psnr:
        best = run(lo)
    else:
        while hi - lo > 1:  # invariant: psnr(lo) < target <= psnr(hi)
            mid = (lo + hi) // 2
            if run(mid)["psnr_db"] >= target_psnr:
                hi = mid
            else:
                lo = mid
        a, b = run(lo), run(hi)
        best = a if abs(a["psnr_db"] - target_psnr) < abs(b["psnr_db"] - target_psnr) else b
    return best, cache


# ------------------------------------------------------------- per-image table
RATE_KEYS = ("psnr", "bpp", "jpeg_psnr", "jpeg_bpp", "jpeg_scan_bpp")


def image_psnr(x, y):
    """PSNR in dB of one image against another, both in [0, 1], from the float64 MSE."""
    return psnr(np.mean(np.square(np.asarray(x, "float64") - np.asarray(y, "float64"))))


def rate_row(original, decoded, bits, jpeg=True):
    """One image's row: its size, the codec's `bpp` (`bits` over its pixels, height x
    width) and `psnr`, and with `jpeg` JPEG at the quality whose PSNR is nearest
    (`jpeg_quality`, `jpeg_psnr`, `jpeg_bpp` of the whole file, `jpeg_scan_bpp` of its
    entropy-coded scan alone)."""
    original = np.asarray(original, "float32")
    pixels = int(original.shape[0] * original.shape[1])
    row = {"height": int(original.shape[0]), "width": int(original.shape[1]),
           "bits": int(bits), "bpp": bits / pixels, "psnr": image_psnr(decoded, original)}
    if jpeg:
        best, _ = jpeg_at_psnr(original[None], row["psnr"])
        row.update(jpeg_quality=int(best["quality"]), jpeg_psnr=best["psnr_db"],
                   jpeg_bpp=best["bits_per_image"] / pixels,
                   jpeg_scan_bpp=best["scan_bits_per_image"] / pixels)
        if best["quality"] == 1 and best["psnr_db"] > row["psnr"]:
            row["jpeg_note"] = "JPEG's lowest quality (q=1) is already sharper: compared at q=1"
        elif best["quality"] == 100 and best["psnr_db"] < row["psnr"]:
            row["jpeg_note"] = "JPEG's highest quality (q=100) stays below: compared at q=100"
    return row


def rate_summary(rows):
    """The rows' means (`mean`: of each image's figure, as the photo benchmark reports)
    and totals (`total`: all the bits over all the pixels)."""
    rows = list(rows)
    keys = [k for k in RATE_KEYS if all(k in r for r in rows)]
    pixels = sum(r["height"] * r["width"] for r in rows)
    total = {"images": len(rows), "pixels": int(pixels),
             "bpp": sum(r["bits"] for r in rows) / pixels}
    if "jpeg_bpp" in keys:
        total["jpeg_bpp"] = sum(r["jpeg_bpp"] * r["height"] * r["width"] for r in rows) / pixels
        total["jpeg_scan_bpp"] = sum(r["jpeg_scan_bpp"] * r["height"] * r["width"]
                                     for r in rows) / pixels
    return {"mean": {k: float(np.mean([r[k] for r in rows])) for k in keys}, "total": total}
