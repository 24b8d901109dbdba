"""Ctrl-C during training stops the run between two compiled calls, never inside one.

A `KeyboardInterrupt` raised wherever Python happens to be when SIGINT arrives
can land inside TensorFlow's own Python code (a function call's bookkeeping, a
checkpoint write, the input pipeline), and the process may then crash or hang
on its way out. While a `StopOnInterrupt` is active, the first Ctrl-C only sets
a flag; the training loop looks at it between compiled calls and stops there
with `TrainingInterrupted` (a `KeyboardInterrupt`), so the files of the run are
those of the last finished epoch. A second Ctrl-C raises `KeyboardInterrupt` as
soon as Python runs again (Python cannot act inside a running compiled call).
"""

import os
import signal
import threading


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped by Ctrl-C; the last checkpoint holds the epochs finished."""


class StopOnInterrupt:
    """`with StopOnInterrupt() as stop:` and `stop.check(lambda: message)` in the loop.

    Only the main thread can receive signals, and a SIGINT handler that the
    caller installed is left alone: there, and in other threads, `check` never
    raises and Ctrl-C behaves as it would without kerasae.
    """

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        self.requested = False
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        # os.write, not print: a handler may run in the middle of another print.
        os.write(2, b"\nCtrl-C: training stops once the running steps are done "
                    b"(Ctrl-C again interrupts at once)\n")

    def check(self, message):
        """Raises `TrainingInterrupted(message())` once Ctrl-C was pressed."""
        if self.requested:
            raise TrainingInterrupted(message())
