"""A blind look at a colorizer's pictures: would a person call them colour, or a sepia tint?

    kerasae colorize photos/heldout --out runs/colour      # grey | colorized | original
    python -m kerasae.benchmarks.colorize_blind runs/colour --out blind --key key.json
    python -m kerasae.benchmarks.colorize_blind --score key.json labels.txt

The first call takes the colour photos of a `kerasae colorize` output folder (those
its `colorize.json` measured; grey inputs have no original and are skipped) and writes,
under shuffled names (`img00.png`, ...), each photo's colorized panel beside controls
whose answer is known: a sepia copy of its grey panel (every photo: the same luminance
under one sepia chroma: Cb -0.079, Cr 0.048 of BT.601 YCbCr, the
chroma the common sepia matrix gives mid-grey), its original (every
other photo) and its grey panel (every fourth). The same scene may come up more than once,
so a judge labels versions of one photo that differ only in colour. Transparent pixels
are shown mid-grey in every picture. The key (which picture is which) goes to `--key`,
outside the new folder the judges see. Judges label each picture by eye, without the key,
one line each: `img07: COLOUR ...`, `SEPIA` (one tint over a grey picture) or `GREY`
(`COLOR` and `GRAY` too). `--score` tallies the labels per kind and names the photos
whose colorized picture was not called colour: a judge who calls the sepia controls
sepia and the originals colour can be believed on the colorized pictures.
"""

import argparse
import json
import os
import re
import sys

import numpy as np

from kerasae._util.files import atomic_write, staged_directory
from kerasae.uses._colorize import mean_chroma_baseline

SEPIA_CHROMA = (-0.079, 0.048)  # (Cb, Cr): the sepia matrix's tone of mid-grey, in BT.601
LABELS = ("COLOUR", "SEPIA", "GREY")
ALIASES = {"COLOR": "COLOUR", "GRAY": "GREY"}
LINE = re.compile(r"\s*(img\d+)(?:\.png)?\s*:\s*([A-Za-z]+)")


def panels(png):
    """`(grey, colorized, original)` of a three-panel PNG that `colorize` wrote, as
    float32 RGB in [0, 1], transparent pixels shown mid-grey."""
    from PIL import Image  # lazy: Pillow is needed only when the kit is written

    with Image.open(png) as im:
        rgba = np.asarray(im.convert("RGBA"), "float32") / 255.0
    alpha = rgba[..., 3:]
    rgb = rgba[..., :3] * alpha + 0.5 * (1.0 - alpha)
    if rgb.shape[1] % 3:
        raise ValueError(f"{png}: {rgb.shape[1]} pixels wide is not three panels (grey | "
                         "colorized | original), yet colorize.json measured it: was the "
                         "PNG replaced? Colorize the photos again into a new folder")
    w = rgb.shape[1] // 3
    return rgb[:, :w], rgb[:, w:2 * w], rgb[:, 2 * w:]


def sepia(grey):
    """The sepia copy of a grey panel: its luminance (first channel) under one chroma."""
    return mean_chroma_baseline(grey[..., :1], SEPIA_CHROMA)


def pictures(folder):
    """`[(photo, kind, rgb)]`: the colorized panel and the controls of every colour photo
    that `folder/colorize.json` measured, in its order."""
    path = os.path.join(folder, "colorize.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: give a folder `kerasae colorize` wrote")
    with open(path, encoding="utf-8") as f:
        names = [row["image"] for row in json.load(f)["images"] if "psnr" in row]
    if not names:
        raise ValueError(f"{path} measured no colour photo (a grey input has no original to "
                         "compare with): colorize colour photos for the kit")
    out = []
    for i, name in enumerate(names):
        grey, colorized, original = panels(os.path.join(folder, name + ".png"))
        out += [(name, "colorized", colorized), (name, "sepia", sepia(grey))]
        if i % 2 == 0:
            out.append((name, "original", original))
        if i % 4 == 0:
            out.append((name, "grey", grey))
    return out


def _check_places(out, key):
    out, key = os.path.realpath(out), os.path.realpath(key)
    if os.path.commonpath([out, key]) == out:
        raise ValueError(f"--key {key} is inside --out {out}: the judges would see the "
                         "answers. Put the key elsewhere")
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise ValueError(f"--out {out} already exists and is not an empty folder: give a new "
                         "folder, so that no picture of an earlier kit is judged")
    if os.path.exists(key):
        raise ValueError(f"--key {key} already exists (the key of an earlier kit?): remove it "
                         "or give another path")
    if not os.path.isdir(os.path.dirname(key)):
        raise ValueError(f"--key {key}: its folder does not exist; create it first")


