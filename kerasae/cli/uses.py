"""`kerasae features|reduce|compress|denoise|anomaly|generate`: one command per use."""

import os

from kerasae._util import signals
from kerasae.cli.args import sized_model, table_options, tile_checked
from kerasae.cli.errors import UsageError, max_pixels_option
from kerasae.data.image_options import RESIZE_MODES
from kerasae.uses.options import DEFAULT_THRESHOLD, EMBEDDINGS, SAMPLED_FROM, SAMPLERS


def _inputs(p, images=True, model_required=True):
    p.add_argument("--model", required=model_required, default=None,
                   help="zoo preset name (e.g. conv_ae_fashion_mnist) or a .keras file")
    p.add_argument("--dataset", default="fashion_mnist",
                   help="a folder of images, a .npz/.npy file, 'digits' or a TFDS name "
                   "(default: fashion_mnist)")
    p.add_argument("--split", default="auto",
                   help="dataset split (default: auto, the test split where there is one, "
                   "else all of it)")
    if images:
        p.add_argument("--images", nargs="+", metavar="PATH", default=None,
                       help="image files or directories (searched below too), instead of "
                       "--dataset")
    p.add_argument("--image-size", default=None, metavar="HxW",
                   help="for a model of any size (e.g. tae_flux2): read every image at this size "
                   "(64 or 64x48), by --resize (default: each at its own; compress takes mixed "
                   "sizes, the other uses need one size for all)")
    p.add_argument("--resize", default="crop", choices=RESIZE_MODES,
                   help="folder and file images are read at the model's input size and "
                   "channels: by center crop (default), pad or stretch")
    p.add_argument("--limit", type=int, default=None, help="use the first N images")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out image files that cannot be read (counted), instead of failing")
    max_pixels_option(p)
    p.add_argument("--seed", type=int, default=0)


def _out(p, use):
    p.add_argument("--out", default=None,
                   help=f"output directory (default: runs/{use}); written all or nothing")


def _data_kwargs(args):
    keys = ("dataset", "split", "limit", "resize", "skip_bad", "max_pixels")
    return dict({k: getattr(args, k) for k in keys}, images=getattr(args, "images", None))


def _out_dir(args, use):
    return args.out or os.path.join("runs", use)


def _inputs_line(result, args=None):
    d = result.metrics.get("inputs") or {}
    what = (f"{d['files']} image file(s)" if "files" in d else
            f"{d.get('dataset')!r} split {d.get('split')!r}" if "dataset" in d else None)
    if what is None:
        return None
    sized = d.get("sized")
    if isinstance(sized, dict):
        sized = (f"{sized['images']} image(s) at {'x'.join(map(str, sized['to']))} "
                 f"({sized['resize']})")
    elif sized and getattr(args, "image_size", None):  # the size is the user's, not the model's
        sized = sized.replace("(the model's input)", "(--image-size)")
    return f"inputs: {what}" + (f", read as {sized}" if sized else "")


def _show(result, lines, args=None):
    signals.hold()  # the files are written: a SIGTERM now comes too late to stop anything
    head = _inputs_line(result, args)
    for line in ([head] if head else []) + lines:
        print(line)
    for part, why in (result.metrics.get("skipped") or {}).items():
        print(f"skipped {part}: {why}")
    for note in result.metrics.get("notes") or ():
        print(f"note: {note}")
    for line in _wrote(result.files):
        print(line)
    return 0


def _wrote(files, most=5):
    """One `wrote` line per file, but one per folder that holds more than `most` of them
    (5,000 decoded images are one line)."""
    shown = [f for f in files
             if f.endswith((".json", ".png", ".kae", ".npy", ".csv")) or os.path.isdir(f)]
    by_folder = {}
    for f in shown:
        by_folder.setdefault(os.path.dirname(f), []).append(f)
    lines, done = [], set()
    for f in shown:
        folder = os.path.dirname(f)
        if len(by_folder[folder]) <= most:
            lines.append(f"wrote {f}" + ("/" if os.path.isdir(f) else ""))
        elif folder not in done:
            done.add(folder)
            lines.append(f"wrote {len(by_folder[folder])} files under {folder}/")
    return lines


