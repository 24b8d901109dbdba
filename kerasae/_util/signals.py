"""SIGTERM for the command line: raised where Python is, and remembered until acted on.

The command line's handler raises `Terminated` wherever Python happens to be, so
that the command unwinds and cleans up as after Ctrl-C. Python swallows an
exception raised inside a garbage-collector callback or a `__del__` (it prints
"Exception ignored in ..." and goes on): there the signal would be lost and the
command would run to its end with exit code 0. So the handler also records the
signal, and the safe points (a cache's block loop, the start of a training run,
the command's end) act on the record with `raise_if_terminated`.
"""

import sys

_pending = [False]
_held = [False]  # the command's work is done: a SIGTERM is recorded, not raised


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while kerasae's command line ran (outside a training loop, which
    stops at a safe point instead)."""

    cause = "SIGTERM"


def raise_terminated(signum, frame):
    """The command line's SIGTERM handler: stop as Ctrl-C stops, with its own exit code."""
    _pending[0] = True
    if not _held[0]:
        raise Terminated("stopped by SIGTERM")


def hold(held=True):
    """From now on (`held`) a SIGTERM is only recorded: the command's work is done and
    written, so it finishes what it prints and says at its end that the signal came too
    late. `hold(False)` when the command returns."""
    _held[0] = bool(held)


def terminated():
    """Whether a SIGTERM arrived that nothing has acted on yet."""
    return _pending[0]


def raise_if_terminated():
    """A safe point: raises `Terminated` if a SIGTERM arrived and its own raise was lost."""
    if _pending[0]:
        raise Terminated("stopped by SIGTERM")


def acted_on():
    """The SIGTERM recorded has been acted on (its `Terminated` was caught)."""
    _pending[0] = False


def lost_raises_are_quiet():
    """Installs an unraisable-exception hook that drops the `Terminated` Python could not
    raise (the record acts on it at the next safe point) and passes anything else on."""
    previous = sys.unraisablehook

    def hook(unraisable):
        if not isinstance(unraisable.exc_value, Terminated):
            previous(unraisable)

    sys.unraisablehook = hook
    return previous
