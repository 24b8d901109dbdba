"""Peak memory of `kerasae train` as the data grows 10x, for each route, beside the raw size.

    python -m kerasae.benchmarks.data_memory [--sizes 5000,20000,50000] [--steps 5]
        [--routes folder,npy,npz] [--workdir DIR] [--json OUT]

Writes N synthetic 64x64x3 uint8 images (smooth random colour fields, so the
PNG files stay small) once per size as a folder of PNGs, a `.npy` file (read
memory-mapped) and a `.npz` file (read into memory), then runs `kerasae train
conv_ae --dataset ... --epochs 1 --steps-per-epoch STEPS --batch-size 64` in a
fresh subprocess for each and reads its peak RSS (`VmHWM`). The baseline is the
same command on 256 images (TensorFlow, the model and the traced steps: what
every run costs); "above baseline" is a run's peak minus that. Each run also
reports the peak just before the picture step, so the picture's own cost shows.
Targets (issue 12): the folder and `.npy` routes grow by at most 150 MiB from
the smallest size to the largest; no route exceeds 2x its raw size above the
baseline; the picture step adds nothing measurable.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

MIB = 1 << 20
SHAPE = (64, 64, 3)
RUN = r"""
import json, sys
from kerasae.cli import main
import kerasae.training.train as train

def peak():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM"))

before = {}
picture = train._picture

def measured(*args, **kwargs):
    before["bytes"] = peak()
    return picture(*args, **kwargs)

train._picture = measured
code = main(sys.argv[1:])
print(json.dumps({"code": code, "peak": peak(), "before_picture": before.get("bytes")}))
"""


def images(n, seed=0):
    """`n` smooth 64x64x3 uint8 images, made in chunks (cheap to write as PNG)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = np.empty((n,) + SHAPE, dtype="uint8")
    for i in range(n):
        small = rng.integers(0, 256, size=(4, 4, 3), dtype="uint8")
        out[i] = np.asarray(Image.fromarray(small).resize(SHAPE[:2], Image.BILINEAR))
    return out


def write_routes(x, folder, routes):
    from PIL import Image

    paths = {}
    os.makedirs(folder, exist_ok=True)
    if "folder" in routes:
        png = os.path.join(folder, "png")
        os.makedirs(png, exist_ok=True)
        for i, img in enumerate(x):
            Image.fromarray(img).save(os.path.join(png, f"{i:06d}.png"))
        paths["folder"] = png
    if "npy" in routes:
        paths["npy"] = os.path.join(folder, "x.npy")
        np.save(paths["npy"], x)
    if "npz" in routes:
        paths["npz"] = os.path.join(folder, "x.npz")
        np.savez(paths["npz"], x=x)
    return paths


def run_train(dataset, workdir, steps):
    args = ["train", "conv_ae", "--dataset", dataset, "--epochs", "1", "--steps-per-epoch",
            str(steps), "--batch-size", "64", "--verbose", "0", "--validation", "none",
            "--out", os.path.join(workdir, "run"), "--no-resume"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True,
                          env=env, timeout=3600)
    if proc.returncode:
        raise RuntimeError(f"kerasae train failed on {dataset}:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["code"]:
        raise RuntimeError(f"kerasae train exited {result['code']} on {dataset}")
    return result


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m kerasae.benchmarks.data_memory",
                                description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="5000,20000,50000")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--routes", default="folder,npy,npz")
    p.add_argument("--workdir", default=None, help="where the data is written (default: a "
                   "temporary folder, removed at the end)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    routes = [r for r in args.routes.split(",") if r]
    with tempfile.TemporaryDirectory(prefix="kerasae-mem-", dir=args.workdir) as work:
        base_paths = write_routes(images(256, seed=1), os.path.join(work, "base"), ["npz"])
        baseline = run_train(base_paths["npz"], work, args.steps)["peak"]
        rows = []
        for n in sizes:
            x = images(n)
            paths = write_routes(x, os.path.join(work, str(n)), routes)
            raw = x.nbytes
            del x
            for route in routes:
                r = run_train(paths[route], work, args.steps)
                rows.append({"route": route, "images": n, "raw_mib": raw / MIB,
                             "peak_mib": r["peak"] / MIB,
                             "above_baseline_mib": (r["peak"] - baseline) / MIB,
                             "picture_adds_mib": (r["peak"] - r["before_picture"]) / MIB})
    report = {"baseline_mib": baseline / MIB, "rows": rows, "targets": _targets(rows, sizes)}
    print(format_table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


def _targets(rows, sizes):
    out = []
    by = {(r["route"], r["images"]): r for r in rows}
    for route in ("folder", "npy"):
        if (route, sizes[0]) in by and (route, sizes[-1]) in by:
            growth = by[(route, sizes[-1])]["peak_mib"] - by[(route, sizes[0])]["peak_mib"]
            out.append({"claim": f"{route}: peak grows <= 150 MiB from {sizes[0]} to "
                                 f"{sizes[-1]} images", "measured": growth,
                        "met": growth <= 150})
    worst = max(rows, key=lambda r: r["above_baseline_mib"] / r["raw_mib"])
    ratio = worst["above_baseline_mib"] / worst["raw_mib"]
    out.append({"claim": "every route <= 2x its raw size above the baseline", "measured": ratio,
                "met": ratio <= 2.0})
    picture = max(r["picture_adds_mib"] for r in rows)
    out.append({"claim": "the picture step adds nothing measurable (< 5 MiB)",
                "measured": picture, "met": picture < 5})
    return out


def format_table(report):
    lines = [f"kerasae train conv_ae, 64x64x3 uint8 images, batch 64; baseline (256 images) "
             f"{report['baseline_mib']:.0f} MiB peak RSS", "",
             f"{'route':8s} {'images':>7s} {'raw MiB':>8s} {'peak MiB':>9s} "
             f"{'above base':>11s} {'x raw':>6s} {'picture adds':>13s}"]
    for r in report["rows"]:
        lines.append(f"{r['route']:8s} {r['images']:7d} {r['raw_mib']:8.1f} {r['peak_mib']:9.0f} "
                     f"{r['above_baseline_mib']:11.0f} {r['above_baseline_mib'] / r['raw_mib']:6.2f} "
                     f"{r['picture_adds_mib']:13.1f}")
    lines.append("")
    for t in report["targets"]:
        lines.append(f"{t['claim']}: {t['measured']:.2f}  {'met' if t['met'] else 'NOT met'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
