"""Weight files made to hurt: bombs, links out of the file, extra datasets, NaN (issue 19).

Every file is a real HDF5 file written with h5py (or a real zip), built from a
real model's own weights; a refused load must leave the model's weights as they were.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
import zlib

import h5py
import numpy as np
import pytest

from tests.helpers import ENV, REPO

KERNEL = "encoder/layers/dense/vars/0"  # the tiny model's code layer: (64, 8) float32
DECODER_KERNEL = "decoder/layers/dense/vars/0"  # (8, 64)
BIAS = "decoder/layers/conv2d/vars/1"  # (1,)
BOMB_ROWS = 1 << 23  # 8M rows of 8 float32: a dataset that declares 256 MiB
PRESET = os.path.join(REPO, "zoo", "conv_ae_fashion_mnist", "v1")


def _tiny(seed):
    import kerasae

    return kerasae.ConvAE(filters=(8, 16), latent_dim=8, input_shape=(8, 8, 1), seed=seed,
                          decoder="transpose")  # BIAS is its reconstruction layer's (1,)


@pytest.fixture(scope="module")
def model():
    return _tiny(1)


@pytest.fixture(scope="module")
def donor(tmp_path_factory):
    """Another model's weights file: loading it whole would change every weight."""
    path = str(tmp_path_factory.mktemp("donor") / "donor.weights.h5")
    _tiny(2).save_weights(path)
    return path


@pytest.fixture(scope="module")
def trained():
    """A compiled model after one epoch: its files hold Adam's state too."""
    model = _tiny(3)
    model.compile(optimizer="adam")
    model.fit(np.random.default_rng(0).random((16, 8, 8, 1), "f4"), epochs=1, verbose=0)
    return model


def _gzip_zeros(f, name, shape, chunk_rows, maxshape=None):
    """A gzip dataset whose chunks are all compressed zeros, written without inflating them."""
    rows, cols = shape
    d = f.create_dataset(name, shape=shape, maxshape=maxshape, dtype="f4",
                         chunks=(chunk_rows, cols), compression="gzip")
    packed = zlib.compress(bytes(chunk_rows * cols * 4), 9)
    for row in range(0, rows, chunk_rows):
        d.id.write_direct_chunk((row, 0), packed)


def gzip_bomb(f, folder):
    del f[KERNEL]
    _gzip_zeros(f, KERNEL, (BOMB_ROWS, 8), 1 << 17)


def fill_bomb(f, folder):
    for name, cols in ((KERNEL, 8), (DECODER_KERNEL, 64)):
        del f[name]  # never written: every element is the fill value
        f.create_dataset(name, shape=(BOMB_ROWS, cols), dtype="f4", chunks=(1 << 14, cols),
                         compression="gzip", fillvalue=0)


def oversized_chunk(f, folder):
    # The right shape, but one 32 MiB gzip chunk: reading 512 values inflates all of it.
    values = f[KERNEL][()]
    del f[KERNEL]
    d = f.create_dataset(KERNEL, shape=(64, 8), maxshape=(None, 8), dtype="f4",
                         chunks=(1 << 20, 8), compression="gzip")
    chunk = np.zeros((1 << 20, 8), "f4")
    chunk[:64] = values
    d.id.write_direct_chunk((0, 0), zlib.compress(chunk.tobytes(), 1))


def external_link(f, folder):
    other = os.path.join(folder, "other.h5")
    with h5py.File(other, "w") as o:
        o[KERNEL] = f[KERNEL][()]
    del f[KERNEL]
    f[KERNEL] = h5py.ExternalLink(other, "/" + KERNEL)


def soft_link(f, folder):
    f["elsewhere"] = f[KERNEL][()]
    del f[KERNEL]
    f[KERNEL] = h5py.SoftLink("/elsewhere")


def external_storage(f, folder):
    raw = os.path.join(folder, "kernel.raw")
    f[KERNEL][()].tofile(raw)
    del f[KERNEL]
    f.create_dataset(KERNEL, shape=(64, 8), dtype="f4", external=[(raw, 0, 64 * 8 * 4)])


def virtual_dataset(f, folder):
    source = os.path.join(folder, "source.h5")
    with h5py.File(source, "w") as s:
        s["x"] = f[KERNEL][()]
    layout = h5py.VirtualLayout(shape=(64, 8), dtype="f4")
    layout[:] = h5py.VirtualSource(source, "x", shape=(64, 8))
    del f[KERNEL]
    f.create_virtual_dataset(KERNEL, layout)


def extra_dataset(f, folder):
    f["smuggled/vars/0"] = np.zeros(3, "f4")


def wrong_dtype(f, folder):
    values = f[KERNEL][()].astype("f8")
    del f[KERNEL]
    f[KERNEL] = values


