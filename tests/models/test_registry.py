"""The registry and what every model shares: names, loss terms, targets, no TensorFlow in
model code. The per-family contract is `test_contract.py`."""

import ast
import pathlib

import keras
import numpy as np
import pytest

import kerasae
from kerasae import losses
from tests.helpers import build_tiny, digits_batch
from tests.models.test_contract import _loss


def test_fit_reports_loss_terms_separately():
    vae = build_tiny("conv_vae")
    vae.compile(optimizer="adam")
    history = vae.fit(digits_batch(32), epochs=1, verbose=0).history
    assert {"loss", "reconstruction_loss", "kl_loss"} <= set(history)
    np.testing.assert_allclose(
        history["loss"][0], history["reconstruction_loss"][0] + history["kl_loss"][0],
        rtol=1e-5,
    )


def test_fit_with_targets_uses_them():
    # (noisy, clean) pairs: the loss is measured against the clean targets.
    model = build_tiny("conv_ae")
    model.compile(optimizer="adam")
    x = digits_batch(16)
    y = np.zeros_like(x)
    loss = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    expected = float(np.mean(np.asarray(model.predict(x, verbose=0)) ** 2))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_labels_as_y_are_ignored_and_a_compile_loss_is_refused():
    # (images, labels): the labels carry no loss; the target is the image itself.
    model = build_tiny("conv_ae")
    model.compile(optimizer="adam")
    x = digits_batch(16)
    with_labels = model.evaluate(x, np.arange(16), verbose=0, return_dict=True)["loss"]
    alone = model.evaluate(x, verbose=0, return_dict=True)["loss"]
    assert with_labels == pytest.approx(alone, rel=1e-6)
    with pytest.raises(ValueError, match="do not match the reconstructions"):
        model.evaluate(x, np.zeros((16, 4, 4, 1), "float32"), verbose=0)
    with pytest.raises(ValueError, match=r"The loss is part of.*compile\(optimizer=\.\.\.\)"
                                         r".*Received: loss='mse'"):
        model.compile(optimizer="adam", loss="mse")


def test_unknown_builder_suggests_the_closest():
    with pytest.raises(ValueError) as e:
        kerasae.get_builder("conv_vea")
    message = str(e.value)
    assert "Did you mean 'conv_vae'?" in message
    assert "Received: name='conv_vea'" in message
    assert "stacked_ae" in message


def test_unknown_argument_is_named():
    with pytest.raises(TypeError, match="Did you mean 'latent_dim'.*Received: latent_dims=3"):
        kerasae.ConvAE(latent_dims=3)


REPO = pathlib.Path(__file__).resolve().parents[2]
# replicas.py is the TensorFlow-only part, imported only under the TensorFlow backend.
MODEL_MODULES = ["kerasae/layers.py", "kerasae/losses.py",
                 *sorted(str(p.relative_to(REPO)) for p in (REPO / "kerasae" / "models").rglob("*.py")
                         if p.name != "replicas.py")]


@pytest.mark.parametrize("path", MODEL_MODULES)
def test_model_modules_do_not_import_tensorflow(path):
    tree = ast.parse((REPO / path).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert "tensorflow" not in imported
    assert "tf2onnx" not in imported


def test_loss_module_is_keras_ops_only():
    # Same numbers from the per-example terms as from the numpy reference above.
    model = build_tiny("dense_vae")
    x = digits_batch(8)
    z_mean, z_log_var = model.encoder(x)
    terms = model.per_example_terms(x, model.decoder(z_mean), z_mean, z_log_var)
    rec = np.asarray(losses.reconstruction_loss(x, model.decoder(z_mean), "bce", "sum"))
    np.testing.assert_allclose(np.asarray(terms["reconstruction_loss"]), rec, rtol=1e-6)
    q = np.clip(x.astype("float64"), 1e-7, 1 - 1e-7)  # the reference's floor, added back
    floor = -(x * np.log(q) + (1 - x) * np.log(1 - q))
    np.testing.assert_allclose(float(np.mean(np.asarray(terms["loss"]))),
                               _loss(model, x) + floor.reshape(len(x), -1).sum(1).mean(),
                               rtol=1e-5)


def test_a_clone_from_config_is_built_and_saves_loadably(tmp_path):
    model = build_tiny("sparse_stacked_ae")
    clone = type(model).from_config(model.get_config())
    assert clone.built
    clone.set_weights(model.get_weights())
    clone.save(tmp_path / "clone.keras")
    loaded = keras.saving.load_model(tmp_path / "clone.keras", safe_mode=True)
    assert loaded.built and loaded.count_params() == model.count_params()
