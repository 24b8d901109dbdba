"""The `colorize_photos` model card's markdown (`kerasae.benchmarks.colorize` publishes it)."""

import json

from kerasae import presets
from kerasae.benchmarks.colorphotos import PHOTOS, SHORT_SIDE
from kerasae.uses import _colorbins

LICENCES = {  # source -> licences of its photos (the package's copyright file)
    "scikit-image": "CC0 / public domain (scikit-image's data README)",
    "scikit-learn": "CC BY 2.0 (scikit-learn's sample images)",
    "mate-backgrounds": "GPL-2+ (nature/*.jpg; CC-BY-SA-4.0 for some, see copyright)",
    "lomiri-wallpapers-16.04": "CC-BY-4.0, CC-BY-SA-4.0, CC0-1.0 (per file)",
    "lomiri-wallpapers-20.04": "CC-BY-SA-3.0 (Kleiber)",
    "plasma-workspace-wallpapers": "GPL-2+",
    "gcompris-qt-data": "CC-BY-SA, CC-BY, CC0, public domain, GPL-3+ (per file)",
}


def threads_text(recipe):
    n = recipe.get("threads", 1)  # version 1 trained on one thread and did not say so
    return f"{n} CPU thread" + ("s" if n != 1 else "")


def _rows_table(rows):
    head = ("| photo | source | PSNR | PSNR grey | PSNR mean chroma | M | M mean chroma | "
            "M original | hue spread | hue spread original |\n| --- | --- | " + "--- | " * 8)
    lines = [f"| {r['image']} | {PHOTOS.get(r['image'], ('?',))[0]} | {r['psnr']:.2f} | "
             f"{r['psnr_grey']:.2f} | {r['psnr_mean_chroma']:.2f} | {r['colourfulness']:.1f} | "
             f"{r['colourfulness_mean_chroma']:.1f} | {r['colourfulness_original']:.1f} | "
             f"{r['hue_spread']:.1f} | {r['hue_spread_original']:.1f} |" for r in rows]
    return head.rstrip() + "\n" + "\n".join(lines)


def _sources_table(sources):
    counts = {}
    for source, part in sources.values():
        counts.setdefault(source, {"train": 0, "val": 0, "heldout": 0})[part] += 1
    return "\n".join(f"| {s} | {c['train']} | {c['val']} | {c['heldout']} | "
                     f"{LICENCES.get(s, '-')} |" for s, c in sorted(counts.items()))


def _training_section(meta):
    r = meta["recipe"]
    if r.get("bins") is None:
        loss = "MSE on the chroma (Cb, Cr of BT.601 YCbCr) predicted from the luminance"
        chosen = (f"`chroma_gain` {meta['chroma_gain']:g} was then chosen on the validation "
                  f"photos (mean PSNR per gain: {json.dumps(r['gain_scores'])}).")
    else:
        b = r["bins"]
        loss = (f"a distribution over {b} x {b} bins of the chroma (Cb, Cr of BT.601 YCbCr, "
                f"steps of 1/{b - 1}) predicted from the luminance; loss: the cross-entropy "
                f"to each pixel's chroma soft-encoded over the bins, weighted by the rarity "
                f"of its bin in the training photos (class rebalancing with lambda 0.5, "
                f"Zhang, Isola & Efros 2016: `kerasae.uses._colorbins`)")
        chosen = _reading_text(meta, r)
    return f"""## Training procedure

Trained with (`train.sh`):

```bash
{r['command']}
```

{loss}; random crops of {r['crop']} pixels and horizontal flips of photos read at
{SHORT_SIDE} x [0.75, 1] on the short side; {r['steps']} AdamW steps of {r['batch_size']}
crops, learning rate {r['learning_rate']} cosine-decayed to 5%, seed {r['seed']};
{r['train_seconds']:.0f} s on {threads_text(r)}. {chosen}"""


def _reading_text(meta, r):
    """How a bins colorizer's distribution is read, and the validation scores behind it."""
    rows = r["reading_scores"]
    temps = sorted({row["temperature"] for row in rows}, reverse=True)
    cell = {(row["undo_rebalance"], row["temperature"]): row for row in rows}
    grid = "\n".join(f"| {u:g} | " + " | ".join(
        f"{cell[u, t]['psnr']:.2f} / {cell[u, t]['colourfulness']:.1f}" for t in temps) + " |"
        for u in sorted({row["undo_rebalance"] for row in rows}))
    return f"""Reading the distribution: the logits' bias carries a share
{meta['undo_rebalance']:g} of the rebalancing's skew taken back (`-share * log w`, w the
bins' loss weights: a model trained with them predicts about w times the photos' own
distribution), and the distribution is read as its annealed mean at temperature
{meta['temperature']:g}. Both were chosen on the validation photos: the most colourful
reading within {_colorbins.TOLERANCE_DB:g} dB of the best mean PSNR. Mean PSNR (dB) /
colourfulness on them (originals: {rows[0]['colourfulness_original']:.1f}):

| share taken back \\ temperature | {' | '.join(f'{t:g}' for t in temps)} |
| --- | {'--- | ' * len(temps)}
{grid}"""