def write_kit(folder, out, key, seed=0):
    """Writes the shuffled pictures to the new folder `out` and their key to `key` (all or
    nothing); returns the key (`{file: [photo, kind]}`)."""
    from PIL import Image  # lazy: as in panels

    _check_places(out, key)
    items = pictures(folder)
    order = np.random.default_rng(seed).permutation(len(items))
    answers, keyed = {}, False
    try:
        with staged_directory(out) as tmp:
            for k, i in enumerate(order):
                name, kind, rgb = items[i]
                file = f"img{k:02d}.png"
                Image.fromarray(np.round(rgb * 255.0).astype("uint8")).save(
                    os.path.join(tmp, file))
                answers[file] = [name, kind]
            atomic_write(key, json.dumps(answers, indent=1))
            keyed = True
    except BaseException:
        if keyed:  # the pictures were not installed: no key without its kit
            os.remove(key)
        raise
    return answers


def read_labels(path):
    """`{file: label}` from lines such as `img07: COLOUR - blue sky` (`img07.png` too);
    other lines that name a picture, an unknown label or a picture twice are refused."""
    labels, problems = {}, []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = LINE.match(line)
            if not m:
                if line.lstrip().lower().startswith("img"):
                    problems.append(f"line {n} {line.strip()!r}: not `imgNN: LABEL`")
                continue
            file, label = m.group(1) + ".png", m.group(2).upper()
            label = ALIASES.get(label, label)
            if label not in LABELS:
                problems.append(f"line {n} {line.strip()!r}: the label must be one of "
                                f"{', '.join(LABELS)}")
            elif file in labels:
                problems.append(f"line {n}: {file} labelled a second time")
            else:
                labels[file] = label
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return labels


def score(answers, labels):
    """`({kind: {label: count}}, files not labelled, {photo: label} of the colorized
    pictures)`; labels of pictures the key does not hold are refused (another kit's?)."""
    unknown = sorted(set(labels) - set(answers))
    if unknown:
        raise ValueError(f"labels for pictures the key does not hold: {', '.join(unknown)} "
                         "(the labels of another kit?)")
    table, colorized = {}, {}
    for file, (photo, kind) in answers.items():
        if file in labels:
            table.setdefault(kind, dict.fromkeys(LABELS, 0))[labels[file]] += 1
            if kind == "colorized":
                colorized[photo] = labels[file]
    return table, sorted(set(answers) - set(labels)), colorized


def _score(key, labels_path):
    with open(key, encoding="utf-8") as f:
        try:
            answers = json.load(f)
        except json.JSONDecodeError:
            raise ValueError(f"{key} is not a key (JSON) that this kit wrote: "
                             "--score KEY LABELS, the key first") from None
    table, missing, colorized = score(answers, read_labels(labels_path))
    for kind in sorted(table):
        print(f"{kind:10s} " + "  ".join(f"{k} {v}" for k, v in table[kind].items()))
    not_colour = {p: v for p, v in colorized.items() if v != "COLOUR"}
    print(f"colorized pictures called colour: {len(colorized) - len(not_colour)} of "
          f"{len(colorized)}" + "".join(f"; {p}: {v}" for p, v in sorted(not_colour.items())))
    if missing:
        print(f"not labelled: {', '.join(missing)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", help="what `kerasae colorize` wrote")
    parser.add_argument("--out", help="a new folder for the shuffled pictures")
    parser.add_argument("--key", help="where the answers go (outside --out)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score", nargs=2, metavar=("KEY", "LABELS"),
                        help="tally a judge's labels against the key")
    args = parser.parse_args(argv)
    if args.score and (args.folder or args.out or args.key):
        parser.error("--score tallies a kit already written: give it alone")
    if not args.score and not (args.folder and args.out and args.key):
        parser.error("give FOLDER --out DIR --key FILE, or --score KEY LABELS")
    try:
        if args.score:
            _score(*args.score)
        else:
            print(f"{len(write_kit(args.folder, args.out, args.key, args.seed))} pictures in "
                  f"{args.out}; the key in {args.key}")
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
