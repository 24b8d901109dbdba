"""`kerasae train` (a builder on a dataset) and `kerasae list` (the builders)."""

import os

import numpy as np

from kerasae import data as data_lib
from kerasae import plots
from kerasae.cli.args import parse_kwargs
from kerasae.training.options import LR_SCHEDULES, PRECISIONS, STRATEGIES, VERBOSITY


def add_parsers(sub):
    p = sub.add_parser("list", help="list registered builders")
    p.set_defaults(func=_list)
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
    p.add_argument("--lr-schedule", default="constant", choices=LR_SCHEDULES)
    p.add_argument("--latent-dim", type=int, default=None)
    p.add_argument("--arg", action="append", metavar="KEY=VALUE",
                   help="builder argument, JSON values, e.g. --arg filters=[32,64]")
    p.add_argument("--strategy", default="auto", choices=STRATEGIES)
    p.add_argument("--num-devices", type=int, default=None,
                   help="logical CPU devices for --strategy mirrored without GPUs")
    p.add_argument("--precision", default="float32", choices=PRECISIONS)
    p.add_argument("--xla", action="store_true", help="jit_compile the train step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None,
                   help="output directory (default: runs/<builder>-<dataset>)")
    p.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    p.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE")
    p.add_argument("--pretrain-epochs", type=int, default=0,
                   help="greedy layer-wise pretraining epochs per layer (stacked builders)")
    p.add_argument("--data-dir", default=None, help="TFDS data directory")
    p.add_argument("--raw-dir", default=None, help="directory of raw IDX files")
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--verbose", type=int, default=1, choices=VERBOSITY)
    p.set_defaults(func=_train)


def _list(args):
    # lazy: the builders load Keras and TensorFlow
    from kerasae.models import get_builder, list_builders

    for name in list_builders():
        doc = (get_builder(name).__doc__ or "").strip().splitlines()[0]
        print(f"{name:22s} {doc}")
    return 0


def _pretrain(model, source, args, out):
    # lazy: the builders load Keras and TensorFlow
    from kerasae.models import pretrain_layerwise

    if os.path.exists(os.path.join(out, "checkpoints")) and not args.no_resume:
        print("Checkpoints exist: skipping layer-wise pretraining, resuming.")
        return
    stages = pretrain_layerwise(model, source.numpy(), epochs=args.pretrain_epochs,
                                batch_size=args.batch_size, seed=args.seed,
                                verbose=min(args.verbose, 2))
    for s in stages:
        print(f"pretrained {s['layer']} ({s['units']} units): loss "
              + " -> ".join(f"{v:.5f}" for v in s["loss"]))


def _picture(result, source, val_source, args, out, tag):
    shown = (val_source or source).numpy()[:10]
    # A direct call, not predict(): under multi-worker, predict() would start
    # collectives with workers that have already finished.
    recon = np.asarray(result.model(shown, training=False))
    return plots.reconstructions(
        shown, recon, os.path.join(out, "reconstructions.png"),
        title=f"{args.builder} on {tag}: originals (top) vs reconstructions",
    )


def _train(args):
    # lazy: models and training load TensorFlow
    from kerasae.models import get_builder
    from kerasae.training import strategy as strategies
    from kerasae.training.train import fit

    kwargs = parse_kwargs(args.arg)
    if args.latent_dim is not None:
        kwargs["latent_dim"] = args.latent_dim
    builder = get_builder(args.builder)  # fail fast on a bad name
    tag = os.path.splitext(os.path.basename(str(args.dataset)))[0]
    out = args.out or os.path.join("runs", f"{args.builder}-{tag}")
    # Devices must be split before any model exists.
    strategy = strategies.make_strategy(args.strategy, args.num_devices)
    source = data_lib.get_source(args.dataset, args.split, data_dir=args.data_dir,
                                 raw_dir=args.raw_dir)
    val_source = data_lib.validation_source(source, args.validation, data_dir=args.data_dir,
                                            raw_dir=args.raw_dir)
    model = args.builder
    if args.pretrain_epochs:
        kwargs.setdefault("input_shape", source.image_shape)
        model = builder(**kwargs)
        kwargs = None
        _pretrain(model, source, args, out)
    result = fit(
        model, source, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, lr_schedule=args.lr_schedule,
        validation=val_source, strategy=strategy,
        seed=args.seed, precision=args.precision, jit_compile=args.xla, out_dir=out,
        resume=not args.no_resume, early_stopping=args.early_stopping,
        builder_kwargs=kwargs or None, steps_per_epoch=args.steps_per_epoch,
        verbose=args.verbose,
    )
    if strategies.worker_info(strategy)[1]:
        png = _picture(result, source, val_source, args, out, tag)
        final = {k: round(v, 6) for k, v in result.run["final"].items()
                 if isinstance(v, float) and "loss" in k}
        print(f"model: {os.path.join(out, 'model.keras')}\npicture: {png}\nfinal: {final}")
    return 0
