"""train_colorizer: a `Colorizer` trained on random crops and flips of one's colour photos.

The photos are read one at a time (each resized so that its short side is `short_side`
times a random factor in [0.75, 1]), several random crops with random horizontal flips
are cut from each, and `tf.data` streams the batches; nothing but one photo is held
at full size. By default (`bins=None`) the loss is the mean squared error of the chroma
(Cb, Cr of BT.601's YCbCr, in [-0.5, 0.5]) predicted from the luminance, and a gain on
it is chosen (below). With `bins` (e.g. 17) the model predicts a distribution over
chroma bins, trained by a rebalanced cross-entropy, and the reading of it (the share of
the rebalancing taken back, the temperature) is chosen on the held-out photos instead
(`kerasae.uses._colorbins`).

`chroma_gain` (a factor on the predicted chroma that undoes part of the fading of a
squared-error model) is chosen as the `colorize_photos` preset's was
(`kerasae.benchmarks.colorize.choose_gain`): about a tenth of the photos (at least 1, at
most 20, chosen by the seed) are held out of training, and the gain among `GAINS` of
best mean PSNR on them (read at `short_side`, as the preset's validation photos were)
is saved in the model. Below `MIN_PHOTOS_FOR_GAIN` photos, all of them train and the
gain stays 1.0 (`run.json` says so).
"""

import time

import numpy as np

from kerasae._util.errors import InvalidValue
from kerasae._util.versions import versions
from kerasae.data import images as _images
from kerasae.data.folders import expand_files
from kerasae.data.image_options import pixel_budget
from kerasae.models.colorizer import (Colorizer, check_chroma_gain, check_reading,
                                      chroma_model, logits_model, rgb_to_ycbcr, shift_logits,
                                      ycbcr_to_rgb)
from kerasae.uses import _colorbins
from kerasae.uses._colorize import RUN_FILE, baselines, psnr
from kerasae.uses.result import Output, Result, jsonable

CROPS_PER_PHOTO = 4  # crops cut from each photo read (fewer decodes per step)
MIN_SCALE = 0.75  # photos are read at short_side times a random factor in [MIN_SCALE, 1]
GAINS = (1.0, 1.2, 1.4, 1.6, 1.8)  # the preset's candidates (kerasae.benchmarks.colorize)
MIN_PHOTOS_FOR_GAIN = 5  # fewer: every photo trains, the gain stays 1.0
MAX_GAIN_PHOTOS = 20


def _resized(rgb, short):
    """uint8 `rgb` resized (Pillow, antialiased) so that its short side is `short`."""
    from PIL import Image

    h, w = rgb.shape[:2]
    s = short / min(h, w)
    size = (max(short, round(w * s)), max(short, round(h * s)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.LANCZOS))


def _read(path, short, max_pixels):
    rgb = _images.read(path, 3, None, "crop", max_pixels)
    return _resized(rgb, short)


def _is_grey(cbcr):
    """Whether chroma values are all within 2 of 255 levels of grey."""
    return bool(np.abs(cbcr).max() < 2 / 255)


def mean_chroma(files, short_side, max_pixels=None, bins=None):
    """The mean (Cb, Cr) over every pixel of the photos at `short_side` (the baseline's
    colour cast), the number of grey photos among them and, with `bins`, the pixels
    nearest each chroma bin (`_colorbins.bin_counts`; else `None`): one read per photo."""
    total, count, grey, max_pixels = np.zeros(2), 0, 0, pixel_budget(max_pixels)
    counts = None if bins is None else np.zeros(bins * bins, "int64")
    for path in files:
        rgb = _read(path, short_side, max_pixels)
        cbcr = rgb_to_ycbcr(rgb.astype("float32") / 255.0)[..., 1:].reshape(-1, 2)
        grey += int(_is_grey(cbcr))
        total += cbcr.sum(axis=0, dtype="float64")
        count += len(cbcr)
        if counts is not None:
            counts += _colorbins.bin_counts(cbcr, bins)
    return (total / count).tolist(), grey, counts


