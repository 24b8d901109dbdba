"""The `colorize_photos` card: a colorizer measured on held-out photos against two baselines.

    python -m kerasae.benchmarks.colorphotos photos            # the photos, split by photo
    python -m kerasae.benchmarks.colorize photos [--model colorize_photos] [--json OUT]
    python -m kerasae.benchmarks.colorize photos --run RUN --publish --threads N  # maintainers

Measures a colorizer on `photos/heldout` (see `kerasae.benchmarks.colorphotos`) with
`kerasae.uses.colorize`: per photo, PSNR against the original, colourfulness (Hasler &
Suesstrunk 2003) and hue spread, for the colorization and for the two baselines (the
grey image as RGB; the grey image with the training photos' mean chroma).

`--publish` takes the `model.keras` and `run.json` that `kerasae colorize --train
photos/train --out RUN --temperature 0.38` wrote (a given temperature: every photo of
photos/train trains, none held out), chooses the temperature on `photos/val` (the one
whose mean colourfulness is nearest the originals', as `train_colorizer` does on its
held-out photos), measures the held-out photos and publishes
`zoo/colorize_photos/v<N>`: config, weights, metadata, card and `train.sh`. Version 1
regressed the chroma (`--bins 0 --chroma-gain 1`; `chroma_gain` chosen on `photos/val`,
the gain of best mean PSNR among `GAINS`).
"""

import argparse
import datetime
import json
import os

import keras

from kerasae import presets
from kerasae._util.files import sha256_file, staged_directory
from kerasae._util.versions import versions
from kerasae.benchmarks.colorphotos import PHOTOS, SHORT_SIDE
from kerasae.models.colorizer import Colorizer
from kerasae.presets.store import metadata_problem
from kerasae.uses import _colorbins, _colortrain
from kerasae.uses._colorize import colorize
from kerasae.zoo.publishing import (
    _check_new_version,
    _index_entry,
    _publish_root,
    folder_files,
    write_entry,
    write_json,
)

NAME = "colorize_photos"
GAINS = _colortrain.GAINS  # one list of candidates: the preset's and train_colorizer's
STEPS = 2800


def train_command(recipe):
    """The `kerasae colorize --train` command of a run's recipe (its run.json)."""
    how = "--bins 0 --chroma-gain 1" if recipe.get("bins") is None else \
        f"--bins {recipe['bins']} --temperature 0.38"
    return (f"kerasae colorize --train photos/train --out runs/{NAME} "
            f"--steps {recipe['steps']} {how}")


def _threads(recipe):
    n = recipe.get("threads", 1)  # version 1 trained on one thread and did not say so
    return f"{n} CPU thread" + ("s" if n != 1 else "")


def train_sh(recipe):
    n = recipe.get("threads", 1)
    return f"""#!/bin/bash
# The commands that trained and published this preset (run from any directory; {_threads(recipe)}).
set -e
export TF_NUM_INTRAOP_THREADS={n} TF_NUM_INTEROP_THREADS={n} OMP_NUM_THREADS={n}
python -m kerasae.benchmarks.colorphotos photos
{train_command(recipe)}
python -m kerasae.benchmarks.colorize photos --run runs/{NAME} --publish --threads {n}
"""
LICENCES = {  # source -> licences of its photos (the package's copyright file)
    "scikit-image": "CC0 / public domain (scikit-image's data README)",
    "scikit-learn": "CC BY 2.0 (scikit-learn's sample images)",
    "mate-backgrounds": "GPL-2+ (nature/*.jpg; CC-BY-SA-4.0 for some, see copyright)",
    "lomiri-wallpapers-16.04": "CC-BY-4.0, CC-BY-SA-4.0, CC0-1.0 (per file)",
    "lomiri-wallpapers-20.04": "CC-BY-SA-3.0 (Kleiber)",
    "plasma-workspace-wallpapers": "GPL-2+",
    "gcompris-qt-data": "CC-BY-SA, CC-BY, CC0, public domain, GPL-3+ (per file)",
}


def measure(model, photos, part="heldout"):
    """`colorize(photos/<part>)`'s result (nothing written)."""
    return colorize(os.path.join(photos, part), model=model)


