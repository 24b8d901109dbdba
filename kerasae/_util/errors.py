"""The errors kerasae raises for bad input or missing resources.

Each one subclasses the builtin a caller would expect (`ValueError` for a bad
value, `TypeError` for a wrong type, `FileNotFoundError` for a missing file...)
and `KerasaeError`, so that the command line can tell an error whose message
already says what to fix (one line, no traceback) from a bug (a traceback).
"""


class KerasaeError(Exception):
    """Base of every error kerasae raises on purpose; its message says how to fix it."""


class InvalidValue(KerasaeError, ValueError):
    """An argument or a piece of data has a value kerasae cannot use."""


class InvalidType(KerasaeError, TypeError):
    """An argument has a type kerasae cannot use."""


class MissingFile(KerasaeError, FileNotFoundError):
    """A file or directory that was named does not exist."""


class PathExists(KerasaeError, FileExistsError):
    """An output path exists and is not replaced."""


class NotADirectory(KerasaeError, NotADirectoryError):
    """A path that must be a directory (or lead to one) is a file."""


class NotWritable(KerasaeError, PermissionError):
    """An output path cannot be written (permissions, a read-only file system)."""


class MissingDependency(KerasaeError, ImportError):
    """An optional dependency is not installed; the message names the install command."""


class NeedsTensorFlow(KerasaeError, RuntimeError):
    """A part of kerasae that runs on TensorFlow only (tf.distribute, tf.data, the
    exporters) was called under another Keras backend; the message says what works."""
