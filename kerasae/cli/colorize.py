"""`kerasae colorize IMAGES...` and `kerasae colorize --train FOLDER`: colorization."""

import os

from kerasae.cli.errors import UsageError, max_pixels_option

DEFAULT_MODEL = "colorize_photos"  # kerasae.uses._colorize.DEFAULT_MODEL (light here)
# train_colorizer's (light here); chroma_gain / temperature None: chosen on held-out photos
TRAIN_DEFAULTS = {"steps": 2400, "batch_size": 16, "seed": 0, "chroma_gain": None, "bins": None,
                  "temperature": None, "undo_rebalance": None}


def add_parsers(subparsers):
    """Registers `kerasae colorize`."""
    p = subparsers.add_parser(
        "colorize", help="grey photos to colour; or train a colorizer on your photos",
        description="Colorize photos: each colour photo is made grey first and measured "
        "against its original (PSNR, colourfulness, hue spread) and two baselines (the grey "
        "image; the training photos' mean chroma); writes grey | colorized | original PNGs. "
        "With --train FOLDER, train a colorizer on the colour photos in FOLDER instead.")
    p.add_argument("images", nargs="*", metavar="IMAGES",
                   help="image files or folders (searched below too)")
    p.add_argument("--model", default=None,
                   help=f"a colorizer preset or a .keras file from --train "
                   f"(default: {DEFAULT_MODEL})")
    p.add_argument("--out", default=None,
                   help="output directory (default: runs/colorize; with --train required)")
    p.add_argument("--train", default=None, metavar="FOLDER",
                   help="train a colorizer on the colour photos in FOLDER, writing "
                   "OUT/model.keras and OUT/run.json")
    # None when not given, so that colorizing can refuse them (they would do nothing)
    p.add_argument("--steps", type=int, default=None,
                   help="with --train: optimizer steps, in 10 epochs (rounded down to a "
                   f"multiple of 10) (default: {TRAIN_DEFAULTS['steps']})")
    p.add_argument("--batch-size", type=int, default=None, help="with --train: crops per "
                   f"step (default: {TRAIN_DEFAULTS['batch_size']})")
    p.add_argument("--seed", type=int, default=None,
                   help=f"with --train (default: {TRAIN_DEFAULTS['seed']})")
    p.add_argument("--chroma-gain", type=float, default=None,
                   help="with --train: the saved model's factor on its chroma (default: "
                   "the best of 1.0-1.8 on a tenth of the photos held out of training; 1 "
                   "with --bins, where a given gain scales the chroma read)")
    p.add_argument("--bins", type=int, default=None,
                   help="with --train: chroma bins per axis, an odd number such as 17 (the "
                   "model predicts a distribution over bins x bins colours, read at "
                   "--temperature); 0 regresses the colour, as colorize_photos "
                   "(default: 0)")
    p.add_argument("--temperature", type=float, default=None,
                   help="with --train and bins: how the distribution is read, in (0, 1]: 1 "
                   "its mean (faded), lower toward its mode (bolder where the model favours "
                   "a colour, greyer where grey is its likeliest) (default: chosen with "
                   "--undo-rebalance on the held-out photos)")
    p.add_argument("--undo-rebalance", type=float, default=None, metavar="SHARE",
                   help="with --train and bins: the share, 0 to 1, of the training's boost "
                   "of rare colours taken back when reading (default: chosen with the "
                   "temperature, the most colourful reading within 0.2 dB of the best PSNR "
                   "on the held-out photos; 0 when --temperature is given)")
    max_pixels_option(p)
    p.set_defaults(func=_cli_colorize)