def batches(files, batch_size, crop, short_side, seed=0, max_pixels=None):
    """Endless `(luminance (b, crop, crop, 1), chroma (b, crop, crop, 2))` float32
    batches of random crops and flips of the photos (see the module docstring)."""
    rng = np.random.default_rng(seed)
    pending = []
    while True:
        x = np.empty((batch_size, crop, crop, 3), "float32")
        for i in range(batch_size):
            if not pending:
                path = files[rng.integers(len(files))]
                short = max(crop, round(short_side * rng.uniform(MIN_SCALE, 1.0)))
                rgb = _read(path, short, max_pixels)
                for _ in range(CROPS_PER_PHOTO):
                    top = rng.integers(rgb.shape[0] - crop + 1)
                    left = rng.integers(rgb.shape[1] - crop + 1)
                    c = rgb[top:top + crop, left:left + crop]
                    pending.append(c[:, ::-1] if rng.random() < 0.5 else c)
            x[i] = pending.pop() / 255.0
        ycc = rgb_to_ycbcr(x)
        yield ycc[..., :1], ycc[..., 1:]


def split_for_gain(files, seed=0):
    """`(training files, held-out files)`: about a tenth of `files` (at least 1, at
    most `MAX_GAIN_PHOTOS`) held out to choose the gain, none below
    `MIN_PHOTOS_FOR_GAIN` photos; the order of each part kept."""
    n = len(files)
    if n < MIN_PHOTOS_FOR_GAIN:
        return list(files), []
    held = set(np.random.default_rng(seed).permutation(n)[:min(MAX_GAIN_PHOTOS,
                                                                max(1, round(n / 10)))])
    return ([f for i, f in enumerate(files) if i not in held],
            [f for i, f in enumerate(files) if i in held])


def gain_scores(chroma_model, files, short_side, max_pixels=None):
    """`{gain: mean PSNR (dB) over files}` for each of `GAINS`: each photo read at
    `short_side`, made grey, its chroma predicted once by `chroma_model` (luminance ->
    Cb, Cr) and recombined at each gain (clipped to [0, 1], as `YCbCrToRGB` does). Grey
    photos are left out (they have no colour to score a gain by); `{}` if all are."""
    scores, max_pixels = {gain: [] for gain in GAINS}, pixel_budget(max_pixels)
    for path in files:
        rgb = _read(path, short_side, max_pixels).astype("float32") / 255.0
        ycc = rgb_to_ycbcr(rgb)
        if _is_grey(ycc[..., 1:]):
            continue
        y = ycc[..., :1]
        cbcr = np.asarray(chroma_model(y[None], training=False)[0], "float32")
        for gain in GAINS:
            out = np.clip(ycbcr_to_rgb(np.concatenate([y, gain * cbcr], axis=-1)), 0, 1)
            scores[gain].append(psnr(out, rgb))
    return {gain: float(np.mean(v)) for gain, v in scores.items() if v}


def _dataset(files, batch_size, crop, short_side, seed, max_pixels):
    import tensorflow as tf  # lazy: keeps TensorFlow out of `import kerasae.uses`

    spec = (tf.TensorSpec((batch_size, crop, crop, 1), tf.float32),
            tf.TensorSpec((batch_size, crop, crop, 2), tf.float32))
    return tf.data.Dataset.from_generator(
        lambda: batches(files, batch_size, crop, short_side, seed, max_pixels),
        output_signature=spec).prefetch(2)


