"""Peak memory of `kerasae train` as the data grows 10x, for each route, beside the raw size.

    python -m kerasae.benchmarks.data_memory [--sizes 5000,20000,50000] [--steps 5]
        [--routes folder,npy,npz[,csv,series]] [--rows 20000,200000,2000000]
        [--columns 32] [--window 48] [--workdir DIR] [--json OUT]

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

Two routes of records (issue 21), behind `--routes`: `csv`, a table of `--rows` rows
(growing 10x) of `--columns` float columns of different ranges with a header, trained
with `kerasae train stacked_ae --dataset FILE.csv`; `series`, a `.csv` of `--rows` steps
of `timestamp,value`, trained with `kerasae train conv1d_ae --window 48`. Their
baselines are the same commands on 256 rows (a series of 256 + window steps); their
"raw" size is the file's. Target: the `csv` route's peak grows by at most 150 MiB
from the fewest rows to the most (flat, as for image folders). A series is held in
memory by design (`kerasae.data.series`): its growth per step is reported, not judged.
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
IMAGE_ROUTES = ("folder", "npy", "npz")
RECORD_ROUTES = ("csv", "series")
BUILDERS = {"csv": "stacked_ae", "series": "conv1d_ae"}
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


def write_table(path, n, columns=32, seed=0):
    """A `.csv` table of `n` rows of `columns` float columns (header `c0,c1,...`), each
    column of its own range (scales 1e-3 to 1e3, offsets 0 to columns - 1); written in
    chunks, so writing takes no memory in `n`. Returns the file's size in bytes."""
    rng = np.random.default_rng(seed)
    scale = 10.0 ** (np.arange(columns) % 7 - 3)
    with open(path, "w") as f:
        f.write(",".join(f"c{j}" for j in range(columns)) + "\n")
        for start in range(0, n, 65536):
            x = rng.standard_normal((min(65536, n - start), columns)) * scale
            np.savetxt(f, x + np.arange(columns), fmt="%.4g", delimiter=",")
    return os.path.getsize(path)


def write_series(path, n, seed=0):
    """A `.csv` series of `n` steps, `timestamp,value` (one step a minute from
    2014-07-01; a daily cycle plus noise). Returns the file's size in bytes."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2014-07-01T00:00:00")
    with open(path, "w") as f:
        f.write("timestamp,value\n")
        for lo in range(0, n, 65536):
            steps = np.arange(lo, min(lo + 65536, n))
            stamps = np.datetime_as_string(start + steps.astype("timedelta64[m]"))
            values = 100 + 50 * np.sin(2 * np.pi * steps / 1440) + rng.normal(0, 5, len(steps))
            f.write("".join(f"{t.replace('T', ' ')},{v:.3f}\n"
                            for t, v in zip(stamps.tolist(), values.tolist())))
    return os.path.getsize(path)


def write_records(route, n, folder, columns=32):
    """`(path, bytes)` of the `.csv` file of a records route (`csv` or `series`)."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{route}.csv")
    if route == "csv":
        return path, write_table(path, n, columns)
    return path, write_series(path, n)


def record_args(route, window):
    """The `kerasae train` builder and options of a records route."""
    return BUILDERS[route], (["--window", str(window)] if route == "series" else [])


