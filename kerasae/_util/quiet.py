"""TensorFlow's native log lines, kept below warnings unless the user asks for them.

TensorFlow 2.21 logs through absl before absl's logging is initialised, so its
start-up lines ("All log messages before absl::InitializeLog() ...", the oneDNN
note of `port.cc`) reach stderr whatever `TF_CPP_MIN_LOG_LEVEL` says. So,
unless the user set `TF_CPP_MIN_LOG_LEVEL` themselves, `import kerasae`:

- sets it to `2` (TensorFlow's C++ errors only; `0` shows everything again), and
- when TensorFlow is imported later (and while kerasae creates a LiteRT
  interpreter, `held_stderr`), holds stderr (file descriptor 2) for the
  import and passes on every line except TensorFlow's own info and warning
  lines. Errors, Python warnings and everything else still come through.

Nothing happens when the user set the variable, or when TensorFlow was imported
before kerasae.
"""

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile

LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_LEVEL = "2"
# Set beside LEVEL_ENV, so that a subprocess (a worker, a converter) knows the level
# came from kerasae, not from the user, and stays quiet too.
_MARK_ENV = "KERASAE_SET_TF_CPP_MIN_LOG_LEVEL"

# absl's native line: severity and date, time (or seconds since 1970 before absl is
# initialised), thread id, file:line].
_NATIVE = re.compile(rb"^[IW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.\-/]+:\d+\] ")
_ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called"
# LiteRT's own info line, printed once per process when an interpreter applies its
# default CPU delegate.
_LITERT_INFO = b"INFO: Created TensorFlow Lite XNNPACK delegate"
# TensorFlow's once-per-process note, logged as an error, when a oneDNN-rewritable op meets
# an integer, bool or half dtype on a CPU without AVX-512 (it falls back to Eigen: nothing
# is wrong). The upsampling decoder's training step meets it.
_ONEDNN_DTYPE = re.compile(rb"^E\d{4} [^\]]*\] oneDNN supports DT_\w+ only on platforms with "
                           rb"AVX-512")
# Continuation lines of a dropped native line (cpu_feature_guard's second line).
_CONTINUATION = (b"To enable the following instructions", b"rebuild TensorFlow")


def user_level():
    """The user's own `TF_CPP_MIN_LOG_LEVEL`, or `None` if kerasae (or nobody) set it."""
    value = os.environ.get(LEVEL_ENV)
    if value is None or os.environ.get(_MARK_ENV) == value:
        return None
    return value


def native_log_line(line):
    """Whether a stderr line (bytes) is TensorFlow's / absl's own info or warning line."""
    return (bool(_NATIVE.match(line)) or bool(_ONEDNN_DTYPE.match(line))
            or line.startswith((_ABSL_PREAMBLE, _LITERT_INFO)))


def filter_native(data):
    """`data` (bytes) without TensorFlow's info / warning lines."""
    kept, dropped = [], False
    for line in data.splitlines(keepends=True):
        if native_log_line(line):
            dropped = True
            continue
        if dropped and line.lstrip().startswith(_CONTINUATION):
            continue
        dropped = False
        kept.append(line)
    return b"".join(kept)


class _Held:
    """Holds file descriptor 2 in a temporary file; on exit writes it back, filtered."""

    def __enter__(self):
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        try:
            sys.stderr.flush()
        finally:
            os.dup2(self._saved, 2)
            os.close(self._saved)
        self._file.seek(0)
        rest = filter_native(self._file.read())
        self._file.close()
        if rest:
            os.write(2, rest)
        return False


class _Filtered:
    """Passes file descriptor 2 through a pipe, line by line, without TensorFlow's own
    info and warning lines, for as long as it runs (a command's whole run: TensorFlow logs
    while it trains, not only while it is imported)."""

    def __enter__(self):
        import threading

        sys.stderr.flush()
        self._saved = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self._thread = threading.Thread(target=self._pump, args=(read,), daemon=True,
                                        name="kerasae-stderr")
        self._thread.start()
        return self

    def _pump(self, read):
        pending = b""
        try:
            with os.fdopen(read, "rb", buffering=0) as pipe:
                for chunk in iter(lambda: pipe.read(1 << 16), b""):
                    *lines, pending = (pending + chunk).split(b"\n")
                    if lines:
                        kept = filter_native(b"".join(line + b"\n" for line in lines))
                        if kept:
                            os.write(self._saved, kept)
            if pending:
                os.write(self._saved, filter_native(pending))
        except OSError:  # the real stderr is gone: nothing left to write to
            pass

    def __exit__(self, *exc):
        try:
            sys.stderr.flush()
        finally:
            os.dup2(self._saved, 2)  # the pipe's last writer closes: the pump drains it
            self._thread.join(timeout=10)
            os.close(self._saved)
        return False


def _ours():
    """Whether TensorFlow's log level is kerasae's to manage (the user set none)."""
    return _CHOSEN_BY_KERASAE if _CHOSEN_BY_KERASAE is not None else user_level() is None


def filtered_stderr():
    """A context that filters stderr (see `_Filtered`) while it runs; does nothing when the
    user set `TF_CPP_MIN_LOG_LEVEL`."""
    import contextlib

    return _Filtered() if _ours() else contextlib.nullcontext()


# Whether kerasae chose the level (decided once, at `import kerasae`): libraries set
# TF_CPP_MIN_LOG_LEVEL themselves later (tf2onnx sets "3" on import).
_CHOSEN_BY_KERASAE = None


def held_stderr():
    """A context that keeps native info lines (TensorFlow's, LiteRT's) of the code it
    runs off stderr; does nothing when the user set `TF_CPP_MIN_LOG_LEVEL`."""
    import contextlib

    return _Held() if _ours() else contextlib.nullcontext()


class _QuietLoader:
    """Runs the real loader of `tensorflow` with stderr held (see `_Held`)."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, attr):  # everything else is the real loader's
        return getattr(self._loader, attr)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        _remove_finders()  # one shot: TensorFlow is imported once
        with _Held():
            self._loader.exec_module(module)


def _remove_finders():
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietFinder)]


class _QuietFinder(importlib.abc.MetaPathFinder):
    # It stays in sys.meta_path until TensorFlow is executed: a find_spec() alone
    # (importlib.util.find_spec, as the backend check does) imports nothing.
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow():
    """Keeps TensorFlow's native info and warning lines off stderr (see the module
    docstring); a no-op when the user set `TF_CPP_MIN_LOG_LEVEL`."""
    global _CHOSEN_BY_KERASAE
    if _CHOSEN_BY_KERASAE is None:
        _CHOSEN_BY_KERASAE = user_level() is None
    if user_level() is not None:
        return
    os.environ[LEVEL_ENV] = os.environ[_MARK_ENV] = DEFAULT_LEVEL
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())
