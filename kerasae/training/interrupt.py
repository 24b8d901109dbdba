"""Ctrl-C during training stops the run between two compiled calls, never inside one.

A `KeyboardInterrupt` raised wherever Python happens to be when SIGINT arrives
can land inside TensorFlow's own Python code (a function call's bookkeeping, a
checkpoint write, the input pipeline), and the process may then crash or hang
on its way out. While a `StopOnInterrupt` is active, the first Ctrl-C only sets
a flag; the training loop looks at it between compiled calls and stops there
with `TrainingInterrupted` (a `KeyboardInterrupt`), so the files of the run are
those of the last finished epoch. A second Ctrl-C raises `KeyboardInterrupt` as
soon as Python runs again (Python cannot act inside a running compiled call).
SIGTERM (`kill`, `timeout`, a container being stopped) is handled the same way,
so a terminated run also ends at a safe point and says so in `run.json`.
"""

import os
import signal
import threading

from kerasae._util import signals
from kerasae._util.signals import Terminated, raise_terminated  # noqa: F401 - their home


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped by Ctrl-C (or SIGTERM: `cause`); the last checkpoint holds the
    epochs finished."""

    cause = "Ctrl-C"


class StopOnInterrupt:
    """`with StopOnInterrupt() as stop:` and `stop.check(lambda: message)` in the loop.

    Only the main thread can receive signals, and a SIGINT handler that the
    caller installed is left alone: there, and in other threads, `check` never
    raises and Ctrl-C behaves as it would without kerasae.
    """

    # The handlers taken over: only Python's defaults (and the command line's SIGTERM
    # handler), never a caller's own.
    _DEFAULTS = {signal.SIGINT: (signal.default_int_handler,),
                 signal.SIGTERM: (signal.SIG_DFL, raise_terminated)}
    _NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}

    def __init__(self):
        self.requested = False
        self.cause = "Ctrl-C"
        self._previous = {}

    def __enter__(self):
        self.requested, self.cause = False, "Ctrl-C"
        if signals.terminated():
            # A SIGTERM whose raise Python swallowed (it landed in a garbage-collector
            # callback): the run stops at its first safe point.
            signals.acted_on()
            self.requested, self.cause = True, "SIGTERM"
        if threading.current_thread() is threading.main_thread():
            for sig, defaults in self._DEFAULTS.items():
                if signal.getsignal(sig) in defaults:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
        return False

    def _handle(self, signum, frame):
        if self.requested:
            raise Terminated("stopped by SIGTERM") if signum == signal.SIGTERM \
                else KeyboardInterrupt
        self.requested, self.cause = True, self._NAMES.get(signum, "a signal")
        # os.write, not print: a handler may run in the middle of another print.
        os.write(2, f"\n{self.cause}: training stops once the running steps are done "
                    f"({self.cause} again interrupts at once)\n".encode())

    def check(self, message):
        """Raises `TrainingInterrupted(message())` once Ctrl-C was pressed."""
        if self.requested:
            stopped = TrainingInterrupted(message())
            stopped.cause = self.cause
            raise stopped