def _limitations(meta):
    d = meta["dataset"]
    if meta["recipe"].get("bins") is None:
        how = ("colours are plausible but faded (colourfulness well below the originals'), "
               "and objects whose colour the luminance does not tell (a red flower, a "
               "painted wall) come out in the likely colours of their surroundings: greens, "
               "browns, sky blues. A squared-error model averages uncertain colours towards "
               "grey; `chroma_gain` undoes part of that.")
    else:
        ev = meta["evaluation"]["metrics"]
        how = (f"mean colourfulness {ev['colourfulness']:.1f} against the originals' "
               f"{ev['colourfulness_original']:.1f}, and not always the right colours: "
               "objects whose colour the luminance does not tell (a red flower, a painted "
               "wall, clothes) get a likely colour, which may be wrong, and a region may "
               "switch colour where the distribution has two modes.")
    minutes = round(meta["recipe"]["train_seconds"] / 60)
    plural = "s" if minutes != 1 else ""
    return f"""Trained on {d['train_photos']} photos for {minutes} minute{plural} on a CPU:
{how} Not for medical or scientific images, nor for telling what colour anything was."""


def card(meta, weights_sha, weights_bytes, sources):
    """The model card's markdown (`## Evaluation` holds the metrics `card_metrics` reads)."""
    ev, d = meta["evaluation"], meta["dataset"]
    metric_rows = "\n".join(f"| {k} | {v:.6g} |" for k, v in ev["metrics"].items())
    builder_row = ("`colorizer` (`kerasae.models.colorizer.Colorizer`), a U-Net on luminance, "
                   "not an autoencoder")
    data_row = (f"{d['train_photos']} offline colour photos (training), {d['val_photos']} "
                f"(choosing the {'gain' if meta['recipe'].get('bins') is None else 'reading'})"
                f", {ev['examples']} held out (this card)")
    return f"""# {meta['name']} (version {meta['version']})

{meta['description']}

| | |
| --- | --- |
| Builder | {builder_row} |
| Parameters | {meta['parameters']:,} |
| Weights | `{presets.WEIGHTS_FILE}`, {weights_bytes:,} bytes, sha256 `{weights_sha}` |
| Data | {data_row} |
| Licence | {meta['license']} (the weights); the photos keep theirs (below) |

## Intended use

Colorizing grey photographs of everyday scenes (nature, animals, buildings, objects) at
a few hundred pixels a side, on a CPU: `kerasae colorize photo.png` writes grey |
colorized | original. A small, honest baseline and a starting point for training on
one's own photos (`kerasae colorize --train FOLDER --out DIR`), not a state-of-the-art
colorizer.

## Data

The photos of `python -m kerasae.benchmarks.colorphotos` (offline: Python test data and
Debian wallpaper / education packages), each resized so that its short side is
{SHORT_SIDE} pixels, split by photo:

| source | train | val | held out | licences |
| --- | --- | --- | --- | --- |
{_sources_table(sources)}

Near-duplicates across gcompris activities only ever land in training. Licences are
each package's `/usr/share/doc/<package>/copyright`.

{_training_section(meta)}

## Evaluation

Measured by `{ev['command']}` on the {ev['examples']} held-out photos: means over the
photos; `beats_both_baselines` counts the photos whose PSNR is above both baselines'.
Baselines: the grey image as RGB (`psnr_grey`; its colourfulness is 0) and the grey
image with the training photos' mean chroma {d['mean_chroma']} (`*_mean_chroma`).

| metric | value |
| --- | --- |
{metric_rows}

## Held-out photos

{_rows_table(ev['photos'])}

## Limitations

{_limitations(meta)}

## Load

```python
from kerasae.data.folders import expand_files
from kerasae.models.colorizer import Colorizer, logits_model, shift_logits
model = Colorizer(weights="{meta['name']}")  # or kerasae.zoo.load_model("{meta['name']}")
rgb = model.predict(grey[None, ..., None])[0]  # grey: (h, w) luminance in [0, 1]
```
"""
