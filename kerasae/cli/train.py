"""`kerasae train` (a builder on a dataset) and `kerasae list` (the builders)."""

import os

from kerasae._util import signals
from kerasae._util.errors import InvalidValue
from kerasae._util.files import check_writable
from kerasae.cli.args import parse_kwargs, table_options
from kerasae.cli.errors import UsageError, max_pixels_option
from kerasae.data.image_options import COLOR_MODES, RESIZE_MODES
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
                   help="a folder of images (flat, class folders, or train/ + test/), a "
                   ".npz/.npy file, a .csv file (a table, or a series with --window), "
                   "'digits', or a TFDS name (default: digits)")
    p.add_argument("--split", default="train")
    p.add_argument("--validation", default="auto",
                   help="a split of the dataset (test), a fraction to hold out (0.1), a "
                   "dataset path, 'auto' (the test split where there is one) or 'none' "
                   "(default: auto)")
    p.add_argument("--image-size", default=None, metavar="SIZE",
                   help="size images to SIZE (64, or 64x48 height x width); without it "
                   "all images of a folder must have one size")
    p.add_argument("--color-mode", default=None, choices=sorted(COLOR_MODES),
                   help="channels of folder images (default: grayscale if every file is)")
    p.add_argument("--resize", default="crop", choices=RESIZE_MODES,
                   help="how images not of --image-size are sized: center crop (default), "
                   "pad or stretch")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="keep the decoded, sized images of a folder in DIR (memory-mapped), "
                   "so later epochs and runs read no image files")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out image files that do not decode (counted), instead of failing")
    max_pixels_option(p)
    table_options(p)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128, help="global batch size")
    p.add_argument("--learning-rate", "--lr", type=float, default=None,
                   help="default: 1e-3, or the fine-tune rate of the --weights preset's "
                        "recipe (tae_flux2: 1e-5)")
    p.add_argument("--lr-schedule", default="constant", choices=LR_SCHEDULES)
    p.add_argument("--latent-dim", type=int, default=None,
                   help="code size (default: the builder's own)")
    p.add_argument("--weights", default=None, metavar="PRESET_OR_FILE",
                   help="fine-tune: start from a zoo preset (e.g. conv_ae_fashion_mnist) or a "
                   ".keras / .weights.h5 file. The builder arguments its weights were trained "
                   "with are used; --arg may change only those that hold no weights "
                   "(corruption, corruption_amount, beta, reconstruction, sparsity_*). "
                   "Folder images are sized to its input unless --image-size is given")
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
    signals.hold()  # all said
    return 0


def _size_to_start_point(args):
    """A folder is read at the input size of the weights fine-tuned (unless sized by hand).
    Returns the resolved weights, which the builder takes as they are (resolved once)."""
    from kerasae.models.resolve import resolve_weights  # lazy: loads Keras

    start = resolve_weights(args.weights)
    shape = start.input_shape
    if args.image_size is not None or not os.path.isdir(os.path.expanduser(str(args.dataset))) \
            or not shape or len(shape) != 3:
        return start
    open_size = None in tuple(shape[:2])  # a model of any size: the images keep theirs
    if not open_size:
        args.image_size = f"{shape[0]}x{shape[1]}"
    mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(shape[2])
    if args.color_mode is None and mode:
        args.color_mode = mode
    if args.verbose:
        size = "at their own size" if open_size else f"as {shape[0]}x{shape[1]}"
        print(f"Reading {args.dataset!r} {size}, {args.color_mode}, the input of "
              f"{start.label} (--image-size / --color-mode to choose).")
    return start


def _train(args):
    # lazy: models and training load TensorFlow
    from kerasae.models import get_builder
    from kerasae.training import strategy as strategies

    kwargs = parse_kwargs(args.arg)
    if args.latent_dim is not None:
        kwargs["latent_dim"] = args.latent_dim
    try:
        get_builder(args.builder)  # fail fast on a bad name
    except InvalidValue as e:
        raise UsageError(str(e)) from None
    if args.weights is not None:
        kwargs["weights"] = _size_to_start_point(args)
    tag = os.path.splitext(os.path.basename(os.path.normpath(str(args.dataset))))[0]
    out = args.out or os.path.join("runs", f"{args.builder}-{tag}")
    check_writable(out, "--out")  # before any work: nothing is written if it cannot be
    # Devices must be split before any model exists.
    strategy = strategies.make_strategy(args.strategy, args.num_devices)
    return _train_in(args, kwargs, strategy, out)


def _train_in(args, kwargs, strategy, out):
    # lazy: training loads TensorFlow
    from kerasae.training import strategy as strategies
    from kerasae.training.train import fit

    # fit resolves --dataset once and holds --out from before the pretraining until
    # reconstructions.png is drawn.
    result = fit(
        args.builder, args.dataset, split=args.split, validation=args.validation,
        image_size=args.image_size, color_mode=args.color_mode, resize=args.resize,
        cache=args.cache, skip_bad=args.skip_bad, max_pixels=args.max_pixels,
        columns=args.columns, label=args.label, time_column=args.time_column,
        window=args.window, stride=args.stride, impute=args.impute,
        data_dir=args.data_dir, raw_dir=args.raw_dir, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate,
        lr_schedule=args.lr_schedule, strategy=strategy, seed=args.seed,
        precision=args.precision, jit_compile=args.xla, out_dir=out,
        resume=not args.no_resume, early_stopping=args.early_stopping,
        pretrain_epochs=args.pretrain_epochs, builder_kwargs=kwargs or None,
        steps_per_epoch=args.steps_per_epoch, verbose=args.verbose,
    )
    signals.hold()  # the run is written whole: a SIGTERM now only says it came too late
    if strategies.worker_info(strategy)[1]:
        # Flat vectors (a dense model's (n, D) data) have no picture to draw.
        png = result.picture or "none (the data are not images)"
        final = {k: round(v, 6) for k, v in result.run["final"].items()
                 if isinstance(v, float) and "loss" in k}
        print(f"model: {os.path.join(out, 'model.keras')}\npicture: {png}\nfinal: {final}")
    return 0
