"""PyTorch state dicts read as numpy arrays, without torch and without running pickled code.

A `.pth` file written by `torch.save` (the zip format of torch >= 1.6) holds a
pickle, `<root>/data.pkl`, and one raw member per storage, `<root>/data/<key>`. A
pickle can call anything it names, so it is read here by an unpickler that knows
four kinds of names only (an `OrderedDict`, the two functions that rebuild a tensor
or a parameter, the storage types): any other name is refused before it is
imported, and the tensors are rebuilt with numpy from members read in memory. A
`.safetensors` file (a JSON header and raw buffers) runs no code and is checked
against its own rules. Both are refused, in one line naming the problem, when they
ask for more memory than a state dict needs or read outside their own bytes.
Nothing is written to disk.
"""

import collections
import io
import json
import math
import os
import pickle
import re
import zipfile
import zlib

import numpy as np

from kerasae._util.errors import InvalidValue, MissingFile

MAX_BYTES = 4 << 30  # all tensors of one file; the largest image VAEs take a few hundred MB
MAX_PICKLE_BYTES = 64 << 20  # a state dict's pickle lists names and shapes: kilobytes
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
ZIP_MAGIC = b"PK\x03\x04"
FIX = ("kerasae reads a state dict saved by torch.save (zip format, tensors only) or a "
       ".safetensors file.")

# torch's legacy storage classes (what a state dict pickle names) -> numpy dtype names.
STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}
SAFETENSORS_DTYPES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16",
    "F16": "float16", "BF16": "bfloat16", "I32": "int32", "U32": "uint32", "F32": "float32",
    "F64": "float64", "I64": "int64", "U64": "uint64", "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
}
_KEY = re.compile(r"[A-Za-z0-9_]+")


def _refused(path, problem):
    return InvalidValue(f"Refused to read {os.fspath(path)!r}: {problem}. {FIX} "
                        f"Received: path={os.fspath(path)!r}")


def _dtype(name):
    if name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        import ml_dtypes  # lazy: a dependency of Keras, needed by these rare dtypes only

        return np.dtype(getattr(ml_dtypes, name))
    return np.dtype(name)


def read_state_dict(path, *, max_bytes=MAX_BYTES):
    """`{name: numpy array}` of a PyTorch `.pth` file (zip format) or a `.safetensors` file.

    Args:
        path: the file; which kind it is is read from its first bytes.
        max_bytes: the most bytes of tensors it may hold. Defaults to 4 GiB.

    Returns:
        A dict of numpy arrays in the file's order, in the dtypes it stores
        (bfloat16 and float8 as `ml_dtypes` types).

    Raises:
        FileNotFoundError: there is no such file.
        ValueError: the file is of another kind, damaged, or names anything but
            tensors (the message says what).
    """
    if not os.path.isfile(path):
        raise MissingFile(f"No checkpoint file at {os.fspath(path)!r}. Received: path="
                          f"{os.fspath(path)!r}")
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:4] == ZIP_MAGIC:
        return read_torch_zip(path, max_bytes=max_bytes)
    if str(path).endswith(".safetensors") or head[8:9] == b"{":
        return read_safetensors(path, max_bytes=max_bytes)
    if head[:1] == b"\x80":
        raise _refused(path, "it is a bare pickle (PyTorch's format before 1.6, or "
                             "pickle.dump), which runs code as it loads; load it once in a "
                             "trusted torch and save it again with torch.save")
    raise _refused(path, "it is neither a zip-format PyTorch checkpoint nor a .safetensors "
                         "file")


