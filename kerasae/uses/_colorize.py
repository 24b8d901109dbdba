"""colorize: grey photos to colour (`Colorizer`), measured against two baselines.

A colour photo is made grey (its BT.601 luminance), colorized, and compared with its
original; a grey photo is only colorized. The baselines: the grey image as RGB, and
the grey image with the training set's mean chroma (the best single colour cast). The
statistics: PSNR against the original, the colourfulness M of Hasler & Suesstrunk
(2003), and the hue spread (the chroma-weighted circular standard deviation of the hue,
in degrees: near 0 for a sepia or any single tint).
Training a colorizer on one's own photos is `kerasae.uses._colortrain`.
"""

import json
import os

import numpy as np

from kerasae import presets
from kerasae._util.errors import InvalidType, InvalidValue
from kerasae.data import images as _images
from kerasae.data.folders import expand_files
from kerasae.data.image_options import pixel_budget
from kerasae.metrics import psnr as psnr_of_mse
from kerasae.models.colorizer import AnnealedMean, rgb_layer, rgb_to_ycbcr, ycbcr_to_rgb
from kerasae.models.resolve import resolve_preset
from kerasae.models.start import check_keras_path
from kerasae.uses.result import Output, Result, jsonable, save_png

DEFAULT_MODEL = "colorize_photos"
RUN_FILE = "run.json"  # what train_colorizer writes beside its model.keras
_GREY_TOLERANCE = 2  # 8-bit levels: an RGB file whose channels differ less is grey


def psnr(a, b):
    """PSNR in dB of two images in [0, 1] (over every pixel and channel)."""
    return psnr_of_mse(np.mean((np.asarray(a, "float64") - np.asarray(b, "float64")) ** 2))


def colourfulness(rgb):
    """Hasler & Suesstrunk's colourfulness M of an RGB image in [0, 1], on the 0..255
    scale of their paper (about 0 for grey, 33 'moderately', 59 'quite', 82 'highly'
    colourful).

    Reference:
        D. Hasler and S. Suesstrunk, "Measuring colourfulness in natural images",
        Proc. SPIE 5007, 2003.
    """
    rgb = np.asarray(rgb, "float64") * 255.0
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def hue_spread(rgb):
    """The chroma-weighted circular standard deviation of the hue (degrees) of an RGB
    image in [0, 1]: near 0 when every pixel has one hue (sepia, a tint), larger when
    the image holds several colours; 0 for a grey image."""
    c = rgb_to_ycbcr(rgb)[..., 1:].reshape(-1, 2).astype("float64")
    total = np.hypot(c[:, 0], c[:, 1]).sum()
    if total <= 1e-9:
        return 0.0
    resultant = np.hypot(*c.sum(axis=0)) / total  # mean of unit hue vectors, chroma-weighted
    resultant = min(max(resultant, 1e-12), 1.0)  # rounding lifts one hue just above 1
    return float(np.degrees(np.sqrt(max(-2.0 * np.log(resultant), 0.0))))


def mean_chroma_baseline(y, mean_chroma):
    """The grey image `y` (h, w, 1) with one chroma `(cb, cr)` everywhere, as RGB."""
    cbcr = np.broadcast_to(np.asarray(mean_chroma, "float32"), y.shape[:2] + (2,))
    return np.clip(ycbcr_to_rgb(np.concatenate([y, cbcr], axis=-1)), 0, 1)


def baselines(original, mean_chroma):
    """The two baselines of `original` (h, w, 3), as RGB: its grey image, and its grey
    image under the training photos' `mean_chroma`."""
    y = rgb_to_ycbcr(original)[..., :1]
    return np.repeat(y, 3, axis=-1).clip(0, 1), mean_chroma_baseline(y, mean_chroma)


def measure(colorized, original, mean_chroma):
    """Per-image statistics of `colorized` (h, w, 3) against `original` and the two
    baselines (see the module docstring)."""
    grey, flat = baselines(original, mean_chroma)
    return {"psnr": psnr(colorized, original), "psnr_grey": psnr(grey, original),
            "psnr_mean_chroma": psnr(flat, original),
            "colourfulness": colourfulness(colorized),
            "colourfulness_mean_chroma": colourfulness(flat),
            "colourfulness_original": colourfulness(original),
            "hue_spread": hue_spread(colorized), "hue_spread_original": hue_spread(original)}