def _train(args):
    # lazy: training loads TensorFlow
    from kerasae.models.colorizer import check_reading
    from kerasae.uses._colortrain import train_colorizer

    if args.images:
        raise UsageError(f"--train FOLDER trains on that folder and takes no IMAGES. "
                         f"Received: {' '.join(args.images)}")
    if args.model is not None:
        raise UsageError(f"--train FOLDER trains a new colorizer and takes no --model; "
                         f"colorize with the model it writes afterwards (--model "
                         f"DIR/model.keras). Received: --model {args.model}")
    if args.out is None:
        raise UsageError("--train needs --out DIR, the folder for model.keras and run.json. "
                         f"Received: --train {args.train}")
    given = {k: getattr(args, k) for k in TRAIN_DEFAULTS if getattr(args, k) is not None}
    _check_train_flags(given)
    try:  # --bins 0 regresses, as bins=None
        given["bins"], _ = check_reading(given.get("bins"), given.get("temperature"))
    except ValueError as e:
        raise UsageError(str(e)) from None
    if given.get("undo_rebalance") is not None and given["bins"] is None:
        raise UsageError(f"--undo-rebalance reads a distribution over chroma bins: add --bins "
                         f"17 (or drop --undo-rebalance to regress the colour). Received: "
                         f"--undo-rebalance {given['undo_rebalance']:g} without --bins")
    r = train_colorizer(args.train, args.out, **{**TRAIN_DEFAULTS, **given},
                        max_pixels=args.max_pixels)
    for line in trained_lines(r.metrics):
        print(line)
    scores = r.metrics.get("gain_scores") or {}
    if r.metrics.get("bins") is None:
        print(f"chroma_gain {r.metrics['chroma_gain']:g} ({r.metrics['chroma_gain_from']}"
              + ("; mean PSNR " + ", ".join(f"{g}: {s:.2f} dB" for g, s in scores.items())
                 if scores else "") + ")")
    else:
        for line in _reading_lines(r.metrics):
            print(line)
    for path in r.files:
        print(f"wrote {path}")
    print(f"colorize with: kerasae colorize IMAGES --model "
          f"{os.path.join(args.out, 'model.keras')}")
    return 0


def _check_train_flags(given):
    """The numeric training flags, refused in the flags' own words (exit code 2)."""
    import math

    for flag, key in (("--steps", "steps"), ("--batch-size", "batch_size")):
        if given.get(key, 1) < 1:
            raise UsageError(f"{flag} is a count of at least 1. Received: {flag} {given[key]}")
    gain = given.get("chroma_gain", 1.0)
    if not (gain > 0 and math.isfinite(gain)):
        raise UsageError(f"--chroma-gain is a finite factor above 0 on the predicted colours. "
                         f"Received: --chroma-gain {gain}")
    undo = given.get("undo_rebalance", 0.0)
    if not 0 <= undo <= 1:
        raise UsageError(f"--undo-rebalance is a share from 0 (read as trained) to 1 (the "
                         f"training's boost of rare colours taken back). Received: "
                         f"--undo-rebalance {undo}")


def _reading_lines(m):
    """The chosen reading of a bins colorizer and, when chosen, its scores as a grid:
    rows the share undone, columns the temperature, cells mean PSNR / colourfulness (the
    chosen one starred), and the two baselines on the same photos."""
    lines = [f"reading: undo_rebalance {m['undo_rebalance']:g}, temperature "
             f"{m['temperature']:g} ({m['reading_from']})"]
    rows = m.get("reading_scores") or []
    if rows:
        temps = sorted({r["temperature"] for r in rows}, reverse=True)
        cell = {(r["undo_rebalance"], r["temperature"]): r for r in rows}
        base = m.get("reading_baselines") or {}
        lines.append(f"held-out photos, mean PSNR dB / colourfulness (originals "
                     f"{rows[0]['colourfulness_original']:.1f}; baselines: grey "
                     f"{base.get('psnr_grey', float('nan')):.2f} dB, mean chroma "
                     f"{base.get('psnr_mean_chroma', float('nan')):.2f} dB):")
        lines.append("undo \\ T".rjust(10) + "".join(f"{t:>15g} " for t in temps))
        chosen = (m["undo_rebalance"], m["temperature"])
        for u in sorted({r["undo_rebalance"] for r in rows}):
            lines.append(f"{u:>10g}" + "".join(
                f"{cell[u, t]['psnr']:>9.2f} /{cell[u, t]['colourfulness']:>5.1f}"
                + ("*" if (u, t) == chosen else " ") for t in temps).rstrip())
    return [line.rstrip() for line in lines]


