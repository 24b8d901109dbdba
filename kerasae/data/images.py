"""Image files: the one decoder of every route (folders, file lists, the uses' `--images`).

Files are read with Pillow, one at a time, straight to uint8 at the size asked for:

- formats: PNG, JPEG, BMP, GIF (the first frame), WebP, TIFF and the PNM family
  (`IMAGE_SUFFIXES`); palette images are expanded to their colours, 16-bit and
  float greyscale scaled to 8 bits, CMYK / YCbCr converted to RGB;
- the EXIF orientation is applied (as `PIL.ImageOps.exif_transpose` does), so a
  phone photo comes out upright, and the header's size is the upright size;
- a pixel budget (100 megapixels by default; `max_pixels=`, `--max-pixels` or
  `$KERASAE_MAX_PIXELS` raise it) is checked from the header before anything is
  decoded: a larger image is a decompression bomb and is refused by name; the
  images being decoded at one time share that budget too, so memory stays bounded;
- JPEGs are decoded at a reduced scale (libjpeg's DCT scaling, 1/2 to 1/8) when
  the target size allows, so a 12-megapixel photo read at 64x64 never exists at
  full size;
- a file that is missing, a broken link, not a regular file (a fifo never blocks
  the reader), not an image, truncated, or whose header promises more data than
  the file holds (a JPEG far smaller than its size needs), is a `BadImageFile`
  with the reason.

Sizing follows one of three rules when the stored size differs from `image_size`:

- `"crop"` (the default): the largest centred window of the target aspect
  ratio, then resized; nothing is distorted and no border is invented, so a
  model does not spend capacity on padding;
- `"pad"`: resized to fit inside the target, then padded with black, centred;
- `"stretch"`: resized to the target, the aspect ratio changed.

Resizing is Pillow's antialiased bilinear filter on uint8, so every epoch (and the
on-disk cache) holds the same bytes. TFDS images, decoded by TFDS, are sized in the
`tf.data` graph with the same rules (`kerasae.data.tfds`).
"""

import dataclasses
import math
import os
import stat
import threading
import warnings

import numpy as np

from kerasae.data.image_options import BOMB_FIX
from kerasae.data.source import DataError

GRAY_MODES = frozenset({"1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_ORIENTATION = 0x0112
_SWAPS_AXES = (5, 6, 7, 8)  # EXIF orientations that turn the image by 90 degrees
# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose).
_UPRIGHT = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
            6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}
# About 2 bits per 8x8 block, far below what Huffman-coded JPEGs spend on the flattest one.
_JPEG_PIXELS_PER_BYTE = 256


class BadImageFile(DataError):
    """One image file cannot be used; `path` and `reason` say which and why."""

    def __init__(self, path, reason, bomb=False):
        self.path, self.reason, self.bomb = path, reason, bomb
        super().__init__(f"{path!r} {reason}.{BOMB_FIX if bomb else ''} Received: file={path!r}")


@dataclasses.dataclass(frozen=True)
class Header:
    """What a file's header says: the upright size and Pillow's mode."""

    height: int
    width: int
    mode: str


# ------------------------------------------------------------------ opening
_OPEN_LOCK = threading.Lock()


def _open(path, max_pixels):
    """`(PIL image, file)` of `path`, its header read and checked (nothing decoded yet)."""
    from PIL import Image, UnidentifiedImageError

    try:
        # O_NONBLOCK: opening a fifo must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        why = ("is a broken symbolic link" if os.path.islink(path) else
               "is missing (deleted or moved since the folder was listed)")
        raise BadImageFile(path, why) from None
    except OSError as e:
        raise BadImageFile(path, f"cannot be opened ({e.strerror})") from None
    f = os.fdopen(fd, "rb")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BadImageFile(path, "is not a regular file (a fifo, socket or device)")
        # Pillow's own bomb check warns or fails at its fixed limit; ours is the budget
        # below. The lock keeps the switch private to this reader's threads.
        with _OPEN_LOCK:
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                im = Image.open(f)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except UnidentifiedImageError:
        f.close()
        raise BadImageFile(path, "is not an image file that can be read") from None
    except BadImageFile:
        f.close()
        raise
    except (OSError, ValueError, SyntaxError) as e:
        f.close()
        raise BadImageFile(path, f"has a damaged header ({e})") from None
    pixels = im.size[0] * im.size[1]
    if pixels > max_pixels:
        f.close()
        raise BadImageFile(
            path, f"is {im.size[1]}x{im.size[0]} ({pixels / 1e6:.3g} megapixels), over the "
            f"pixel budget of {max_pixels / 1e6:.3g} megapixels: a decompression bomb, or a "
            "photo larger than expected", bomb=True)
    return im, f


