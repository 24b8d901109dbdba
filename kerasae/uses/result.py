"""What a use returns (`Result`) and writes (`Output`: all or nothing)."""

import dataclasses
import json
import math
import os
import shutil

import numpy as np

from kerasae._util.errors import InvalidValue
from kerasae._util.files import (check_writable, disk_full_error, is_disk_full, remove_stale,
                                 stage_prefix)


@dataclasses.dataclass
class Result:
    """What a use returns: JSON-able `metrics`, numpy `arrays`, and the `files` it wrote.

    `result["key"]` reads `result.metrics["key"]` and `"key" in result` asks it.
    """

    use: str
    metrics: dict
    arrays: dict = dataclasses.field(default_factory=dict)
    files: list = dataclasses.field(default_factory=list)
    model: object = None

    def __getitem__(self, key):
        return self.metrics[key]

    def __contains__(self, key):  # without it, `in` would index with 0, 1, ...
        return key in self.metrics

    def __repr__(self):
        files = ", ".join(os.path.basename(f) for f in self.files) or "none"
        return f"Result(use={self.use!r}, metrics={list(self.metrics)}, files=[{files}])"


def skip(metrics, part, reason):
    """Records in `metrics["skipped"]` that `part` of a use was left out, and why
    (the commands print one line per entry)."""
    metrics.setdefault("skipped", {})[part] = reason


def jsonable(value):
    """Numpy scalars and arrays to Python; non-finite floats to `None`."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


class Output:
    """All-or-nothing output: files go to a hidden staging folder beside `out`.

    On success (`commit()`, or leaving the `with` block without an error) they
    are moved into `out`; on an error the staging folder is deleted, so a failed
    run leaves nothing partial behind. With `out=None` nothing is written.
    """

    def __init__(self, out):
        self.out = None if out is None else os.path.abspath(os.fspath(out))
        self.names = []
        self.stage = None
        if self.out is not None:
            if os.path.exists(self.out) and not os.path.isdir(self.out):
                raise InvalidValue(
                    f"The output path exists and is not a directory. Choose a directory "
                    f"for --out. Received: out={os.fspath(out)!r}"
                )
            check_writable(self.out, "--out")  # before the work, not after it
            parent = os.path.dirname(self.out)
            os.makedirs(parent, exist_ok=True)
            remove_stale(parent)  # what killed runs left
            # Named with this process's pid: remove_stale cleans it once the process is gone.
            self.stage = os.path.join(parent, stage_prefix(self.out, "partial.") + str(id(self)))

    @property
    def enabled(self):
        return self.out is not None

    def path(self, name):
        """A path to write `name` to (inside the staging folder)."""
        if not self.enabled:
            raise InvalidValue("This output writes nothing (out=None).")
        os.makedirs(os.path.dirname(os.path.join(self.stage, name)), exist_ok=True)
        if name not in self.names:
            self.names.append(name)
        return os.path.join(self.stage, name)

    def final(self, name):
        return os.path.join(self.out, name)

    def json(self, name, data):
        path = self.path(name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(jsonable(data), f, indent=2, sort_keys=False, allow_nan=False)
            f.write("\n")
        return path

    def npy(self, name, array):
        path = self.path(name)
        np.save(path, np.asarray(array), allow_pickle=False)
        return path

    def commit(self):
        if not self.enabled:
            return []
        os.makedirs(self.out, exist_ok=True)
        written = []
        for name in self.names:
            src = os.path.join(self.stage, name)
            if not os.path.exists(src):
                continue
            dst = os.path.join(self.out, name)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.isdir(src) and os.path.isdir(dst):
                shutil.rmtree(dst)  # a bundle from an earlier run is replaced whole
            os.replace(src, dst)
            written.append(dst)
        self.discard()
        return written

    def discard(self):
        if self.stage and os.path.isdir(self.stage):
            shutil.rmtree(self.stage, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.discard()
            if self.enabled and is_disk_full(exc):
                raise disk_full_error(self.out) from exc  # names --out, not the staging
        return False


def to_uint8(images):
    """Float images in [0, 1] -> uint8, rounded to the nearest level."""
    return np.clip(np.rint(np.asarray(images, dtype="float64") * 255.0), 0, 255).astype("uint8")


def save_png(path, image):
    """Writes one float `(H, W, C)` image in [0, 1] as an 8-bit PNG (grey for one channel)."""
    from PIL import Image

    img = to_uint8(image)
    (Image.fromarray(img[..., 0], "L") if img.shape[-1] == 1 else Image.fromarray(img)).save(path)
