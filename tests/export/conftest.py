"""Shared by the export tests: every registered builder, tiny, exported once per session."""

import numpy as np
import onnxruntime as ort
import pytest

from kerasae.export import export
from kerasae.models import list_builders
from tests.helpers import build_tiny, digits_batch

BUILDERS = list_builders()


def session(path):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def run(sess, feeds):
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def keras_outputs(model, x):
    """Independent reference: the original model's own sub-models, eager."""
    code = model.encoder(x, training=False)
    if model.variational:
        enc = {"z_mean": np.asarray(code[0]), "z_log_var": np.asarray(code[1])}
        code = enc["z_mean"]
    else:
        enc = {"code": np.asarray(code)}
        code = enc["code"]
    return enc, code, np.asarray(model.decoder(code, training=False)), np.asarray(model(x))


def anomaly_threshold(model, x):
    """A threshold between the 3rd and 4th Keras scores, so flags are mixed and robust."""
    recon = np.asarray(model(x))
    scores = np.mean((x.astype("float64") - recon) ** 2, axis=(1, 2, 3))
    s = np.sort(scores)
    return float((s[2] + s[3]) / 2), scores


@pytest.fixture(scope="session")
def exports(tmp_path_factory):
    """Each registered builder, tiny, built once and exported once (every format)."""
    root = tmp_path_factory.mktemp("exports")
    x_ref = digits_batch(16)[9:16]  # real digits, not the ones the tests feed
    out = {}
    for name in BUILDERS:
        model = build_tiny(name)
        metadata = None
        if name in ("conv_ae", "conv_vae"):
            threshold, _ = anomaly_threshold(model, x_ref)
            metadata = {"anomaly": {"score": "mse", "threshold": threshold}}
        path = str(root / name)
        manifest = export(model, path, metadata=metadata, reference_inputs=x_ref,
                          autoencoder_onnx=(name == "conv_vae"),
                          formats=("saved_model", "onnx", "litert"))
        out[name] = (model, path, manifest)
    return out
