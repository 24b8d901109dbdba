"""The `kerasae` command: argparse only, one module per command group.

    kerasae list | train                       builders, training (`train`)
    kerasae data prepare                       a TFDS copy from raw files (`data`)
    kerasae zoo list | info | pull | evaluate  presets (`zoo`)
    kerasae export                             deployment directories (`export`)
    kerasae features | reduce | compress | denoise | anomaly | generate   the uses (`uses`)

Choices come from the library's own constants; every command imports the
library only when it runs, so `kerasae --help` costs no TensorFlow import.
An error kerasae raises on purpose (`KerasaeError`: the message says what to
fix) is one line on stderr; anything else is a bug and keeps its traceback.
"""

import argparse
import os
import sys

from kerasae._util.errors import KerasaeError, MissingDependency
from kerasae._util.names import did_you_mean
from kerasae._util.versions import __version__
from kerasae.cli import data, export, train, uses, zoo

EXIT_ERROR = 1
EXIT_USAGE = 2
COMMAND_GROUPS = (train, data, export, zoo, uses)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse lists the valid commands; name the closest one too.
        if "invalid choice: '" in message:
            wrong = message.split("invalid choice: '", 1)[1].split("'", 1)[0]
            choices = [c.strip(" '") for c in message.split("choose from", 1)[-1]
                       .strip(" ()").split(",")]
            message += f". {did_you_mean(wrong, choices)}".rstrip(". ")
        super().error(message)


def build_parser():
    parser = _Parser(
        prog="kerasae", description="Autoencoders for Keras 3: train, export, zoo."
    )
    parser.add_argument("--version", action="version", version=f"kerasae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except MissingDependency as e:
        print(f"kerasae: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KerasaeError as e:
        print(f"kerasae {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
