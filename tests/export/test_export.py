"""Export: every builder to SavedModel + ONNX, reloaded and compared with Keras.

References are independent of the export code: Keras outputs of the original
model, onnxruntime sessions and `tf.saved_model.load` opened here, hashes
recomputed with hashlib, node types read from the ONNX graph. The consumers
(plain TensorFlow, the Node.js and Python clients) are in `test_clients.py`.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tensorflow as tf
from keras import ops

import kerasae
from kerasae import export as kx
from kerasae.export import parity
from kerasae.models.parts import make_autoencoder
from tests.export.conftest import (BUILDERS, EXPORTING, ONNX_AND_SAVED_MODEL, anomaly_threshold,
                                   assert_close, inputs, keras_outputs, run, session)
from kerasae.models import get_contract, scaling
from tests.helpers import build_tiny, digits_batch, per_kind, sample, sha256

SHAPE = (8, 8, 1)  # the tests' own hand-made models

ATOL = 1e-5
RANDOM_PREFIXES = ("RandomNormal", "RandomUniform")







# -------------------------------------------------------------- registry-wide
@pytest.mark.slow
@pytest.mark.parametrize("name", per_kind(ONNX_AND_SAVED_MODEL))
def test_every_builder_exports_and_matches_keras(exports, name):
    model, path, manifest = exports[name]
    enc_sess = session(os.path.join(path, "encoder.onnx"))
    dec_sess = session(os.path.join(path, "decoder.onnx"))
    loaded = tf.saved_model.load(os.path.join(path, "saved_model"))
    assert {"encode", "decode", "reconstruct"} <= set(loaded.signatures)
    x_all = inputs(name)
    for b in (1, 7):
        x = x_all[:b]
        enc, code, recon, full = keras_outputs(model, x)
        assert_close(recon, full)  # decoder(encoder(x)) == model(x)
        # ONNX
        got = run(enc_sess, {"image": x})
        assert list(got) == list(enc)  # named, ordered outputs
        for k in enc:
            assert_close(got[k], enc[k])
        assert_close(run(dec_sess, {"code": code})["reconstruction"], recon)
        # SavedModel
        sm_enc = loaded.signatures["encode"](image=tf.constant(x))
        assert set(sm_enc) == set(enc)
        for k in enc:
            assert_close(sm_enc[k].numpy(), enc[k])
        sm_dec = loaded.signatures["decode"](code=tf.constant(code))["reconstruction"]
        assert_close(sm_dec.numpy(), recon)
        sm_rec = loaded.signatures["reconstruct"](image=tf.constant(x))["reconstruction"]
        assert_close(sm_rec.numpy(), full)
    assert manifest["parity"]["passed"] and manifest["parity"]["max"] <= ATOL


@pytest.mark.parametrize("name", per_kind(EXPORTING["onnx"]))
def test_onnx_graphs_are_checked_named_dynamic_and_deterministic(exports, name):
    model, path, manifest = exports[name]
    for role in ("encoder", "decoder"):
        proto = onnx.load(os.path.join(path, f"{role}.onnx"))
        onnx.checker.check_model(proto, full_check=True)
        assert {o.domain: o.version for o in proto.opset_import}[""] == kx.DEFAULT_OPSET
        ops_used = {n.op_type for n in proto.graph.node}
        assert not [op for op in ops_used if op.startswith(RANDOM_PREFIXES)], ops_used
        for value in list(proto.graph.input) + list(proto.graph.output):
            assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
        names = ([i.name for i in proto.graph.input], [o.name for o in proto.graph.output])
        if role == "decoder":
            assert names == (["code"], ["reconstruction"])
        elif model.variational:
            assert names == (["image"], ["z_mean", "z_log_var"])
        else:
            assert names == (["image"], ["code"])
        props = {p.key: p.value for p in proto.metadata_props}
        meta = json.loads(props["kerasae"])
        assert meta["role"] == role and meta["model"]["builder"] == name
        assert meta["model"]["config"] == model.builder_config
        assert meta["keras_version"] == keras.__version__
        assert meta["kerasae_version"] == kerasae.__version__


@pytest.mark.parametrize("name", per_kind(BUILDERS))
def test_manifest_hashes_files_and_metadata(exports, name):
    model, path, manifest = exports[name]
    on_disk = json.load(open(os.path.join(path, "manifest.json")))
    assert on_disk == json.loads(json.dumps(manifest))
    found = set()
    for root, _, files in os.walk(path):
        for f in files:
            found.add(os.path.relpath(os.path.join(root, f), path).replace(os.sep, "/"))
    formats = get_contract(name).exports
    expected = {"manifest.json", "reference.npz"}
    if "onnx" in formats:
        expected |= {"encoder.onnx", "decoder.onnx"} | ({"autoencoder.onnx"}
                                                        if model.variational else set())
    if "saved_model" in formats:
        expected |= {"saved_model/saved_model.pb", "saved_model/fingerprint.pb",
                     "saved_model/assets/kerasae.json", "saved_model/variables/variables.index",
                     "saved_model/variables/variables.data-00000-of-00001"}
    if "litert" in formats:
        expected |= {"encoder.tflite", "decoder.tflite"}
    assert found == expected
    assert set(manifest["files"]) == expected - {"manifest.json"}
    for rel, info in manifest["files"].items():
        assert info["sha256"] == sha256(os.path.join(path, rel))
        assert info["bytes"] == os.path.getsize(os.path.join(path, rel))
    assert manifest["model"]["builder"] == name
    assert manifest["model"]["config"] == model.builder_config
    assert manifest["input"]["shape"] == [None, *get_contract(name).input_shape]
    # Images in [0, 1]; records and series take raw values (scaled inside the model).
    scaled = scaling.scale_kind(model)
    if scaled is None:
        assert manifest["input"]["value_range"] == [0.0, 1.0]
    else:
        assert manifest["input"]["value_range"] is None
        assert f"raw values of any range; the model scales each feature itself ({scaled}" \
            in manifest["input"]["scaling"]
    assert manifest["latent"]["size"] == model.latent_dim
    # Reference tensors are the Keras outputs on the reference inputs.
    with np.load(os.path.join(path, "reference.npz"), allow_pickle=False) as ref:
        ref = dict(ref)
    np.testing.assert_array_equal(ref["image"], sample(name, 7, seed=9))
    enc, code, recon, _ = keras_outputs(model, ref["image"])
    for k in enc:
        np.testing.assert_allclose(ref[k], enc[k], atol=1e-6)
    np.testing.assert_allclose(ref["reconstruction"], recon, atol=1e-6)
    # SavedModel metadata: asset and variable collection (one variable), same content.
    loaded = tf.saved_model.load(os.path.join(path, "saved_model"))
    meta = json.loads(loaded.kerasae_metadata[0].numpy().decode())
    assert meta == json.load(open(os.path.join(path, "saved_model/assets/kerasae.json")))
    assert meta["model"]["builder"] == name and meta["latent"] == manifest["latent"]


def test_anomaly_metadata_in_every_artifact(exports):
    _, path, manifest = exports["conv_ae"]
    block = manifest["anomaly"]
    assert block["score"] == "mse" and isinstance(block["threshold"], float)
    for role in ("encoder", "decoder"):
        props = {p.key: p.value for p in onnx.load(os.path.join(path, f"{role}.onnx")).metadata_props}
        assert json.loads(props["anomaly"]) == block
        assert json.loads(props["kerasae"])["anomaly"] == block
    assert json.load(open(os.path.join(path, "saved_model/assets/kerasae.json")))["anomaly"] == block
    with np.load(os.path.join(path, "reference.npz")) as ref:
        _, scores = anomaly_threshold(exports["conv_ae"][0], ref["image"])
        np.testing.assert_allclose(ref["score"], scores, atol=1e-6)


def test_vae_full_autoencoder_onnx_decodes_the_mean(exports):
    model, path, _ = exports["conv_vae"]
    x = digits_batch(7)
    got = run(session(os.path.join(path, "autoencoder.onnx")), {"image": x})
    assert list(got) == ["reconstruction"]
    np.testing.assert_allclose(got["reconstruction"], np.asarray(model(x)), atol=ATOL, rtol=0)


def test_vae_encoder_exported_twice_is_bit_identical(exports, tmp_path):
    model, path, _ = exports["conv_vae"]
    again = tmp_path / "again"
    kx.export(model, again, formats="onnx", check=False)
    x = digits_batch(64)
    a = run(session(os.path.join(path, "encoder.onnx")), {"image": x})
    b = run(session(str(again / "encoder.onnx")), {"image": x})
    for k in ("z_mean", "z_log_var"):
        assert a[k].tobytes() == b[k].tobytes()
    for f in (os.path.join(path, "encoder.onnx"), str(again / "encoder.onnx")):
        types = {n.op_type for n in onnx.load(f).graph.node}
        assert not any(t.startswith(RANDOM_PREFIXES) for t in types), types








# --------------------------------------------------------- sources and errors
def _custom_ae(encoder_layer=None, decoder_layer=None):
    inp = keras.Input(SHAPE, name="image")
    h = keras.layers.Dense(4, name="code")(keras.layers.Flatten()(inp))
    if encoder_layer is not None:
        h = encoder_layer(h)
    code = keras.Input((4,), name="code")
    y = keras.layers.Reshape(SHAPE)(keras.layers.Dense(64, activation="sigmoid")(code))
    if decoder_layer is not None:
        y = decoder_layer(y)
    return make_autoencoder(keras.Model(inp, h, name="encoder"),
                            keras.Model(code, y, name="decoder"), name="custom_ae")


class AlwaysNoisy(keras.layers.Layer):
    """Adds noise at inference too: not exportable as a deterministic graph."""

    def build(self, input_shape):
        self.seed_generator = keras.random.SeedGenerator(3)

    def call(self, x):
        return x + keras.random.normal(ops.shape(x), seed=self.seed_generator)


class Erfinv(keras.layers.Layer):
    def call(self, x):
        return ops.erfinv(ops.tanh(x))


class GraphModeShift(keras.layers.Layer):
    """Behaves differently in graph mode: eager Keras and exports disagree by 1.

    Eager values land in (-1, 0), where the error is the absolute difference.
    """

    def call(self, x):
        return x - 1.0 if tf.executing_eagerly() else x


def _leftovers(parent):
    return [n for n in os.listdir(parent) if ".tmp-" in n]


def test_random_op_refused_and_nothing_left_behind(tmp_path):
    out = tmp_path / "noisy"
    with pytest.raises(kx.ExportError, match="random ops at inference"):
        kx.export(_custom_ae(encoder_layer=AlwaysNoisy()), out)
    assert not out.exists() and _leftovers(tmp_path) == []


def test_unsupported_layer_gives_clear_error(tmp_path):
    out = tmp_path / "erfinv"
    with pytest.raises(kx.ExportError, match="ONNX cannot express: Erfinv"):
        kx.export(_custom_ae(decoder_layer=Erfinv()), out, formats="onnx")
    assert not out.exists() and _leftovers(tmp_path) == []


def test_parity_error_is_absolute_within_one_and_relative_to_the_tensor_scale_above():
    got, want = np.array([[0.25, 0.5]]), np.array([[0.25 - 3e-6, 0.5 + 2e-6]])
    assert parity.max_error(got, want) == pytest.approx(3e-6)
    # A near-zero unit beside a large one is measured against the tensor's scale.
    got, want = np.array([[20.0, 1e-3]]), np.array([[20.0 + 1e-4, 1e-3 + 1e-4]])
    assert parity.max_error(got, want) == pytest.approx(1e-4 / 20.0001)
    assert np.isnan(parity.max_error(np.array([1.0, np.nan]), np.array([1.0, 2.0])))


def test_parity_failure_reports_measured_error(tmp_path):
    out = tmp_path / "shifted"
    with pytest.raises(kx.ParityError, match=r"decode/reconstruction at batch 1: 1\b") as info:
        kx.export(_custom_ae(decoder_layer=GraphModeShift()), out)
    assert info.value.parity["max_error"]["onnx"]["decode/reconstruction"] == pytest.approx(1.0)
    assert info.value.parity["max_error"]["saved_model"]["decode/reconstruction"] == pytest.approx(1.0)
    assert not out.exists() and _leftovers(tmp_path) == []


def test_existing_output_needs_force_and_is_replaced_whole(tmp_path):
    model = build_tiny("stacked_ae")
    out = tmp_path / "out"
    kx.export(model, out, formats="onnx")
    (out / "stale.txt").write_text("old")  # in an earlier export: replaced with it
    with pytest.raises(FileExistsError, match="already exists"):
        kx.export(model, out, formats="onnx")
    assert (out / "stale.txt").exists()
    kx.export(model, out, formats="onnx", force=True)
    assert not (out / "stale.txt").exists() and (out / "encoder.onnx").exists()
    assert _leftovers(tmp_path) == []
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
    # A failing forced export keeps the previous export intact.
    with pytest.raises(kx.ExportError):
        kx.export(_custom_ae(encoder_layer=AlwaysNoisy()), out, formats="onnx", force=True)
    assert (out / "encoder.onnx").exists() and _leftovers(tmp_path) == []


def test_missing_parent_directories_are_created_and_a_file_in_the_way_is_refused(tmp_path):
    model = build_tiny("stacked_ae")
    out = tmp_path / "runs" / "v1" / "exported"
    kx.export(model, out, formats="onnx")
    x = digits_batch(2).reshape((2, *model.image_shape))
    got = run(session(str(out / "encoder.onnx")), {"image": x})
    np.testing.assert_allclose(got["code"], np.asarray(model.encoder(x)), atol=ATOL)
    (tmp_path / "a_file").write_text("keep")
    with pytest.raises(NotADirectoryError, match="is a file"):
        kx.export(model, tmp_path / "a_file" / "exported", formats="onnx")
    assert (tmp_path / "a_file").read_text() == "keep" and _leftovers(tmp_path) == []


def test_mixed_precision_model_exports_float32(tmp_path):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_tiny("conv_ae")
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.encoder.get_layer("conv_0_0").compute_dtype == "float16"
    manifest = kx.export(model, tmp_path / "mixed")
    assert manifest["model"]["dtype_policy"] == "mixed_float16"
    assert manifest["model"]["exported_dtype"] == "float32" and manifest["parity"]["passed"]
    float32 = onnx.TensorProto.FLOAT
    for role in ("encoder", "decoder"):
        proto = onnx.load(str(tmp_path / "mixed" / f"{role}.onnx"))
        assert {t.data_type for t in proto.graph.initializer} <= {float32, onnx.TensorProto.INT64,
                                                                  onnx.TensorProto.INT32}
        casts = [a.i for n in proto.graph.node if n.op_type == "Cast" for a in n.attribute]
        assert onnx.TensorProto.FLOAT16 not in casts
        for v in list(proto.graph.input) + list(proto.graph.output):
            assert v.type.tensor_type.elem_type == float32
    x = digits_batch(7)
    got = run(session(str(tmp_path / "mixed" / "decoder.onnx")),
              {"code": run(session(str(tmp_path / "mixed" / "encoder.onnx")), {"image": x})["code"]})
    # Against the float16 original: close, not equal (it rounds to float16).
    np.testing.assert_allclose(got["reconstruction"], np.asarray(model(x)), atol=2e-2)


def test_unbuilt_and_wrong_models_are_refused(tmp_path):
    # An Autoencoder is built by construction (its parts are functional models);
    # an object with unbuilt parts is refused before anything is written.
    class Unbuilt(keras.Model):
        def __init__(self):
            super().__init__()
            self.encoder = keras.Sequential([keras.layers.Dense(2)])
            self.decoder = keras.Sequential([keras.layers.Dense(64)])

    with pytest.raises(ValueError, match="is not built"):
        kx.export(Unbuilt(), tmp_path / "a")
    with pytest.raises(TypeError, match="needs a kerasae autoencoder"):
        kx.export(keras.Sequential([keras.layers.Dense(2)]), tmp_path / "b")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kwargs, error, phrase", [
    (dict(opset=99), ValueError, "opset 99 is not supported"),
    (dict(formats="tflite"), ValueError, "Unknown export format 'tflite'"),
    (dict(metadata={"anomaly": {"threshold": "high"}}), ValueError, "finite number"),
    (dict(metadata={"anomaly": {"score": "ssim", "threshold": 0.1}}), ValueError, "Unknown anomaly score"),
    (dict(metadata={"files": 1}), ValueError, "reserved"),
    (dict(tolerance=-1), ValueError, "tolerance"),
    (dict(reference_inputs=np.zeros((3, 8, 8))), ValueError, "reference_inputs must have shape"),
], ids=["opset", "format", "threshold", "score", "reserved-key", "tolerance", "reference-shape"])
def test_bad_arguments(exports, tmp_path, kwargs, error, phrase):
    model = exports["stacked_ae"][0]
    with pytest.raises(error, match=phrase):
        kx.export(model, tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_unknown_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        kx.export(str(tmp_path / "missing.keras"), tmp_path / "x")
    with pytest.raises(ValueError, match="preset"):
        kx.export("no_such_preset_xyz", tmp_path / "x")


def test_cli_exports_a_keras_file(exports, tmp_path, capsys):
    from kerasae import cli

    model = exports["dense_vae"][0]
    source = tmp_path / "model.keras"
    model.save(source)
    out = tmp_path / "cli_out"
    meta = json.dumps({"anomaly": {"score": "mse", "threshold": 0.5}})
    argv = ["export", str(source), str(out), "--formats", "onnx", "--metadata", meta,
            "--batch-sizes", "1,3", "--opset", "17"]
    assert cli.main(argv) == 0
    assert "parity vs Keras at batch sizes [1, 3]" in capsys.readouterr().out
    manifest = json.load(open(out / "manifest.json"))
    assert manifest["source"] == {"kind": "keras_file", "path": "model.keras",
                                  "sha256": sha256(str(source))}
    assert manifest["anomaly"]["threshold"] == 0.5
    assert manifest["onnx"]["opset"] == 17 and manifest["parity"]["batch_sizes"] == [1, 3]
    for role in ("encoder", "decoder"):
        proto = onnx.load(str(out / f"{role}.onnx"))
        assert {o.domain: o.version for o in proto.opset_import}[""] == 17
    assert sorted(manifest["files"]) == ["decoder.onnx", "encoder.onnx", "reference.npz"]
    x = digits_batch(3)
    got = run(session(str(out / "encoder.onnx")), {"image": x})
    np.testing.assert_allclose(got["z_mean"], np.asarray(model.encoder(x)[0]), atol=ATOL)
    # Existing output: refused with exit code 1 and a clear message.
    assert cli.main(argv) == 1
    assert "already exists" in capsys.readouterr().err


@pytest.mark.slow
def test_latency_benchmark_figures_fit_in_the_time_the_run_took():
    """The benchmark script (not a timed test): every call it timed ran inside this one, so
    its medians times its repeats cannot exceed the wall clock; its int8 error is checked
    against the float encoder."""
    import time

    from kerasae.benchmarks import export_latency

    start = time.perf_counter()
    result = export_latency.run("conv_ae", {"input_shape": list(SHAPE), "filters": [8],
                                            "latent_dim": 4}, batch_sizes=(1, 3), repeats=2,
                                warmup=0)
    wall = time.perf_counter() - start
    rows = {(r["runtime"], r["batch"]): r for r in result["rows"]}
    assert set(rows) == {(rt, b) for rt in ("onnxruntime", "saved_model", "litert",
                                            "litert_int8", "keras_call", "keras_predict")
                         for b in (1, 3)}
    spent = sum(r["median_ms"] * 2 / 1e3 for r in rows.values())
    assert 0 < spent < wall, (spent, wall)
    for b in (1, 3):  # quantized, so not exact, but close: the code of uniform images
        assert 0 < result["int8_max_abs_error"][b] < 0.5
    table = export_latency.format_table(result)
    assert "time / onnxruntime" in table and "litert_int8" in table


def test_cli_exports_a_shipped_preset_by_name(tmp_path):
    import kerasae.zoo

    name = "stacked_ae_fashion_mnist"
    if name not in kerasae.zoo.list_presets():
        pytest.skip(f"{name} is not in zoo/index.json")
    # A run directory named like the preset (kerasae train ... --out <name>) must not hide it.
    (tmp_path / name / "checkpoints").mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "kerasae.cli", "export", name, str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["model"]["builder"] == "stacked_ae"
    assert manifest["parity"]["passed"]
    preset = kerasae.zoo.load_model(name)
    x = np.load(tmp_path / "out" / "reference.npz")["image"]
    sess = ort.InferenceSession(str(tmp_path / "out" / "encoder.onnx"))
    np.testing.assert_allclose(sess.run(None, {"image": x})[0], np.asarray(preset.encoder(x)),
                               atol=1e-5, rtol=1e-5)
