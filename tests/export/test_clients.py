"""The consumers of an export, each a real subprocess: plain TensorFlow, the Node.js client
(onnxruntime-node) and the numpy + onnxruntime Python client, neither importing kerasae."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.export.conftest import anomaly_threshold
from tests.helpers import NODE_HINT, REPO, digits_batch, node_client

NODE_DIR = os.path.join(REPO, "export", "node")
PY_CLIENT = os.path.join(REPO, "export", "python", "kerasae_client.py")
ATOL = 1e-5
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)


BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"import of {{name}} is blocked in this test")
sys.meta_path.insert(0, _Block())
"""


@pytest.mark.slow
def test_saved_model_loads_with_plain_tensorflow_without_kerasae(exports):
    _, path, _ = exports["conv_vae"]
    code = BLOCKER.format(blocked=["kerasae"]) + f"""
import json, numpy as np, tensorflow as tf
m = tf.saved_model.load({os.path.join(path, "saved_model")!r})
ref = dict(np.load({os.path.join(path, "reference.npz")!r}))
enc = m.signatures["encode"](image=tf.constant(ref["image"]))
rec = m.signatures["reconstruct"](image=tf.constant(ref["image"][:1]))
out = {{k: float(np.abs(v.numpy() - ref[k]).max()) for k, v in enc.items()}}
out["reconstruction"] = float(np.abs(rec["reconstruction"].numpy() - ref["reconstruction"][:1]).max())
out["kerasae_loaded"] = any(n.startswith("kerasae") for n in sys.modules)
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(ENV, PYTHONPATH=""), cwd="/", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out.pop("kerasae_loaded") is False
    assert set(out) == {"z_mean", "z_log_var", "reconstruction"}
    assert max(out.values()) <= ATOL


def _node():
    node = node_client()
    if node is None:
        pytest.skip(NODE_HINT)
    return node


@pytest.mark.slow
@pytest.mark.parametrize("name", ["conv_ae", "conv_vae"])
def test_node_client_checks_export_and_flags_anomalies(exports, name, tmp_path):
    node = _node()
    model, path, manifest = exports[name]
    x = digits_batch(7)
    np.save(tmp_path / "images.npy", x)
    proc = subprocess.run([node, os.path.join(NODE_DIR, "check.js"), path, "--json",
                           "--images", str(tmp_path / "images.npy")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["passed"] and report["failures"] == [] and report["files"] == []
    assert set(report["max_error"]) >= {"decode/reconstruction", "reconstruct/reconstruction"}
    assert max(report["max_error"].values()) <= ATOL
    # Anomaly scores and flags against Keras, computed here.
    threshold = manifest["anomaly"]["threshold"]
    with np.load(os.path.join(path, "reference.npz")) as ref:
        _, ref_scores = anomaly_threshold(model, ref["image"])
    np.testing.assert_allclose(report["anomaly"]["scores"], ref_scores, atol=ATOL)
    assert report["anomaly"]["flags"] == (ref_scores > threshold).tolist()
    assert 0 < sum(report["anomaly"]["flags"]) < len(ref_scores)
    _, scores = anomaly_threshold(model, x)
    np.testing.assert_allclose(report["images"]["scores"], scores, atol=ATOL)
    assert report["images"]["flags"] == (scores > threshold).tolist()


@pytest.mark.slow
def test_node_client_detects_a_tampered_file(exports, tmp_path):
    node = _node()
    _, path, _ = exports["stacked_ae"]
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    with open(copy / "reference.npz", "ab") as f:  # still a readable zip, other bytes
        f.write(b"\0" * 16)
    proc = subprocess.run([node, os.path.join(NODE_DIR, "check.js"), str(copy), "--json"],
                          capture_output=True, text=True, timeout=120)
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and not report["passed"]
    assert any(p.startswith("reference.npz: sha256") for p in report["files"])


def client_script(calls):
    """Python code that runs the Python client once per argv of `calls`, with TensorFlow,
    Keras, kerasae and tf2onnx unimportable, printing `@@` after each call's output."""
    return BLOCKER.format(blocked=["tensorflow", "keras", "kerasae", "tf2onnx"]) + f"""
import json, runpy
for argv in {calls!r}:
    sys.argv = ["kerasae_client.py"] + argv
    try:
        runpy.run_path({PY_CLIENT!r}, run_name="__main__")
    except SystemExit as e:
        assert e.code in (0, None), e.code
    print("@@")
"""


def test_python_client_runs_without_tensorflow(exports, tmp_path):
    from PIL import Image

    model, path, manifest = exports["conv_ae"]
    # 8-bit PNGs: the client's pixel / 255 is exactly reproducible here.
    pixels = np.round(digits_batch(7)[..., 0] * 255).astype("uint8")
    files = []
    for i, p in enumerate(pixels):
        files.append(str(tmp_path / f"digit{i}.png"))
        Image.fromarray(p).save(files[-1])
    x = (pixels.astype("float32") / 255.0)[..., None]
    calls = [["check", path, "--json"], ["score", path, *files, "--json"],
             ["encode", path, *files, "--out", str(tmp_path / "codes.npz"), "--json"],
             ["reconstruct", path, *files[:2], "--out-dir", str(tmp_path / "recon"), "--json"]]
    code = client_script(calls) + """
print(json.dumps(sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(ENV, PYTHONPATH=""), cwd=str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    *parts, loaded = proc.stdout.split("@@\n")
    assert json.loads(loaded) == []  # no tensorflow, keras or kerasae module was imported
    check, score, encode, recon = (json.loads(p) for p in parts)
    assert check["passed"] and max(check["max_error"].values()) <= ATOL
    threshold = manifest["anomaly"]["threshold"]
    _, keras_scores = anomaly_threshold(model, x)
    got = np.array([row["score"] for row in score["images"]])
    np.testing.assert_allclose(got, keras_scores, atol=ATOL)
    assert [row["anomaly"] for row in score["images"]] == (keras_scores > threshold).tolist()
    with np.load(encode["out"]) as codes:
        np.testing.assert_allclose(codes["code"], np.asarray(model.encoder(x)), atol=ATOL)
    assert len(recon["written"]) == 2
    with Image.open(recon["written"][0]) as image:
        got = np.asarray(image, dtype="float32") / 255.0
    want = np.asarray(model(x[:1]))[0, ..., 0]
    assert np.abs(got - want).max() <= 0.5 / 255 + 1e-6