def run_train(dataset, workdir, steps, builder="conv_ae", extra=()):
    args = ["train", builder, "--dataset", dataset, "--epochs", "1", "--steps-per-epoch",
            str(steps), "--batch-size", "64", "--verbose", "0", "--validation", "none",
            "--out", os.path.join(workdir, "run"), "--no-resume", *extra]
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
    p.add_argument("--routes", default="folder,npy,npz",
                   help="of folder, npy, npz (images: --sizes) and csv, series (records: "
                   "--rows)")
    p.add_argument("--rows", default="20000,200000,2000000",
                   help="rows of the csv route, steps of the series route")
    p.add_argument("--columns", type=int, default=32, help="float columns of the csv route")
    p.add_argument("--window", type=int, default=48, help="window of the series route")
    p.add_argument("--workdir", default=None, help="where the data is written (default: a "
                   "temporary folder, removed at the end)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    routes = [r for r in args.routes.split(",") if r]
    unknown = [r for r in routes if r not in IMAGE_ROUTES + RECORD_ROUTES]
    if unknown:
        p.error(f"unknown route {unknown[0]!r}: the routes are "
                f"{', '.join(IMAGE_ROUTES + RECORD_ROUTES)}")
    image_routes = [r for r in routes if r in IMAGE_ROUTES]
    record_routes = [r for r in routes if r in RECORD_ROUTES]
    counts = [int(s) for s in args.rows.split(",")]
    baseline, baselines, rows = None, {}, []
    with tempfile.TemporaryDirectory(prefix="kerasae-mem-", dir=args.workdir) as work:
        if image_routes:
            base_paths = write_routes(images(256, seed=1), os.path.join(work, "base"), ["npz"])
            baseline = run_train(base_paths["npz"], work, args.steps)["peak"]
            baselines["conv_ae"] = baseline / MIB
        for n in sizes if image_routes else []:
            x = images(n)
            paths = write_routes(x, os.path.join(work, str(n)), image_routes)
            raw = x.nbytes
            del x
            for route in image_routes:
                r = run_train(paths[route], work, args.steps)
                rows.append({"route": route, "images": n, "n": n, "raw_mib": raw / MIB,
                             "peak_mib": r["peak"] / MIB,
                             "above_baseline_mib": (r["peak"] - baseline) / MIB,
                             "picture_adds_mib": (r["peak"] - r["before_picture"]) / MIB})
        for route in record_routes:
            builder, extra = record_args(route, args.window)
            small = 256 + (args.window - 1 if route == "series" else 0)
            path, _ = write_records(route, small, os.path.join(work, f"base-{route}"),
                                    args.columns)
            base = run_train(path, work, args.steps, builder, extra)["peak"]
            baselines[builder] = base / MIB
            for n in counts:
                path, size = write_records(route, n, os.path.join(work, f"{route}-{n}"),
                                           args.columns)
                r = run_train(path, work, args.steps, builder, extra)
                os.remove(path)
                rows.append({"route": route, "rows": n, "n": n, "raw_mib": size / MIB,
                             "builder": builder, "peak_mib": r["peak"] / MIB,
                             "above_baseline_mib": (r["peak"] - base) / MIB,
                             "picture_adds_mib": (r["peak"] - r["before_picture"]) / MIB})
    report = {"baseline_mib": None if baseline is None else baseline / MIB,
              "baselines_mib": baselines, "rows": rows,
              "targets": _targets(rows, sizes, counts)}
    print(format_table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


def _targets(rows, sizes, counts=None):
    out = []
    by = {(r["route"], r["n"]): r for r in rows}
    for route in ("folder", "npy"):
        if (route, sizes[0]) in by and (route, sizes[-1]) in by:
            growth = by[(route, sizes[-1])]["peak_mib"] - by[(route, sizes[0])]["peak_mib"]
            out.append({"claim": f"{route}: peak grows <= 150 MiB from {sizes[0]} to "
                                 f"{sizes[-1]} images", "measured": growth,
                        "met": growth <= 150})
    image_rows = [r for r in rows if r["route"] in IMAGE_ROUTES]
    if image_rows:
        worst = max(image_rows, key=lambda r: r["above_baseline_mib"] / r["raw_mib"])
        ratio = worst["above_baseline_mib"] / worst["raw_mib"]
        out.append({"claim": "every route <= 2x its raw size above the baseline",
                    "measured": ratio, "met": ratio <= 2.0})
    for route, unit in (("csv", "row"), ("series", "step")):
        if counts and (route, counts[0]) in by and (route, counts[-1]) in by:
            lo, hi = by[(route, counts[0])], by[(route, counts[-1])]
            growth = hi["peak_mib"] - lo["peak_mib"]
            per = growth * MIB / max(counts[-1] - counts[0], 1)
            out.append({"claim": f"{route}: peak growth from {counts[0]} to {counts[-1]} "
                                 f"{unit}s, MiB ({per:.0f} bytes per {unit})",
                        "measured": growth,
                        "met": growth <= 150 if route == "csv" else None})
    picture = max(r["picture_adds_mib"] for r in rows)
    out.append({"claim": "the picture step adds nothing measurable (< 5 MiB)",
                "measured": picture, "met": picture < 5})
    return out


def _table(title, head, rows):
    """`title`, a blank line, the column heads and one line per row: `head` is
    `[(name, width, format of a row's value, key or function of the row), ...]`."""
    lines = [title, "", " ".join(f"{name:{'' if i == 0 else '>'}{w}s}"
                                for i, (name, w, _, _) in enumerate(head))]
    for r in rows:
        lines.append(" ".join(format(key(r) if callable(key) else r[key], f"{w}{fmt}")
                              for _, w, fmt, key in head))
    return lines + [""]


def format_table(report):
    lines = []
    image_rows = [r for r in report["rows"] if r["route"] in IMAGE_ROUTES]
    if image_rows:
        lines += _table(
            f"kerasae train conv_ae, 64x64x3 uint8 images, batch 64; baseline (256 images) "
            f"{report['baseline_mib']:.0f} MiB peak RSS",
            [("route", 8, "s", "route"), ("images", 7, "d", "images"),
             ("raw MiB", 8, ".1f", "raw_mib"), ("peak MiB", 9, ".0f", "peak_mib"),
             ("above base", 11, ".0f", "above_baseline_mib"),
             ("x raw", 6, ".2f", lambda r: r["above_baseline_mib"] / r["raw_mib"]),
             ("picture adds", 13, ".1f", "picture_adds_mib")], image_rows)
    record_rows = [r for r in report["rows"] if r["route"] in RECORD_ROUTES]
    if record_rows:
        bases = ", ".join(f"{b} {report['baselines_mib'][b]:.0f} MiB"
                          for b in sorted({r["builder"] for r in record_rows}))
        lines += _table(
            f"kerasae train stacked_ae (csv) / conv1d_ae --window (series) on .csv "
            f"files, batch 64; baselines (256 rows / windows): {bases} peak RSS",
            [("route", 8, "s", "route"), ("rows", 9, "d", "rows"),
             ("file MiB", 9, ".1f", "raw_mib"), ("peak MiB", 9, ".0f", "peak_mib"),
             ("above base", 11, ".0f", "above_baseline_mib"),
             ("x file", 7, ".2f", lambda r: r["above_baseline_mib"] / r["raw_mib"])],
            record_rows)
    for t in report["targets"]:
        verdict = "measured" if t["met"] is None else "met" if t["met"] else "NOT met"
        lines.append(f"{t['claim']}: {t['measured']:.2f}  {verdict}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