def _cli_colorize(args):
    if args.train is not None:
        return _train(args)
    if not args.images:
        raise UsageError("Name the photos to colorize (files or folders), or --train FOLDER. "
                         "Received: no IMAGES")
    unused = [f"--{k.replace('_', '-')} {getattr(args, k)}" for k in TRAIN_DEFAULTS
              if getattr(args, k) is not None]
    if unused:
        raise UsageError(f"{', '.join(unused)} only applies with --train FOLDER (training); "
                         f"drop it to colorize, or add --train FOLDER --out DIR to train. "
                         f"Received: {' '.join(unused)}")
    # lazy: colorizing loads TensorFlow
    from kerasae.uses._colorize import colorize

    r = colorize(args.images, model=args.model or DEFAULT_MODEL,
                 out=args.out or os.path.join("runs", "colorize"), max_pixels=args.max_pixels)
    print("PSNR (dB) against the original of: the colorized image (PSNR), the grey image as "
          "RGB (grey), the training photos' mean chroma on the grey (meanC); colourfulness "
          "(Hasler & Suesstrunk) of the colorized image (M) and of the original (M orig); "
          "spread of the colorized image's hues in degrees (hue sd; near 0: one tint, sepia)")
    print(f"{'image':28s} {'PSNR':>6s} {'grey':>6s} {'meanC':>6s}  {'M':>5s} {'M orig':>6s} "
          f"{'hue sd':>6s}")
    for row in r.metrics["images"]:
        if "psnr" not in row:
            print(f"{row['image'][:28]:28s} (grey input: colorized, not measured)")
            continue
        print(f"{row['image'][:28]:28s} {row['psnr']:6.2f} {row['psnr_grey']:6.2f} "
              f"{row['psnr_mean_chroma']:6.2f}  {row['colourfulness']:5.1f} "
              f"{row['colourfulness_original']:6.1f} {row['hue_spread']:6.1f}")
    mean = r.metrics["mean"]
    if mean:
        n = mean["images"]
        print(f"mean over {n} colour photo{'s' if n != 1 else ''}: PSNR {mean['psnr']:.2f} dB "
              f"(grey {mean['psnr_grey']:.2f}, mean chroma {mean['psnr_mean_chroma']:.2f}); "
              f"beats both baselines on {mean['beats_both_baselines']} of {n}")
    folders = sorted({os.path.dirname(f) for f in r.files})
    alpha = r.metrics.get("alpha_images") or 0
    kept = (f" ({alpha} with transparency: colorized under it, alpha kept in the PNGs, "
            f"measured on the visible pixels)" if alpha else "")
    print(f"wrote {len(r.files)} files in {', '.join(folders)}{kept}")
    return 0


def trained_lines(m):
    """What `--train` says of its run.json `m`: grey photos, then the photos it trained on
    and those held out to choose the gain."""
    trained, loss = m.get("train_photos", m["photos"]), m["loss"]
    held = len(m.get("gain_photos") or ())
    chosen = "the gain" if m.get("bins") is None else "the reading"
    grey = m.get("grey_photos") or 0
    lines = [f"kerasae: {grey} of the {trained} training photos "
             f"{'is' if grey == 1 else 'are'} grey: they pull the "
             "colours towards grey; leave them out for a more colourful model"] if grey else []
    return lines + [f"trained on {trained} photos"
                    + (f", {held} held out to choose {chosen}" if held else "")
                    + f" in {m['seconds']:.0f} s: loss {loss[0]:.5f} (first tenth) -> "
                    f"{loss[-1]:.5f} (last tenth)"]
