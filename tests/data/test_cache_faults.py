"""A damaged decoded-image cache (`--cache`, `cache=`) is rebuilt, or named, never used.

The cache is kerasae's own file, named by a key over the image files, so a file
at that name that is not a whole uint8 `.npy` array of the folder's shape (cut by
a full disk or a kill, emptied, overwritten, another shape) is rebuilt from the
images, said in one line. One that changes while a run reads it is named in the
run's error. The reference pixels are Pillow's, read from the PNG files.
"""

import os

import numpy as np
import pytest
from PIL import Image

import kerasae
from kerasae import cli, data
from kerasae.data.source import DataError
from tests.helpers import build_tiny

N, SIZE = 12, 8


@pytest.fixture
def folder(tmp_path):
    """A flat folder of `N` grey PNGs of SIZE x SIZE, and their pixels as Pillow reads them."""
    rng = np.random.default_rng(0)
    path = tmp_path / "imgs"
    path.mkdir()
    for i in range(N):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)).save(
            path / f"{i:02d}.png")
    pixels = np.stack([np.asarray(Image.open(path / f"{i:02d}.png")) for i in range(N)])
    return str(path), pixels[..., None]


def _cache_file(cache_dir):
    (name,) = [n for n in os.listdir(cache_dir) if not n.startswith(".")]
    return os.path.join(cache_dir, name)


def _whole_npy_bytes(pixels):
    """The bytes of a correct cache, as numpy itself writes the array."""
    import io

    buf = io.BytesIO()
    np.save(buf, pixels)
    return buf.getvalue()