def _check(steps, batch_size, crop, short_side):
    for name, value in (("steps", steps), ("batch_size", batch_size), ("crop", crop),
                        ("short_side", short_side)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidValue(f"{name} must be a positive integer. Received: {name}={value!r}")
    if crop % 16 or crop > short_side * MIN_SCALE:
        raise InvalidValue(
            f"crop must be a multiple of 16 and at most {MIN_SCALE} x short_side "
            f"({int(short_side * MIN_SCALE)}), so every crop fits a photo read at its "
            f"smallest scale. Received: crop={crop}, short_side={short_side}")


def _choose_gain(chroma_gain, model, held, short_side, max_pixels):
    """`(gain, {gain: mean PSNR}, why)`: `chroma_gain` if given, else the best of
    `GAINS` on the held-out photos, else 1.0."""
    if chroma_gain is not None:
        return float(chroma_gain), {}, "given"
    if not held:
        return 1.0, {}, (f"fewer than {MIN_PHOTOS_FOR_GAIN} photos: none held out to "
                         f"choose it")
    scores = gain_scores(chroma_model(model), [f for f, _ in held], short_side, max_pixels)
    if not scores:
        return 1.0, {}, f"the {len(held)} held-out photos are grey"
    return (max(scores, key=scores.get), scores,
            f"best mean PSNR on the colour photos of {len(held)} held out")


def _choose_reading(undo, temperature, model, held, short_side, max_pixels, bins, counts,
                    gain, chroma):
    """run.json's record of the reading (`reading_record`): a given temperature with the
    given share (else 0: as trained), else `_colorbins.choose_reading` among the readings
    left open on the held-out colour photos (with the two baselines' PSNR there), else
    share 0 (unless given) and Zhang et al.'s temperature 0.38."""
    if temperature is not None:
        return reading_record((0.0 if undo is None else undo, float(temperature)), {},
                              "given" if undo is not None else "temperature given; read as "
                              "trained, share 0")
    photos = [_read(f, short_side, max_pixels).astype("float32") / 255.0 for f, _ in held]
    photos = [p for p in photos if not _is_grey(rgb_to_ycbcr(p)[..., 1:])]
    if not photos:
        why = (f"fewer than {MIN_PHOTOS_FOR_GAIN} photos, none held out" if not held else
               f"the {len(held)} photos held out are grey")
        return reading_record((0.0 if undo is None else undo, 0.38), {},
                              f"{why}: " + ("as trained" if undo is None else "share given")
                              + ", at Zhang et al.'s 0.38")
    logits = logits_model(model)
    scores = _colorbins.reading_scores(
        lambda y: np.asarray(logits(y[None], training=False)[0]), photos, bins, counts, gain,
        undos=_colorbins.UNDOS if undo is None else (undo,),
        temperatures=_colorbins.TEMPERATURES if temperature is None else (float(temperature),))
    pairs = [(baselines(p, chroma), p) for p in photos]
    on_held = {"psnr_grey": float(np.mean([psnr(grey, p) for (grey, _), p in pairs])),
               "psnr_mean_chroma": float(np.mean([psnr(flat, p) for (_, flat), p in pairs]))}
    return dict(reading_record(_colorbins.choose_reading(scores), scores, (
        f"the most colourful within {_colorbins.TOLERANCE_DB:g} dB of the best mean PSNR on "
        f"the {len(photos)} colour photos held out")), reading_baselines=on_held)


def reading_rows(scores):
    """`_colorbins.reading_scores`' result as JSON rows, one per reading."""
    return [dict(zip(("undo_rebalance", "temperature", "psnr", "colourfulness",
                      "colourfulness_original"), k + v)) for k, v in scores.items()]


def reading_record(chosen, scores, why):
    """run.json's record of a bins colorizer's reading `(share, temperature)`."""
    return {"undo_rebalance": chosen[0], "temperature": chosen[1], "reading_from": why,
            "reading_scores": reading_rows(scores)}


def check_undo(value, bins):
    """`undo_rebalance` checked: `None`, or a share in [0, 1] given with bins."""
    if value is None:
        return None
    if bins is None:
        raise InvalidValue(f"undo_rebalance reads a distribution over chroma bins, and "
                           f"bins=None regresses the chroma (as --bins 0): drop one. "
                           f"Received: undo_rebalance={value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidValue(f"undo_rebalance is a share from 0 (the reading as trained) to 1 "
                           f"(the rebalancing's skew taken back). Received: "
                           f"undo_rebalance={value!r}")
    return float(value)


def _fit(model, files, counts, bins, steps, epochs, batch_size, crop, short_side,
         learning_rate, seed, verbose, max_pixels):
    """Trains `model` (the chroma, or the bins' logits, rebalanced by the training
    photos' bin `counts`) for `epochs` of `steps // epochs`; the fit's history."""
    import keras  # lazy: keeps TensorFlow out of `import kerasae.uses`

    if bins is None:
        train, loss = chroma_model(model), "mse"
    else:
        train = logits_model(model)
        loss = _colorbins.bin_loss(bins, _colorbins.rebalancing_weights(counts, bins))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.05)
    train.compile(keras.optimizers.AdamW(schedule), loss=loss)
    return train.fit(_dataset(files, batch_size, crop, short_side, seed, max_pixels),
                     steps_per_epoch=steps // epochs, epochs=epochs, verbose=verbose,
                     shuffle=False)


