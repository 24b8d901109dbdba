"""The `kerasae` command.

    kerasae list                                   registered builders
    kerasae train conv_ae --dataset digits         train, save, picture
    kerasae data prepare fashion_mnist --data-dir D  a TFDS copy from raw files

Other modules add their own sub-commands through `add_cli(subparsers)`.
"""

import argparse
import json
import os
import sys

EXIT_USAGE = 2


def parse_value(text):
    """`--arg key=value` values: JSON if it parses (numbers, lists, null), else a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_kwargs(pairs):
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(
                f"--arg takes key=value, e.g. --arg filters=[32,64]. Received: {pair!r}"
            )
        key, value = pair.split("=", 1)
        out[key.strip().replace("-", "_")] = parse_value(value)
    return out


# --------------------------------------------------------------------- train
def _add_train(sub):
    p = sub.add_parser(
        "train", help="train a builder on a dataset",
        description="Train an autoencoder, save model.keras / best.keras, checkpoints, "
        "history.csv, TensorBoard logs, run.json and reconstructions.png. Rerunning "
        "the same command resumes from the last checkpoint.",
    )
    p.add_argument("builder", help="builder name, see `kerasae list`")
    p.add_argument("--dataset", default="digits",
                   help="TFDS name, 'digits', or a .npz/.npy file (default: digits)")
    p.add_argument("--split", default="train")
    p.add_argument("--validation", default="test",
                   help="validation split, or 'none' (default: test)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128, help="global batch size")
    p.add_argument("--learning-rate", "--lr", type=float, default=1e-3)
    p.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"])
    p.add_argument("--latent-dim", type=int, default=None)
    p.add_argument("--arg", action="append", metavar="KEY=VALUE",
                   help="builder argument, JSON values, e.g. --arg filters=[32,64]")
    p.add_argument("--strategy", default="auto",
                   choices=["auto", "one", "mirrored", "multi_worker"])
    p.add_argument("--num-devices", type=int, default=None,
                   help="logical CPU devices for --strategy mirrored without GPUs")
    p.add_argument("--precision", default="float32",
                   choices=["float32", "mixed_bfloat16", "mixed_float16"])
    p.add_argument("--xla", action="store_true", help="jit_compile the train step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output directory (default: runs/<builder>-<dataset>)")
    p.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    p.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE")
    p.add_argument("--pretrain-epochs", type=int, default=0,
                   help="greedy layer-wise pretraining epochs per layer (stacked builders)")
    p.add_argument("--data-dir", default=None, help="TFDS data directory")
    p.add_argument("--raw-dir", default=None, help="directory of raw IDX files")
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    p.set_defaults(func=_train)


def _train(args):
    import numpy as np

    import kerasae
    from kerasae import data as data_lib
    from kerasae import plots, training

    kwargs = parse_kwargs(args.arg)
    if args.latent_dim is not None:
        kwargs["latent_dim"] = args.latent_dim
    builder = kerasae.get_builder(args.builder)  # fail fast on a bad name
    dataset_tag = os.path.splitext(os.path.basename(str(args.dataset)))[0]
    out = args.out or os.path.join("runs", f"{args.builder}-{dataset_tag}")
    # Devices must be split before any model exists.
    strategy = training.make_strategy(args.strategy, args.num_devices)
    source = data_lib.get_source(args.dataset, args.split, data_dir=args.data_dir,
                                 raw_dir=args.raw_dir)
    validation = None if args.validation.lower() == "none" else args.validation
    if validation and (args.dataset.endswith((".npz", ".npy"))):
        validation = None
    val_source = None
    if validation:
        val_source = data_lib.get_source(args.dataset, validation, data_dir=args.data_dir,
                                         raw_dir=args.raw_dir)
    model = args.builder
    if args.pretrain_epochs:
        kwargs.setdefault("input_shape", source.image_shape)
        model = builder(**kwargs)
        kwargs = None
        resumed = os.path.exists(os.path.join(out, "checkpoints"))
        if resumed and not args.no_resume:
            print("Checkpoints exist: skipping layer-wise pretraining, resuming.")
        else:
            stages = kerasae.pretrain_layerwise(model, source.numpy(), epochs=args.pretrain_epochs,
                                                batch_size=args.batch_size, seed=args.seed,
                                                verbose=min(args.verbose, 2))
            for s in stages:
                print(f"pretrained {s['layer']} ({s['units']} units): loss "
                      + " -> ".join(f"{v:.5f}" for v in s["loss"]))
    result = training.fit(
        model, source, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, lr_schedule=args.lr_schedule,
        validation=val_source, strategy=strategy,
        seed=args.seed, precision=args.precision, jit_compile=args.xla, out_dir=out,
        resume=not args.no_resume, early_stopping=args.early_stopping,
        builder_kwargs=kwargs or None, steps_per_epoch=args.steps_per_epoch,
        verbose=args.verbose,
    )
    if training.worker_info(strategy)[1]:
        shown = (val_source or source).numpy()[:10]
        # A direct call, not predict(): under multi-worker, predict() would start
        # collectives with workers that have already finished.
        recon = np.asarray(result.model(shown, training=False))
        png = plots.reconstructions(
            shown, recon, os.path.join(out, "reconstructions.png"),
            title=f"{args.builder} on {dataset_tag}: originals (top) vs reconstructions",
        )
        final = {k: round(v, 6) for k, v in result.run["final"].items()
                 if isinstance(v, float) and "loss" in k}
        print(f"model: {os.path.join(out, 'model.keras')}\npicture: {png}\nfinal: {final}")
    return 0


# ---------------------------------------------------------------------- misc
def _add_list(sub):
    p = sub.add_parser("list", help="list registered builders")
    p.set_defaults(func=_list)


def _list(args):
    import kerasae

    for name in kerasae.list_builders():
        doc = (kerasae.get_builder(name).__doc__ or "").strip().splitlines()[0]
        print(f"{name:22s} {doc}")
    return 0


def _add_data(sub):
    p = sub.add_parser("data", help="dataset utilities")
    dsub = p.add_subparsers(dest="data_command", required=True)
    prep = dsub.add_parser(
        "prepare", help="build a TFDS copy of mnist / fashion_mnist from raw IDX files"
    )
    prep.add_argument("name", choices=["fashion_mnist", "mnist"])
    prep.add_argument("--data-dir", required=True, help="TFDS data directory to write")
    prep.add_argument("--raw-dir", default=None)
    prep.set_defaults(func=_data_prepare)


def _data_prepare(args):
    from kerasae import data as data_lib

    builder = data_lib.prepare_tfds_from_raw(args.name, args.data_dir, args.raw_dir)
    print(f"prepared {args.name} in {builder.data_dir}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kerasae", description="Autoencoders for Keras 3: train, export, zoo."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_list(sub)
    _add_train(sub)
    _add_data(sub)
    for module in _command_modules():
        if hasattr(module, "add_cli"):
            module.add_cli(sub)
    return parser


def _command_modules():
    import importlib

    modules = []
    for name in ("kerasae.export", "kerasae.zoo", "kerasae.uses", "kerasae.bench"):
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as e:
            if e.name != name:  # a real missing dependency inside the module
                raise
    return modules


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import kerasae  # noqa: F401
    except ImportError as e:
        print(f"kerasae: {e}", file=sys.stderr)
        return 1
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as e:
        print(f"kerasae {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
