"""The offline colour photos that train and measure the `colorize_photos` preset.

    python -m kerasae.benchmarks.colorphotos DIR   # DIR/{train,val,heldout}/*.png, sources.json

Sources, all offline (Debian packages and Python test data): scikit-image's and
scikit-learn's sample photos; the photographs among the wallpapers of `mate-backgrounds`,
`lomiri-wallpapers-16.04` / `-20.04` and `plasma-workspace-wallpapers` (picked by eye:
drawings and renders left out); the photographs inside `gcompris-qt-data`'s Qt resource
files (zlib streams and JPEG / PNG / WebP found by their magic bytes and decoded with
Pillow; paintings, drawings, cut-outs and exact duplicates left out). Each photo is
resized (Pillow, LANCZOS) so that its short side is 256 pixels and written as PNG.

The split is by photo: `HELDOUT` photos are never cropped for training nor counted in
the mean chroma, and only measure the card; `VAL` photos choose the preset's
`chroma_gain`; the rest (near-duplicates across gcompris activities included) train.
Licences: each package's `/usr/share/doc/<package>/copyright`, scikit-image's and
scikit-learn's data notes; the weights hold no photo.
"""

import argparse
import io
import json
import os
import re
import zlib

import numpy as np

SHORT_SIDE = 256
MATE = "/usr/share/backgrounds/mate/nature/"
LOMIRI = "/usr/share/backgrounds/"
PLASMA = "/usr/share/wallpapers/"
GCOMPRIS = "/usr/share/gcompris-qt/rcc/"

PHOTOS = {  # name: (source, what to load)
    "sk_astronaut": ("scikit-image", "astronaut"), "sk_chelsea": ("scikit-image", "chelsea"),
    "sk_coffee": ("scikit-image", "coffee"), "sk_rocket": ("scikit-image", "rocket"),
    "sk_hubble": ("scikit-image", "hubble_deep_field"),
    "sk_ihc": ("scikit-image", "immunohistochemistry"), "sk_retina": ("scikit-image", "retina"),
    "sk_motorcycle": ("scikit-image", "stereo_motorcycle"),
    "skl_china": ("scikit-learn", 0), "skl_flower": ("scikit-learn", 1),
}
for _n in ("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird",
           "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower"):
    PHOTOS["mate_" + _n] = ("mate-backgrounds", MATE + _n + ".jpg")
for _n in ("Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
           "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
           "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi",
           "greentock_by_Peter_Nerlich", "life_by_Aitzol_Berasategi",
           "picosdeeuropa_by_Aitzol_Berasategi", "seeding_by_Clements_Engelhardt",
           "sunset_by_Aitzol_Berasategi"):
    PHOTOS["lom16_" + _n.split("_by_")[0]] = ("lomiri-wallpapers-16.04", LOMIRI + _n + ".jpg")
PHOTOS["lom20_Kleiber"] = ("lomiri-wallpapers-20.04", LOMIRI + "Kleiber_by_Lukas_Baubkus.jpg")
for _n in ("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow",
           "FallenLeaf", "Grey", "OneStandsOut", "Path", "summer_1am"):
    PHOTOS["plasma_" + _n] = ("plasma-workspace-wallpapers", PLASMA + _n)

GCOMPRIS_ACTIVITIES = ("categorization", "clickgame", "details", "erase",
                       "explore_farm_animals", "explore_monuments", "explore_world_animals",
                       "explore_world_music", "louis-braille")
GCOMPRIS_SKIP = {"details_002", "details_004", "details_007", "details_008", "details_010",
                 "details_012", "details_015", "details_019",  # paintings
                 "louis-braille_002", "louis-braille_006",  # graphics
                 "categorization_050", "clickgame_005"}  # duplicates

# Measured only (the card's table); three are scikit-image's, which the tests read too.
HELDOUT = ("sk_chelsea", "sk_coffee", "sk_astronaut", "skl_flower", "mate_Garden",
           "mate_LadyBird", "lom16_aitzgorri", "lom16_Picture_0B", "plasma_EveningGlow",
           "plasma_Path")
