"""The family contract: every registered builder, with its own example arguments and inputs.

Each family states its contract where it registers (`register_builder(name,
example=..., exports=..., uses=...)`); the tests here read nothing else, so a new
family (one module in `kerasae/models/families/`) is checked by them as it is. The
references are numpy: losses and reconstructions are recomputed from the
sub-models' own outputs, and files are compared with the model that wrote them.
"""

import keras
import numpy as np
import pytest

import kerasae
from kerasae.models import get_contract, list_builders, registry
from tests.helpers import build_tiny, per_family, sample, sha256

BUILDERS = list_builders()


def _loss(model, x):
    """The model's mean loss on `x` above its floor, recomputed in numpy from its
    sub-models' outputs: the reconstruction error (squared, Bernoulli cross-entropy less
    that of a perfect reconstruction, or the Gaussian negative log-density), averaged
    over values for an AE; summed, plus beta times the analytic KL, for a VAE."""
    x = np.asarray(x, dtype="float64")
    code = model.encoder(x)
    z_mean = np.asarray(code[0] if model.variational else code, dtype="float64")
    recon = np.asarray(model.decoder(z_mean), dtype="float64").reshape(len(x), -1)
    flat = x.reshape(len(x), -1)
    if model.reconstruction == "bce":
        # Less its floor (the cross-entropy of x with itself), so a drop is a real one.
        p, q = np.clip(recon, 1e-7, 1 - 1e-7), np.clip(flat, 1e-7, 1 - 1e-7)
        err = -(flat * np.log(p) + (1 - flat) * np.log(1 - p))
        err -= -(flat * np.log(q) + (1 - flat) * np.log(1 - q))
    elif model.reconstruction == "gaussian":
        # Normal log-density at the maximum-likelihood variance (the batch's squared error).
        var = np.mean((flat - recon) ** 2)
        err = 0.5 * ((flat - recon) ** 2 / var + np.log(2 * np.pi * var))
    else:
        err = (flat - recon) ** 2
    if not model.variational:
        return float(err.mean())
    z_log_var = np.asarray(code[1], dtype="float64").reshape(len(x), -1)
    z = z_mean.reshape(len(x), -1)
    kl = -0.5 * (1 + z_log_var - z ** 2 - np.exp(z_log_var)).sum(1)
    return float(np.mean(err.sum(1) + model.beta * kl))


class _Trained(dict):
    """Each builder trained a few steps on its contract's sample, saved and reloaded, once,
    when a test first asks for it (so `-k NAME` trains only that family)."""

    def __init__(self, tmp_path_factory):
        super().__init__()
        self.tmp = tmp_path_factory

    def __missing__(self, name):
        keras.utils.set_random_seed(1)
        x = sample(name, 64, seed=1)
        model = build_tiny(name)
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        before = _loss(model, x)
        model.fit(x, epochs=20, batch_size=16, shuffle=False, verbose=0)
        path = self.tmp.mktemp(name) / "model.keras"
        model.save(path)
        self[name] = (model, before, _loss(model, x),
                      keras.saving.load_model(path, safe_mode=True), path)
        return self[name]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return _Trained(tmp_path_factory)


def test_every_builder_states_a_contract():
    for name in BUILDERS:
        contract = get_contract(name)
        assert contract.input_kind in registry.USES_BY_KIND
        assert set(contract.applies()) <= set(registry.USES)
        assert set(contract.exports) <= set(registry.EXPORT_FORMATS)


@pytest.mark.slow
@pytest.mark.parametrize("name", per_family(BUILDERS))
def test_builds_standalone_submodels_of_its_input(name, trained):
    model, contract = trained[name][0], get_contract(name)
    x = sample(name, 5, seed=2)
    assert x.shape[1:] == contract.input_shape == model.image_shape
    assert model.input_kind == contract.input_kind
    assert model.predict(x, verbose=0).shape == x.shape
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    assert isinstance(encoder, keras.Model) and isinstance(decoder, keras.Model)
    codes = encoder(x)
    if model.variational:  # the keras.io vocabulary: the encoder never samples
        assert [t.name for t in encoder.outputs] == [encoder.get_layer("z_mean").output.name,
                                                     encoder.get_layer("z_log_var").output.name]
        assert codes[0].shape == codes[1].shape == (5,) + model.code_shape
    else:
        assert tuple(codes.shape[1:]) == model.code_shape


@pytest.mark.parametrize("name", per_family(BUILDERS))
def test_a_few_steps_lower_the_loss(name, trained):
    _, before, after, _, _ = trained[name]
    assert after < before - 0.1 * abs(before), (before, after)  # a log-density may be < 0


@pytest.mark.parametrize("name", per_family(BUILDERS))
def test_keras_round_trip_in_safe_mode(name, trained):
    model, _, _, loaded, _ = trained[name]
    x = sample(name, 16, seed=3)
    assert type(loaded) is type(model)
    assert loaded.builder_name == name and loaded.builder_config == model.builder_config
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("name", per_family(BUILDERS))
def test_weights_argument_takes_its_files(name, trained, tmp_path):
    model, _, _, _, keras_path = trained[name]
    weights = tmp_path / "model.weights.h5"
    model.save_weights(weights)
    for path, kind in ((weights, "weights.h5"), (keras_path, "keras")):
        again = kerasae.build(name, **get_contract(name).example, weights=str(path))
        assert again.start_point == {"kind": kind, "path": str(path), "sha256": sha256(path)}
        for a, b in zip(again.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", per_family(BUILDERS))
def test_decoder_of_encoder_is_deterministic_inference(name, trained):
    model = trained[name][0]
    x = sample(name, 8, seed=4)
    code = model.encoder(x)
    z = code[0] if model.variational else code  # a VAE decodes z_mean
    np.testing.assert_allclose(np.asarray(model.decoder(z)), np.asarray(model(x)), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(model(x)))


@pytest.mark.slow
@pytest.mark.parametrize("name", per_family(BUILDERS))
def test_fine_tunes_from_its_weights_with_kerasae_fit(name, trained, tmp_path):
    model, _, _, _, keras_path = trained[name]
    start = kerasae.build(name, **get_contract(name).example, weights=str(keras_path))
    x = sample(name, 64, seed=5)
    result = kerasae.fit(start, x, epochs=1, batch_size=16, validation=None, verbose=0,
                         tensorboard=False, out_dir=str(tmp_path / "run"))
    assert np.isfinite(result.history[-1]["loss"])
    assert result.run["weights"]["sha256"] == sha256(keras_path)
    assert result.run["dataset"]["image_shape"] == list(get_contract(name).input_shape)


@pytest.mark.parametrize("name", per_family(BUILDERS))
def test_the_uses_that_do_not_apply_say_so(name, trained):
    from kerasae.uses import check_applies

    model, contract = trained[name][0], get_contract(name)
    for use in registry.USES:
        if use in contract.applies():
            check_applies(use, model)
        else:
            with pytest.raises(ValueError, match=f"{use} does not apply to {model.name}"):
                check_applies(use, model)
    codes = kerasae.uses.features(model, images=sample(name, 16, seed=6), probe=False)
    assert codes.arrays["codes"].shape == (16,) + model.code_shape
