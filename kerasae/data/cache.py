"""An on-disk cache of decoded, sized uint8 images: later runs read a memory map, not files.

`cached(source, cache_dir)` decodes a folder (or a TFDS split) once, in order,
into `<cache_dir>/<key>.npy` (written beside its final name, then renamed), and
reads it memory-mapped from then on: an epoch then costs what an in-memory epoch
costs, while memory stays flat. The key covers every file's path, size and
modification time and the sizing options, so a changed folder gets a new cache.

Each time a cache is opened its header is checked against the source (`.npy`
format, uint8, C order, the source's shape) and the file's size against the
header. A file that fails (truncated by a full disk or a kill, zero bytes,
garbage, another shape) is rebuilt, said in one line: it is kerasae's own file,
named by a key only kerasae makes, derived from image files that are still there,
so rebuilding loses nothing, as a build cache treats a bad entry as a miss;
refusing would only make the user find and delete a hashed file name by hand.
A file that changes while a run reads it is named in the run's error.
"""

import hashlib
import json
import os

import numpy as np

from kerasae._util.files import check_writable, remove_stale, staged_file
from kerasae._util.signals import raise_if_terminated
from kerasae.data.arrays import NpyFileSource
from kerasae.data.source import DataError, Source

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

    def load_batch(self, indices):
        try:
            return super().load_batch(indices)
        except DataError:  # shorter than its header: it changed after it was opened
            raise self.changed_error() from None

    def explain_error(self, error, indices=None):
        """The cause of a pipeline's `error` when this file changed under the run, else
        `error` itself (the training loop asks its sources)."""
        return error if damage(self.path, self.images.shape) is None else self.changed_error()

    def changed_error(self):
        why = damage(self.path, self.images.shape) or "it is shorter than its header says"
        return DataError(
            f"The cache file {self.path} changed while this run read it ({why}): another "
            f"process rewrote or truncated it, or the disk failed. Rerun the command: a "
            f"damaged cache is rebuilt when it is opened. Received: cache="
            f"{os.path.dirname(self.path)!r}"
        )


def _header(f):
    """`(shape, fortran_order, dtype)` of an open `.npy` file, read by numpy's own parser."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f)
    raise ValueError(f".npy format version {version}, not one kerasae writes")


def damage(path, shape):
    """`None` if `path` holds exactly a C-order uint8 `.npy` array of `shape`, else what is
    wrong with it, in a few words."""
    shape = tuple(int(n) for n in shape)
    try:
        size = os.path.getsize(path)
        if size == 0:
            return "it has 0 bytes"
        with open(path, "rb") as f:
            got, fortran, dtype = _header(f)
            offset = f.tell()
    except (OSError, ValueError, EOFError) as e:  # numpy's parser says ValueError or EOF
        return f"it is not a whole .npy file: {e}"
    if dtype != np.uint8 or fortran:
        return f"it holds {'Fortran-order ' if fortran else ''}{dtype} values, not uint8 images"
    if tuple(got) != shape:
        return f"it holds an array of shape {tuple(got)}, not {shape}"
    needed = offset + int(np.prod(shape, dtype="int64"))
    if size != needed:
        return f"it has {size:,} bytes where its header needs {needed:,}"
    return None


def _build(source, path):
    """Writes the decoded images to `path`, batch by batch, with plain writes: a full disk
    is an error that names it (written through a memory map it would kill the process)."""
    import tensorflow as tf

    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("uint8")), "fortran_order": False,
              "shape": (len(source),) + tuple(source.image_shape)}
    with staged_file(path) as tmp, open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        try:
            for batch in source.dataset(256, shuffle=False, raw=True).as_numpy_iterator():
                raise_if_terminated()
                f.write(np.ascontiguousarray(batch, dtype="uint8").tobytes())
        except tf.errors.OpError as e:
            explain = getattr(source, "explain_error", None)
            raise (explain(e) if explain else e) from None


def cached(source, cache_dir, *, verbose=True):
    """`source`, read from its on-disk cache in `cache_dir` (built on first use, and
    rebuilt when the file is damaged; see the module docstring)."""
    key = cache_key(source) if isinstance(source, Source) else None
    if key is None or source.dtype != np.uint8:
        return source
    check_writable(cache_dir, "cache (--cache)")
    os.makedirs(cache_dir, exist_ok=True)
    remove_stale(cache_dir)  # what builds killed by a signal or a full disk left
    path = os.path.join(cache_dir, f"{key}.npy")
    if os.path.lexists(path) and not os.path.isfile(path):
        raise DataError(
            f"The cache file {path} is not a file. Remove it, or pass another cache folder "
            f"(--cache). Received: cache={os.fspath(cache_dir)!r}"
        )
    shape = (len(source),) + tuple(source.image_shape)
    why = damage(path, shape) if os.path.isfile(path) else "new"
    if why is not None:
        if verbose:
            print(f"kerasae: caching {len(source)} decoded images of {source.name!r} in {path}"
                  if why == "new" else f"kerasae: the cache file {path} is damaged ({why}); "
                  f"rebuilding it from the {len(source)} images of {source.name!r}")
        _build(source, path)
    try:
        images = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:  # replaced by another process meanwhile
        raise DataError(f"The cache file {path} could not be read ({e}); rerun the command "
                        f"to rebuild it. Received: cache={os.fspath(cache_dir)!r}") from None
    out = CachedSource(path, images, source.labels, name=source.name, split=source.split,
                       route="cache", label_names=source.label_names)
    out.origin, out.path = source, path
    return out
