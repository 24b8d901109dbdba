"""PyTorch checkpoints read without torch and without running their pickles
(`kerasae.presets.torch_state`): the real TAEF2 files and files torch writes here, bit for
bit against `torch.load(weights_only=True)`; hostile files crafted here (a pickle that runs a
command, members outside the zip, tensors reading past their storage, huge declared sizes)
refused; `.safetensors` files written by hand read back."""

import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from kerasae._util.errors import InvalidValue, MissingFile
from kerasae.presets.torch_state import read_state_dict
from tests.helpers import SHARED_DATA, files_under

TAEF2_DIR = os.environ.get("KERASAE_TAEF2_DATA", os.path.join(SHARED_DATA, "taef2"))
needs_taef2 = pytest.mark.skipif(
    not os.path.isfile(os.path.join(TAEF2_DIR, "taef2_decoder.pth")),
    reason=f"needs TAEF2's taef2_encoder.pth and taef2_decoder.pth under {TAEF2_DIR} (set "
           "KERASAE_TAEF2_DATA to their folder)")


def _same(got, want):
    """Same names in the same order, same dtypes and shapes, same bytes."""
    assert list(got) == list(want)
    for name, value in want.items():
        if hasattr(value, "detach"):  # a torch tensor: its dtype's name and its raw bytes
            import torch

            dtype, shape = str(value.dtype).removeprefix("torch."), tuple(value.shape)
            raw = value.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        else:
            dtype, shape, raw = value.dtype.name, value.shape, np.ascontiguousarray(value).tobytes()
        assert (got[name].dtype.name, got[name].shape) == (dtype, shape), name
        assert got[name].tobytes() == raw, name


@needs_taef2
@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_taef2_files_read_as_torch_reads_them(part):
    torch = pytest.importorskip("torch", reason="torch is the reference reader")
    path = os.path.join(TAEF2_DIR, f"taef2_{part}.pth")
    state = read_state_dict(path)
    assert len(state) == 79 and {v.dtype for v in state.values()} == {np.dtype("float16")}
    _same(state, torch.load(path, map_location="cpu", weights_only=True))


def test_what_torch_save_writes_is_read_bit_for_bit(tmp_path):
    torch = pytest.importorskip("torch", reason="torch writes and reads the reference file")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {
        "half": torch.randn(3, 5).half(), "bfloat16": torch.randn(7).bfloat16(),
        "double": torch.randn(2, 2, dtype=torch.float64), "long": torch.arange(-3, 9),
        "bool": torch.tensor([True, False, True]), "uint8": torch.arange(250, 256).byte(),
        "transposed": base.t(), "sliced": base[1:, 2:5], "shares_storage": base,
        "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3),
        "parameter": torch.nn.Parameter(torch.ones(2, 3)),
    }
    path = tmp_path / "state.pth"
    torch.save(state, path)
    _same(read_state_dict(path), torch.load(path, weights_only=True))


# --- hostile files, crafted byte by byte (no torch needed) ---------------------------------

def _global(module, name):
    return b"c" + f"{module}\n{name}\n".encode()


