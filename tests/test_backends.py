"""Under Keras's JAX or PyTorch backend: the parts that need TensorFlow stop at once with
one line that says so (no traceback, exit 1), and what README says works does."""

import importlib.util
import subprocess
import sys

import pytest

from tests.helpers import ENV

NEEDS = {
    "kerasae.fit": "import kerasae; kerasae.fit('conv_ae', 'digits', epochs=1)",
    "kerasae.export.export": (
        "import kerasae; m = kerasae.build('conv_ae', input_shape=(8, 8, 1)); "
        "kerasae.export.export(m, 'never-written')"),
    "kerasae's uses": (
        "import numpy as np, kerasae.uses as u; "
        "u.features('conv_ae_fashion_mnist', np.zeros((2, 28, 28, 1), 'float32'))"),
}


def _backend(name):
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"needs {name} installed (.ci/run installs it: pip install "
                    f"{'jax[cpu]' if name == 'jax' else 'torch==2.13.0'})")
    return dict(ENV, KERAS_BACKEND=name)


@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.parametrize("feature", sorted(NEEDS))
def test_what_needs_tensorflow_says_so_in_one_line(backend, feature, tmp_path):
    proc = subprocess.run([sys.executable, "-c", NEEDS[feature]], env=_backend(backend),
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()
             and "Warning" not in line and not line.startswith("  warnings.warn")]
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert lines == [lines[-1]] and lines[0].startswith(
        f"NeedsTensorFlow: {feature} needs Keras's TensorFlow backend"), proc.stderr[-2000:]
    assert f"this process runs '{backend}'" in lines[0] and "KERAS_BACKEND=tensorflow" in lines[0]
    assert not (tmp_path / "never-written").exists()


@pytest.mark.slow
def test_builders_train_save_load_and_presets_work_under_jax(tmp_path):
    code = """
import keras, numpy as np, kerasae
# Ramps of random level and slope: two factors a code learns in a few steps (on pure noise
# a VAE's loss need not fall at all).
a, b = np.random.default_rng(0).uniform(size=(2, 64, 1, 1, 1))
x = (0.5 * b + 0.5 * a * np.linspace(0, 1, 28)[:, None] * np.ones((28, 1, 1))).astype("float32")
for name in ("conv_ae", "conv_vae", "stacked_ae"):
    m = kerasae.build(name, input_shape=(28, 28, 1))
    m.compile(optimizer="adam")
    loss = m.fit(x, epochs=5, batch_size=16, verbose=0).history["loss"]
    m.save(f"{name}.keras")
    back = keras.saving.load_model(f"{name}.keras")
    assert np.allclose(back.predict(x[:4], verbose=0), m.predict(x[:4], verbose=0), atol=1e-6)
    assert np.isfinite(loss).all() and loss[-1] < loss[0], (name, loss)
p = kerasae.build("conv_ae", weights="conv_ae_fashion_mnist")
assert p.encoder(x[:2]).shape == (2, 64)
print(keras.backend.backend())
"""
    proc = subprocess.run([sys.executable, "-c", code], env=_backend("jax"), cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] == "jax"