def add_parsers(subparsers):
    """Registers one command per use."""
    for add in (_add_features, _add_reduce, _add_compress, _add_denoise, _add_anomaly,
                _add_generate):
        add(subparsers)


def _add_features(subparsers):
    p = subparsers.add_parser(
        "features", help="encode images to codes.npy; linear probe vs pixels and PCA",
        description="Encode a dataset or image files to codes.npy. With labels, a logistic "
        "regression probe on the codes, on raw pixels and on PCA of the same size. Writes "
        "features.json and features.png.")
    _inputs(p)
    _out(p, "features")
    p.add_argument("--no-probe", action="store_true", help="only write the codes")
    p.add_argument("--max-iter", type=int, default=500, help="lbfgs iterations (default: 500)")
    p.set_defaults(func=_features)


def _add_reduce(subparsers):
    p = subparsers.add_parser(
        "reduce", help="2-D / N-D codes, scatter by class, MSE vs PCA",
        description="Codes as reduced dimensions. Writes codes.npy, codes_2d.npy, "
        "reduce.json (MSE table vs PCA), reduce_scatter.png and reduce_mse.png.")
    _inputs(p)
    _out(p, "reduce")
    p.add_argument("--dims", type=int, default=2, help="low-dimensional code size (default: 2)")
    p.add_argument("--embedding", choices=EMBEDDINGS, default="bottleneck",
                   help="how codes wider than --dims are reduced: a trained bottleneck through "
                   "the frozen model (default), or PCA / t-SNE of the codes (picture only)")
    p.add_argument("--bottleneck-epochs", type=int, default=2)
    p.add_argument("--fit-split", default="train",
                   help="split PCA is fitted on for named datasets (default: train)")
    p.set_defaults(func=_reduce)


def _add_compress(subparsers):
    p = subparsers.add_parser(
        "compress", help="codes -> .kae file (quantized, range coded) vs JPEG",
        description="Encode images to a .kae file, decode it back, report bits/image and "
        "PSNR beside JPEG at the same PSNR. Writes <name>.kae, compress.json, compress.png "
        "and compress_rd.png. With --decode FILE.kae, decode a file instead (--model "
        "defaults to the zoo preset named in its header when its files are here; a .keras "
        "file or an hf:// preset is passed with --model).")
    _inputs(p, model_required=False)
    _out(p, "compress")
    p.add_argument("--bits", type=int, default=8, help="quantization bits (default: 8)")
    p.add_argument("--no-jpeg", action="store_true", help="skip the JPEG comparison")
    p.add_argument("--no-sweep", action="store_true", help="skip the rate-distortion sweep")
    p.add_argument("--sweep-count", type=int, default=1000,
                   help="images in the rate-distortion sweep (default: 1000)")
    p.add_argument("--name", default="images", help="stem of the .kae file (default: images)")
    p.add_argument("--decode", metavar="FILE.kae", default=None,
                   help="decode this file instead (to images/*.png; a file of a fixed-size "
                   "model also to decoded.npy)")
    p.add_argument("--tile", type=int, default=None, metavar="PIXELS",
                   help="a model of any size (tae_flux2): code each photo in tiles of this side "
                   "(e.g. 512), so memory follows the tile; a multiple of the model's factor "
                   "(8 for tae_flux2), at least twice it; tiles overlap by tile/4, at most 64")
    p.set_defaults(func=_compress)


def _add_denoise(subparsers):
    p = subparsers.add_parser(
        "denoise", help="denoise images; PSNR/SSIM vs gaussian and median filters",
        description="Denoise a dataset (noise added: gaussian std 0.2, clipped, seeded) or "
        "noisy image files. Writes denoise.json, denoise.png, denoised.npy and, for files, "
        "denoised/*.png.")
    _inputs(p)
    _out(p, "denoise")
    p.add_argument("--noise-std", type=float, default=0.2)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--add-noise", dest="add_noise", action="store_true", default=None,
                       help="treat the inputs as clean and add noise (default for datasets)")
    group.add_argument("--noisy", dest="add_noise", action="store_false",
                       help="treat the inputs as noisy (default for image files)")
    p.add_argument("--clean", nargs="+", metavar="PATH", default=None,
                   help="clean reference images for noisy --images")
    p.set_defaults(func=_denoise)