def missing_dataset(f, folder):
    del f[DECODER_KERNEL]


def nan_weight(f, folder):
    f[BIAS][0] = np.nan


def huge_optimizer_slot(f, folder):
    f["optimizer/vars/0"] = np.int64(3)
    f.create_dataset("optimizer/vars/1", shape=(BOMB_ROWS, 8), dtype="f4", fillvalue=0)


REFUSED = {
    gzip_bomb: rf"dataset '{KERNEL}' declares shape \(8388608, 8\) float32 \(268.4 MB\), the "
               r"model's variable has shape \(64, 8\).*nothing was read",
    fill_bomb: r"declares shape \(8388608, (8|64)\) float32.*nothing was read",
    oversized_chunk: rf"dataset '{KERNEL}' of shape \(64, 8\) is stored in chunks of shape "
                     r"\(1048576, 8\), larger than the dataset",
    external_link: rf"'{KERNEL}' is an external link to '.*other.h5'",
    soft_link: rf"'{KERNEL}' is a soft link to '/elsewhere'",
    external_storage: rf"dataset '{KERNEL}' keeps its data in another file .*external storage",
    virtual_dataset: rf"dataset '{KERNEL}' is a virtual dataset",
    extra_dataset: r"dataset 'smuggled/vars/0' .* matches no variable of the model \(an extra "
                   r"dataset\)",
    wrong_dtype: rf"dataset '{KERNEL}' holds <f8, the model's variable is float32",
    missing_dataset: rf"the model's variable '{DECODER_KERNEL}' .* is missing from the file",
    nan_weight: rf"NaN or infinite values: dataset '{BIAS}' holds 1 NaN or infinite value\(s\) "
                r"of 1\. Saving refuses such weights",
    huge_optimizer_slot: r"optimizer dataset 'optimizer/vars/1' declares shape \(8388608, 8\)",
}


def _tampered(donor, folder, edit):
    path = os.path.join(folder, f"{edit.__name__}.weights.h5")
    shutil.copy(donor, path)
    with h5py.File(path, "a") as f:
        edit(f, folder)
    return path


@pytest.mark.parametrize("edit", list(REFUSED), ids=lambda edit: edit.__name__)
def test_a_hostile_weights_file_is_refused_and_the_model_kept(model, donor, tmp_path, edit):
    from kerasae import presets

    path = _tampered(donor, str(tmp_path), edit)
    before = model.get_weights()
    with pytest.raises(ValueError, match=rf"(?s){REFUSED[edit]}.*Received: weights='{path}'$"):
        presets.load_weights_strict(model, path, "'hostile'", "Build it as it was trained.")
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_a_file_that_is_not_hdf5_is_refused(model, tmp_path):
    from kerasae import presets

    path = tmp_path / "junk.weights.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 600)  # a signature and nothing behind it
    with pytest.raises(ValueError, match=r"are not a readable HDF5 file .*Received: weights="):
        presets.load_weights_strict(model, str(path), "'junk'")


def test_optimizer_state_of_a_compiled_model_loads_and_is_bounded(trained, tmp_path):
    """A compiled model's file (Adam's slots) still loads into an uncompiled model; slots
    shaped like no variable, or bombs in the optimizer group, do not."""
    from kerasae import presets

    path = str(tmp_path / "trained.weights.h5")
    trained.save_weights(path)
    fresh = _tiny(4)
    presets.load_weights_strict(fresh, path, "'trained'")
    with h5py.File(path, "r") as f:  # the reference: the file's own arrays, read by h5py
        assert "optimizer/vars/2" in f
        np.testing.assert_array_equal(fresh.get_layer("encoder").get_layer("code").kernel,
                                      f[KERNEL][()])
    with h5py.File(path, "a") as f:
        del f["optimizer/vars/2"]
        f["optimizer/vars/2"] = np.zeros((5, 5), "f4")
    with pytest.raises(ValueError, match=r"optimizer dataset 'optimizer/vars/2' declares "
                                         r"shape \(5, 5\).*neither a number nor shaped like"):
        presets.load_weights_strict(fresh, path, "'trained'")


def test_the_shipped_preset_loads_and_its_nan_copy_is_refused(tmp_path):
    """The real case: conv_ae_fashion_mnist's pinned file, then the same file with one NaN."""
    import kerasae

    kwargs = json.loads(open(os.path.join(PRESET, "config.json")).read())["kwargs"]
    shipped = os.path.join(PRESET, "model.weights.h5")
    model = kerasae.ConvAE(**kwargs, weights=shipped)
    with h5py.File(shipped, "r") as f:
        np.testing.assert_array_equal(model.get_layer("decoder").get_layer("project").kernel,
                                      f[DECODER_KERNEL][()])
    broken = str(tmp_path / "nan.weights.h5")
    shutil.copy(shipped, broken)
    with h5py.File(broken, "a") as f:
        f[DECODER_KERNEL][3, 7] = np.inf
    before = model.get_weights()
    with pytest.raises(ValueError, match=rf"dataset '{DECODER_KERNEL}' holds 1 NaN or infinite "
                                         r"value\(s\) of 200,704.*Received: weights="):
        kerasae.presets.load_weights_strict(model, broken, "'broken'")
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