def _keras_colorizer(path):
    """A colorizer saved by `train_colorizer` (`.keras`, loaded in safe mode) and the
    training photos' mean chroma: from the file itself, or for a file written before it
    kept it there, from the `run.json` beside it (`None` without either)."""
    import keras  # lazy: keeps TensorFlow out of `import kerasae.uses`

    import kerasae.models  # noqa: F401  # lazy: registers the colorizer's layers with Keras

    check_keras_path(path)
    model = _checked(keras.saving.load_model(path, compile=False, safe_mode=True), path)
    mean = _carried_mean(model)
    run = os.path.join(os.path.dirname(os.path.abspath(path)), RUN_FILE)
    if mean is None and os.path.isfile(run):
        with open(run, encoding="utf-8") as f:
            mean = json.load(f).get("mean_chroma")
    return model, _pair(mean), {"name": path, "source": "file"}


def _carried_mean(model):
    """The mean chroma a colorizer carries (its `YCbCrToRGB` layer's config, else a
    `mean_chroma` attribute), or `None`."""
    layer = rgb_layer(model)
    mean = getattr(layer, "mean_chroma", None)
    return getattr(model, "mean_chroma", None) if mean is None else mean


def _pair(mean):
    return None if mean is None else tuple(float(v) for v in mean)


def _checked(model, given):
    """`model` if it maps (h, w, 1) luminance to (h, w, 3) RGB, as a colorizer does."""
    try:  # a subclassed model (e.g. an Autoencoder) has no symbolic inputs
        shapes = [tuple(t.shape) for t in (*model.inputs, *model.outputs)]
    except (AttributeError, TypeError, ValueError):
        shapes = [f"{type(model).__name__} with input_shape "
                  f"{getattr(model, 'image_shape', '?')}"]
    if len(shapes) != 2 or len(shapes[0]) != 4 or shapes[0][-1] != 1 or shapes[1][-1] != 3:
        raise InvalidValue(
            f"{given!r} is not a colorizer: a colorizer maps (batch, h, w, 1) luminance to "
            f"(batch, h, w, 3) RGB (kerasae.models.colorizer.Colorizer, or train_colorizer's "
            f"model.keras), this model maps {' -> '.join(map(str, shapes))}. "
            f"Received: model={given!r}")
    return model


def load_colorizer(model=DEFAULT_MODEL):
    """`(keras model, training mean chroma (cb, cr) or None, info)` for a preset name, a
    `.keras` file written by `train_colorizer`, or a colorizer `keras.Model`."""
    if hasattr(model, "predict"):
        mean = _carried_mean(_checked(model, model.name))
        start = getattr(model, "start_point", None) or {}
        if mean is None and start.get("kind") == "preset":  # Colorizer(weights="<preset>")
            mean = resolve_preset(start["name"]).metadata()["dataset"].get("mean_chroma")
        return model, _pair(mean), {"name": model.name, "source": "memory"}
    if not isinstance(model, (str, os.PathLike)):
        raise InvalidType(
            "model must be a colorizer preset name (e.g. 'colorize_photos'), a .keras file "
            f"written by train_colorizer, or a keras.Model. Received: model={model!r}")
    text = os.fspath(model)
    if presets.names_a_file(text):
        return _keras_colorizer(text)
    ref = resolve_preset(text)
    if ref.builder != "colorizer":
        raise InvalidValue(
            f"Preset {ref.label!r} is a {ref.builder!r} model, not a colorizer. Use "
            f"'{DEFAULT_MODEL}' or a .keras file written by train_colorizer. "
            f"Received: model={text!r}")
    built = ref.build()
    mean = _pair(ref.metadata()["dataset"].get("mean_chroma"))
    if mean is not None:  # carried by the model, as train_colorizer's are (saved with it)
        rgb_layer(built).mean_chroma = list(mean)
    return built, mean, {"name": ref.label, "source": "preset", "sha256": ref.sha256}


def _as_image(array, name):
    """A float32 (h, w, c) image in [0, 1] from an array of one image: c is 1 (grey),
    2 (grey and alpha), 3 (RGB) or 4 (RGBA)."""
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4) or min(a.shape[:2]) < 1:
        raise InvalidValue(
            f"colorize takes one image of shape (height, width) or (height, width, c) with "
            f"c = 1 (grey), 2 (grey and alpha), 3 (RGB) or 4 (RGBA), or a batch (n, height, "
            f"width, c). Received: shape={np.shape(array)} ({name})")
    if a.dtype == np.uint8:
        return a.astype("float32") / 255.0
    if not np.issubdtype(a.dtype, np.floating) or not np.isfinite(a).all() \
            or a.min() < 0 or a.max() > 1:
        raise InvalidValue(
            f"Image arrays are uint8, or floats in [0, 1] without NaN. Scale with x / 255 "
            f"(8-bit values) or x / 65535 (16-bit). "
            f"Received: dtype={a.dtype}, range=[{a.min()}, {a.max()}] ({name})")
    return a.astype("float32")