def _add_anomaly(subparsers):
    p = subparsers.add_parser(
        "anomaly", help="anomaly detection: images (a held-out class), records or series",
        description="Images: train a fresh model of --model's architecture on the train "
        "split without one class, pick the threshold on training scores, score the test split "
        "(the held-out class is the anomaly) beside PCA. Records and series (--dataset a "
        ".csv / .npz / .npy table; a series with --window): train a detector (default "
        "stacked_ae, or conv1d_ae for a series) on all of the data or its --normal part, "
        "score every row or time step, flag those above the threshold. Both export the "
        "detector with its threshold in the metadata (detector/) and write anomaly.json, "
        "anomaly.png and scores.csv (a series also scores_over_time.png). --held-out all "
        "sweeps every class (slow: one training each).")
    _inputs(p, images=False, model_required=False)
    _out(p, "anomaly")
    table_options(p)
    p.add_argument("--normal", default=None,
                   help="records and series: train on 'label' (rows labelled 0), 'first:N' "
                   "or 'first:P%%' (the first rows or steps), or a file of normal data "
                   "(default: all of the data, anomalies assumed rare)")
    p.add_argument("--contamination", type=float, default=None,
                   help="the expected fraction of anomalies in the training data: the "
                   "threshold flags that top fraction (instead of --threshold)")
    p.add_argument("--score", default=None, choices=["mse", "robust"],
                   help="records and series: 'mse' in the model's scaled units, or 'robust': "
                   "each feature's error over a spread the anomalies cannot inflate "
                   "(1.4826 MAD) (default: mse)")
    p.add_argument("--per-step", default="mean", choices=["mean", "last"],
                   help="a series: a step's score is the mean of the windows holding it, or "
                   "the score of the window ending at it (causal) (default: mean)")
    p.add_argument("--held-out", default="auto",
                   help="class index or name held out as the anomaly, 'all', or 'auto' (the "
                   "last class; without labels every image is scored instead) (default: auto)")
    p.add_argument("--epochs", type=int, default=None,
                   help="default: 3 for images; about 500 training steps for records")
    p.add_argument("--batch-size", type=int, default=None,
                   help="default: 128 for images; 64, or 256 from 5,000 examples on, for "
                   "records")
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--threshold", default=DEFAULT_THRESHOLD,
                   help="'percentile:P', 'mean+Kstd' or a number (default: percentile:99)")
    p.add_argument("--train-split", default="train")
    p.add_argument("--train-limit", type=int, default=None, help="use the first N training images")
    p.add_argument("--no-train", action="store_true",
                   help="use --model's weights as they are (no retraining)")
    p.add_argument("--no-export", action="store_true", help="do not write detector/")
    p.add_argument("--verbose", type=int, default=0, choices=[0, 1, 2])
    p.set_defaults(func=_anomaly)


def _records_lines(r):
    m = r.metrics
    what = "steps" if m["input"] == "series" else "rows"
    lines = [f"trained {m['model']} on {m['training']['on']} ({m['training']['examples']} "
             f"examples, {m['training']['epochs']} epochs, {m['training']['seconds']} s); "
             f"threshold {m['threshold']['value']:.6g} ({m['threshold']['method']})",
             f"flagged {m['scored']['flagged']} of {m['scored'][what]} {what}"]
    if "roc_auc" in m:
        a = m["at_threshold"]
        lines.append(f"ROC-AUC {m['roc_auc']:.4f}, PR-AUC {m['pr_auc']:.4f}; at the threshold "
                     f"precision {a['precision']:.3f}, recall {a['recall']:.3f}")
    w = m.get("labelled_windows")
    if w:
        lines.append(f"labelled windows flagged: {w['flagged']} of {w['windows']}; "
                     f"{w['flagged_outside']} flagged steps outside them")
    return lines