def _on_val(model, mean_chroma, photos, **reading):
    """`colorize(photos/val)` of a twin of `model` that reads its chroma by `reading`."""
    twin = Colorizer(**{**model.builder_config, **reading})
    twin.set_weights(model.get_weights())
    twin.mean_chroma = mean_chroma
    return measure(twin, photos, "val").metrics


def choose_gain(model, mean_chroma, photos):
    """`(gain, {gain: mean PSNR on photos/val})`: the gain of best mean PSNR."""
    scores = {gain: _on_val(model, mean_chroma, photos, chroma_gain=gain)["mean"]["psnr"]
              for gain in GAINS}
    return max(scores, key=scores.get), scores


def choose_temperature(model, mean_chroma, photos):
    """`(temperature, {temperature: [PSNR, M, M original] on photos/val})`: the
    temperature whose mean colourfulness is nearest the originals' (`_colorbins`)."""
    scores = {}
    for t in _colorbins.TEMPERATURES:
        rows = [r for r in _on_val(model, mean_chroma, photos, temperature=t)["images"]
                if "psnr" in r]
        scores[t] = [sum(r[k] for r in rows) / len(rows) for k in
                     ("psnr", "colourfulness", "colourfulness_original")]
    return _colorbins.choose_temperature(scores), scores


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
        scores = "; ".join(f"{t}: {v[0]:.2f} dB / {v[1]:.1f}"
                           for t, v in r["temperature_scores"].items())
        original = next(iter(r["temperature_scores"].values()))[2]
        chosen = (f"The distribution is read as its annealed mean at temperature "
                  f"{meta['temperature']:g}, chosen on the validation photos as the one whose "
                  f"mean colourfulness is nearest the originals' ({original:.1f}); per "
                  f"temperature, mean PSNR / colourfulness: {scores}.")
    return f"""## Training procedure

Trained with (`train.sh`):

```bash
{r['command']}
```

{loss}; random crops of {r['crop']} pixels and horizontal flips of photos read at
{SHORT_SIDE} x [0.75, 1] on the short side; {r['steps']} AdamW steps of {r['batch_size']}
crops, learning rate {r['learning_rate']} cosine-decayed to 5%, seed {r['seed']};
{r['train_seconds']:.0f} s on {_threads(r)}. {chosen}"""


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
                f"(choosing the {'gain' if meta['recipe'].get('bins') is None else 'temperature'})"
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
from kerasae.models.colorizer import Colorizer
model = Colorizer(weights="{meta['name']}")  # or kerasae.zoo.load_model("{meta['name']}")
rgb = model.predict(grey[None, ..., None])[0]  # grey: (h, w) luminance in [0, 1]
```
"""


def _metadata(model, run, reading, result, sources, version, threads):
    mean = dict(result.metrics["mean"])
    examples = mean.pop("images")
    parts = [p for _, p in sources.values()]
    bins = run["recipe"].get("bins")
    what = "the chroma" if bins is None else f"a distribution over {bins} x {bins} colours"
    return {
        "name": NAME, "version": version, "builder": "colorizer",
        "description": (f"U-Net colorizer ({model.count_params():,} parameters): predicts "
                        f"{what} of a grey photo from its luminance; trained on "
                        f"{parts.count('train')} offline colour photos, measured on "
                        f"{examples} held out."),
        "license": "Apache-2.0",
        "published": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "parameters": int(model.count_params()), **reading["chosen"],
        "dataset": {"name": "kerasae.benchmarks.colorphotos", "kind": "photos",
                    "train_split": "train", "eval_split": "heldout",
                    "train_photos": parts.count("train"), "val_photos": parts.count("val"),
                    "mean_chroma": [round(v, 6) for v in run["mean_chroma"]]},
        "versions": dict(versions("keras", "numpy", "h5py", "tensorflow"),
                         backend=keras.backend.backend()),
        "recipe": {"command": train_command(run["recipe"]),
                   **{k: v for k, v in run["recipe"].items()
                      if k not in ("chroma_gain", "temperature")},
                   "train_seconds": run["seconds"], "threads": threads, "loss": run["loss"],
                   **reading["scores"]},
        "evaluation": {"command": f"kerasae colorize photos/heldout --model {NAME}",
                       "split": "heldout", "examples": examples, "metrics": mean,
                       "settings": {"short_side": SHORT_SIDE},
                       "photos": result.metrics["images"]},
    }


def publish(photos, run_dir, root=None, threads=1):
    """Publishes the colorizer trained in `run_dir` as `colorize_photos` (see the module
    docstring), trained on `threads` CPU threads (the card and `train.sh` say it); returns
    the preset folder."""
    with open(os.path.join(run_dir, "run.json"), encoding="utf-8") as f:
        run = json.load(f)
    with open(os.path.join(photos, "sources.json"), encoding="utf-8") as f:
        sources = json.load(f)
    trained = keras.saving.load_model(os.path.join(run_dir, "model.keras"), compile=False)
    arch = {"width": run["recipe"]["width"], "bins": run["recipe"].get("bins"),
            "global_context": run["recipe"].get("global_context", False)}
    base = Colorizer(**arch)
    base.set_weights(trained.get_weights())
    if arch["bins"] is None:
        gain, scores = choose_gain(base, run["mean_chroma"], photos)
        reading = {"chosen": {"chroma_gain": gain}, "scores": {"gain_scores": {
            f"{g:g}": round(s, 4) for g, s in scores.items()}}}
    else:
        t, scores = choose_temperature(base, run["mean_chroma"], photos)
        reading = {"chosen": {"temperature": t}, "scores": {"temperature_scores": {
            f"{k:g}": [round(v, 4) for v in row] for k, row in scores.items()}}}
    model = Colorizer(**arch, **reading["chosen"], mean_chroma=run["mean_chroma"])
    model.set_weights(trained.get_weights())
    model.mean_chroma = tuple(run["mean_chroma"])
    result = measure(model, photos)
    root = _publish_root(root)
    index = presets.read_index(root)
    entry = index["presets"].get(NAME)
    version = 1 if entry is None else max(presets.published_versions(entry)) + 1
    meta = _metadata(model, run, reading, result, sources, version, threads)
    problem = metadata_problem(meta)
    if problem:
        raise ValueError(f"metadata refused: {problem}")
    folder = _check_new_version(root, entry, NAME, meta["version"], "colorizer")
    with staged_directory(folder) as tmp:
        write_json(os.path.join(tmp, "config.json"),
                   {"builder": "colorizer", "kwargs": model.builder_config})
        path = os.path.join(tmp, presets.WEIGHTS_FILE)
        model.save_weights(path)
        write_json(os.path.join(tmp, "metadata.json"), meta)
        with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
            f.write(card(meta, sha256_file(path), os.path.getsize(path), sources))
        with open(os.path.join(tmp, "train.sh"), "w", encoding="utf-8") as f:
            f.write(train_sh(meta["recipe"]))
        files = folder_files(tmp)
    write_entry(root, index, NAME, _index_entry(meta, entry, files))
    return folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", help="the folder `kerasae.benchmarks.colorphotos` wrote")
    parser.add_argument("--model", default=NAME, help=f"preset or .keras file (default: {NAME})")
    parser.add_argument("--run", default=None, help="with --publish: the training run's folder")
    parser.add_argument("--publish", action="store_true")
    parser.add_argument("--json", default=None, metavar="OUT")
    parser.add_argument("--root", default=None, help="with --publish: the zoo root "
                        "(default: the source tree's zoo/)")
    parser.add_argument("--threads", type=int, default=1, help="with --publish: the CPU "
                        "threads the run trained on, for the card and train.sh (default: 1)")
    args = parser.parse_args(argv)
    if args.publish:
        print(publish(args.photos, args.run, root=args.root, threads=args.threads))
        return
    result = measure(args.model, args.photos)
    for row in result.metrics["images"]:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                          for k, v in row.items()}))
    print(json.dumps({k: round(v, 3) for k, v in result.metrics["mean"].items()}))
    if args.json:
        write_json(args.json, result.metrics)


if __name__ == "__main__":
    main()