# ------------------------------------------------------------------ .keras archives
def _archive(model, folder, name, weights=None, pad=0, extra=None):
    """`model` saved as a .keras file, its weights member replaced by `weights` (bytes) and
    padded with `pad` zero bytes (deflated: the archive stays small)."""
    saved = os.path.join(folder, "saved.keras")
    model.save(saved)
    path = os.path.join(folder, name)
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename != "model.weights.h5":
                out.writestr(info, data)
                continue
            member = zipfile.ZipInfo(info.filename)
            member.compress_type = zipfile.ZIP_DEFLATED
            with out.open(member, "w", force_zip64=True) as w:
                w.write(weights if weights is not None else data)
                for _ in range(pad // (1 << 20)):
                    w.write(bytes(1 << 20))
        for member, data in (extra or {}).items():
            out.writestr(member, data)
    return path


def test_a_keras_file_loads_with_its_optimizer_state(trained, tmp_path):
    """A compiled, trained model's .keras file loads; its bombs do not."""
    import kerasae

    good = _archive(trained, str(tmp_path), "good.keras")
    loaded = kerasae.models.load_keras_file(good)
    for a, b in zip(loaded.get_weights() + loaded.optimizer.variables,
                    trained.get_weights() + trained.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The h5 inside holds a 256 MiB gzip bomb: refused from its layout, before reading.
    with open(_tampered_h5(trained, tmp_path), "rb") as f:
        bomb = _archive(trained, str(tmp_path), "bomb.keras", weights=f.read())
    with pytest.raises(ValueError, match=rf"(?s)dataset '{KERNEL}' declares shape \(8388608, "
                                         rf"8\).*Received: model='{bomb}'$"):
        kerasae.models.load_keras_file(bomb)


def _tampered_h5(model, tmp_path):
    path = str(tmp_path / "inner.weights.h5")
    model.save_weights(path)
    with h5py.File(path, "a") as f:
        gzip_bomb(f, str(tmp_path))
    return path


def test_a_keras_file_whose_weights_member_declares_too_much_is_not_extracted(model, tmp_path):
    import kerasae

    path = _archive(model, str(tmp_path), "padded.keras", pad=300 << 20)
    assert os.path.getsize(path) < 2 << 20  # 300 MB of zeros, deflated
    with pytest.raises(ValueError, match=r"The model.weights.h5 inside '.*padded.keras' "
                                         r"declares 3\d\d,\d{3},\d{3} bytes, but the weights of "
                                         r"this model take at most .*nothing was extracted"):
        kerasae.models.load_keras_file(path)
    odd = _archive(model, str(tmp_path), "assets.keras", extra={"assets/x.bin": b"\0" * 64})
    with pytest.raises(ValueError, match=r"is not a .keras file of a kerasae model: it holds "
                                         r".*'assets/x.bin'"):
        kerasae.models.load_keras_file(odd)


@pytest.mark.slow
def test_loading_a_compressed_bomb_keeps_memory_flat(tmp_path):
    """In a fresh process, the shipped preset's file turned into a 2.3 MB gzip bomb (512 MiB
    declared) is refused with the resident set growing by less than 300 MB."""
    path = str(tmp_path / "bomb.weights.h5")
    shutil.copy(os.path.join(PRESET, "model.weights.h5"), path)
    with h5py.File(path, "a") as f:
        del f[KERNEL]
        _gzip_zeros(f, KERNEL, (1 << 21, 64), 1 << 14)
    assert os.path.getsize(path) < 4 << 20
    script = (
        "import json, resource, sys\n"
        "import kerasae\n"
        f"kwargs = json.load(open({os.path.join(PRESET, 'config.json')!r}))['kwargs']\n"
        "model = kerasae.ConvAE(**kwargs)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    kerasae.ConvAE(**kwargs, weights={path!r})\n"
        "    outcome = 'loaded'\n"
        "except ValueError as e:\n"
        "    outcome = str(e)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'growth_mb': (after - before) / 1024, 'outcome': outcome}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], env=ENV, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "declares shape (2097152, 64) float32 (536.9 MB)" in result["outcome"], result
    assert result["growth_mb"] < 300, result