class _StorageType(collections.namedtuple("_StorageType", "name")):
    """What a pickle's `torch.HalfStorage` (...) stands for: a name (immutable)."""


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class _TorchZip:
    """One `torch.save` zip archive: its members, the storages read, the limit."""

    def __init__(self, archive, path, max_bytes):
        self.archive, self.path, self.max_bytes = archive, path, max_bytes
        self.storages, self.total = {}, 0
        names = archive.namelist()
        for name in names:
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "\\")) or ".." in parts or re.match(r"[A-Za-z]:", name):
                raise _refused(path, f"the zip names a member outside itself ({name!r})")
        if len(set(names)) != len(names):
            raise _refused(path, "the zip holds two members of the same name")
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise _refused(path, f"a torch.save zip holds one <root>/data.pkl; this one holds "
                                 f"{len(pickles)}")
        self.pickle_name = pickles[0]
        self.root = self.pickle_name[:-len("data.pkl")]
        order = (self._small(self.root + "byteorder") if self.root + "byteorder" in names
                 else b"little")
        if order not in (b"little", b"big"):
            raise _refused(path, f"its byteorder member says {order[:20]!r}")
        self.swap = (order == b"big") == np.little_endian  # the file's order is not ours

    def _small(self, name, limit=64):
        if self.archive.getinfo(name).file_size > limit:
            raise _refused(self.path, f"member {name!r} is larger than {limit} bytes")
        return self.archive.read(name).strip()

    def state_dict(self):
        info = self.archive.getinfo(self.pickle_name)
        if info.file_size > MAX_PICKLE_BYTES:
            raise _refused(self.path, f"its pickle declares {info.file_size:,} bytes; a state "
                                      f"dict's takes kilobytes (at most {MAX_PICKLE_BYTES:,})")
        result = _Unpickler(self.archive.read(self.pickle_name), self).load()
        if not isinstance(result, dict):
            raise _refused(self.path, f"it holds a {type(result).__name__}, not a state dict "
                                      f"(names -> tensors)")
        for name, value in result.items():
            if not isinstance(name, str) or not isinstance(value, np.ndarray):
                raise _refused(self.path, f"entry {name!r} is a {type(value).__name__}, not "
                                          f"a tensor: only a model's state_dict() is read")
        return dict(result)

    def _claim(self, nbytes, what):
        """Counts `nbytes` against the limit before they are read or made."""
        if nbytes > self.max_bytes - self.total:
            raise _refused(self.path, f"{what} takes {nbytes:,} bytes, beyond the limit of "
                                      f"{self.max_bytes:,} for a whole file")
        self.total += nbytes

    def storage(self, pid):
        """The storage a persistent id names, read once from its member."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
                and _KEY.fullmatch(pid[2]) and type(pid[4]) is int and pid[4] >= 0):
            raise _refused(self.path, f"its pickle asks for {str(pid)[:80]!r}, which is not a "
                                      f"storage record ('storage', type, key, device, size)")
        _, kind, key, _, numel = pid
        if key in self.storages:
            return self.storages[key]
        dtype, member = _dtype(STORAGE_DTYPES[kind.name]), f"{self.root}data/{key}"
        nbytes = numel * dtype.itemsize
        self._claim(nbytes, f"storage {key} ({numel:,} values of {dtype.name})")
        try:
            size = self.archive.getinfo(member).file_size
        except KeyError:
            raise _refused(self.path, f"its pickle names storage {key}, and the zip has no "
                                      f"member {member!r}") from None
        if size != nbytes:
            raise _refused(self.path, f"storage {key} declares {numel:,} values of "
                                      f"{dtype.name} ({nbytes:,} bytes), its member holds "
                                      f"{size:,} bytes")
        array = np.frombuffer(self.archive.read(member), dtype=dtype)
        self.storages[key] = _Storage(key, array.byteswap() if self.swap else array)
        return self.storages[key]

    def rebuild_tensor(self, storage, offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
        """`torch._utils._rebuild_tensor_v2`: a view of a storage, copied."""
        ints = lambda v: isinstance(v, (tuple, list)) and all(  # noqa: E731
            type(i) is int and i >= 0 for i in v)
        if not (isinstance(storage, _Storage) and type(offset) is int and offset >= 0
                and ints(size) and ints(stride) and len(size) == len(stride)):
            raise _refused(self.path, "its pickle rebuilds a tensor from arguments that are "
                                      "not (storage, offset, sizes, strides)")
        flat, numel = storage.array, math.prod(size)
        if numel == 0:
            return np.zeros(tuple(size), flat.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.size:
            raise _refused(self.path, f"a tensor of shape {tuple(size)} and strides "
                                      f"{tuple(stride)} from offset {offset} reads value "
                                      f"{last:,} of storage {storage.key}, which holds "
                                      f"{flat.size:,}")
        # Strides may repeat values (0, or overlapping views): count the copy, not the storage.
        self._claim(numel * flat.itemsize, f"a tensor of shape {tuple(size)}")
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], tuple(size), tuple(s * flat.itemsize for s in stride),
            writeable=False)
        return view.copy()

    def rebuild_parameter(self, data, requires_grad=False, backward_hooks=None):
        """`torch._utils._rebuild_parameter`: the tensor itself."""
        if not isinstance(data, np.ndarray):
            raise _refused(self.path, "its pickle makes a parameter of something that is not "
                                      "a tensor")
        return data


class _Unpickler(pickle.Unpickler):
    """Resolves only the names a state dict's pickle uses; storages come from the zip.

    The functions handed out are bound methods and the storage types are tuples, so a
    pickle cannot set attributes on them (BUILD) to change later loads."""

    def __init__(self, data, checkpoint):
        super().__init__(io.BytesIO(data))
        self.checkpoint = checkpoint

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self.checkpoint.rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return self.checkpoint.rebuild_parameter
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise _refused(self.checkpoint.path, f"its pickle names {module}.{name}, which a "
                                             f"state dict does not need (it was not imported)")

    def persistent_load(self, pid):
        return self.checkpoint.storage(pid)


# What zipfile, zlib and pickle raise for a damaged file (the pickle's own errors included).
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError, TypeError,
            IndexError, AttributeError, RecursionError, RuntimeError, OverflowError,
            NotImplementedError, pickle.UnpicklingError, OSError, MemoryError)


def read_torch_zip(path, *, max_bytes=MAX_BYTES):
    """`{name: numpy array}` of a `torch.save` zip file (see `read_state_dict`)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return _TorchZip(archive, path, max_bytes).state_dict()
    except InvalidValue:
        raise
    except _DAMAGED as e:
        raise _refused(path, f"it is damaged ({type(e).__name__}: {str(e)[:120]})") from None


