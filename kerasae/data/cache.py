"""An on-disk cache of decoded, sized uint8 images: later runs read a memory map, not files.

`cached(source, cache_dir)` decodes a folder (or a TFDS split) once, in order,
into `<cache_dir>/<key>.npy` (written beside its final name, then renamed), and
reads it memory-mapped from then on: an epoch then costs what an in-memory epoch
costs, while memory stays flat. The key covers every file's path, size and
modification time and the sizing options, so a changed folder gets a new cache.
"""

import hashlib
import json
import os

import numpy as np

from kerasae._util.files import check_writable, staged_file
from kerasae.data.arrays import NpyFileSource
from kerasae.data.source import Source

CACHE_VERSION = 1


def cache_key(source):
    """A sha256 over what the cached bytes depend on, or `None` (nothing worth caching)."""
    files = getattr(source, "files", None)
    if files is None:
        return None
    stats = [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files]
    spec = {"version": CACHE_VERSION, "files": stats, "shape": list(source.image_shape),
            "image_size": getattr(source, "image_size", None),
            "resize": getattr(source, "resize", None)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


class CachedSource(NpyFileSource):
    """The memory-mapped cache of a source, with the source's labels and names."""

    def info(self):
        return dict(self.origin.info(), route="cache", cache=self.path)


def _build(source, path):
    import tensorflow as tf

    with staged_file(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype="uint8",
                                        shape=(len(source),) + tuple(source.image_shape))
        first = 0
        try:
            for batch in source.dataset(256, shuffle=False, raw=True).as_numpy_iterator():
                out[first:first + len(batch)] = batch
                first += len(batch)
        except tf.errors.OpError as e:
            explain = getattr(source, "explain_error", None)
            raise (explain(e) if explain else e) from None
        out.flush()
        del out


def cached(source, cache_dir, *, verbose=True):
    """`source`, read from its on-disk cache in `cache_dir` (built on first use)."""
    key = cache_key(source) if isinstance(source, Source) else None
    if key is None or source.dtype != np.uint8:
        return source
    check_writable(cache_dir, "cache (--cache)")
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, f"{key}.npy")
    if not os.path.isfile(path):
        if verbose:
            print(f"kerasae: caching {len(source)} decoded images of {source.name!r} in {path}")
        _build(source, path)
    images = np.load(path, mmap_mode="r", allow_pickle=False)
    out = CachedSource(path, images, source.labels, name=source.name, split=source.split,
                       route="cache", label_names=source.label_names)
    out.origin, out.path = source, path
    return out
