"""`kerasae export SOURCE OUT_DIR`: a deployment directory from the command line."""

import json
import os

import numpy as np

from kerasae._util.errors import MissingFile
from kerasae.cli.errors import UsageError, max_pixels_option
from kerasae.data import get_source
from kerasae.export.formats import (DEFAULT_BATCH_SIZES, DEFAULT_FORMATS, DEFAULT_OPSET,
                                    DEFAULT_TOLERANCE, FORMATS, QUANTIZE)


def add_parsers(subparsers):
    """Registers `kerasae export SOURCE OUT_DIR ...`."""
    p = subparsers.add_parser(
        "export", help="export a model to SavedModel, ONNX and LiteRT with a manifest",
        description="Export an autoencoder (a .keras file or a zoo preset name) to one "
        "directory: saved_model/ (signatures encode, decode, reconstruct), encoder.onnx, "
        "decoder.onnx, with --formats ...,litert encoder.tflite and decoder.tflite (and "
        "with --quantize int8 their int8 versions), reference.npz and manifest.json. The "
        "export is reloaded and compared with Keras before it is written.",
    )
    p.add_argument("source", help="path of a .keras file, a zoo preset name or hf://OWNER/REPO")
    p.add_argument("out_dir", help="directory to create")
    p.add_argument("--formats", default=",".join(DEFAULT_FORMATS),
                   help=f"comma-separated subset of {','.join(FORMATS)} (default: "
                   f"{','.join(DEFAULT_FORMATS)})")
    p.add_argument("--quantize", default=None, choices=QUANTIZE,
                   help="also write int8 LiteRT files: int8 (int16 decoder activations, the "
                   "quality choice) or int8-full (8-bit activations throughout)")
    p.add_argument("--representative", default=None, metavar="DATASET",
                   help="real images to calibrate int8 on: a dataset name, folder, .npz/.npy "
                   "(default: the model's training data, from its preset or run.json)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset (default: {DEFAULT_OPSET})")
    p.add_argument("--autoencoder", action="store_true",
                   help="also write autoencoder.onnx (image -> reconstruction)")
    p.add_argument("--metadata", default=None, metavar="JSON|@FILE",
                   help="extra manifest entries as JSON, or @file.json; e.g. "
                   "'{\"anomaly\": {\"score\": \"mse\", \"threshold\": 0.0123}}'")
    p.add_argument("--reference", default=None, metavar="DATASET",
                   help="real reference inputs: a folder of images, a .npy or .npz file "
                   f"(its first {REFERENCE_IMAGES} images), or an export's reference.npz")
    p.add_argument("--image-size", "--reference-image-size", dest="reference_image_size",
                   default=None, metavar="SIZE",
                   help="size the --reference folder's images to the model's input (64, "
                   "or 64x48)")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out --reference image files that cannot be read")
    max_pixels_option(p)
    p.add_argument("--value-range", default="0,1", metavar="LOW,HIGH",
                   help="input value range (default: 0,1)")
    p.add_argument("--batch-sizes", default=",".join(map(str, DEFAULT_BATCH_SIZES)),
                   help="parity-check batch sizes (default: 1,7)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="max |runtime - keras| / max(1, max |keras|) per output (default: "
                        f"{DEFAULT_TOLERANCE:g}, or the preset's own: tae_flux2 1e-4)")
    p.add_argument("--int8-tolerance", type=float, default=None, metavar="TOLERANCE",
                   help="max error of the int8 files, every output (default: per output, "
                        "1.5x the worst image measured on the quality images)")
    p.add_argument("--no-check", action="store_true", help="skip the parity check")
    p.add_argument("--force", action="store_true", help="replace an existing OUT_DIR")
    p.set_defaults(func=_cli_export)


def _cli_list(text, name, convert):
    try:
        return [convert(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--{name} takes comma-separated numbers. Received: {name}={text!r}") from None


def _cli_metadata(text):
    if text is None:
        return None
    if text.startswith("@"):
        with open(text[1:]) as f:
            text = f.read()
    try:
        return json.loads(text)
    except ValueError as e:
        raise UsageError(f"--metadata is not valid JSON ({e}). Received: metadata={text!r}") from None


REFERENCE_IMAGES = 16  # read from a dataset given as --reference; the parity check uses 7


def _cli_reference(path, image_size=None, skip_bad=False):
    if path is None:
        return None
    if not os.path.exists(path):
        raise MissingFile(f"Reference file {path!r} does not exist. Received: reference={path!r}")
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as data:
            if "image" in data:  # an export's own reference.npz
                return data["image"]
    # Any dataset: a folder of images, a .npy or .npz file; the first images are read.
    return get_source(path, "all", image_size=image_size, skip_bad=skip_bad).take(
        REFERENCE_IMAGES)


def _cli_export(args):
    # lazy: exporting loads TensorFlow, tf2onnx and onnxruntime
    from kerasae.export.bundle import export

    manifest = export(
        args.source, args.out_dir, formats=args.formats, opset=args.opset,
        autoencoder_onnx=args.autoencoder, metadata=_cli_metadata(args.metadata),
        value_range=_cli_list(args.value_range, "value-range", float),
        reference_inputs=_cli_reference(args.reference, args.reference_image_size,
                                        args.skip_bad),
        batch_sizes=_cli_list(args.batch_sizes, "batch-sizes", int),
        tolerance=args.tolerance, check=not args.no_check, force=args.force,
        quantize=args.quantize, representative=args.representative,
        int8_tolerance=args.int8_tolerance,
    )
    print(f"exported {manifest['model']['name']} to {os.path.abspath(args.out_dir)}")
    for rel, info in manifest["files"].items():
        print(f"  {rel:48s} {info['bytes']:>10d}  sha256 {info['sha256'][:16]}...")
    parity = manifest.get("parity")
    if parity:
        sizes = ""  # a model of any size is checked at several
        if parity.get("sizes"):
            sizes = " and sizes " + ", ".join(f"{h}x{w}" for h, w in parity["sizes"])
        print(f"parity vs Keras at batch sizes {parity['batch_sizes']}{sizes}: max error "
              f"{parity['max']:.3g} (tolerance {parity['tolerance']:g})")
    int8 = (manifest.get("litert") or {}).get("int8")
    if int8:
        q = int8["quality"]
        if (manifest.get("input") or {}).get("value_range"):  # images: PSNR says it
            quality = (f"PSNR {q['psnr_db']['litert_int8']:.2f} dB vs "
                       f"{q['psnr_db']['keras']:.2f} dB float (loss {q['psnr_loss_db']:.2f} dB "
                       f"on {q['images']} images: {q['source']})")
        else:  # records, series: raw values of any range, where a PSNR means nothing
            quality = (f"reconstruction MSE (raw units) {q['mse']['litert_int8']:.4g} vs "
                       f"{q['mse']['keras']:.4g} float (on {q['images']} examples: "
                       f"{q['source']})")
        print(f"LiteRT {int8['scheme']}: {int8['bytes']['int8']:,} bytes, "
              f"{int8['size_ratio']:.0%} of float ({int8['bytes']['float']:,}); {quality}; "
              f"int8 parity {parity['litert_int8']['max']:.3g}, within its per-output "
              f"tolerances (up to {max(int8['tolerance'].values()):g})"
              if parity and "litert_int8" in parity else "")
        print(_int8_latency(int8.get("latency_ms_batch_1")))
    return 0


def _int8_latency(ms):
    """The int8 files' latency beside the float ones, and what to do when int8 is slower."""
    if not ms:
        return ""
    line = "LiteRT latency at batch 1 (ms, float -> int8): " + ", ".join(
        f"{part} {v['float']:.2f} -> {v['int8']:.2f}" for part, v in ms.items())
    slow = [part for part, v in ms.items() if v["int8"] > 1.2 * v["float"]]
    if slow:
        line += (f"; the int8 {' and '.join(slow)} runs slower than float here (LiteRT has "
                 "no optimised kernels for its 16-bit activations): --quantize int8-full is "
                 "8-bit throughout, or ship the float file where speed matters")
    return line
