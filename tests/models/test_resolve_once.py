"""One resolver for a model or weights argument: one look-up and one hash per file.

A command that names a preset or a file resolves it once and hands the result on
(`kerasae export ... --quantize int8` calibrates on the preset's training data
without looking it up again; `kerasae train --weights` reads the input size and
builds from one resolution). Counted by wrapping kerasae's own hashing and
look-up functions, which still run. What `weights=` records in `model.start_point`
(and so in `run.json`, which a resumed run compares) is checked against dicts
written out here, with sha256 values from hashlib.
"""

import collections
import hashlib
import json
import os
import sys

import numpy as np
import pytest

import kerasae
from kerasae import cli
from tests.helpers import REPO, needs_fashion_mnist, run_json, tiny_kwargs

PRESET = "conv_ae_fashion_mnist"
PRESET_DIR = os.path.join(REPO, "zoo", PRESET, "v1")


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def zoo_env(monkeypatch, tmp_path):
    """The repository's zoo as root, an empty cache and no mirrors: the preset's files are
    read (and verified) from the shipped copy."""
    monkeypatch.setenv("KERASAE_ZOO_ROOT", os.path.join(REPO, "zoo"))
    monkeypatch.setenv("KERASAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KERASAE_ZOO_MIRRORS", raising=False)


@pytest.fixture
def counted(monkeypatch):
    """Counters of file hashes (by real path), preset look-ups (by name) and fingerprints
    of loaded weights, filled by wrappers around kerasae's own functions (which still
    run)."""
    import kerasae.export.bundle  # noqa: F401 - loaded first, so its bindings are restored
    from kerasae._util import files
    from kerasae.models import resolve
    from kerasae.presets import store

    counts = {k: collections.Counter() for k in ("hashes", "lookups", "fingerprints")}
    original = files.sha256_file

    def sha256_file(path):
        counts["hashes"][os.path.realpath(path)] += 1
        return original(path)

    # Modules bind the function by name (`from ... import sha256_file`): wrap every binding,
    # kerasae._util.files's own included, so modules imported later bind the wrapper.
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("kerasae") and \
                getattr(module, "sha256_file", None) is original:
            monkeypatch.setattr(module, "sha256_file", sha256_file)
    lookup = store.get_preset  # every zoo look-up by name ends here (kerasae.presets.lookup)

    def get_preset(name, **kwargs):
        counts["lookups"][name] += 1
        return lookup(name, **kwargs)

    monkeypatch.setattr(store, "get_preset", get_preset)
    fingerprint = resolve.weights_sha256  # sha256 over a loaded model's weights

    def weights_sha256(model):
        counts["fingerprints"][model.name] += 1
        return fingerprint(model)

    monkeypatch.setattr(resolve, "weights_sha256", weights_sha256)
    return counts


@pytest.mark.slow
@needs_fashion_mnist
def test_export_with_int8_calibration_looks_the_preset_up_once_and_hashes_each_file_once(
        zoo_env, counted, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["export", PRESET, str(out), "--formats", "onnx,litert",
                     "--quantize", "int8"]) == 0, capsys.readouterr().err
    hashes = counted["hashes"]
    assert dict(counted["lookups"]) == {PRESET: 1}
    assert counted["fingerprints"] == {}  # nothing here needs one
    assert {p: n for p, n in hashes.items() if n > 1} == {}
    # The preset's files were verified (each once), the export's files hashed for the manifest.
    for name in ("config.json", "model.weights.h5", "metadata.json"):
        assert hashes[os.path.realpath(os.path.join(PRESET_DIR, name))] == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "preset" and manifest["source"]["preset"] == PRESET
    calibration = manifest["litert"]["int8"]["calibration"]["source"]
    assert calibration == "the first 500 images of fashion_mnist (train)"


def test_decoding_a_kae_file_of_a_preset_resolves_it_once(zoo_env, counted, tmp_path):
    from kerasae.uses.codec import kae

    images = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype("float32")
    path = tmp_path / "x.kae"
    kae.encode_file(PRESET, images, path)
    for counter in counted.values():
        counter.clear()
    decoded, header = kae.decode_file(path)  # the header names the preset; it is here
    assert header["model"]["name"] == f"{PRESET}@1" and decoded.shape == images.shape
    assert dict(counted["lookups"]) == {f"{PRESET}@1": 1}
    assert counted["hashes"][os.path.realpath(os.path.join(PRESET_DIR, "model.weights.h5"))] == 1
    assert sum(counted["fingerprints"].values()) == 1  # checked against the header's


def _expected(kind, path):
    return {"kind": kind, "path": path, "sha256": _sha256(path)}


