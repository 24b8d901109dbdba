"""A new family is one module: the contract tests pick it up with no other file changed.

A throw-away family of records, `(features,)`, is written to a temporary folder and
loaded as a pytest plugin (`-p`) in a fresh pytest run of the registry-wide tests
(`tests/models/test_contract.py`, `tests/export/`), which must collect it and pass.
"""

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ENV, REPO

TOY_FAMILY = '''"""A throw-away family for a test: a dense autoencoder of records, `(features,)`."""

import keras

from kerasae.models import _validate
from kerasae.models.builder import register_builder
from kerasae.models.parts import make_autoencoder


@register_builder("toy_vector_ae", example=dict(units=16, latent_dim=3, input_shape=(12,)))
def ToyVectorAE(*, units=16, latent_dim=3, seed=None, input_shape=(12,), weights=None,
                name="toy_vector_ae"):
    """Instantiates a toy dense autoencoder of records."""
    shape = _validate.input_shape(input_shape, rank=1)
    inputs = keras.Input(shape, name="image")
    h = keras.layers.Dense(units, activation="relu", name="hidden")(inputs)
    encoder = keras.Model(inputs, keras.layers.Dense(latent_dim, name="code")(h), name="encoder")
    code = keras.Input((latent_dim,), name="code")
    h = keras.layers.Dense(units, activation="relu", name="hidden")(code)
    decoder = keras.Model(code, keras.layers.Dense(shape[0], name="reconstruction")(h),
                          name="decoder")
    return make_autoencoder(encoder, decoder, name=name, seed=seed)
'''

CONTRACT_FILES = ["tests/models/test_contract.py", "tests/export/test_export.py",
                  "tests/export/test_litert.py"]


@pytest.mark.slow
def test_a_throw_away_family_passes_every_contract_test(tmp_path):
    (tmp_path / "toy_family.py").write_text(TOY_FAMILY)
    env = dict(ENV, PYTHONPATH=os.pathsep.join([str(tmp_path), REPO]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "toy_family",
         "-k", "toy_vector_ae", *CONTRACT_FILES],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    out = proc.stdout[-3000:]
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    passed = int(re.search(r"(\d+) passed", out).group(1))
    # Every test parametrized by builder ran for the toy: as many as for a real family.
    ids = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
         "-k", "conv_ae and not denoising", *CONTRACT_FILES],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600).stdout
    per_family = len([line for line in ids.splitlines() if "[conv_ae]" in line])
    assert passed == per_family > 0, (passed, per_family)
