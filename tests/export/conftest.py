"""Shared by the export tests: every registered builder, with its contract's example arguments
and inputs, exported once per session in the formats its contract names."""

import numpy as np
import onnxruntime as ort
import pytest

from kerasae.export import export
from kerasae.models import get_contract, list_builders
from tests.helpers import build_tiny, sample

BUILDERS = list_builders()
# The builders whose contract names each format.
EXPORTING = {fmt: [b for b in BUILDERS if fmt in get_contract(b).exports]
             for fmt in ("saved_model", "onnx", "litert")}
ONNX_AND_SAVED_MODEL = [b for b in EXPORTING["onnx"] if b in EXPORTING["saved_model"]]


def assert_close(got, want, atol=1e-5):
    """The export parity rule, from numpy: absolute within [-1, 1], relative to the tensor's
    largest value above it (float32 carries about 7 digits of any value)."""
    want = np.asarray(want)
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    np.testing.assert_allclose(got, want, atol=atol * scale, rtol=0)


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
    scores = np.mean(((x.astype("float64") - recon) ** 2).reshape(len(x), -1), axis=1)
    s = np.sort(scores)
    return float((s[2] + s[3]) / 2), scores


def inputs(name, n=7):
    """Inputs the export tests feed a builder's model (its contract's kind and shape)."""
    return sample(name, n, seed=3)


class _Exports(dict):
    """Each registered builder, tiny, built and exported once (its contract's formats), with
    an anomaly threshold in its metadata and, for a VAE, the full autoencoder ONNX; made
    when a test first asks for it, so `-k NAME` exports only that family."""

    def __init__(self, root):
        super().__init__()
        self.root = root

    def __missing__(self, name):
        model = build_tiny(name)
        x_ref = sample(name, 7, seed=9)  # not the inputs the tests feed
        threshold, _ = anomaly_threshold(model, x_ref)
        path = str(self.root / name)
        manifest = export(model, path, metadata={"anomaly": {"score": "mse",
                                                             "threshold": threshold}},
                          reference_inputs=x_ref, autoencoder_onnx=model.variational,
                          formats=get_contract(name).exports)
        self[name] = (model, path, manifest)
        return self[name]


@pytest.fixture(scope="session")
def exports(tmp_path_factory):
    return _Exports(tmp_path_factory.mktemp("exports"))
