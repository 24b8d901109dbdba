"""Exports of a model of any height and width (the tiny family built with `None` sizes):
SavedModel, ONNX and LiteRT take any size and batch, checked against Keras at two sizes
(one off the code's grid) and again here at a third on real photo crops; the two clients
check every size and reconstruct each photo at its own size."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import kerasae
from kerasae._util.errors import InvalidValue
from kerasae.export.bundle import export
from tests.export.test_clients import ENV, NODE_DIR, PY_CLIENT, _node, client_script
from tests.helpers import photo_crops

ATOL = 1e-5
CONFIG = dict(latent_channels=4, width=8, blocks=(1, 0, 1), input_shape=(None, None, 3))


@pytest.fixture(scope="module")
def any_size(tmp_path_factory):
    keras.utils.set_random_seed(3)
    model = kerasae.build("tiny_ae", **CONFIG)
    out = str(tmp_path_factory.mktemp("any") / "export")
    manifest = export(model, out, formats=("saved_model", "onnx", "litert"),
                      autoencoder_onnx=True)
    return model, out, manifest


def _photos(size, n=2, seed=0):
    return np.stack(photo_crops(n, seed, size=size)).astype("float32") / 255.0


def test_the_manifest_says_any_size_and_parity_held_at_two_sizes(any_size):
    model, out, manifest = any_size
    assert manifest["input"]["shape"] == [None, None, None, 3]
    assert manifest["latent"]["shape"] == [None, None, None, 4] and manifest["latent"]["size"] is None
    assert "multiples of 4" in manifest["input"]["size"]
    parity = manifest["parity"]
    assert parity["passed"] and parity["sizes"] == [[64, 64], [45, 71]]
    assert set(parity["max_error"]) == {"saved_model", "onnx", "onnx_autoencoder", "litert"}
    assert parity["max"] <= ATOL
    with np.load(os.path.join(out, "reference.npz")) as ref:
        assert ref["image_45x71"].shape[1:] == (45, 71, 3)
        assert ref["code_45x71"].shape[1:] == (12, 18, 4)  # ceil(45 / 4), ceil(71 / 4)
        assert ref["decoded_45x71"].shape[1:] == (48, 72, 3)  # the padded grid
        assert ref["reconstruction_45x71"].shape[1:] == (45, 71, 3)
        np.testing.assert_allclose(ref["reconstruction_45x71"],
                                   np.asarray(model.reconstruct(ref["image_45x71"])), atol=ATOL)


def test_every_runtime_matches_keras_at_a_third_size_on_photos(any_size):
    import onnxruntime as ort
    import tensorflow as tf

    from kerasae.export.litert import signature_runner

    model, out, _ = any_size
    x = _photos((37, 50))  # neither axis a multiple of 4
    want_code = np.asarray(model.encode(x))
    want_recon = np.asarray(model.reconstruct(x))
    assert want_recon.shape == x.shape

    enc = ort.InferenceSession(os.path.join(out, "encoder.onnx"))
    dec = ort.InferenceSession(os.path.join(out, "decoder.onnx"))
    full = ort.InferenceSession(os.path.join(out, "autoencoder.onnx"))
    code = enc.run(None, {"image": x})[0]
    np.testing.assert_allclose(code, want_code, atol=ATOL)
    decoded = dec.run(None, {"code": code})[0]
    assert decoded.shape == (2, 40, 52, 3)  # the padded grid: the client crops it
    np.testing.assert_allclose(decoded[:, :37, :50], want_recon, atol=ATOL)
    np.testing.assert_allclose(full.run(None, {"image": x})[0], want_recon, atol=ATOL)

    lite_enc = signature_runner(os.path.join(out, "encoder.tflite"), "encode")
    lite_dec = signature_runner(os.path.join(out, "decoder.tflite"), "decode")
    lite_code = lite_enc(image=x)["code"]
    np.testing.assert_allclose(lite_code, want_code, atol=ATOL)
    np.testing.assert_allclose(lite_dec(code=lite_code)["reconstruction"][:, :37, :50],
                               want_recon, atol=ATOL)

    saved = tf.saved_model.load(os.path.join(out, "saved_model"))
    got = saved.signatures["reconstruct"](image=tf.constant(x))["reconstruction"].numpy()
    np.testing.assert_allclose(got, want_recon, atol=ATOL)


def test_onnx_axes_are_named(any_size):
    import onnx

    _, out, _ = any_size

    def dims(name):
        graph = onnx.load(os.path.join(out, name)).graph
        return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                for v in list(graph.input) + list(graph.output)}

    assert dims("encoder.onnx") == {"image": ["batch", "height", "width", 3],
                                    "code": ["batch", "code_height", "code_width", 4]}
    assert dims("decoder.onnx")["reconstruction"] == ["batch", "decoded_height",
                                                      "decoded_width", 3]
    assert dims("autoencoder.onnx")["reconstruction"] == ["batch", "height", "width", 3]


def test_python_client_checks_every_size_and_reconstructs_photos_at_their_size(any_size,
                                                                              tmp_path):
    from PIL import Image

    model, out, _ = any_size
    files = []
    for i, crop in enumerate(photo_crops(2, 5, sizes=(30, 70))):
        files.append(str(tmp_path / f"photo{i}.png"))
        Image.fromarray(crop).save(files[-1])
    calls = [["check", out, "--json"],
             ["reconstruct", out, *files, "--out-dir", str(tmp_path / "recon"), "--json"]]
    proc = subprocess.run([sys.executable, "-c", client_script(calls)], capture_output=True, text=True,
                          env=dict(ENV, PYTHONPATH=""), cwd=str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check, recon = (json.loads(p) for p in proc.stdout.split("@@\n")[:2])
    assert check["passed"] and max(check["max_error"].values()) <= ATOL
    for source, written in zip(files, recon["written"]):
        with Image.open(source) as image:
            x = np.asarray(image, dtype="float32")[None] / 255.0
        with Image.open(written) as image:
            got = np.asarray(image, dtype="float32") / 255.0
        want = np.clip(np.asarray(model.reconstruct(x))[0], 0, 1)
        assert got.shape == x.shape[1:]  # at the photo's own size
        assert np.abs(got - want).max() <= 0.5 / 255 + 1e-5

    # `encode` of a folder of two sizes: one code per image, with its size; `decode` of
    # that file crops each one back and names it after its photo.
    codes, decoded = tmp_path / "codes.npz", tmp_path / "decoded"
    for argv in (["encode", out, str(tmp_path), "--out", str(codes)],
                 ["decode", out, str(codes), "--out-dir", str(decoded)]):
        proc = subprocess.run([sys.executable, PY_CLIENT, *argv], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(codes) as data:
        assert [list(s) for s in data["sizes"]] == [list(x.shape[:2]) for x in
                                                    _read_all(files)]
        for i, x in enumerate(_read_all(files)):
            np.testing.assert_allclose(data[f"code_{i:04d}"],
                                       np.asarray(model.encode(x[None])), atol=ATOL)
    for source in files:
        x = _read_all([source])[0][None]
        with Image.open(decoded / (os.path.basename(source)[:-4] + "_decoded.png")) as image:
            got = np.asarray(image, dtype="float32") / 255.0
        assert got.shape == x.shape[1:]
        assert np.abs(got - np.clip(np.asarray(model.reconstruct(x))[0], 0, 1)).max() \
            <= 0.5 / 255 + 1e-5

    # A wrong argument: one line, exit 2, no traceback.
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, PY_CLIENT, "encode", out, str(tmp_path / "empty"),
                           "--out", "x.npz"], capture_output=True, text=True, timeout=120,
                          cwd=str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "holds no image files" in proc.stderr


def _read_all(files):
    from PIL import Image

    out = []
    for path in files:
        with Image.open(path) as image:
            out.append(np.asarray(image, dtype="float32") / 255.0)
    return out


@pytest.mark.slow
def test_node_client_checks_every_size(any_size, tmp_path):
    node = _node()
    _, out, _ = any_size
    np.save(tmp_path / "images.npy", _photos((33, 41)))
    proc = subprocess.run([node, os.path.join(NODE_DIR, "check.js"), out, "--json",
                           "--images", str(tmp_path / "images.npy")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["passed"] and max(report["max_error"].values()) <= ATOL
    assert len(report["images"]["scores"]) == 2
    # 8-bit pixels are refused, not scored as values up to 255
    np.save(tmp_path / "u8.npy", (_photos((33, 41)) * 255).astype("uint8"))
    proc = subprocess.run([node, os.path.join(NODE_DIR, "check.js"), out,
                           "--images", str(tmp_path / "u8.npy")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "divide 8-bit pixels by 255" in proc.stderr


def test_int8_and_bad_references_are_refused_with_nothing_written(any_size, tmp_path):
    model = any_size[0]
    target = tmp_path / "int8"
    with pytest.raises(InvalidValue, match=r"calibrates at one image size.*at_size"):
        export(model, target, formats=("litert",), quantize="int8",
               representative=_photos((32, 32), n=4))
    with pytest.raises(InvalidValue, match=r"shape \(n, any, any, 3\)"):
        export(model, target, reference_inputs=[_photos((32, 32), n=7),
                                                np.zeros((7, 32, 32, 1), "float32")])
    assert not target.exists()


def test_a_fixed_size_copy_of_a_preset_keeps_its_export_tolerance():
    """`at_size` keeps the preset a model starts from, so its recipe's tolerance (and
    fine-tuning rate) still apply: read from the shipped metadata, no weights needed."""
    from kerasae.export.bundle import _tolerance
    from kerasae.export.formats import DEFAULT_TOLERANCE
    from kerasae.models.start import start_recipe

    model = kerasae.build("tiny_ae", **CONFIG)
    assert _tolerance(None, model) == DEFAULT_TOLERANCE
    model.start_point = {"kind": "preset", "name": "tae_flux2", "version": 1}
    assert start_recipe(model)["fine_tune_learning_rate"] == 1e-5
    assert _tolerance(None, model) == 1e-4
