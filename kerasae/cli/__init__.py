"""The `kerasae` command: argparse only, one module per command group.

    kerasae list | train                       builders, training (`train`)
    kerasae data prepare                       a TFDS copy from raw files (`data`)
    kerasae zoo list | info | pull | evaluate  presets (`zoo`)
    kerasae export                             deployment directories (`export`)
    kerasae features | reduce | compress | denoise | anomaly | generate   the uses (`uses`)
    kerasae colorize                           grey photos to colour, or --train (`colorize`)

Choices come from the library's own constants; every command imports the
library only when it runs, so `kerasae --help` costs no TensorFlow import.
An expected failure is one line on stderr with the fix and exit code 1 (2 for a
wrong command line, 130 for Ctrl-C); anything else is a bug and keeps its
traceback (see `kerasae.cli.errors`).
"""

import argparse
import contextlib
import os
import signal
import sys
import threading

from kerasae._util import quiet
from kerasae._util.names import did_you_mean
from kerasae._util.versions import __version__
from kerasae.cli import colorize, data, export, train, uses, zoo
from kerasae.cli.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, explain
from kerasae.data.image_options import MAX_PIXELS_ENV
from kerasae._util import signals
from kerasae._util.signals import raise_terminated

COMMAND_GROUPS = (train, data, export, zoo, uses, colorize)
DEBUG_ENV = "KERASAE_DEBUG"


class _Defaults(argparse.HelpFormatter):
    """Every option's default in `--help`, where it has one that says something (not
    None or False) and its help does not already say it."""

    def _get_help_string(self, action):
        text = action.help or ""
        return f"{text} (default: %(default)s)".lstrip() if _says_default(action, text) \
            else text


def _says_default(action, text):
    default = action.default
    return not ("default" in text or default is None or default is False
                or default == argparse.SUPPRESS
                or not action.option_strings or isinstance(default, (list, tuple)))


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Defaults)  # sub-commands' parsers too
        super().__init__(*args, **kwargs)

    def _add_action(self, action):
        if not action.help and _says_default(action, ""):  # argparse shows no line otherwise
            action.help = "(default: %(default)s)"
        return super()._add_action(action)

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
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of any error (also ${DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_parsers(sub)
    return parser


def _with_env(args):
    """What a command's options set in the environment, while it runs: `--max-pixels`
    is `$KERASAE_MAX_PIXELS` (every image reader looks it up)."""
    value = getattr(args, "max_pixels", None)
    return {} if value is None else {MAX_PIXELS_ENV: str(value)}


def _run(args):
    env = _with_env(args)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return args.func(args) or 0
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _on_sigterm():
    """SIGTERM (`kill`, `timeout`, a container stopping) stops a command as Ctrl-C does,
    cleaning up on the way out; `None` where the caller has its own handler."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None
    return signal.signal(signal.SIGTERM, raise_terminated)


def _interruption(error):
    """The Ctrl-C or SIGTERM an error was raised while handling, if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _interrupted(args, e):
    # Training says where it stopped and what was kept (kerasae.training.interrupt).
    said = str(e) or ("rerunning the same command resumes from the last finished "
                      "epoch, if one was saved." if args.command == "train" else "stopped.")
    print(f"kerasae {args.command}: interrupted: {said}", file=sys.stderr)
    return EXIT_TERMINATED if getattr(e, "cause", None) == "SIGTERM" else EXIT_INTERRUPTED


def _late(args, e, code):
    """An interrupt acted on only after the command had done its work (its output is
    whole): it arrived as the command ended, or Python swallowed its raise."""
    what = "SIGTERM" if getattr(e, "cause", None) == "SIGTERM" else "Ctrl-C"
    print(f"kerasae {args.command}: {what} came too late to stop the command: it ran to "
          f"its end (exit {code} without it) and its output is whole.", file=sys.stderr)
    return EXIT_TERMINATED if what == "SIGTERM" else EXIT_INTERRUPTED


def main(argv=None):
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    previous = _on_sigterm()
    if previous is not None and argv is None:
        signals.lost_raises_are_quiet()
    code = None
    try:
        # The command line's own process: TensorFlow's notes while it runs are filtered
        # too (in-process calls, `main([...])`, leave the caller's stderr alone).
        with quiet.filtered_stderr() if argv is None else contextlib.nullcontext():
            code = _run(args)
        signals.raise_if_terminated()  # a SIGTERM whose raise Python swallowed
        return code
    except KeyboardInterrupt as e:
        signals.acted_on()
        if argv is None:
            # The program is ending: another Ctrl-C would only interrupt its clean-up.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            previous = None
        if debug:
            raise
        if code is not None:  # too late to stop anything: say so, not "stopped"
            return _late(args, e, code)
        return _interrupted(args, e)
    except Exception as e:  # noqa: BLE001 - sorted below: expected failures or bugs
        signals.acted_on()
        cause = _interruption(e)
        if cause is not None and not debug:
            # The interrupt landed inside a library (TensorFlow tracing a tf.data
            # function), which raised an error of its own while unwinding: an interrupt.
            return _interrupted(args, cause)
        explained = None if debug else explain(e)
        if explained is None:
            raise
        message, code = explained
        print(f"kerasae {args.command}: error: {message}", file=sys.stderr)
        return code
    finally:
        signals.hold(False)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