def _orientation(im):
    """The EXIF orientation (1-8) of an opened image; a damaged EXIF block reads as 1,
    without Pillow's warning (it would name no file)."""
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = im.getexif().get(_ORIENTATION, 1)
        except Exception:  # noqa: BLE001 - a damaged EXIF block: the image as stored
            return 1
    return value if value in range(1, 9) else 1


def _swaps_axes(im):
    """Whether the upright image is the stored one turned by 90 degrees. Pillow's TIFF
    reader reports the upright size and applies the orientation itself when it loads."""
    return im.format != "TIFF" and _orientation(im) in _SWAPS_AXES


def probe(path, max_pixels):
    """The `Header` of one file (its header only), or `BadImageFile`."""
    im, f = _open(path, max_pixels)
    with f, im:
        _check_size_is_plausible(path, im, f)
        w, h = im.size
        if _swaps_axes(im):
            h, w = w, h
        return Header(h, w, im.mode)


def _check_size_is_plausible(path, im, f):
    """A JPEG spends at least a few bits on every 8x8 block (Huffman codes for its DC
    difference and end of block), so a file far smaller than its header's size needs
    is a header that lies, not an image: libjpeg would fill it with grey and warn."""
    if im.format != "JPEG":
        return
    size = os.fstat(f.fileno()).st_size
    least = im.size[0] * im.size[1] // _JPEG_PIXELS_PER_BYTE
    if size < least:
        raise BadImageFile(
            path, f"claims {im.size[1]}x{im.size[0]} pixels in {size} bytes (a real JPEG of "
            f"that size holds at least {least} bytes): its header lies or the file is cut")


# ----------------------------------------------------------------- decoding
class _PixelBudget:
    """Images being decoded at one time share the budget, counted in bytes (pixels times
    channels): one larger image is decoded alone."""

    def __init__(self):
        self._used, self._cond = 0, threading.Condition()

    def acquire(self, n, cap):
        with self._cond:
            self._cond.wait_for(lambda: self._used == 0 or self._used + n <= cap)
            self._used += n

    def release(self, n):
        with self._cond:
            self._used -= n
            self._cond.notify_all()


_BUDGET = _PixelBudget()


def _needed(h, w, size, mode):
    """The smallest `(height, width)` a decoded image may have and still give `size`."""
    if size is None:
        return h, w
    th, tw = size
    if mode == "crop":
        s = min(h / th, w / tw)
        return h / s, w / s
    if mode == "pad":
        f = min(th / h, tw / w)
        return h * f, w * f
    return th, tw


def _draft(im, size, mode):
    """Decodes a JPEG at 1/2, 1/4 or 1/8 scale where `size` still fits (DCT scaling)."""
    if im.format != "JPEG" or size is None:
        return
    w, h = im.size
    swap = _swaps_axes(im)
    nh, nw = _needed(*((w, h) if swap else (h, w)), size, mode)
    if swap:
        nh, nw = nw, nh
    im.draft(im.mode, (max(1, math.ceil(nw)), max(1, math.ceil(nh))))


def _as_8bit(im):
    """A Pillow image in one of the modes L, LA, RGB, RGBA."""
    from PIL import Image

    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode in ("P", "PA"):
        alpha = mode == "PA" or "transparency" in im.info
        return im.convert("RGBA" if alpha else "RGB")
    if mode in GRAY_MODES:  # 16-bit or 32-bit integers, floats
        arr = np.asarray(im, dtype="float64")
        if mode == "F":
            top = 1.0 if arr.size == 0 or np.nanmax(arr) <= 1.0 else 255.0
        else:
            top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(np.nan_to_num(arr) / top * 255.0, 0, 255)
        return Image.fromarray(np.rint(arr).astype("uint8"), "L")
    has_alpha = "A" in mode or "transparency" in im.info
    return im.convert("RGBA" if has_alpha else "RGB")


