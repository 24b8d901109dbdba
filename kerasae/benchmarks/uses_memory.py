"""Peak memory and time of `kerasae reduce`, `features` and `anomaly` as the images grow 10x.

    python -m kerasae.benchmarks.uses_memory [--counts 1000,10000]
        [--uses reduce,features,anomaly] [--model FILE.keras] [--workdir DIR] [--json OUT]

Writes N 64x64 colour crops of five scikit-image photos (astronaut, coffee, chelsea,
rocket, immunohistochemistry; random positions, seed 0) as PNGs in five class folders
(one per photo, so `features` runs its linear probes and `anomaly` holds the last photo's
crops out of its detector's training: 3 epochs on the other 80%, every crop scored), once
per count; a `crops_N` folder already in `--workdir` is used as it is. The model is
`--model`, else an untrained `conv_ae` for 64x64x3 with filters (32, 64), a 16-number code
and a transposed-convolution decoder (the README's figures; memory and time do not depend
on its weights; `anomaly` trains a fresh copy of it). Each use runs as `kerasae USE
--model M --dataset DIR --out OUT` in a fresh process; its peak RSS is the process's `VmHWM`, its time the
wall clock. Targets (issue 23): at 1,000 images the uses peak below 1.5 GB, and at
10,000 within 200 MB of that.

scikit-image and Pillow are read here only (benchmark tools, not kerasae's dependencies).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

SIZE = 64
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
_RUN = """
import json, sys
from kerasae.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as f:
    peak = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM"))
print(json.dumps({"code": code, "peak": peak}))
"""


def write_crops(folder, n, seed=0):
    """`n` random 64x64 crops of the five photos, `folder/<photo>/<i>.png`."""
    from PIL import Image
    from skimage import data

    photos = [getattr(data, name)() for name in PHOTOS]
    rng = np.random.default_rng(seed)
    for name in PHOTOS:
        os.makedirs(os.path.join(folder, name), exist_ok=True)
    for i in range(n):
        k = i % len(PHOTOS)
        p = photos[k]
        top, left = rng.integers(0, p.shape[0] - SIZE), rng.integers(0, p.shape[1] - SIZE)
        Image.fromarray(p[top:top + SIZE, left:left + SIZE]).save(
            os.path.join(folder, PHOTOS[k], f"{i:05d}.png"))
    return folder


def default_model(path):
    from kerasae.models.families.conv import ConvAE  # lazy: TensorFlow only when building

    ConvAE(input_shape=(SIZE, SIZE, 3), filters=(32, 64), latent_dim=16,
           decoder="transpose").save(path)
    return path


def run_use(use, model, folder, out):
    """`{"code", "peak" (bytes), "seconds"}` of one `kerasae USE` in a fresh process."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, use, "--model", model, "--dataset", folder, "--out", out],
        capture_output=True, text=True)
    seconds = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if proc.returncode == 0 and lines else {"code": None}
    if result["code"] != 0:
        raise RuntimeError(f"kerasae {use} failed:\n{proc.stderr[-2000:]}")
    return dict(result, seconds=round(seconds, 1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="1000,10000")
    parser.add_argument("--uses", default="reduce,features,anomaly")
    parser.add_argument("--model", default=None)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    work = args.workdir or tempfile.mkdtemp(prefix="kerasae-uses-memory-")
    model = args.model or default_model(os.path.join(work, "conv_ae_64.keras"))
    rows = []
    for n in (int(c) for c in args.counts.split(",")):
        folder = os.path.join(work, f"crops_{n}")
        if not os.path.isdir(folder):
            write_crops(folder, n)
        for use in args.uses.split(","):
            r = run_use(use, model, folder, os.path.join(work, f"{use}_{n}"))
            rows.append({"use": use, "images": n, "peak_mib": round(r["peak"] / 2**20),
                         "seconds": r["seconds"],
                         "seconds_per_1000": round(r["seconds"] * 1000 / n, 1)})
            print(f"{use:9s} {n:6d} images: peak {rows[-1]['peak_mib']} MiB, "
                  f"{r['seconds']} s", flush=True)
    for use in args.uses.split(","):
        mine = [r for r in rows if r["use"] == use]
        if len(mine) > 1:
            print(f"{use}: peak grows {mine[-1]['peak_mib'] - mine[0]['peak_mib']:+d} MiB "
                  f"from {mine[0]['images']} to {mine[-1]['images']} images")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": model, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
