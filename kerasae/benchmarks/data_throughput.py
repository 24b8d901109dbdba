"""Training speed from image folders beside in-memory arrays, side by side in one run.

    python -m kerasae.benchmarks.data_throughput [--images 4000] [--epochs 3] [--rounds 2]
        [--batch-size 128] [--json OUT]

Writes N synthetic 64x64x3 images (smooth colour fields with a little noise) as
a folder of PNGs and a folder of JPEGs, then trains the same conv AE (default
`conv_ae` on 64x64x3, same seed, one device, float32, verbose=0) with
`kerasae.fit` on each route:

- `memory`: the uint8 array (`kerasae.data.from_array`), the reference;
- `png`, `jpeg`: the folders, decoded in the tf.data pipeline every epoch;
- `png+cache`: the PNG folder through `cache=` (decoded once into a memory-mapped
  `.npy`, whose build time is reported), read like an array afterwards.

Each route's first epoch (tracing) is reported apart from the later epochs; the
routes alternate in rounds so machine load hits all alike. Also reported: each
route's pipeline alone (one epoch read without training), to set the data's own
speed beside what the trainer consumes. Targets (issue 12): `png` >= 0.8x and
`png+cache` >= 0.95x the `memory` images/s in later epochs.
"""

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np

from kerasae import data

SHAPE = (64, 64, 3)


def images(n, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = np.empty((n,) + SHAPE, dtype="uint8")
    for i in range(n):
        small = rng.integers(0, 256, size=(8, 8, 3), dtype="uint8")
        smooth = np.asarray(Image.fromarray(small).resize(SHAPE[:2], Image.BICUBIC), "int16")
        out[i] = np.clip(smooth + rng.integers(-8, 9, size=SHAPE), 0, 255)
    return out


def write_folder(x, folder, fmt):
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for i, img in enumerate(x):
        Image.fromarray(img).save(os.path.join(folder, f"{i:06d}.{fmt}"), quality=90)
    return folder


def pipeline_speed(src, batch_size):
    """Images/s of one epoch read through the training pipeline, without training."""
    start, n = time.perf_counter(), 0
    for batch in src.dataset(batch_size, seed=0, epoch=1, drop_remainder=True):
        n += int(batch.shape[0])
    return n / (time.perf_counter() - start)


def train_speed(src, args):
    """`[images/s of each epoch]` of kerasae.fit on `src` (the first traces)."""
    # lazy: the benchmark's --help stays light
    from kerasae.training.train import fit

    result = fit("conv_ae", src, epochs=args.epochs, batch_size=args.batch_size, seed=0,
                 validation=None, strategy="one", verbose=0, tensorboard=False,
                 builder_kwargs={"input_shape": SHAPE})
    return [row["images_per_second"] for row in result.history]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m kerasae.benchmarks.data_throughput",
                                description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workdir", default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    x = images(args.images)
    with tempfile.TemporaryDirectory(prefix="kerasae-speed-", dir=args.workdir) as work:
        png = write_folder(x, os.path.join(work, "png"), "png")
        jpeg = write_folder(x, os.path.join(work, "jpeg"), "jpeg")
        start = time.perf_counter()
        cached = data.get_source(png, cache=os.path.join(work, "cache"))
        build = time.perf_counter() - start
        routes = {"memory": data.from_array(x), "png": data.folder(png),
                  "jpeg": data.folder(jpeg), "png+cache": cached}
        first = {k: [] for k in routes}
        later = {k: [] for k in routes}
        for _ in range(args.rounds):  # alternate, so machine load hits all alike
            for name, src in routes.items():
                speeds = train_speed(src, args)
                first[name].append(speeds[0])
                later[name] += speeds[1:]
        alone = {name: pipeline_speed(src, args.batch_size) for name, src in routes.items()}
    report = {"images": args.images, "shape": list(SHAPE), "batch_size": args.batch_size,
              "cache_build_images_per_s": args.images / build,
              "first_epoch": {k: statistics.median(v) for k, v in first.items()},
              "later_epochs": {k: statistics.median(v) for k, v in later.items()},
              "later_epochs_all": later, "pipeline_alone": alone}
    base = report["later_epochs"]["memory"]
    report["ratio_to_memory"] = {k: v / base for k, v in report["later_epochs"].items()}
    report["targets"] = [
        {"claim": "png folder >= 0.8x memory", "measured": report["ratio_to_memory"]["png"],
         "met": report["ratio_to_memory"]["png"] >= 0.8},
        {"claim": "png folder with cache >= 0.95x memory",
         "measured": report["ratio_to_memory"]["png+cache"],
         "met": report["ratio_to_memory"]["png+cache"] >= 0.95},
    ]
    print(format_table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


def format_table(r):
    lines = [f"kerasae.fit conv_ae on {r['images']} images of {tuple(r['shape'])}, batch "
             f"{r['batch_size']}, one device; median images/s", "",
             f"{'route':10s} {'first epoch':>12s} {'later epochs':>13s} {'x memory':>9s} "
             f"{'pipeline alone':>15s}"]
    for k in r["later_epochs"]:
        lines.append(f"{k:10s} {r['first_epoch'][k]:12.0f} {r['later_epochs'][k]:13.0f} "
                     f"{r['ratio_to_memory'][k]:9.2f} {r['pipeline_alone'][k]:15.0f}")
    lines += ["", f"cache build (decode + write, once): {r['cache_build_images_per_s']:.0f} "
              "images/s"]
    for t in r["targets"]:
        lines.append(f"{t['claim']}: {t['measured']:.2f}  {'met' if t['met'] else 'NOT met'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
