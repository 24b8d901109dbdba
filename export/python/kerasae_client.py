"""Pure-Python client for a kerasae export: numpy + onnxruntime (+ Pillow for images).

No TensorFlow, Keras or kerasae needed: copy this file next to an export
directory and run it.

    python kerasae_client.py check EXPORT_DIR
    python kerasae_client.py encode EXPORT_DIR a.png b.png --out codes.npz
    python kerasae_client.py decode EXPORT_DIR codes.npz --out-dir decoded/
    python kerasae_client.py reconstruct EXPORT_DIR a.png b.png --out-dir recon/
    python kerasae_client.py score EXPORT_DIR a.png b.png [--json]
    python kerasae_client.py score EXPORT_DIR rows.csv [--json]     # records, series

`score` prints each image's anomaly score, the mean squared error between the
image and its reconstruction decoder(encoder(x)), and, when the manifest has an
`anomaly` block, flags images whose score is above its threshold. For a model of
records or series windows it reads a `.csv` file (with a header; the columns the
detector was fitted on, by name, when the manifest's anomaly block lists them, else
every column) or a `.npy` array of raw values, and scores each row; for a series, each
time step as the detector did (the anomaly block's `per_step`: the mean score of the
windows holding the step, or the score of the last window ending at it; its `stride`),
or without `per_step` each window of consecutive rows, named by the row it ends at.

As a library:

    from kerasae_client import KerasaeExport
    model = KerasaeExport("exports/conv_ae")
    x = model.load_images(["a.png"])          # (n, H, W, C) float32, scaled
    codes = model.encode(x)                   # {"code": ...} or {"z_mean", "z_log_var"}
    x_hat = model.reconstruct(x)
    scores, flags = model.anomaly(x)          # flags is None without an anomaly block
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import onnxruntime as ort


class KerasaeExport:
    """An export directory: manifest.json + encoder.onnx + decoder.onnx."""

    def __init__(self, directory, threads=None):
        self.directory = directory
        path = os.path.join(directory, "manifest.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{directory!r} has no manifest.json; is it a kerasae export?")
        with open(path) as f:
            self.manifest = json.load(f)
        if self.manifest.get("format") != "kerasae-export":
            raise ValueError(f"{path} is not a kerasae export manifest")
        files = self.manifest.get("artifacts", {}).get("onnx")
        if not files:
            raise ValueError(f"{directory!r} was exported without ONNX files")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = int(threads)
        providers = ["CPUExecutionProvider"]
        self.encoder = ort.InferenceSession(os.path.join(directory, files["encoder"]),
                                            options, providers=providers)
        self.decoder = ort.InferenceSession(os.path.join(directory, files["decoder"]),
                                            options, providers=providers)
        self.variational = bool(self.manifest["latent"]["variational"])
        self.image_shape = tuple(self.manifest["input"]["shape"][1:])
        self.code_shape = tuple(self.manifest["latent"]["shape"][1:])
        # None for records and series: raw values of any range (the model scales them)
        self.value_range = tuple(self.manifest["input"]["value_range"] or ()) or None

    # ------------------------------------------------------------ inference
    def encode(self, images):
        """`{"code": ...}`, or `{"z_mean": ..., "z_log_var": ...}` for a VAE."""
        images = self._batch(images, self.image_shape, "images")
        names = [o.name for o in self.encoder.get_outputs()]
        return dict(zip(names, self.encoder.run(names, {"image": images})))

    def code(self, images):
        """The decoder input: the code, or `z_mean` for a VAE."""
        out = self.encode(images)
        return out["z_mean"] if self.variational else out["code"]

    def decode(self, codes):
        codes = self._batch(codes, self.code_shape, "codes")
        return self.decoder.run(["reconstruction"], {"code": codes})[0]

    def reconstruct(self, images):
        """Reconstructions, cut to the images' height and width (the decoder of a model of
        any size returns the padded grid)."""
        images = self._batch(images, self.image_shape, "images")
        recon = self.decode(self.code(images))
        if recon.ndim == 4:
            recon = recon[:, :images.shape[1], :images.shape[2]]
        return recon

    def scores(self, images):
        """Per-example mean squared error between inputs and reconstructions, each error
        divided by the anomaly block's `scale` of its feature (the last axis) where the
        model scales its input (records, series)."""
        images = self._batch(images, self.image_shape, "images")
        diff = images.astype("float64") - self.reconstruct(images).astype("float64")
        scale = (self.manifest.get("anomaly") or {}).get("scale") or [1.0]
        diff = diff / np.asarray(scale, dtype="float64")
        return np.mean(diff**2, axis=tuple(range(1, images.ndim)))

    def anomaly(self, images):
        """`(scores, flags)`; `flags` (score > threshold) is None without an anomaly block."""
        scores = self.scores(images)
        block = self.manifest.get("anomaly")
        if not block:
            return scores, None
        if block.get("score", "mse") != "mse":
            raise ValueError(f"unknown anomaly score {block.get('score')!r}; this client computes 'mse'")
        return scores, scores > float(block["threshold"])

    def load_rows(self, path):
        """Raw rows of a `.csv` (header; the anomaly block's `columns` by name, else every
        column) or `.npy` file as float32 examples: rows `(n, F)` for a model of records,
        windows `(n - T + 1, T, C)` of consecutive rows for a model of series windows."""
        if path.lower().endswith(".npy"):
            rows = np.load(path, allow_pickle=False).astype("float32")
        else:
            import csv  # only the CSV route needs it
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.reader(f)
                header = [h.strip() for h in next(reader)]
                cells = list(reader)
            names = (self.manifest.get("anomaly") or {}).get("columns") or header
            missing = [n for n in names if n not in header]
            if missing:
                raise ValueError(f"{path} lacks the column(s) {missing} the detector was fitted on")
            idx = [header.index(n) for n in names]
            try:
                rows = np.array([[float(r[j]) for j in idx] for r in cells], dtype="float32")
            except (ValueError, IndexError) as e:
                raise ValueError(f"{path}: a cell of the columns {names} is not a number ({e})") from e
        return rows.reshape(len(rows), -1)

    def windows(self, rows, stride=1):
        """`(starts, windows)`: the windows of `window` consecutive rows every `stride`."""
        steps = self.image_shape[0]
        if len(rows) < steps:
            raise ValueError(f"the series has {len(rows)} rows, fewer than one window ({steps})")
        starts = np.arange(0, len(rows) - steps + 1, stride)
        return starts, rows[starts[:, None] + np.arange(steps)]

    def step_scores(self, rows):
        """Per time step of a series `(T, C)` of raw values, as the detector scored it (see
        the module docstring); NaN where no window scores the step."""
        block = self.manifest.get("anomaly") or {}
        width, how = self.image_shape[0], block.get("per_step", "last")
        starts, windows = self.windows(rows, int(block.get("stride", 1)))
        s = self.scores(windows)
        t = np.arange(len(rows))
        lo = np.searchsorted(starts, t - width, side="right")
        hi = np.searchsorted(starts, t, side="right")
        covered = hi > lo
        if how == "mean":
            prefix = np.concatenate([[0.0], np.cumsum(s)])
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(covered, (prefix[hi] - prefix[lo]) / (hi - lo), np.nan)
        last = np.searchsorted(starts + width - 1, t, side="right")
        return np.where(covered & (last > 0), s[np.maximum(last - 1, 0)], np.nan)

    @property
    def any_size(self):
        """True for a model of any height and width (`None` in the input shape)."""
        return None in self.image_shape

    def _batch(self, x, shape, what):
        x = np.ascontiguousarray(x, dtype="float32")
        if len(x.shape) != len(shape) + 1 or any(
                want is not None and got != want for got, want in zip(x.shape[1:], shape)):
            want = ", ".join("any" if d is None else str(d) for d in shape)
            raise ValueError(f"{what} must have shape (n, {want}); got {x.shape}")
        return x

    # --------------------------------------------------------------- images
    def load_images(self, paths):
        """Reads image files into `(n, H, W, C)` float32 scaled to the input value range."""
        from PIL import Image

        if len(self.image_shape) != 3:
            raise ValueError(f"images need an (H, W, C) input; this model takes {self.image_shape}")
        height, width, channels = self.image_shape  # None, None: any size (read as they are)
        mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
        if mode is None:
            raise ValueError(f"cannot read images for {channels} channels")
        low, high = self.value_range
        out = []
        for path in paths:
            with Image.open(path) as image:
                image = image.convert(mode)
                if width is not None and image.size != (width, height):
                    image = image.resize((width, height), Image.BILINEAR)
                pixels = np.asarray(image, dtype="float32") / 255.0
            out.append(low + (high - low) * pixels.reshape(image.size[1], image.size[0], channels))
        if len({x.shape for x in out}) > 1:
            sizes = sorted({f"{x.shape[0]}x{x.shape[1]}" for x in out})
            raise ValueError(f"images of several sizes ({', '.join(sizes)}, height x width) make "
                             "no batch: read one size at a time")
        return np.stack(out).astype("float32")

    def save_images(self, images, out_dir, names):
        from PIL import Image

        os.makedirs(out_dir, exist_ok=True)
        low, high = self.value_range
        written = []
        for image, name in zip(images, names):
            pixels = np.clip((np.asarray(image) - low) / (high - low), 0.0, 1.0)
            pixels = np.round(pixels * 255.0).astype("uint8")
            if pixels.shape[-1] == 1:
                pixels = pixels[..., 0]
            path = os.path.join(out_dir, name)
            Image.fromarray(pixels).save(path)
            written.append(path)
        return written

    # ---------------------------------------------------------- conformance
    def verify_files(self):
        """Files whose sha256 differs from the manifest (empty when all match)."""
        problems = []
        for rel, info in self.manifest.get("files", {}).items():
            path = os.path.join(self.directory, *rel.split("/"))
            if not os.path.exists(path):
                problems.append(f"{rel}: missing")
                continue
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            if digest.hexdigest() != info["sha256"]:
                problems.append(f"{rel}: sha256 {digest.hexdigest()} != {info['sha256']}")
        return problems

    def check(self):
        """Checks hashes, then the ONNX files against reference.npz at each batch size."""
        info = self.manifest["reference"]
        tolerance = float(info["tolerance"])
        failures = [f"file {p}" for p in self.verify_files()]
        diffs = {}

        def note(key, got, want, b):
            got, want = np.asarray(got, "float64"), np.asarray(want, "float64")
            # max |got - want| / max(1, max |want|): absolute within [-1, 1], relative
            # to the tensor's scale above (as at export).
            if got.shape != want.shape:
                d = float("inf")
            elif want.size == 0:
                d = 0.0
            else:
                d = float(np.max(np.abs(got - want))) / max(1.0, float(np.max(np.abs(want))))
                d = float("inf") if np.isnan(d) else d
            diffs[key] = max(diffs.get(key, 0.0), d)
            if not d <= tolerance:
                failures.append(f"{key} at batch {b}: max error {d:.3g} > {tolerance:g}")

        with np.load(os.path.join(self.directory, info["file"]), allow_pickle=False) as ref:
            ref = dict(ref)
        # a model of any size has references at several sizes, each with its arrays
        for ends in [info["endpoints"]] + [m["endpoints"] for m in info.get("more_sizes", [])]:
            for b in info["batch_sizes"]:
                image = ref[ends["encode"]["inputs"]["image"]][:b]
                where = f"{b}, size {image.shape[1]}x{image.shape[2]}" if self.any_size else b
                encoded = self.encode(image)
                for out, array in ends["encode"]["outputs"].items():
                    note(f"encode/{out}", encoded[out], ref[array][:b], where)
                code = ref[ends["decode"]["inputs"]["code"]][:b]
                note("decode/reconstruction", self.decode(code),
                     ref[ends["decode"]["outputs"]["reconstruction"]][:b], where)
                note("reconstruct/reconstruction", self.reconstruct(image),
                     ref[ends["reconstruct"]["outputs"]["reconstruction"]][:b], where)
        report = {"dir": self.directory, "model": self.manifest["model"]["name"],
                  "runtime": f"onnxruntime {ort.__version__}", "max_error": diffs}
        scores, flags = self.anomaly(ref["image"])
        if flags is not None:
            report["anomaly"] = {"score": "mse", "threshold": self.manifest["anomaly"]["threshold"],
                                 "scores": scores.tolist(), "flags": flags.tolist()}
            if "score" in ref:
                note("score", scores, ref["score"], len(scores))
        report["failures"] = failures
        report["passed"] = not failures
        return report


# ------------------------------------------------------------------------ CLI
def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kerasae_client",
                                     description="Run a kerasae ONNX export with onnxruntime.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in [("check", "check hashes and outputs against reference.npz"),
                            ("encode", "encode image files to codes (.npz)"),
                            ("decode", "decode codes (.npz/.npy) to PNG files"),
                            ("reconstruct", "reconstruct image files to PNG files"),
                            ("score", "anomaly scores (MSE) and flags of image files")]:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("export_dir")
        if name in ("encode", "reconstruct", "score"):
            p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)"
                           + ("; or one .csv / .npy file of records or a series" if name == "score" else ""))
        if name == "decode":
            p.add_argument("codes", help=".npz from `encode` (its 'code' array) or a .npy")
        if name == "encode":
            p.add_argument("--out", required=True, help="output .npz")
        if name in ("decode", "reconstruct"):
            p.add_argument("--out-dir", required=True)
        p.add_argument("--json", action="store_true", help="print a JSON report")
    args = parser.parse_args(argv)
    model = KerasaeExport(args.export_dir)

    if args.command == "check":
        report = model.check()
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print(f"{report['model']}: {report['runtime']}")
            for key, d in report["max_error"].items():
                print(f"  {key:28s} max error {d:.2e}")
            for failure in report["failures"]:
                print(f"  FAIL {failure}")
            print("passed" if report["passed"] else "FAILED")
        return 0 if report["passed"] else 1

    if args.command == "decode":
        written = _decode(model, args.codes, args.out_dir)
        print(json.dumps({"written": written}) if args.json else "\n".join(written))
        return 0

    if args.command == "score" and len(model.image_shape) != 3:  # records or series
        x = model.load_rows(args.images[0])
        block = model.manifest.get("anomaly")
        first = 0
        if len(model.image_shape) == 1:
            scores, flags = model.anomaly(x)
        elif block and "per_step" in block:  # every step, as the detector scored it
            scores = model.step_scores(x)
            flags = np.nan_to_num(scores, nan=-np.inf) > float(block["threshold"])
        else:  # each window, named by the row it ends at
            scores, flags = model.anomaly(model.windows(x)[1])
            first = model.image_shape[0] - 1
        _print_scores(model, "rows", "row", range(first, first + len(scores)), scores, flags,
                      args.json, name=lambda row: f"row {row}")
        return 0
    if args.command == "reconstruct" and model.any_size:  # each image at its own size
        written = []
        for path in args.images:
            written += model.save_images(model.reconstruct(model.load_images([path])),
                                         args.out_dir, [f"{_stem(path)}_reconstruction.png"])
        print(json.dumps({"written": written}) if args.json else "\n".join(written))
        return 0
    args.images = _image_paths(args.images)
    if args.command in ("encode", "score") and model.any_size:  # each image at its size
        return _each_image(model, args)
    images = model.load_images(args.images)
    if args.command == "encode":
        out = model.encode(images)
        out["code"] = out["z_mean"] if model.variational else out["code"]
        np.savez(args.out, files=np.array(args.images), **out)
        summary = {"out": args.out, "n": len(images), "arrays": {k: list(v.shape) for k, v in out.items()}}
        print(json.dumps(summary) if args.json else f"wrote {args.out}: {summary['arrays']}")
    elif args.command == "reconstruct":
        written = model.save_images(model.reconstruct(images), args.out_dir,
                                    [f"{_stem(p)}_reconstruction.png" for p in args.images])
        print(json.dumps({"written": written}) if args.json else "\n".join(written))
    else:  # score
        scores, flags = model.anomaly(images)
        _print_scores(model, "images", "file", args.images, scores, flags, args.json,
                      name=str)
    return 0


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _image_paths(paths):
    """Files as given; a folder stands for its image files (sorted, hidden ones aside)."""
    out = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, f) for f in os.listdir(path)
                           if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith("."))
            if not found:
                raise ValueError(f"the folder {path!r} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            out += found
        else:
            out.append(path)
    return out


def _each_image(model, args):
    """`encode` / `score` for a model of any size: each image at its own size. `encode`
    writes `code_0000`, ... (one per image), `sizes` (height, width) and `files`."""
    codes, sizes, rows = {}, [], []
    for i, path in enumerate(args.images):
        image = model.load_images([path])
        sizes.append(image.shape[1:3])
        if args.command == "encode":
            codes[f"code_{i:04d}"] = model.code(image)
        else:
            rows.append(model.anomaly(image))
    if args.command == "score":
        scores = np.concatenate([r[0] for r in rows])
        flags = None if rows[0][1] is None else np.concatenate([r[1] for r in rows])
        _print_scores(model, "images", "file", args.images, scores, flags, args.json, name=str)
        return 0
    np.savez(args.out, files=np.array(args.images), sizes=np.array(sizes, "int64"), **codes)
    summary = {"out": args.out, "n": len(codes),
               "arrays": {k: list(v.shape) for k, v in codes.items()}}
    print(json.dumps(summary) if args.json else f"wrote {args.out}: {summary['arrays']}")
    return 0


def _decode(model, path, out_dir):
    """PNGs of the codes in `path`: a `.npy`, or an `.npz` of `encode` (its `code`, or for
    a model of any size one `code_0000`, ... per image, cropped to its `sizes`)."""
    if not path.endswith(".npz"):
        images = model.decode(np.load(path, allow_pickle=False))
        return model.save_images(images, out_dir, [f"decoded_{i:04d}.png" for i in range(len(images))])
    with np.load(path, allow_pickle=False) as data:
        data = dict(data)
    if "sizes" not in data:
        images = model.decode(data["code"])
        return model.save_images(images, out_dir, [f"decoded_{i:04d}.png" for i in range(len(images))])
    written = []
    for i, (h, w) in enumerate(data["sizes"]):
        image = model.decode(data[f"code_{i:04d}"])[:, :h, :w]
        stem = _stem(str(data["files"][i])) if "files" in data else f"{i:04d}"
        written += model.save_images(image, out_dir, [f"{stem}_decoded.png"])
    return written


def _print_scores(model, group, key, keys, scores, flags, as_json, name):
    """`score`'s output: one row per key (a file, a row), its score (None where no
    window scored it) and, with an anomaly block, its flag; JSON or a line each."""
    rows = [{key: k, "score": None if np.isnan(s) else float(s),
             **({} if flags is None else {"anomaly": bool(flags[i])})}
            for i, (k, s) in enumerate(zip(keys, scores))]
    if as_json:
        print(json.dumps({"threshold": (model.manifest.get("anomaly") or {}).get("threshold"),
                          group: rows}, indent=2))
        return
    for row in rows:
        flag = "" if "anomaly" not in row else ("  ANOMALY" if row["anomaly"] else "  ok")
        score = "no window" if row["score"] is None else f"mse {row['score']:.6g}"
        print(f"{name(row[key])}: {score}{flag}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ValueError as e:  # bad input: said in one line
        print(f"kerasae_client: error: {e}", file=sys.stderr)
        sys.exit(2)