def _str(text):
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value):
    data = value.to_bytes(value.bit_length() // 8 + 1, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data  # LONG1: any size


def _tuple(*items):
    return b"(" + b"".join(items) + b"t"


def _state_pickle(tensors):
    """A protocol-2 pickle as torch.save writes it: an OrderedDict of
    `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`, each storage a
    persistent id `('storage', torch.<Type>, key, 'cpu', numel)`.
    `tensors`: `[(name, storage type, key, numel, offset, size, stride)]`."""
    out = b"\x80\x02" + _global("collections", "OrderedDict") + b")R"
    for name, kind, key, numel, offset, size, stride in tensors:
        pid = _tuple(_str("storage"), _global("torch", kind), _str(key), _str("cpu"), _int(numel))
        args = (b"(" + pid + b"Q" + _int(offset) + _tuple(*map(_int, size))
                + _tuple(*map(_int, stride)) + b"\x89" + _global("collections", "OrderedDict")
                + b")Rt")
        out += _str(name) + _global("torch._utils", "_rebuild_tensor_v2") + args + b"Rs"
    return out + b"."


def _torch_zip(path, data_pkl, storages=(), names=None):
    """A zip laid out as torch.save lays it out (stored members under `archive/`)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(names or "archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        for key, raw in storages:
            z.writestr(f"archive/data/{key}", raw)
        z.writestr("archive/version", "3\n")
    return path


GOOD = [("w", "FloatStorage", "0", 6, 0, (2, 3), (3, 1)),
        ("t", "FloatStorage", "0", 6, 1, (2, 2), (1, 3))]
VALUES = np.arange(6, dtype="<f4") * 0.5


def test_a_hand_made_checkpoint_is_read_and_torch_agrees(tmp_path):
    path = _torch_zip(tmp_path / "good.pth", _state_pickle(GOOD), [("0", VALUES.tobytes())])
    state = read_state_dict(path)
    np.testing.assert_array_equal(state["w"], VALUES.reshape(2, 3))
    # Offset 1, strides (1, 3): value [i, j] is storage value 1 + i + 3 j.
    np.testing.assert_array_equal(state["t"], [[VALUES[1 + i + 3 * j] for j in range(2)]
                                               for i in range(2)])
    torch = pytest.importorskip("torch", reason="torch checks the hand-made file is real")
    _same(state, torch.load(path, weights_only=True))


class _Runs:
    """An object whose unpickling calls `fn(*args)`: what an attacker's file holds."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("how", ["os.system", "builtins.eval", "protocol 4"])
def test_a_pickle_that_runs_a_command_is_refused_and_runs_nothing(tmp_path, how):
    sentinel = tmp_path / "ran"
    if how == "builtins.eval":
        payload = pickle.dumps(_Runs(eval, f"open({str(sentinel)!r}, 'w')"), protocol=2)
    else:
        payload = pickle.dumps(_Runs(os.system, f"touch {sentinel}"),
                               protocol=4 if how == "protocol 4" else 2)
    path = _torch_zip(tmp_path / "evil.pth", payload)
    with pytest.raises(InvalidValue, match=r"names (posix|__builtin__)\.(system|eval)"):
        read_state_dict(path)
    assert not sentinel.exists()
    pickle.loads(payload)  # the payload is live: a plain unpickler runs it
    assert sentinel.exists()


@pytest.mark.parametrize("member", ["../escaped/data.pkl", "/tmp/absolute/data.pkl",
                                    "archive/../../data.pkl", "C:/archive/data.pkl"])
def test_members_outside_the_zip_are_refused_and_nothing_is_written(tmp_path, member):
    folder = tmp_path / "in"
    folder.mkdir()
    path = _torch_zip(folder / "x.pth", _state_pickle(GOOD), [("0", VALUES.tobytes())],
                      names=member)
    before = files_under(tmp_path)
    with pytest.raises(InvalidValue, match="member outside itself"):
        read_state_dict(path)
    assert files_under(tmp_path) == before and not os.path.exists("/tmp/absolute")


@pytest.mark.parametrize("tensors, storage_bytes, phrase", [
    # A shape that reads past its storage, by size and by stride.
    ([("w", "FloatStorage", "0", 6, 0, (10,), (1,))], 24, "reads value 9 of storage 0"),
    ([("w", "FloatStorage", "0", 6, 2, (2, 2), (3, 1))], 24, "reads value 6 of storage 0"),
    # A storage declaring more values than its member holds, or fewer.
    ([("w", "FloatStorage", "0", 600, 0, (6,), (1,))], 24, "its member holds 24 bytes"),
    ([("w", "HalfStorage", "0", 6, 0, (6,), (1,))], 24, "its member holds 24 bytes"),
    # Many gigabytes declared, or made from one value by zero strides.
    ([("w", "FloatStorage", "0", 10 ** 12, 0, (6,), (1,))], 24, "beyond the limit"),
    ([("w", "FloatStorage", "0", 6, 0, (10 ** 6, 10 ** 6), (0, 0))], 24, "beyond the limit"),
    # Storage keys that are paths, and members that are missing.
    ([("w", "FloatStorage", "../0", 6, 0, (6,), (1,))], 24, "not a storage record"),
    ([("w", "FloatStorage", "7", 6, 0, (6,), (1,))], 24, "no member 'archive/data/7'"),
    ([("w", "FloatStorage", "0", 6, -1, (6,), (1,))], 24, "not \\(storage, offset"),
], ids=["past-size", "past-stride", "member-short", "member-long", "huge-storage",
        "zero-strides", "key-path", "key-missing", "negative-offset"])
def test_storages_that_do_not_hold_their_tensors_are_refused(tmp_path, tensors,
                                                             storage_bytes, phrase):
    path = _torch_zip(tmp_path / "bad.pth", _state_pickle(tensors),
                      [("0", VALUES.tobytes()[:storage_bytes])])
    with pytest.raises(InvalidValue, match=phrase):
        read_state_dict(path)


def test_other_files_are_refused_by_kind(tmp_path):
    bare = tmp_path / "legacy.pth"
    bare.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=2))
    with pytest.raises(InvalidValue, match="bare pickle"):
        read_state_dict(bare)
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(InvalidValue, match="neither a zip-format"):
        read_state_dict(text)
    not_tensors = _torch_zip(tmp_path / "dict.pth", pickle.dumps({"epoch": 3}, protocol=2))
    with pytest.raises(InvalidValue, match="entry 'epoch' is a int, not a tensor"):
        read_state_dict(not_tensors)
    with pytest.raises(MissingFile, match="No checkpoint file"):
        read_state_dict(tmp_path / "absent.pth")


