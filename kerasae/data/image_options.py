"""What the image options mean, checked: sizes, colour modes, resize rules, file suffixes and
the pixel budget (light: no Pillow, no TensorFlow; `kerasae.data.images` reads by them)."""

import math
import os

from kerasae._util.errors import InvalidType, InvalidValue

COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}
RESIZE_MODES = ("crop", "pad", "stretch")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm",
                  ".ppm", ".pbm", ".pnm")
MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "KERASAE_MAX_PIXELS"
BOMB_FIX = (f" Raise the pixel budget with --max-pixels (max_pixels=, ${MAX_PIXELS_ENV}) "
            "where the images are real.")


def is_image_name(name):
    """Whether a file name has an image suffix (hidden files are not images)."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


_NOTED = set()  # folders whose other files were said once in this process


def note_other_files(folder):
    """Says once, in one line, which files below `folder` (hidden ones aside) are left
    out because they are not images (a README, an SVG, a labels file)."""
    key = os.path.abspath(folder)
    if key in _NOTED:
        return
    _NOTED.add(key)
    others = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        others += [os.path.relpath(os.path.join(root, f), folder) for f in sorted(files)
                   if not f.startswith(".") and not is_image_name(f)]
    if others:
        shown = ", ".join(repr(o) for o in others[:3])
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        print(f"kerasae: left out {len(others)} file(s) of {folder!r} that are not images "
              f"({shown}{more}); images end in {', '.join(IMAGE_SUFFIXES)}.")


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


def shape_fits(expected, shape):
    """Whether data of `shape` fit a model's input `expected` (`None`: any size there)."""
    return len(expected) == len(shape) and all(
        e is None or e == s for e, s in zip(expected, shape))


def read_at(shape, resize="crop"):
    """The folder options (`image_size`, `color_mode`, `resize`) that read images at
    `shape`, a model's `(height, width, channels)` input (a model of any size, `None`
    height and width: the images keep their own size); `{}` for any other shape."""
    modes = {c: mode for mode, c in COLOR_MODES.items()}
    if shape is None or len(shape) != 3 or shape[-1] is None or int(shape[-1]) not in modes:
        return {}
    if shape[0] is None or shape[1] is None:
        return {"color_mode": modes[int(shape[-1])], "resize": resize}
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
