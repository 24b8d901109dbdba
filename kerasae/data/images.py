"""Image files: the one decoder of every route (folders, file lists, the uses' `--images`).

Files are read with Pillow, one at a time, straight to uint8 at the size asked for:

- formats: PNG, JPEG, BMP, GIF (the first frame), WebP, TIFF and the PNM family
  (`IMAGE_SUFFIXES`); palette images are expanded to their colours, 16-bit and
  float greyscale scaled to 8 bits, CMYK / YCbCr converted to RGB;
- the EXIF orientation is applied (as `PIL.ImageOps.exif_transpose`), so a phone
  photo comes out upright, and the header's size is the upright size;
- a pixel budget (100 megapixels by default; `max_pixels=`, `--max-pixels` or
  `$KERASAE_MAX_PIXELS` raise it) is checked from the header before anything is
  decoded: a larger image is a decompression bomb and is refused by name; the
  images being decoded at one time share that budget too, so memory stays bounded;
- JPEGs are decoded at a reduced scale (libjpeg's DCT scaling, 1/2 to 1/8) when
  the target size allows, so a 12-megapixel photo read at 64x64 never exists at
  full size;
- a file that is missing, not a regular file (a fifo never blocks the reader),
  not an image, truncated, or whose header promises more data than the file
  holds, is a `BadImageFile` with the reason.

Sizing follows one of three rules when the stored size differs from `image_size`:

- `"crop"` (the default): the largest centred window of the target aspect
  ratio, then resized; nothing is distorted and no border is invented, so a
  model does not spend capacity on padding;
- `"pad"`: resized to fit inside the target, then padded with black, centred;
- `"stretch"`: resized to the target, the aspect ratio changed.

Resizing is Pillow's antialiased bilinear filter on uint8, so every epoch (and the
on-disk cache) holds the same bytes. TFDS images, decoded by TFDS, are sized in the
`tf.data` graph by `fit`, with the same rules.
"""

import dataclasses
import math
import os
import stat
import threading

import numpy as np

from kerasae._util.errors import InvalidType, InvalidValue
from kerasae.data.source import DataError

COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}
RESIZE_MODES = ("crop", "pad", "stretch")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm",
                  ".ppm", ".pbm", ".pnm")
MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "KERASAE_MAX_PIXELS"
GRAY_MODES = frozenset({"1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_ORIENTATION = 0x0112
_SWAPS_AXES = (5, 6, 7, 8)  # EXIF orientations that turn the image by 90 degrees


class BadImageFile(DataError):
    """One image file cannot be used; `path` and `reason` say which and why."""

    def __init__(self, path, reason):
        self.path, self.reason = path, reason
        super().__init__(f"{path!r} {reason}. Received: file={path!r}")


@dataclasses.dataclass(frozen=True)
class Header:
    """What a file's header says: the upright size and Pillow's mode."""

    height: int
    width: int
    mode: str


def is_image_name(name):
    """Whether a file name has an image suffix (hidden files are not images)."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def pixel_budget(value=None):
    """The largest image (height x width) that may be decoded: `value`, else
    `$KERASAE_MAX_PIXELS`, else `MAX_PIXELS` (100 megapixels)."""
    what = "max_pixels"
    if value is None:
        value, what = os.environ.get(MAX_PIXELS_ENV) or MAX_PIXELS, MAX_PIXELS_ENV
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or not value >= 1:
        raise InvalidValue(
            f"{what} is the largest image, in pixels, that may be decoded, e.g. 200000000 "
            f"(200 megapixels). Received: {what}={value!r}"
        )
    return int(value)


# ------------------------------------------------------------------ opening
_OPEN_LOCK = threading.Lock()


def _open(path, max_pixels):
    """`(PIL image, file)` of `path`, its header read and checked (nothing decoded yet)."""
    from PIL import Image, UnidentifiedImageError

    try:
        # O_NONBLOCK: opening a fifo must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise BadImageFile(path, "is missing (deleted or moved since the folder was listed)") \
            from None
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
            path, f"is {im.size[1]}x{im.size[0]} ({pixels / 1e6:.0f} megapixels), over the "
            f"budget of {max_pixels / 1e6:g} megapixels: a decompression bomb, or a photo "
            "larger than expected. Raise the budget with --max-pixels (max_pixels=, "
            f"${MAX_PIXELS_ENV}) if it is a real image")
    return im, f


def _orientation(im):
    try:
        value = im.getexif().get(_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block: the image as stored
        return 1
    return value if value in range(1, 9) else 1


def probe(path, max_pixels):
    """The `Header` of one file (its header only), or `BadImageFile`."""
    im, f = _open(path, max_pixels)
    with f, im:
        w, h = im.size
        if _orientation(im) in _SWAPS_AXES:
            h, w = w, h
        return Header(h, w, im.mode)


# ----------------------------------------------------------------- decoding
class _PixelBudget:
    """Images being decoded at one time share `MAX_PIXELS` (one larger image runs alone)."""

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
    swap = _orientation(im) in _SWAPS_AXES
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
    grey repeated for RGB, alpha dropped or made opaque."""
    if channels == 1:
        return im.getchannel(0) if im.mode in ("L", "LA") else im.convert("L")
    if channels == 3:
        return im.convert("RGB")
    return im.convert("RGBA")


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


def read(path, channels, size, resize, max_pixels):
    """One image file -> uint8 `(height, width, channels)`, upright, sized to `size`.

    Raises:
        BadImageFile: the file is missing, not an image, damaged, truncated or a bomb.
    """
    from PIL import ImageOps

    im, f = _open(path, max_pixels)
    with f, im:
        _draft(im, size, resize)
        pixels = im.size[0] * im.size[1]  # as decoded: a JPEG's draft is smaller
        _BUDGET.acquire(pixels, max_pixels)
        try:
            try:
                im.load()
                upright = ImageOps.exif_transpose(im)
            except (OSError, ValueError, SyntaxError, EOFError) as e:
                raise BadImageFile(path, f"could not be decoded: damaged or truncated ({e})") \
                    from None
            out = _channels(_as_8bit(upright), channels)
            if size is not None:
                out = _sized(out, size, resize)
            arr = np.asarray(out, dtype="uint8")
        finally:
            _BUDGET.release(pixels)
    return arr.reshape(arr.shape[:2] + (channels,))


# --------------------------------------------------------------- arguments
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


# ------------------------------------------------------- TFDS, in the graph
def fit(x, size, mode):
    """A uint8 `(H, W, C)` image tensor sized to `size = (height, width)` by `mode`, in
    the `tf.data` graph (TFDS images, already decoded)."""
    import tensorflow as tf

    height, width = size
    x = tf.cast(x, tf.float32)
    h, w = tf.shape(x)[0], tf.shape(x)[1]
    if mode == "crop":
        scale = tf.minimum(tf.cast(h, tf.float64) / height, tf.cast(w, tf.float64) / width)
        ch = tf.cast(tf.round(scale * height), tf.int32)
        cw = tf.cast(tf.round(scale * width), tf.int32)
        x = tf.image.crop_to_bounding_box(x, (h - ch) // 2, (w - cw) // 2, ch, cw)
        x = tf.image.resize(x, size, antialias=True)
    elif mode == "pad":
        x = tf.image.resize_with_pad(x, height, width, antialias=True)
    else:
        x = tf.image.resize(x, size, antialias=True)
    x = tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)
    return tf.ensure_shape(x, [height, width, None])
