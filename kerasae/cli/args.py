"""Arguments shared by several commands: `--arg key=value` builder arguments, the options
of tables and series."""

import argparse
import json

from kerasae.cli.errors import UsageError
from kerasae.data.tables import IMPUTE


def parse_value(text):
    """`--arg key=value` values: JSON if it parses (numbers, lists, null), else a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_kwargs(pairs):
    """`["filters=[32,64]", "latent-dim=8"]` -> `{"filters": [32, 64], "latent_dim": 8}`."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UsageError(
                f"--arg takes key=value, e.g. --arg filters=[32,64]. Received: {pair!r}"
            )
        key, value = pair.split("=", 1)
        out[key.strip().replace("-", "_")] = parse_value(value)
    return out


def columns_arg(text):
    """`a,b,c` -> the column names (or indices) of a table."""
    names = [c.strip() for c in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"--columns is a list of column names or indices "
                                         f"separated by commas, e.g. a,b,c. Received: {text!r}")
    return names


def table_options(p):
    """The options of tables (`.csv` files, arrays) and series."""
    p.add_argument("--columns", type=columns_arg, default=None, metavar="A,B,C",
                   help="the feature (or channel) columns of a table or series, names or "
                   "indices (default: every numeric column but the label and time columns)")
    p.add_argument("--label", default=None, metavar="COL",
                   help="the label column of a table or series (name or index)")
    p.add_argument("--time-column", default=None, metavar="COL",
                   help="the time column (default: one named timestamp, time, date or "
                   "datetime)")
    p.add_argument("--window", type=int, default=None, metavar="N",
                   help="cut a series (.csv, (T, C) array) into windows of N steps "
                   "(default for a series model: its input length)")
    p.add_argument("--stride", type=int, default=None, metavar="N",
                   help="steps between two windows (default: 1)")
    p.add_argument("--impute", default=None, choices=IMPUTE,
                   help="fill missing cells (empty, NA, NaN, inf) with the column's mean, "
                   "median or zero (default: refuse them, naming the row and column)")


def sized_model(args):
    """`--model`, or with `--image-size` the model of any size it names, fixed to that
    size (the same weights: a fully convolutional model fits every size)."""
    if getattr(args, "image_size", None) is None or args.model is None:
        return args.model
    # lazy: resolving a model loads Keras
    from kerasae.data.image_options import parse_image_size
    from kerasae.models.resolve import resolve_model

    ref = resolve_model(args.model)
    shape = tuple(ref.model.image_shape)
    if len(shape) != 3 or None not in shape[:2]:
        raise UsageError(
            f"--image-size applies to a model of any size; {args.model} takes images of "
            f"{'x'.join(map(str, shape[:2]))} already (folder images are read at that size, "
            f"by --resize). Received: --image-size {args.image_size}")
    try:
        size = parse_image_size(args.image_size)
    except ValueError as e:
        raise UsageError(str(e)) from None
    ref.at_size((*size, shape[2]))
    return ref


def tile_checked(model, tile):
    """The model, resolved, once `--tile` was checked against it: a tile the model cannot
    take is an argument error (exit 2, as --image-size's), before any image is read."""
    if tile is None:
        return model
    # lazy: resolving a model loads Keras
    from kerasae.models.resolve import resolve_model
    from kerasae.models.tiles import check_tiling
    from kerasae.uses._compress_sizes import check_tile

    ref = resolve_model(model)
    try:
        check_tile(ref, tile)
        check_tiling(tile, None, ref.of_any_size().model.factor)
    except ValueError as e:
        raise UsageError(f"--tile: {e}") from None
    return ref