def test_torchs_legacy_format_is_refused(tmp_path):
    torch = pytest.importorskip("torch", reason="torch writes the legacy file")
    path = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(InvalidValue, match="bare pickle"):
        read_state_dict(path)


# --- safetensors -----------------------------------------------------------------------------

CODES = {"float32": "F32", "float16": "F16", "int64": "I64", "uint8": "U8", "bool": "BOOL",
         "int16": "I16"}


def _write_safetensors(path, arrays, *, header=None, metadata=None):
    """A `.safetensors` file as its format is written: 8-byte size, JSON padded with spaces
    to 8 bytes, the buffers back to back (little-endian, C order)."""
    entries, buffers, at = {}, [], 0
    for name, a in arrays.items():
        data = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        entries[name] = {"dtype": CODES[a.dtype.name], "shape": list(a.shape),
                         "data_offsets": [at, at + len(data)]}
        buffers.append(data)
        at += len(data)
    if metadata:
        entries["__metadata__"] = metadata
    text = json.dumps(header if header is not None else entries).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(buffers))
    return path


ARRAYS = {"conv.weight": np.arange(24, dtype="float32").reshape(2, 3, 2, 2) / 7,
          "conv.bias": np.array([1.5, -2.25], "float16"), "steps": np.array(7, "int64"),
          "mask": np.array([[True, False]]), "empty": np.zeros((0, 4), "uint8"),
          "codes": np.array([-300, 2, 32767], "int16")}


def test_safetensors_written_by_hand_read_back(tmp_path):
    path = _write_safetensors(tmp_path / "m.safetensors", ARRAYS,
                              metadata={"format": "pt", "note": "hand-made"})
    _same(read_state_dict(path), ARRAYS)


def _header(**change):
    entry = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
    return {"a": entry, "b": {**entry, "data_offsets": [16, 32]}, **change}


@pytest.mark.parametrize("header, phrase", [
    (_header(b={"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 24]}), "overlap"),
    (_header(b={"dtype": "F32", "shape": [2, 2], "data_offsets": [24, 40]}), "lies at bytes"),
    (_header(b={"dtype": "F32", "shape": [3, 2], "data_offsets": [16, 32]}), "lies at bytes"),
    (_header(b={"dtype": "F32", "shape": [2, 2], "data_offsets": [-16, 0]}), "known dtype"),
    (_header(b={"dtype": "Q4", "shape": [2, 2], "data_offsets": [16, 32]}), "known dtype"),
    (_header(__metadata__={"step": 3}), "map of strings"),
    ({"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, "end at byte 16"),
    ([1, 2], "not a JSON object"),
], ids=["overlap", "out-of-range", "wrong-length", "negative", "dtype", "metadata", "gap-at-end",
        "not-object"])
def test_safetensors_headers_that_do_not_tile_the_file_are_refused(tmp_path, header, phrase):
    path = _write_safetensors(tmp_path / "bad.safetensors",
                              {"a": np.zeros((2, 2), "float32"), "b": np.ones((2, 2), "float32")},
                              header=header)
    with pytest.raises(InvalidValue, match=phrase):
        read_state_dict(path)


def test_safetensors_header_sizes_and_names_are_bounded(tmp_path):
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 200_000_000) + b"{" + b" " * 64)
    with pytest.raises(InvalidValue, match="at most 100,000,000"):
        read_state_dict(huge)
    short = tmp_path / "short.safetensors"
    short.write_bytes(struct.pack("<Q", 4096) + b"{}")
    with pytest.raises(InvalidValue, match="inside the"):
        read_state_dict(short)
    twice = tmp_path / "twice.safetensors"
    text = b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, ' \
           b'"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}'
    twice.write_bytes(struct.pack("<Q", len(text)) + text + b"\x01")
    with pytest.raises(InvalidValue, match="appears twice"):
        read_state_dict(twice)