def test_weights_record_the_same_start_points_as_before(zoo_env, counted, tmp_path,
                                                        monkeypatch):
    preset = kerasae.ConvAE(weights=PRESET)
    weights = os.path.join(PRESET_DIR, "model.weights.h5")
    assert preset.start_point == {"kind": "preset", "name": PRESET, "version": 1,
                                  "sha256": _sha256(weights)}
    keras_file = str(tmp_path / "ae.keras")
    preset.save(keras_file)
    from_file = kerasae.build("conv_ae", weights=keras_file, corruption="masking")
    assert from_file.start_point == _expected("keras", keras_file)
    h5 = str(tmp_path / "ae.weights.h5")
    preset.save_weights(h5)
    with open(os.path.join(PRESET_DIR, "config.json")) as f:
        kwargs = json.load(f)["kwargs"]
    from_h5 = kerasae.ConvAE(weights=h5, **kwargs)
    assert from_h5.start_point == _expected("weights.h5", h5)
    # A path given relative is recorded absolute, so a resumed run compares equal.
    monkeypatch.chdir(tmp_path)
    relative = kerasae.ConvAE(weights="ae.weights.h5", **kwargs)
    assert relative.start_point == from_h5.start_point
    hashes = counted["hashes"]
    assert (hashes[os.path.realpath(keras_file)], hashes[os.path.realpath(h5)]) == (1, 2)


def test_train_weights_resolves_a_keras_file_once(zoo_env, counted, tmp_path, capsys):
    model = kerasae.build("conv_ae", **tiny_kwargs("conv_ae"))
    keras_file = str(tmp_path / "start.keras")
    model.save(keras_file)
    out = tmp_path / "run"
    assert cli.main(["train", "conv_ae", "--dataset", "digits", "--epochs", "1",
                     "--steps-per-epoch", "1", "--batch-size", "16", "--validation", "none",
                     "--verbose", "0", "--weights", keras_file, "--out", str(out)]) == 0, \
        capsys.readouterr().err
    assert counted["hashes"][os.path.realpath(keras_file)] == 1
    assert run_json(out)["weights"] == _expected("keras", keras_file)


def test_a_run_trained_on_an_array_asks_for_representative_data(tmp_path, capsys):
    """A run given an array in Python has nothing on disk to calibrate on: an int8 export
    of its model asks for representative data instead of looking up a dataset 'array'."""
    from kerasae.models import resolve_model

    x = np.random.default_rng(0).uniform(size=(32, 8, 8, 1)).astype("float32")
    kerasae.fit(kerasae.build("conv_ae", **tiny_kwargs("conv_ae")), x, epochs=1, batch_size=16,
                validation=None, verbose=0, out_dir=str(tmp_path / "run"))
    assert run_json(tmp_path / "run")["dataset"]["route"] == "array"
    assert resolve_model(str(tmp_path / "run" / "model.keras")).training_data() is None
    capsys.readouterr()
    assert cli.main(["export", str(tmp_path / "run" / "model.keras"), str(tmp_path / "exp"),
                     "--formats", "litert", "--quantize", "int8"]) != 0
    assert "--representative DATASET" in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()


@pytest.mark.slow
def test_int8_calibration_reads_a_table_as_its_run_did(tmp_path, capsys):
    """A run on a .csv with --columns and --label: the int8 export calibrates on the same
    six feature columns (it read all eight numeric ones, id and label too, and failed)."""
    from kerasae.models import resolve_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3)) @ rng.normal(size=(3, 6)) * 10 + 100
    path = tmp_path / "rec.csv"
    with open(path, "w") as f:
        f.write("id," + ",".join(f"f{j}" for j in range(6)) + ",label,note\n")
        for i, row in enumerate(x):
            f.write(f"{i}," + ",".join(f"{v:.3f}" for v in row) + f",{int(i < 10)},x\n")
    cols = ",".join(f"f{j}" for j in range(6))
    assert cli.main(["train", "stacked_ae", "--dataset", str(path), "--columns", cols,
                     "--label", "label", "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    model = str(tmp_path / "run" / "model.keras")
    name, split, _, options = resolve_model(model).training_data()
    assert name == str(path) and options == {"columns": cols.split(","), "label": "label"}
    capsys.readouterr()
    assert cli.main(["export", model, str(tmp_path / "exp"), "--formats", "litert",
                     "--quantize", "int8"]) == 0, capsys.readouterr().err
    summary = capsys.readouterr().out  # raw values of any range: an MSE, not a PSNR
    assert "reconstruction MSE (raw units)" in summary and "PSNR" not in summary
    calibration = json.loads((tmp_path / "exp" / "manifest.json").read_text())
    assert "rec.csv" in json.dumps(calibration)
    assert (tmp_path / "exp" / "encoder.int8.tflite").stat().st_size > 0