def read_inputs(images_or_folder, max_pixels=None):
    """`[(name, float32 (h, w, c) image)]`: files and folders of images (read at their
    own size), one array image or a batch of them. c is 1 (grey), 3 (RGB), or 2 and 4
    with the alpha channel last for a file with transparency (an opaque alpha is
    dropped)."""
    given = images_or_folder
    if isinstance(given, (list, tuple)) and given and all(
            isinstance(x, np.ndarray) for x in given):  # images of several sizes
        return [(f"image_{i:04d}", _as_image(x, f"image {i}")) for i, x in enumerate(given)]
    if isinstance(given, np.ndarray):
        batch = given if given.ndim == 4 else [given]
        return [(f"image_{i:04d}", _as_image(x, f"image {i}")) for i, x in enumerate(batch)]
    out, budget, taken = [], pixel_budget(max_pixels), set()
    for path, name in expand_files(given):
        rgba = _images.read(path, 4, None, "crop", budget)  # opaque alpha for RGB files
        rgb = rgba[..., :3]
        spread = rgb.max(axis=-1).astype(int) - rgb.min(axis=-1)
        grey = int(spread.max(initial=0)) < _GREY_TOLERANCE
        keep = slice(0, 1) if grey else slice(0, 3)
        image = np.concatenate([rgb[..., keep], rgba[..., 3:]], axis=-1) \
            if rgba[..., 3].min(initial=255) < 255 else rgb[..., keep]
        out.append((_unique(os.path.splitext(name)[0], taken), image.astype("float32") / 255.0))
    return out


def split_alpha(image):
    """`(colour (h, w, 1 or 3), alpha (h, w, 1) or None)` of an input image."""
    if image.shape[-1] in (2, 4):
        return image[..., :-1], image[..., -1:]
    return image, None


def _unique(name, taken):
    """`name`, or `name_2`, `name_3`, ...: two inputs never write one output file."""
    candidate, k = name, 1
    while candidate in taken:
        k += 1
        candidate = f"{name}_{k}"
    taken.add(candidate)
    return candidate


WORK_SIDE = 256  # the short side the colorizers are trained at (train_colorizer's short_side)


def _reading(model):
    """How a colorizer reads its chroma: `{"bins", "temperature", "chroma_gain"}`."""
    mean = [la for la in getattr(model, "layers", ()) if isinstance(la, AnnealedMean)]
    layer = rgb_layer(model)
    return {"bins": mean[0].bins if mean else None,
            "temperature": mean[0].temperature if mean else None,
            "chroma_gain": None if layer is None else layer.chroma_gain}


def colorize_one(model, grey):
    """The colorizer's RGB (h, w, 3) for one luminance image (h, w, 1).

    A photo whose short side is above twice `WORK_SIDE` is colorized at a short side of
    `WORK_SIDE` (the scale the model learned; memory and time follow it) and its chroma
    scaled up to the photo, under the photo's own luminance: on a 4000x3000 photo 24.7 dB
    in under a second against 20.9 dB in 55 s and 9.6 GB at full size (a trial's figures).
    """
    h, w = grey.shape[:2]
    if min(h, w) <= 2 * WORK_SIDE:
        # a direct call: predict() would trace a new graph for every size, warning each time
        return np.asarray(model(grey[None], training=False)[0], "float32")
    from PIL import Image  # lazy: only large photos are resized here

    scale = WORK_SIDE / min(h, w)
    small = (max(1, round(w * scale)), max(1, round(h * scale)))
    low = np.asarray(Image.fromarray(grey[..., 0]).resize(small, Image.BILINEAR))[..., None]
    rgb = np.asarray(model(low[None].astype("float32"), training=False)[0], "float32")
    chroma = rgb_to_ycbcr(rgb)[..., 1:]
    up = np.stack([np.asarray(Image.fromarray(chroma[..., i]).resize((w, h), Image.BILINEAR))
                   for i in range(2)], axis=-1)
    return np.clip(ycbcr_to_rgb(np.concatenate([grey, up], axis=-1)), 0, 1).astype("float32")


def _summary(rows):
    measured = [r for r in rows if "psnr" in r]
    if not measured:
        return {}
    keys = [k for k, v in measured[0].items() if isinstance(v, float)]
    mean = {k: float(np.mean([r[k] for r in measured])) for k in keys}
    mean["images"] = len(measured)
    mean["beats_both_baselines"] = sum(
        r["psnr"] > max(r["psnr_grey"], r["psnr_mean_chroma"]) for r in measured)
    return mean