def train_colorizer(folder, out, *, steps=2400, batch_size=16, crop=96, short_side=256,
                    learning_rate=2e-3, width=8, global_context=False, chroma_gain=None,
                    bins=None, temperature=None, undo_rebalance=None, seed=0, verbose=2,
                    max_pixels=None):
    """Trains a `Colorizer` on random crops and flips of the colour photos in `folder`.

    Args:
        folder: a folder of colour photos (found below it too), or a list of files.
        out: folder for `model.keras` (the colorizer, for `colorize(model=...)`; it
            carries its `chroma_gain` and the training photos' mean chroma) and
            `run.json` (the recipe, the loss curve, the mean chroma, the gain's scores).
        steps: optimizer steps, run as 10 epochs (a tenth each: above 10 steps the
            count is rounded down to a multiple of 10, as `run.json`'s recipe says).
            Defaults to `2400` (about 8 minutes on one CPU thread by regression, about
            twice that over bins).
        batch_size: crops per step. Defaults to `16`.
        crop: crop size in pixels (a multiple of 16). Defaults to `96`.
        short_side: photos are read with their short side at this size (times a random
            factor in [0.75, 1]), the scale the model learns. Defaults to `256`.
        learning_rate: AdamW's initial rate, cosine-decayed to 5% of it. Defaults to
            `2e-3`.
        width, global_context: the `Colorizer`'s. Defaults to `8`, `False`.
        chroma_gain: the saved model's `chroma_gain` (training does not use it), or
            `None` to choose it among `GAINS` on photos held out of training (see the
            module docstring; 1.0 with `bins`). Defaults to `None`.
        bins: chroma bins per axis (odd, e.g. 17; `Colorizer`'s), or `None` (0) to
            regress the chroma. Defaults to `None` (measured: at the preset's budget
            bins gave stronger but two-family colours, orange and blue, and no better
            numbers; README's Colorization).
        temperature: with `bins`, the saved model's `AnnealedMean` temperature, or
            `None` to choose it among `_colorbins.TEMPERATURES` on photos held out of
            training. Defaults to `None`.
        undo_rebalance: with `bins`, the share (0 to 1) of the rebalancing's skew taken
            back in the saved model's logits (`_colorbins`), or `None` to choose it among
            `_colorbins.UNDOS` with the temperature (0 when the temperature is given).
            Defaults to `None`.
        seed: seed of the weights, the crops and the held-out photos. Defaults to `0`.
        verbose: Keras's `fit` verbosity. Defaults to `2` (a line per tenth).
        max_pixels: pixel budget per photo (see `kerasae.data.images`).

    Returns:
        A `Result`: `metrics["loss"]` the mean loss of each tenth of the steps,
        `metrics["mean_chroma"]`, `metrics["photos"]`, `metrics["chroma_gain"]`,
        `metrics["gain_scores"]` (mean PSNR per gain on `metrics["gain_photos"]`, the
        photos held out), `metrics["seconds"]`; with bins also `metrics["bins"]`,
        `metrics["undo_rebalance"]`, `metrics["temperature"]` and
        `metrics["reading_scores"]` (mean PSNR, colourfulness and the originals'
        colourfulness per reading on the held-out photos); `.model` the trained colorizer.
    """
    import keras  # lazy: keeps TensorFlow out of `import kerasae.uses`

    _check(steps, batch_size, crop, short_side)
    bins, temperature = check_reading(bins, temperature)
    if out is None:
        raise InvalidValue("train_colorizer needs out=, the folder for model.keras and "
                           "run.json. Received: out=None")
    found = list(expand_files(folder))
    undo_rebalance = check_undo(undo_rebalance, bins)
    if chroma_gain is not None:
        chroma_gain = check_chroma_gain(chroma_gain)
    choose = chroma_gain is None if bins is None else temperature is None
    train_files, held = split_for_gain(found, seed) if choose else (found, [])
    files = [f for f, _ in train_files]
    max_pixels = pixel_budget(max_pixels)
    chroma, grey, counts = mean_chroma(files, short_side, max_pixels, bins)
    if grey == len(files):
        raise InvalidValue(
            f"Every photo in {folder!r} is grey, so there is no colour to learn. Train on "
            f"colour photos. Received: folder={folder!r} ({len(files)} grey "
            f"image{'s' if len(files) != 1 else ''})")
    keras.utils.set_random_seed(seed)
    model = Colorizer(width=width, global_context=global_context, bins=bins)
    epochs = min(10, steps)
    if steps > 10 and steps % 10:
        print(f"kerasae: {steps} steps run as 10 epochs of {steps // 10}: "
              f"{steps // 10 * 10} steps")
    with Output(out) as output:
        start = time.perf_counter()
        history = _fit(model, files, counts, bins, steps, epochs, batch_size, crop, short_side,
                       learning_rate, seed, verbose, max_pixels)
        seconds = time.perf_counter() - start
        if bins is None:
            gain, scores, why = _choose_gain(chroma_gain, model, held, short_side, max_pixels)
            reading = {}
        else:
            gain, scores, why = float(chroma_gain or 1.0), {}, "given" if chroma_gain else \
                "1.0 with bins"
            reading = _choose_reading(undo_rebalance, temperature, model, held, short_side,
                                      max_pixels, bins, counts, gain, chroma)
        final = Colorizer(width=width, global_context=global_context, chroma_gain=gain,
                          mean_chroma=chroma, bins=bins, temperature=reading.get("temperature"))
        final.set_weights(model.get_weights())
        if reading.get("undo_rebalance"):
            shift_logits(final, _colorbins.logit_shift(counts, bins, reading["undo_rebalance"]))
        final.save(output.path("model.keras"))
        metrics = {"loss": [float(v) for v in history.history["loss"]],
                   "mean_chroma": chroma, "photos": len(found), "train_photos": len(files),
                   "grey_photos": grey, "chroma_gain": gain, "chroma_gain_from": why,
                   "gain_scores": {f"{g:g}": s for g, s in scores.items()},
                   "gain_photos": [name for _, name in held], "seconds": seconds,
                   "bins": bins, **reading,
                   "recipe": {"steps": steps // epochs * epochs, "batch_size": batch_size,
                              "crop": crop, "short_side": short_side,
                              "learning_rate": learning_rate, "width": width,
                              "global_context": global_context,
                              "chroma_gain": chroma_gain, "bins": bins,
                              "temperature": temperature,
                              "undo_rebalance": undo_rebalance, "seed": seed},
                   "versions": versions("keras", "numpy", "tensorflow")}
        output.json(RUN_FILE, metrics)
        files_written = output.commit()
    return Result("train_colorizer", jsonable(metrics), {}, files_written, final)
