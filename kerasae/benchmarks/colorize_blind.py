"""A blind look at a colorizer's pictures: would a person call them colour, or a sepia tint?

    kerasae colorize photos/heldout --out runs/colour      # grey | colorized | original
    python -m kerasae.benchmarks.colorize_blind runs/colour --out blind --key key.json
    python -m kerasae.benchmarks.colorize_blind --score key.json labels.txt

The first call takes the colour photos of a `kerasae colorize` output folder (those
listed in its `colorize.json`) and writes, under shuffled names (`img00.png`, ...), each
photo's colorized panel beside controls whose answer is known: a sepia-toned copy of its
grey panel (every photo; the common sepia matrix applied to the grey, R, G, B = 1.351,
1.203, 0.937 times the luminance), its original (every other photo) and its grey panel
(every fourth). The key (which picture is which) goes to `--key`, outside the folder the
judges see. Judges label each picture by eye, without the key, one line each:
`img07: COLOUR ...`, `SEPIA` (one tint over a grey picture) or `GREY`. `--score` tallies
the labels per kind: a judge who calls the sepia controls sepia and the originals colour
can be believed on the colorized pictures.
"""

import argparse
import json
import os
import re

import numpy as np

SEPIA = np.array([1.351, 1.203, 0.937], "float32")  # rows of the sepia matrix, summed
LABELS = ("COLOUR", "SEPIA", "GREY")


def panels(png):
    """`(grey, colorized, original)` of a three-panel PNG that `colorize` wrote, as
    float32 RGB in [0, 1] (alpha dropped)."""
    from PIL import Image  # lazy: Pillow is needed only when the kit is written

    with Image.open(png) as im:
        rgb = np.asarray(im.convert("RGB"), "float32") / 255.0
    if rgb.shape[1] % 3:
        raise ValueError(f"{png}: {rgb.shape[1]} pixels wide is not three panels "
                         "(grey | colorized | original); give the folder `kerasae colorize` "
                         "wrote for colour photos")
    w = rgb.shape[1] // 3
    return rgb[:, :w], rgb[:, w:2 * w], rgb[:, 2 * w:]


def sepia(grey):
    """The sepia-toned copy of a grey panel (its first channel is the luminance)."""
    return np.clip(grey[..., :1] * SEPIA, 0.0, 1.0)


def pictures(folder):
    """`[(photo, kind, rgb)]`: the colorized panel and the controls of every colour photo
    listed in `folder/colorize.json`, in its order."""
    path = os.path.join(folder, "colorize.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: give a folder `kerasae colorize` wrote")
    with open(path, encoding="utf-8") as f:
        names = [row["image"] for row in json.load(f)["images"]]
    if not names:
        raise ValueError(f"{path} lists no colour photo: the kit needs originals to compare")
    out = []
    for i, name in enumerate(names):
        grey, colorized, original = panels(os.path.join(folder, name + ".png"))
        out += [(name, "colorized", colorized), (name, "sepia", sepia(grey))]
        if i % 2 == 0:
            out.append((name, "original", original))
        if i % 4 == 0:
            out.append((name, "grey", grey))
    return out


def write_kit(folder, out, key, seed=0):
    """Writes the shuffled pictures to `out` and their key to `key`; returns the key
    (`{file: [photo, kind]}`)."""
    from PIL import Image  # lazy: as in panels

    if os.path.abspath(os.path.dirname(os.path.abspath(key))) == os.path.abspath(out):
        raise ValueError("--key inside --out would show the judges the answers: put it "
                         "elsewhere")
    items = pictures(folder)
    order = np.random.default_rng(seed).permutation(len(items))
    os.makedirs(out, exist_ok=True)
    answers = {}
    for k, i in enumerate(order):
        name, kind, rgb = items[i]
        file = f"img{k:02d}.png"
        Image.fromarray(np.round(rgb * 255.0).astype("uint8")).save(os.path.join(out, file))
        answers[file] = [name, kind]
    with open(key, "w", encoding="utf-8") as f:
        json.dump(answers, f, indent=1)
    return answers


def read_labels(path):
    """`{file: label}` from lines such as `img07: COLOUR - blue sky` (`img07.png` too)."""
    labels = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*(img\d+)(?:\.png)?\s*:\s*([A-Za-z]+)", line)
            if m:
                label = m.group(2).upper()
                if label not in LABELS:
                    raise ValueError(f"{path}: {line.strip()!r}: the label must be one of "
                                     f"{', '.join(LABELS)}")
                labels[m.group(1) + ".png"] = label
    return labels


def score(answers, labels):
    """`{kind: {label: count}}` and the files the labels miss."""
    table, missing = {}, sorted(set(answers) - set(labels))
    for file, (_, kind) in answers.items():
        if file in labels:
            row = table.setdefault(kind, dict.fromkeys(LABELS, 0))
            row[labels[file]] += 1
    return table, missing


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", help="what `kerasae colorize` wrote")
    parser.add_argument("--out", help="the folder of shuffled pictures for the judges")
    parser.add_argument("--key", help="where the answers go (not inside --out)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score", nargs=2, metavar=("KEY", "LABELS"),
                        help="tally a judge's labels against the key")
    args = parser.parse_args(argv)
    if args.score:
        with open(args.score[0], encoding="utf-8") as f:
            answers = json.load(f)
        table, missing = score(answers, read_labels(args.score[1]))
        for kind in sorted(table):
            print(f"{kind:10s} " + "  ".join(f"{k} {v}" for k, v in table[kind].items()))
        if missing:
            print(f"not labelled: {', '.join(missing)}")
        return
    if not (args.folder and args.out and args.key):
        parser.error("give FOLDER --out DIR --key FILE, or --score KEY LABELS")
    print(f"{len(write_kit(args.folder, args.out, args.key, args.seed))} pictures in "
          f"{args.out}; the key in {args.key}")


if __name__ == "__main__":
    main()