def _check_mean_known(mean_chroma, inputs, info):
    """Refuses to measure colour photos against a mean-chroma baseline nobody knows (a
    `.keras` file written before it carried its mean chroma, moved without `run.json`;
    a model object built without `mean_chroma=`)."""
    if mean_chroma is None and any(split_alpha(x)[0].shape[-1] == 3 for _, x in inputs):
        fix = ("Put the run.json that train_colorizer wrote back beside it" if
               info["source"] == "file" else "Pass the preset's name or the .keras file as "
               "model=, or build the model with mean_chroma=(cb, cr)")
        raise InvalidValue(
            f"The colorizer {info['name']!r} does not carry its training photos' mean chroma "
            f"(a model.keras written before kerasae kept it inside, or a model built "
            f"without mean_chroma=), so the mean-chroma baseline of the colour photos "
            f"cannot be measured. {fix}; grey photos colorize without it. "
            f"Received: model={info['name']!r}")


def _colorize_image(colorizer, image, mean_chroma):
    """`(colorized, row, panels)` of one input image; alpha (if any) re-attached to the
    colorized image and the panels, the measures on its visible pixels (alpha > 0)."""
    picture, alpha = split_alpha(image)
    colour = picture.shape[-1] == 3
    grey = rgb_to_ycbcr(picture)[..., :1] if colour else picture
    rgb = colorize_one(colorizer, grey)
    row = {"grey_input": True}  # no original to measure against
    if colour:
        seen = np.ones(grey.shape[:2], bool) if alpha is None else alpha[..., 0] > 0
        seen = seen if seen.any() else ~seen  # an invisible image: measured all the same
        row = measure(rgb[seen][None], picture[seen][None], mean_chroma)
    if alpha is not None:
        row["alpha"] = True
    panels = [np.repeat(grey, 3, axis=-1), rgb] + ([picture] if colour else [])
    if alpha is not None:
        rgb = np.concatenate([rgb, alpha], axis=-1)
        panels = [np.concatenate([p, alpha], axis=-1) for p in panels]
    return rgb, row, panels


def colorize(images_or_folder, model=DEFAULT_MODEL, out=None, *, max_pixels=None):
    """Colorizes grey (or greyed colour) photos; measured where the original is colour.

    Each colour image is made grey (BT.601 luminance) first, so its colorization can
    be compared with the original; a grey image is colorized as it is. An image with
    transparency keeps it: it is colorized as it is stored (its colours under the
    alpha), its alpha re-attached to the colorized image and to every panel of its PNG,
    and it is measured on its visible pixels (alpha > 0) only.

    Args:
        images_or_folder: image files and folders (their images, below them too), or
            an array of one image `(h, w)` or `(h, w, c)` (c: 1 grey, 2 grey and
            alpha, 3 RGB, 4 RGBA) or a batch `(n, h, w, c)`, uint8 or floats in [0, 1].
        model: a colorizer preset name, a `.keras` file written by `train_colorizer`,
            or a colorizer `keras.Model`. Defaults to `"colorize_photos"`.
        out: folder for `<name>.png` (grey | colorized | original side by side; grey |
            colorized for a grey input; RGBA for an input with alpha) and
            `colorize.json`. Defaults to `None` (none).
        max_pixels: pixel budget per image file (see `kerasae.data.images`).

    Returns:
        A `Result`: `metrics["images"]` one row per image (PSNR, colourfulness and hue
        spread of the colorization, of the two baselines and of the original, for a
        colour input; `"alpha": true` for an input with alpha), `metrics["mean"]`
        their means, `metrics["alpha_images"]` how many had alpha;
        `arrays["colorized"]` the RGB images, RGBA for an input with alpha (a list, as
        their sizes may differ).

    Raises:
        ValueError: colour photos to measure, and a model that does not carry its
            training photos' mean chroma (an old `model.keras` without its `run.json`).

    Example:
        >>> r = kerasae.uses.colorize("photos/", out="runs/colour")  # doctest: +SKIP
    """
    inputs = read_inputs(images_or_folder, max_pixels)  # bad inputs fail before the model loads
    colorizer, mean_chroma, info = load_colorizer(model)
    _check_mean_known(mean_chroma, inputs, info)
    rows, colorized = [], []
    with Output(out) as output:
        for name, image in inputs:
            rgb, row, panels = _colorize_image(colorizer, image, mean_chroma)
            colorized.append(rgb)
            rows.append({"image": name, **row})
            if output.enabled:
                save_png(output.path(f"{name}.png"), np.concatenate(panels, axis=1))
        metrics = {"model": {**info, **_reading(colorizer)},
                   "mean_chroma": None if mean_chroma is None else
                   list(mean_chroma), "images": rows, "mean": _summary(rows),
                   "alpha_images": sum(bool(r.get("alpha")) for r in rows)}
        if output.enabled:
            output.json("colorize.json", metrics)
        files = output.commit()
    return Result("colorize", jsonable(metrics), {"colorized": colorized}, files, colorizer)