def _channels(im, channels):
    """`im` (L, LA, RGB or RGBA) with `channels` channels: grey by the ITU-R 601 weights,
    grey repeated for RGB, alpha dropped or made opaque; `im` itself if it has them."""
    if channels == 1:
        return im.getchannel(0) if im.mode == "LA" else im if im.mode == "L" else im.convert("L")
    want = "RGB" if channels == 3 else "RGBA"
    return im if im.mode == want else im.convert(want)


def _sized(im, size, mode):
    """`im` sized to `size = (height, width)` by `mode` (see the module docstring)."""
    from PIL import Image

    th, tw = size
    w, h = im.size
    if (h, w) == (th, tw):
        return im
    if mode == "stretch":
        return im.resize((tw, th), Image.BILINEAR, reducing_gap=3.0)
    if mode == "crop":
        s = min(h / th, w / tw)
        ch, cw = round(s * th), round(s * tw)
        top, left = (h - ch) // 2, (w - cw) // 2
        if (ch, cw) == (th, tw):
            return im.crop((left, top, left + cw, top + ch))
        return im.resize((tw, th), Image.BILINEAR, box=(left, top, left + cw, top + ch),
                         reducing_gap=3.0)
    f = min(th / h, tw / w)
    nh, nw = max(1, min(th, round(h * f))), max(1, min(tw, round(w * f)))
    inner = im if (nh, nw) == (h, w) else im.resize((nw, nh), Image.BILINEAR, reducing_gap=3.0)
    out = Image.new(im.mode, (tw, th))
    out.paste(inner, ((tw - nw) // 2, (th - nh) // 2))
    return out


_LARGE = 32 << 20  # bytes: above this, glibc's allocator maps memory per thread arena
_LARGE_POOL = []


def _large_pool():
    import concurrent.futures

    with _OPEN_LOCK:
        if not _LARGE_POOL:
            _LARGE_POOL.append(concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="kerasae-large-images"))
    return _LARGE_POOL[0]


def _decoded(path, im, channels, size, resize):
    """The pixels of an opened image: decoded, 8-bit, `channels`, sized, upright."""
    from PIL import Image

    try:
        im.load()
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise BadImageFile(path, f"could not be decoded: damaged or truncated ({e})") from None
    turn = _UPRIGHT.get(_orientation(im))  # None for TIFF: applied by its loader
    out = _as_8bit(im)
    if channels == 1 or len(out.getbands()) > channels:
        out = _channels(out, channels)  # fewer channels: convert first
    if size is not None:
        # Centred crops and pads look the same whichever way the image is turned.
        stored = size[::-1] if turn in ("TRANSPOSE", "ROTATE_270", "TRANSVERSE",
                                        "ROTATE_90") else size
        out = _sized(out, stored, resize)
    if turn is not None:
        out = out.transpose(getattr(Image.Transpose, turn))
    return np.asarray(_channels(out, channels), dtype="uint8")


def read(path, channels, size, resize, max_pixels):
    """One image file -> uint8 `(height, width, channels)`, upright, sized to `size`.

    Large images are sized before they are turned upright and before grey is spread to
    colour channels, so only the decoded image is ever held at full size; they are
    decoded on one thread of their own, whose allocator then holds the memory of one
    large image (threads keep what they freed: each would keep one).

    Raises:
        BadImageFile: the file is missing, not an image, damaged, truncated or a bomb.
    """
    im, f = _open(path, max_pixels)
    with f, im:
        _check_size_is_plausible(path, im, f)
        _draft(im, size, resize)
        # What decoding holds (a JPEG's draft is smaller), counted in bytes.
        held = im.size[0] * im.size[1] * max(1, len(im.getbands()))
        _BUDGET.acquire(held, max_pixels)
        try:
            if held < _LARGE:
                arr = _decoded(path, im, channels, size, resize)
            else:
                arr = _large_pool().submit(_decoded, path, im, channels, size, resize).result()
        finally:
            _BUDGET.release(held)
    return arr.reshape(arr.shape[:2] + (channels,))


