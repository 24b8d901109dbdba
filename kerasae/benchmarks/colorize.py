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
photos/train trains, none held out), chooses how to read its distribution on
`photos/val` (the share of the rebalancing taken back and the temperature: the most
colourful reading within 0.2 dB of the best mean PSNR, as `train_colorizer` does on its
held-out photos; `kerasae.uses._colorbins`), measures the held-out photos and publishes
`zoo/colorize_photos/v<N>`: config, weights, metadata, card and `train.sh`. Version 1
regressed the chroma (`--bins 0 --chroma-gain 1`; `chroma_gain` chosen on `photos/val`,
the gain of best mean PSNR among `GAINS`).
"""

import argparse
import datetime
import json
import os

import keras
import numpy as np

from kerasae import presets
from kerasae._util.files import sha256_file, staged_directory
from kerasae._util.versions import versions
from kerasae.benchmarks.colorize_card import card, threads_text
from kerasae.benchmarks.colorphotos import SHORT_SIDE
from kerasae.data.folders import expand_files
from kerasae.models.colorizer import Colorizer, logits_model, shift_logits
from kerasae.presets.store import metadata_problem
from kerasae.uses import _colorbins, _colortrain
from kerasae.uses._colorize import colorize, read_inputs
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


def train_sh(recipe):
    n, threads = recipe.get("threads", 1), threads_text(recipe)
    return f"""#!/bin/bash
# The commands that trained and published this preset (run from any directory; {threads}).
set -e
export TF_NUM_INTRAOP_THREADS={n} TF_NUM_INTEROP_THREADS={n} OMP_NUM_THREADS={n}
python -m kerasae.benchmarks.colorphotos photos
{train_command(recipe)}
python -m kerasae.benchmarks.colorize photos --run runs/{NAME} --publish --threads {n}
"""
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


def training_counts(photos, recipe):
    """The training photos' pixels per chroma bin, as `train_colorizer` counted them for
    its rebalancing (`photos/train` read at the recipe's short side)."""
    files = [f for f, _ in expand_files(os.path.join(photos, "train"))]
    return _colortrain.mean_chroma(files, recipe["short_side"], bins=recipe["bins"])[2]


def choose_reading(model, photos, counts):
    """`((undo, temperature), {(undo, temperature): (PSNR, M, M original)})` on
    photos/val: `_colorbins.choose_reading`, as `train_colorizer` chooses on its held-out
    photos."""
    logits = logits_model(model)
    val = [x for _, x in read_inputs(os.path.join(photos, "val")) if x.shape[-1] == 3]
    scores = _colorbins.reading_scores(
        lambda y: np.asarray(logits(y[None], training=False)[0]), val, model.builder_config[
            "bins"], counts)
    return _colorbins.choose_reading(scores), scores


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
                      if k not in ("chroma_gain", "temperature", "undo_rebalance")},
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
        counts = training_counts(photos, run["recipe"])
        chosen, scores = choose_reading(base, photos, counts)
        reading = {"chosen": {"temperature": chosen[1], "undo_rebalance": chosen[0]},
                   "scores": {"reading_scores": [{k: round(v, 4) for k, v in row.items()}
                                                 for row in _colortrain.reading_rows(scores)]}}
    model = Colorizer(**arch, temperature=reading["chosen"].get("temperature"),
                      chroma_gain=reading["chosen"].get("chroma_gain", 1.0),
                      mean_chroma=run["mean_chroma"])
    model.set_weights(trained.get_weights())
    if reading["chosen"].get("undo_rebalance"):
        shift_logits(model, _colorbins.logit_shift(counts, arch["bins"],
                                                   reading["chosen"]["undo_rebalance"]))
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