def _add_generate(subparsers):
    p = subparsers.add_parser(
        "generate", help="VAE samples, interpolation, latent arithmetic",
        description="Sample a VAE, interpolate between images and do latent arithmetic with "
        "class-mean codes, each against a non-autoencoder baseline. Writes generate.json "
        "and generate_{samples,interpolation,arithmetic}.png.")
    _inputs(p)
    _out(p, "generate")
    p.add_argument("--grid", type=int, default=8, help="samples grid side (default: 8)")
    p.add_argument("--pairs", type=int, default=4, help="interpolation pairs (default: 4)")
    p.add_argument("--between", type=int, nargs=2, metavar=("I", "J"), default=None,
                   help="interpolate between images I and J (indices into the dataset "
                   "split or into --images) instead of random pairs")
    p.add_argument("--steps", type=int, default=9, help="frames per interpolation (default: 9)")
    p.add_argument("--arithmetic", nargs=3, metavar=("A", "B", "C"), default=None,
                   help="classes for A + (B - C) (default: Sneaker 'Ankle boot' Sandal where "
                   "the data has them, else its first three classes; skipped without labels)")
    p.add_argument("--no-arithmetic", action="store_true")
    p.add_argument("--eval-samples", type=int, default=2500)
    p.add_argument("--sampler", choices=SAMPLERS, default="auto", help="prior: N(0, I); "
                   "fitted: Gaussian fitted to the codes; auto (default): fitted if images > dims")
    p.set_defaults(func=_generate)


def _features(args):
    # lazy: the uses load the model, TensorFlow and scikit-learn
    from kerasae.uses import features

    r = features(sized_model(args), **_data_kwargs(args), out=_out_dir(args, "features"),
                 probe=not args.no_probe, seed=args.seed, max_iter=args.max_iter)
    lines = [f"codes: {r['count']} x {r['code_shape']}"]
    if r["probe"]:
        p = r["probe"]
        lines.append("linear probe accuracy: " + ", ".join(
            f"{k} ({p[k]['dims']}-D) {p[k]['accuracy']:.4f}" for k in ("codes", "pca", "pixels"))
            + f"; majority class {p['chance']:.4f}")
        if p.get("train_subset"):
            lines.append(f"probes trained on {p['train_subset']}")
    return _show(r, lines, args)


def _reduce(args):
    # lazy: the uses load the model, TensorFlow and scikit-learn
    from kerasae.uses import reduce

    r = reduce(sized_model(args), **_data_kwargs(args), out=_out_dir(args, "reduce"),
               dims=args.dims, embedding=args.embedding,
               bottleneck_epochs=args.bottleneck_epochs, fit_split=args.fit_split,
               seed=args.seed)
    lines = ["reconstruction MSE: " + ", ".join(
        f"{row['method']} {row['dims']}-D {row['mse']:.5f}" for row in r["table"])]
    knn = r.metrics.get("knn5_accuracy_2d")
    if knn:
        lines.append(f"5-NN accuracy in 2-D: codes {knn['codes']:.3f}, PCA of pixels "
                     f"{knn['pca_pixels']:.3f}")
    return _show(r, lines, args)


def _compress(args):
    # lazy: the uses load the model, TensorFlow and scikit-learn
    from kerasae.uses import compress, decompress
    from kerasae.uses._compress_sizes import summary_lines

    if args.decode:
        r = decompress(args.decode, args.model, out=_out_dir(args, "compress"), tile=args.tile)
        line = f"decoded {r['count']} images from {args.decode}"
        if "png_files" in r.metrics:
            notes = [f"{r['renamed']} renamed: their names collided"] if r["renamed"] else []
            notes += [f"{r['names_made_safe']} names made safe"] if r["names_made_safe"] else []
            if notes or len({os.path.dirname(f) for f in r.files if f.endswith(".png")}) > 1:
                line += (f"; wrote {r['png_files']} PNG files under images/"
                         + (f" ({'; '.join(notes)})" if notes else ""))
        return _show(r, [line], args)
    if args.model is None:
        raise UsageError("compress needs --model (a zoo preset name or a .keras file). "
                         "Received: model=None")
    r = compress(tile_checked(sized_model(args), args.tile), **_data_kwargs(args),
                 bits=args.bits, out=_out_dir(args, "compress"), jpeg=not args.no_jpeg,
                 sweep=not args.no_sweep, sweep_count=args.sweep_count, name=args.name,
                 tile=args.tile)
    return _show(r, summary_lines(r.metrics), args)


