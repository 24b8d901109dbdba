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
