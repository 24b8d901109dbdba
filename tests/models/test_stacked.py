"""Stacked AEs: depth, sparsity, greedy layer-wise pretraining."""

import numpy as np
import pytest

import kerasae
from tests.helpers import digits_batch


@pytest.mark.parametrize("hidden", [(), (16,), (32, 16, 8)])
def test_any_depth(hidden):
    model = kerasae.StackedAE(hidden_units=hidden, latent_dim=4, input_shape=(8, 8, 1))
    dense = [l for l in model.encoder.layers if l.__class__.__name__ == "Dense"]
    assert [l.units for l in dense] == [*hidden, 4]
    assert model(digits_batch(3)).shape == (3, 8, 8, 1)


def test_flat_inputs_work():
    model = kerasae.StackedAE(hidden_units=(8,), latent_dim=2, input_shape=(64,))
    assert model(np.zeros((2, 64), "float32")).shape == (2, 64)


def test_kl_sparsity_uses_a_sigmoid_code_and_refuses_others():
    model = kerasae.SparseStackedAE(hidden_units=(16,), latent_dim=8, input_shape=(8, 8, 1))
    assert model.encoder.get_layer("code").activation.__name__ == "sigmoid"
    with pytest.raises(ValueError, match="code_activation='sigmoid'.*Received: code_activation='relu'"):
        kerasae.StackedAE(sparsity="kl", code_activation="relu")


def test_sparsity_penalty_is_part_of_the_training_loss():
    x = digits_batch(32)
    plain = kerasae.StackedAE(hidden_units=(16,), latent_dim=8, input_shape=(8, 8, 1), seed=0)
    sparse = kerasae.SparseStackedAE(hidden_units=(16,), latent_dim=8, input_shape=(8, 8, 1),
                                     sparsity_weight=0.5, seed=0)
    for m in (plain, sparse):
        m.compile(optimizer="adam")
    logs = sparse.evaluate(x, verbose=0, return_dict=True)
    # The extra over the reconstruction term is the KL penalty on this batch.
    h = np.asarray(sparse.encoder(x))
    rho, rho_hat = 0.05, np.clip(h.mean(0), 1e-7, 1 - 1e-7)
    kl = (rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))).sum()
    np.testing.assert_allclose(logs["loss"] - logs["reconstruction_loss"], 0.5 * kl, rtol=1e-4)
    assert plain.evaluate(x, verbose=0, return_dict=True)["loss"] == pytest.approx(
        plain.evaluate(x, verbose=0, return_dict=True)["reconstruction_loss"])


@pytest.fixture(scope="module")
def pretrained():
    from sklearn.datasets import load_digits

    x = (load_digits().images.astype("float32") / 16.0)[..., None]
    model = kerasae.SparseStackedAE(hidden_units=(48, 24), latent_dim=12,
                                    input_shape=(8, 8, 1), sparsity_weight=1e-3, seed=0)
    stages = kerasae.pretrain_layerwise(model, x, epochs=4, batch_size=64, seed=0)
    return model, stages


def test_each_stage_loss_falls(pretrained):
    _, stages = pretrained
    assert [s["layer"] for s in stages] == ["dense_0", "dense_1", "code"]
    assert [s["mirror"] for s in stages] == ["reconstruction", "decoder_dense_1", "decoder_dense_0"]
    for s in stages:
        assert s["loss"][-1] < s["loss"][0], s


def test_stack_holds_exactly_the_pretrained_weights(pretrained):
    # Later stages must not move earlier layers: after all stages, every layer
    # of the stack still equals its snapshot taken at the end of its own stage.
    model, stages = pretrained
    for s in stages:
        enc = model.encoder.get_layer(s["layer"]).get_weights()
        dec = model.decoder.get_layer(s["mirror"]).get_weights()
        for got, want in zip(enc + dec, s["weights"]["encoder"] + s["weights"]["decoder"]):
            np.testing.assert_array_equal(got, want)
        assert not np.allclose(s["weights"]["encoder"][0], 0)


def test_pretraining_refuses_non_stacked_models():
    with pytest.raises(TypeError, match="stacked dense autoencoder"):
        kerasae.pretrain_layerwise(kerasae.ConvAE(input_shape=(8, 8, 1), filters=(4,)),
                                   digits_batch(8))


@pytest.mark.parametrize("name", ["stacked_ae", "sparse_stacked_ae", "denoising_stacked_ae"])
def test_the_dense_builders_size_themselves_for_records_and_for_images(name):
    """'auto' sizes: records (13 features) get no hidden layer and a code of 13 // 4; images
    keep (512, 256) and 64 (the sparse and denoising forms kept the image sizes for
    records: a 64-D code for 13 features)."""
    def units(model):
        return [l.units for l in model.encoder.layers if l.__class__.__name__ == "Dense"]

    assert units(kerasae.build(name, input_shape=(13,))) == [3]
    assert units(kerasae.build(name, input_shape=(28, 28, 1))) == [512, 256, 64]
