"""Registry-wide contract: every registered builder, on tiny inputs."""

import ast
import pathlib

import keras
import numpy as np
import pytest

import kerasae
from kerasae import losses
from tests.helpers import TINY, TINY_SHAPE, build_tiny, digits_batch

BUILDERS = kerasae.list_builders()


def test_every_builder_has_a_tiny_config():
    assert set(TINY) == set(BUILDERS)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Each builder trained a few steps on a fixed batch, saved and reloaded once."""
    x = digits_batch(64)
    out = {}
    for name in BUILDERS:
        model = build_tiny(name)
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        before = _loss(model, x)
        model.fit(x, epochs=15, batch_size=32, shuffle=False, verbose=0)
        after = _loss(model, x)
        path = tmp_path_factory.mktemp(name) / "model.keras"
        model.save(path)
        out[name] = (model, before, after, keras.saving.load_model(path, safe_mode=True))
    return out


def _loss(model, x):
    """Mean per-example loss computed from the sub-models and numpy references."""
    if model.variational:
        z_mean, z_log_var = (np.asarray(t) for t in model.encoder(x))
        x_hat = np.asarray(model.decoder(z_mean))
        p = np.clip(x_hat, 1e-7, 1 - 1e-7)
        rec = -(x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(len(x), -1).sum(1)
        kl = -0.5 * (1 + z_log_var - z_mean**2 - np.exp(z_log_var)).sum(1)
        return float(np.mean(rec + model.beta * kl))
    x_hat = np.asarray(model.predict(x, verbose=0))
    return float(np.mean((x - x_hat) ** 2))


@pytest.mark.parametrize("name", BUILDERS)
def test_forward_shapes_and_submodels(name, trained):
    model = trained[name][0]
    x = digits_batch(5)
    assert model.predict(x, verbose=0).shape == x.shape
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    assert isinstance(encoder, keras.Model) and isinstance(decoder, keras.Model)
    assert tuple(encoder.input.shape[1:]) == TINY_SHAPE
    codes = encoder(x)
    if model.variational:
        assert encoder.outputs[0] is encoder.get_layer("z_mean").output
        assert encoder.outputs[1] is encoder.get_layer("z_log_var").output
        assert codes[0].shape == codes[1].shape == (5, model.latent_dim)
    else:
        assert tuple(codes.shape[1:]) == model.code_shape


@pytest.mark.parametrize("name", BUILDERS)
def test_few_steps_lower_the_loss(name, trained):
    _, before, after, _ = trained[name]
    assert after < 0.9 * before, (before, after)


@pytest.mark.parametrize("name", BUILDERS)
def test_keras_round_trip_in_safe_mode(name, trained):
    model, _, _, loaded = trained[name]
    x = digits_batch(16)
    assert type(loaded) is type(model)
    assert loaded.builder_name == name and loaded.builder_config == model.builder_config
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("name", BUILDERS)
def test_decoder_of_encoder_equals_inference(name, trained):
    model = trained[name][0]
    x = digits_batch(16)
    code = model.encoder(x)
    z = code[0] if model.variational else code  # VAE: decoder(z_mean)
    np.testing.assert_allclose(
        np.asarray(model.decoder(z)), np.asarray(model(x, training=False)), atol=1e-6
    )


@pytest.mark.parametrize("name", BUILDERS)
def test_inference_is_deterministic(name, trained):
    model = trained[name][0]
    x = digits_batch(8)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(model(x)))


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
                 *sorted(str(p.relative_to(REPO)) for p in (REPO / "kerasae" / "models").glob("*.py")
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
    np.testing.assert_allclose(float(np.mean(np.asarray(terms["loss"]))), _loss(model, x),
                               rtol=1e-5)


def test_a_clone_from_config_is_built_and_saves_loadably(tmp_path):
    model = build_tiny("sparse_stacked_ae")
    clone = type(model).from_config(model.get_config())
    assert clone.built
    clone.set_weights(model.get_weights())
    clone.save(tmp_path / "clone.keras")
    loaded = keras.saving.load_model(tmp_path / "clone.keras", safe_mode=True)
    assert loaded.built and loaded.count_params() == model.count_params()