def _denoise(args):
    # lazy: the uses load the model, TensorFlow and scikit-learn
    from kerasae.uses import denoise

    r = denoise(sized_model(args), **_data_kwargs(args), clean=args.clean, add_noise=args.add_noise,
                noise_std=args.noise_std, seed=args.seed, out=_out_dir(args, "denoise"))
    return _show(r, ["PSNR dB / SSIM: " + ", ".join(
        f"{k} {v['psnr_db']:.2f} / {v['ssim']:.3f}" for k, v in r["results"].items())]
        if r["results"] else [], args)


def _anomaly(args):
    # lazy: the uses load the model, TensorFlow and scikit-learn
    from kerasae.uses import anomaly

    records = {k: getattr(args, k) for k in ("normal", "window", "stride", "columns", "label",
                                             "time_column", "impute", "contamination", "score")
               if getattr(args, k) is not None}
    if records or args.per_step != "mean":
        records["per_step"] = args.per_step
    r = anomaly(sized_model(args), held_out=args.held_out, dataset=args.dataset,
                train_split=args.train_split, test_split=args.split, resize=args.resize,
                skip_bad=args.skip_bad, max_pixels=args.max_pixels, train=not args.no_train,
                epochs=args.epochs, batch_size=args.batch_size,
                learning_rate=args.learning_rate, threshold=args.threshold,
                train_limit=args.train_limit, limit=args.limit, seed=args.seed,
                out=_out_dir(args, "anomaly"), export=not args.no_export, verbose=args.verbose,
                **records)
    if r.metrics.get("input") in ("records", "series"):
        return _show(r, _records_lines(r), args)
    if r.metrics.get("sweep"):
        lines = [f"{row['held_out_name']}: ROC-AUC {row['roc_auc']:.4f} "
                 f"(PCA {row['pca_roc_auc']:.4f})" for row in r["per_class"]]
    elif not r.metrics.get("labels"):
        t, p = r["test"], r["pca_baseline"]
        corr = p["rank_correlation_with_autoencoder"]
        lines = [f"scored {t['images']} images ({r['scored']}); threshold "
                 f"{r['threshold']['value']:.5f} flags {t['flagged']}; PCA flags "
                 f"{p['flagged']} ({p['flagged_by_both']} in common, rank correlation "
                 f"{'n/a' if corr is None else f'{corr:.3f}'})"]
    else:
        t = r["at_threshold"]
        lines = [f"held out {r['held_out_name']}: ROC-AUC {r['roc_auc']:.4f} "
                 f"(PCA {r['pca_baseline']['roc_auc']:.4f}); threshold "
                 f"{r['threshold']['value']:.5f}: precision {t['precision']:.3f}, "
                 f"recall {t['recall']:.3f}"]
    return _show(r, lines, args)


def _generate(args):
    # lazy: the uses load the model, TensorFlow and scikit-learn
    from kerasae.uses import generate

    r = generate(sized_model(args), **_data_kwargs(args), grid=args.grid, pairs=args.pairs,
                 between=args.between, steps=args.steps, eval_samples=args.eval_samples,
                 arithmetic=None if args.no_arithmetic else (args.arithmetic or "auto"),
                 sampler=args.sampler, seed=args.seed, out=_out_dir(args, "generate"))
    how = r["sampler_chosen_by"] if "sampler_chosen_by" in r else f"--sampler {r['sampler']}"
    lines = [f"samples: codes from {SAMPLED_FROM[r['sampler']]} ({how})"]
    if "samples" in r.metrics:
        fd = r["samples"]["frechet_distance"]
        lines.append(f"Fréchet distance: VAE {fd['vae']:.2f}, PCA-Gaussian "
                     f"{fd['pca_gaussian']:.2f}, real {fd['real_vs_real']:.2f}")
    if "arithmetic" in r.metrics and "judged_as_b" in r["arithmetic"]:
        j = r["arithmetic"]["judged_as_b"]
        lines.append(f"{r['arithmetic']['expression']}: judged {r['arithmetic']['classes']['b']}"
                     f" VAE {j['vae']:.3f}, pixels {j['pixel_arithmetic']:.3f}")
    return _show(r, lines, args)
