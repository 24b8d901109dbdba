"""The command line's one error path: an expected failure is one line with the fix.

kerasae's own errors (`KerasaeError`) already say what to fix; the operating
system's and TensorFlow's expected failures (a full disk, a folder that cannot be
written, memory running out) get a line that says what to do. Anything else is a
bug and keeps its traceback. `--debug` (or `KERASAE_DEBUG=1`) shows every
traceback.
"""

import errno
import re
import sys

from kerasae._util.errors import KerasaeError, MissingDependency

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM


class UsageError(KerasaeError, ValueError):
    """The command line itself is wrong (a name or a flag's value); exit code 2."""


def _os_message(e):
    where = f" ({e.filename})" if getattr(e, "filename", None) else ""
    if e.errno == errno.ENOSPC:
        return (f"the disk is full{where}. Free some space and rerun the same command: a "
                "training run resumes from its last checkpoint, and nothing was half-written.")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"{e.strerror}{where}. Pick a folder you can write to (--out), or fix its "
                "permissions.")
    if e.errno == errno.ENOENT:
        return f"{e.strerror}{where}. Check the path."
    return f"{e.strerror or e}{where}."


def _tf_message(e):
    import tensorflow as tf

    lines = (e.message or str(e)).strip().splitlines()
    first = lines[0][:300] if lines else type(e).__name__
    if first.rstrip(":. ") == "Graph execution error":
        # A Python function inside the graph (a file reader) failed: its own last line
        # ("DataError: ...") says what happened.
        said = [ln.strip() for ln in lines if re.match(r"\s*[\w.]+(Error|Exception|File): ", ln)]
        first = said[-1][:300] if said else first
    if isinstance(e, tf.errors.ResourceExhaustedError):
        return (f"out of memory in TensorFlow ({first}). Lower --batch-size (or --image-size) "
                "and rerun.")
    return f"TensorFlow failed: {first}. Rerun with --debug for the whole traceback."


def explain(error):
    """`(one line, exit code)` for an expected failure, or `None` for a bug."""
    if isinstance(error, MissingDependency):
        return str(error), EXIT_ERROR
    if isinstance(error, KerasaeError):
        return str(error), EXIT_USAGE if isinstance(error, UsageError) else EXIT_ERROR
    if isinstance(error, MemoryError):
        return ("out of memory. Lower --batch-size, read large data by batches (a folder or "
                "a .npy file rather than a .npz), and rerun."), EXIT_ERROR
    if isinstance(error, OSError) and error.errno is not None:
        return _os_message(error), EXIT_ERROR
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(error, tf.errors.OpError):
        return _tf_message(error), EXIT_ERROR
    return None


def _pixels(text):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 1 or value == float("inf"):
        import argparse  # lazy: only a wrong --max-pixels needs it

        raise argparse.ArgumentTypeError(
            f"a number of pixels such as 200000000 (or 2e8). Received: --max-pixels={text!r}")
    return int(value)


def max_pixels_option(parser):
    """`--max-pixels N`: the largest image decoded (the bomb guard of every image reader)."""
    parser.add_argument("--max-pixels", type=_pixels, default=None, metavar="N",
                        help="largest image, in pixels, that is decoded; larger files are "
                        "refused as decompression bombs (default: $KERASAE_MAX_PIXELS, else "
                        "100000000)")