DAMAGE = {  # name: (how the file is damaged, from its good bytes, the words of the one line)
    "truncated": (lambda good: good[:len(good) // 2], "bytes where its header needs"),
    "cut-in-header": (lambda good: good[:40], "it is not a whole .npy file"),
    "zero-bytes": (lambda good: b"", "it has 0 bytes"),
    "garbage": (lambda good: np.random.default_rng(1).bytes(len(good)),
                "it is not a whole .npy file"),
    "pickled-objects": (lambda good: _whole_npy_bytes(np.array([{"a": 1}], dtype=object)),
                        "object values, not uint8 images"),
    "wrong-shape": (lambda good: _whole_npy_bytes(np.zeros((N, 4, 4, 1), "uint8")),
                    f"shape ({N}, 4, 4, 1), not ({N}, {SIZE}, {SIZE}, 1)"),
    "wrong-dtype": (lambda good: _whole_npy_bytes(np.zeros((N, SIZE, SIZE, 1), "float32")),
                    "float32 values, not uint8 images"),
    "too-long": (lambda good: good + good[-64:], "bytes where its header needs"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_damaged_cache_is_rebuilt_from_the_images_in_one_line(folder, kind, tmp_path,
                                                                  capsys):
    path, pixels = folder
    cache_dir = str(tmp_path / "cache")
    data.get_source(path, cache=cache_dir)
    cache = _cache_file(cache_dir)
    with open(cache, "rb") as f:
        good = f.read()
    damage, words = DAMAGE[kind]
    with open(cache, "wb") as f:
        f.write(damage(good))
    capsys.readouterr()
    src = data.get_source(path, cache=cache_dir)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"kerasae: the cache file {cache} is damaged ")
    assert words in out[0] and out[0].endswith(f"rebuilding it from the {N} images of {path!r}")
    assert src.route == "cache"
    np.testing.assert_array_equal(src.load_batch(np.arange(N)), pixels)
    np.testing.assert_array_equal(np.load(cache, allow_pickle=False), pixels)
    assert os.listdir(cache_dir) == [os.path.basename(cache)]  # no staging leftovers
    data.get_source(path, cache=cache_dir)  # whole again: opened, not rebuilt
    assert capsys.readouterr().out == ""


def test_the_command_line_rebuilds_a_truncated_cache_and_trains(folder, tmp_path, capsys):
    path, _ = folder
    cache_dir = str(tmp_path / "cache")
    data.get_source(path, cache=cache_dir)
    cache = _cache_file(cache_dir)
    os.truncate(cache, 200)
    capsys.readouterr()
    argv = ["train", "conv_ae", "--dataset", path, "--cache", cache_dir, "--epochs", "1",
            "--batch-size", "4", "--latent-dim", "4", "--arg", "filters=[4,8]", "--validation",
            "none", "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 0
    assert "is damaged (it has 200 bytes where its header needs" in capsys.readouterr().out
    assert os.path.getsize(cache) == 128 + N * SIZE * SIZE


def test_a_cache_cut_while_a_run_reads_it_is_named(folder, tmp_path):
    path, pixels = folder
    src = data.get_source(path, cache=str(tmp_path / "cache"))
    np.testing.assert_array_equal(src.load_batch(np.arange(N)), pixels)
    os.truncate(src.path, 128 + 3 * SIZE * SIZE)  # another process cut it after it was opened
    with pytest.raises(DataError, match=r"The cache file .* changed while this run read it "
                                        r"\(it has 320 bytes where its header needs 896\).*"
                                        r"Rerun the command: a damaged cache is rebuilt"):
        src.load_batch(np.arange(N))
    model = build_tiny("conv_ae")
    # Inside a tf.data pipeline TensorFlow says only "Graph execution error": the loop asks
    # the source what happened.
    with pytest.raises(DataError, match=r"The cache file .* changed while this run read it"):
        kerasae.fit(model, src, epochs=1, batch_size=4, validation=None)


def test_a_folder_where_the_cache_file_goes_is_refused(folder, tmp_path):
    path, _ = folder
    cache_dir = str(tmp_path / "cache")
    data.get_source(path, cache=cache_dir)
    cache = _cache_file(cache_dir)
    os.remove(cache)
    os.mkdir(cache)
    with pytest.raises(DataError, match=r"The cache file .* is not a file. Remove it"):
        data.get_source(path, cache=cache_dir)


def test_a_cache_that_fills_the_disk_is_one_error_and_leaves_nothing(tmp_path):
    """On a real full disk (a 64 KiB tmpfs of a mount namespace of its own) the cache is
    written with plain writes: the build fails with the disk-full error, never a SIGBUS
    from a memory map, and no temporary file is left to fill the disk."""
    from tests.export.test_export_faults import TMPFS, _own_mount_namespace

    import subprocess
    import sys

    from tests.helpers import ENV, REPO

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(1)
    for i in range(40):  # 40 x 32 x 32 x 3 bytes: about twice the tmpfs
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            imgs / f"{i:02d}.png")
    small = tmp_path / "small"
    small.mkdir()
    unshare = _own_mount_namespace(small)
    if unshare is None:
        pytest.skip("needs unshare with user and mount namespaces (a tmpfs without root)")
    code = ("import sys; from kerasae import data\n"
            "try:\n    data.get_source(sys.argv[1], cache=sys.argv[2])\n"
            "except Exception as e:\n    print(type(e).__name__, e); sys.exit(3)\n")
    script = ('mount -t tmpfs -o size=$3 tmpfs "$0" || exit 99; "$1" -c "$4" "$2" "$0/cache"; '
              'rc=$?; echo "left:$(ls -A "$0/cache" 2>/dev/null)"; exit $rc')
    proc = subprocess.run([unshare, "--user", "--map-root-user", "--mount", "sh", "-c", script,
                           str(small), sys.executable, str(imgs), TMPFS, code], env=ENV,
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]  # not -7 (SIGBUS)
    assert lines[-2].startswith("DiskFull The disk is full"), lines
    assert lines[-1] == "left:"


def test_a_killed_build_leaves_no_file_behind_the_next_run(folder, tmp_path):
    path, pixels = folder
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    # What a build killed by a signal leaves: its staging file, named with its dead pid.
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    from kerasae._util import files

    stale = cache_dir / f".x.npy.tmp-{dead}-{files._host()}-0-abc.tmp"
    stale.write_bytes(b"\0" * 1000)
    src = data.get_source(path, cache=str(cache_dir))
    np.testing.assert_array_equal(src.load_batch(np.arange(N)), pixels)
    assert not stale.exists()


def test_a_sigterm_whose_raise_python_swallowed_stops_the_build_and_leaves_no_file(
        folder, tmp_path):
    """Python drops an exception raised in a `__del__` or a garbage-collector callback:
    a SIGTERM handled there is remembered, and the cache's block loop stops on it, leaving
    neither a cache file nor a staging file."""
    import sys

    from kerasae._util import signals

    class Lost:
        def __del__(self):
            signals.raise_terminated(15, None)

    previous = signals.lost_raises_are_quiet()
    try:
        Lost()  # its __del__ runs at once; the raise goes to the quiet hook
        assert signals.terminated()
        cache_dir = tmp_path / "cache"
        with pytest.raises(signals.Terminated):
            data.get_source(folder[0], cache=str(cache_dir))
    finally:
        sys.unraisablehook = previous
        signals.acted_on()
    assert os.listdir(cache_dir) == []
    data.get_source(folder[0], cache=str(cache_dir))  # acted on: the next build finishes
    assert np.array_equal(np.load(_cache_file(cache_dir)), folder[1])