# Chooses the preset's chroma_gain; never trained on.
VAL = ("mate_GreenMeadow", "lom16_picosdeeuropa", "plasma_FallenLeaf", "lom16_Dragonfly",
       "sk_rocket")


def _blobs(data):
    """Candidate image files inside a Qt resource file: zlib streams, then raw images."""
    for m in re.finditer(b"\x78[\x9c\xda\x01\x5e]", data):
        try:
            out = zlib.decompressobj().decompress(data[m.start():m.start() + 20_000_000])
        except zlib.error:
            continue
        if len(out) > 20000:
            yield out
    for m in re.finditer(rb"\xff\xd8\xff|RIFF....WEBP|\x89PNG", data, re.S):
        yield data[m.start():]


def gcompris_photos():
    """`{name: PIL image}` of the photographs in gcompris-qt-data (if installed)."""
    from PIL import Image

    out = {}
    for activity in GCOMPRIS_ACTIVITIES:
        path = os.path.join(GCOMPRIS, activity + ".rcc")
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        k, seen = 0, set()
        for blob in _blobs(data):
            try:
                im = Image.open(io.BytesIO(blob))
                im.load()
            except Exception:  # noqa: BLE001 - most candidates are not images
                continue
            if min(im.size) < 240 or im.mode not in ("RGB", "P", "RGBA"):
                continue
            if im.mode == "RGBA" and im.getchannel("A").getextrema()[0] < 250:
                continue  # a cut-out
            im = im.convert("RGB")
            key = (im.size, im.resize((8, 8)).tobytes())
            if key in seen:
                continue
            seen.add(key)
            name = f"{activity}_{k:03d}"
            k += 1
            if name not in GCOMPRIS_SKIP:
                out["gc_" + name] = im
    return out


def load(name):
    """One photo of `PHOTOS` as a PIL image (RGB, at its stored size)."""
    from PIL import Image

    source, what = PHOTOS[name]
    if source == "scikit-image":
        import skimage.data

        image = getattr(skimage.data, what)()
        image = image[0] if isinstance(image, tuple) else image
        return Image.fromarray(np.asarray(image)[..., :3])
    if source == "scikit-learn":
        from sklearn.datasets import load_sample_images

        return Image.fromarray(load_sample_images().images[what])
    if os.path.isdir(what):  # a Plasma wallpaper: its largest image
        folder = os.path.join(what, "contents", "images")
        files = [os.path.join(folder, f) for f in os.listdir(folder)]
        what = max(files, key=lambda f: np.prod(Image.open(f).size))
    return Image.open(what).convert("RGB")


def resize_short(im, short=SHORT_SIDE):
    """`im` resized (LANCZOS) so that its short side is `short`."""
    from PIL import Image

    w, h = im.size
    s = short / min(w, h)
    return im.convert("RGB").resize((max(short, round(w * s)), max(short, round(h * s))),
                                    Image.LANCZOS)


def part(name):
    return "heldout" if name in HELDOUT else "val" if name in VAL else "train"


def write_folders(dest):
    """Writes every photo to `dest/{train,val,heldout}/<name>.png` and `dest/sources.json`
    (`{name: [source, part]}`); returns that table."""
    photos = {name: load(name) for name in PHOTOS}
    photos.update(gcompris_photos())
    table = {}
    for name, im in sorted(photos.items()):
        folder = os.path.join(dest, part(name))
        os.makedirs(folder, exist_ok=True)
        resize_short(im).save(os.path.join(folder, name + ".png"))
        source = PHOTOS[name][0] if name in PHOTOS else "gcompris-qt-data"
        table[name] = [source, part(name)]
    with open(os.path.join(dest, "sources.json"), "w", encoding="utf-8") as f:
        json.dump(table, f, indent=1, sort_keys=True)
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", help="folder for train/, val/, heldout/ and sources.json")
    args = parser.parse_args(argv)
    table = write_folders(args.dest)
    counts = {p: sum(v[1] == p for v in table.values()) for p in ("train", "val", "heldout")}
    print(f"{len(table)} photos in {args.dest}: {counts}")


if __name__ == "__main__":
    main()
