"""Tiled encoding and decoding: large photos through a fully convolutional model in
bounded memory.

An image is cut into overlapping tiles of `tile` pixels, each tile is encoded alone, and
the tiles' codes are blended into one code of the whole image; decoding does the same
on the code's grid (tiles of `tile / factor` code cells). Where tiles overlap, each
one's weight falls linearly to zero across the overlap (towards a neighbour only), so
seams fade instead of showing; every position's weights sum to one. Memory follows the
tile, not the image: the image, its code and the output are held once, plus one tile's
activations (a 4000x3000 photo through `tae_flux2` with 512-pixel tiles: `python -m
kerasae.benchmarks.photos --tiled`).

A tile sees only its own pixels, so a result differs from the untiled one near seams
and, for a model with a global branch (GroupNorm over the whole map, as TAESD's), in
statistics the whole image would have set; the overlap bounds the first.
"""

import contextlib
import logging

import numpy as np

from kerasae._util.errors import InvalidValue


class _NoRetracingNote(logging.Filter):
    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def quiet_retracing():
    """Keeps TensorFlow's "triggered tf.function retracing" warning off the user's screen
    while it runs: tiles (and images) of several shapes each trace a step once, by design."""
    logger, note = logging.getLogger("tensorflow"), _NoRetracingNote()
    logger.addFilter(note)
    try:
        yield
    finally:
        logger.removeFilter(note)


def _starts(size, tile, step, align):
    """Tile starts along one axis: every `step`, the last one flush with the end."""
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted({s - s % align for s in starts})


def _ramp(length, before, after, overlap):
    """Weights along one axis of a tile: linear over `overlap` towards each neighbour."""
    w = np.ones(length, "float32")
    if overlap > 0:
        edge = (np.arange(min(overlap, length), dtype="float32") + 0.5) / overlap
        if before:
            w[:edge.size] = np.minimum(w[:edge.size], edge)
        if after:
            w[length - edge.size:] = np.minimum(w[length - edge.size:], edge[::-1])
    return w


OVERLAP = 64  # the most pixels neighbouring tiles share by default


def default_overlap(tile, factor):
    """The overlap a `tile` gets when none is given: a quarter of it, at most `OVERLAP`,
    rounded down to a multiple of `factor` (64 for 512-pixel tiles, 16 for 64)."""
    return min(OVERLAP, tile // 4 // factor * factor)


def check_tiling(tile, overlap, factor):
    """`(tile, overlap)` as ints, refused unless multiples of `factor` with overlap < tile;
    overlap `None` follows the tile (`default_overlap`) and goes unnamed in errors."""
    for name, value in (("tile", tile), ("overlap", overlap)):
        if value is None and name == "overlap":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            rule = "tile > 0" + (", overlap >= 0" if overlap is not None else "")
            raise InvalidValue(f"{name} must be a whole number of pixels ({rule}). "
                               f"Received: {name}={value!r}")
    if overlap is None:
        if tile < 2 * factor or tile % factor:
            raise InvalidValue(
                f"tile must be a multiple of the model's downsampling factor {factor}, at "
                f"least {2 * factor} (e.g. tile=512). Received: tile={tile}")
        overlap = default_overlap(tile, factor)
    if tile < 2 * factor or tile % factor or overlap % factor or overlap >= tile:
        raise InvalidValue(
            f"tile and overlap must be multiples of the model's downsampling factor {factor}, "
            f"with tile >= {2 * factor} and overlap < tile (e.g. tile=512, overlap=64). "
            f"Received: tile={tile}, overlap={overlap}")
    return int(tile), int(overlap)


def tiled(fn, x, tile, overlap, scale, align=1):
    """`fn` applied to overlapping tiles of one image `x` (H, W, C) and blended.

    Args:
        fn: maps a batch of one tile `(1, h, w, C)` to `(1, h * scale, w * scale, C')`.
        x: the image (or code), a numpy array `(H, W, C)`.
        tile, overlap: the tile's side and the overlap of neighbours, in `x`'s units.
        scale: the output's size per unit of `x` (`1 / 8` to encode, `8` to decode).
        align: tile starts are multiples of it (the factor, when encoding).

    Returns:
        float32 numpy `(H * scale, W * scale, C')`.
    """
    height, width = x.shape[:2]
    step = tile - overlap
    rows = _starts(height, tile, step, align)
    cols = _starts(width, tile, step, align)
    out = weight = None
    for i, y0 in enumerate(rows):
        for j, x0 in enumerate(cols):
            piece = np.asarray(fn(x[None, y0:y0 + tile, x0:x0 + tile]), "float32")[0]
            if out is None:
                out = np.zeros((round(height * scale), round(width * scale), piece.shape[-1]),
                               "float32")
                weight = np.zeros(out.shape[:2], "float32")
            h, w = piece.shape[:2]
            oy, ox, ov = round(y0 * scale), round(x0 * scale), round(overlap * scale)
            wy = _ramp(h, i > 0, i < len(rows) - 1, ov)
            wx = _ramp(w, j > 0, j < len(cols) - 1, ov)
            mask = wy[:, None] * wx[None, :]
            out[oy:oy + h, ox:ox + w] += piece * mask[..., None]
            weight[oy:oy + h, ox:ox + w] += mask
    out /= weight[..., None]
    return out