def read_safetensors(path, *, max_bytes=MAX_BYTES):
    """`{name: numpy array}` of a `.safetensors` file (see `read_state_dict`): an 8-byte
    little-endian header size, a JSON header of names -> dtype, shape and byte range,
    and the buffers, which must tile the rest of the file in order without overlap."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < n <= MAX_HEADER_BYTES or 8 + n > size:
            raise _refused(path, f"its header declares {n:,} bytes; a .safetensors header "
                                 f"is at most {MAX_HEADER_BYTES:,} and inside the "
                                 f"{size:,}-byte file")
        try:
            header = json.loads(f.read(n).decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (ValueError, RecursionError) as e:
            raise _refused(path, f"its header is not JSON ({str(e)[:80]})") from None
        buffer_size = size - 8 - n
        if buffer_size > max_bytes:
            raise _refused(path, f"its tensors take {buffer_size:,} bytes, beyond the limit of "
                                 f"{max_bytes:,}")
        entries = _safetensors_entries(path, header, buffer_size)
        buffer = f.read(buffer_size)
    return {name: np.frombuffer(buffer, dtype, math.prod(shape), begin)
            .reshape(shape).copy() for name, (dtype, shape, begin) in entries.items()}


def _no_duplicates(pairs):
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError("a name appears twice")
    return dict(pairs)


def _safetensors_entries(path, header, buffer_size):
    """`{name: (dtype, shape, begin)}` of a checked header, in the header's order."""
    if not isinstance(header, dict):
        raise _refused(path, "its header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
            isinstance(v, str) for v in metadata.values()):
        raise _refused(path, "its __metadata__ is not a map of strings to strings")
    entries, spans = {}, []
    for name, entry in header.items():
        if not (isinstance(entry, dict) and set(entry) == {"dtype", "shape", "data_offsets"}
                and entry["dtype"] in SAFETENSORS_DTYPES and _uints(entry["shape"])
                and _uints(entry["data_offsets"]) and len(entry["data_offsets"]) == 2):
            raise _refused(path, f"tensor {name!r} is not described by a known dtype "
                                 f"({', '.join(SAFETENSORS_DTYPES)}), a shape and two "
                                 f"offsets")
        dtype, (begin, end) = _dtype(SAFETENSORS_DTYPES[entry["dtype"]]), entry["data_offsets"]
        nbytes = math.prod(entry["shape"]) * dtype.itemsize
        if not begin <= end <= buffer_size or end - begin != nbytes:
            raise _refused(path, f"tensor {name!r} of shape {tuple(entry['shape'])} "
                                 f"({nbytes:,} bytes) lies at bytes {begin:,}..{end:,} of a "
                                 f"{buffer_size:,}-byte buffer")
        entries[name] = (dtype, tuple(entry["shape"]), begin)
        spans.append((begin, end, name))
    at = 0
    for begin, end, name in sorted(spans):
        if begin != at:
            raise _refused(path, f"tensor {name!r} starts at byte {begin:,} of the buffer, "
                                 f"where {at:,} was expected (buffers overlap or leave a gap)")
        at = end
    if at != buffer_size:
        raise _refused(path, f"its tensors end at byte {at:,} of a {buffer_size:,}-byte buffer")
    return entries


def _uints(value):
    return isinstance(value, list) and all(type(v) is int and v >= 0 for v in value)
