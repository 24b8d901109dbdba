"""Corruption and sampling layers: identity at inference, the asked-for rates when training."""

import keras
import numpy as np
import pytest

from kerasae.layers import Corruption, Sampling

N = 100_000


def _x(value=0.5):
    return np.full((100, 1000), value, dtype="float32")


@pytest.mark.parametrize("kind", ["gaussian", "masking", "salt_and_pepper"])
def test_corruption_is_identity_at_inference(kind):
    x = np.random.default_rng(0).uniform(size=(7, 8, 8, 1)).astype("float32")
    layer = Corruption(kind, amount=0.4, seed=1)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)


def test_gaussian_noise_std_within_two_percent():
    x = _x()
    out = np.asarray(Corruption("gaussian", amount=0.2, clip=False, seed=3)(x, training=True))
    noise = (out - x).ravel()
    assert noise.size == N
    assert abs(noise.std() / 0.2 - 1) < 0.02
    assert abs(noise.mean()) < 0.2 * 0.02


def test_masking_rate_within_two_percent():
    x = _x()
    out = np.asarray(Corruption("masking", amount=0.3, seed=4)(x, training=True))
    rate = np.mean(out == 0.0)
    assert abs(rate / 0.3 - 1) < 0.02
    kept = out != 0.0
    np.testing.assert_array_equal(out[kept], x[kept])


def test_salt_and_pepper_rate_and_balance():
    x = _x()
    out = np.asarray(Corruption("salt_and_pepper", amount=0.2, seed=5)(x, training=True))
    salt, pepper = np.mean(out == 1.0), np.mean(out == 0.0)
    assert abs((salt + pepper) / 0.2 - 1) < 0.02
    assert abs(salt / 0.1 - 1) < 0.05 and abs(pepper / 0.1 - 1) < 0.05


def test_gaussian_clip_keeps_the_value_range():
    out = np.asarray(Corruption("gaussian", amount=1.0, seed=6)(_x(), training=True))
    assert out.min() == 0.0 and out.max() == 1.0


def test_explicit_seed_is_reproducible_and_replica_slices_tile_the_global_draw():
    x = np.zeros((6, 4), "float32")
    layer = Corruption("gaussian", amount=1.0, clip=False, seed=0)
    seed = np.array([11, 7], "int32")
    full = np.asarray(layer(np.zeros((12, 4), "float32"), training=True, seed=seed))
    again = np.asarray(layer(np.zeros((12, 4), "float32"), training=True, seed=seed))
    np.testing.assert_array_equal(full, again)
    parts = [np.asarray(layer(x, training=True, seed=seed, replica_index=r, num_replicas=2))
             for r in range(2)]
    # Two replicas get different noise, and together exactly the one-device draw.
    assert not np.allclose(parts[0], parts[1])
    np.testing.assert_array_equal(np.concatenate(parts), full)


def test_sampling_is_the_mean_at_inference_and_has_the_right_moments():
    z_mean = np.full((N // 10, 10), 1.5, "float32")
    z_log_var = np.full((N // 10, 10), np.log(0.25), "float32")
    layer = Sampling(seed=2)
    np.testing.assert_array_equal(np.asarray(layer([z_mean, z_log_var])), z_mean)
    z = np.asarray(layer([z_mean, z_log_var], training=True))
    assert abs(z.mean() - 1.5) < 0.01
    assert abs(z.std() / 0.5 - 1) < 0.02


def test_sampling_stays_finite_for_huge_log_variance():
    z = Sampling(seed=0)([np.zeros((4, 3), "float32"), np.full((4, 3), 1e4, "float32")],
                         training=True)
    assert np.all(np.isfinite(np.asarray(z)))


@pytest.mark.parametrize("layer", [
    Corruption("salt_and_pepper", amount=0.1, clip=False, value_range=(-1.0, 1.0), seed=9),
    Corruption("gaussian", amount=(0.0, 0.2), seed=4),
    Sampling(seed=3, log_var_range=(-5.0, 5.0)),
])
def test_layers_round_trip_their_config(layer):
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="blur"), "Unknown corruption 'blur'.*Received: kind='blur'"),
    (dict(kind="masking", amount=1.5), "in \\[0, 1\\].*Received: amount=1.5"),
    (dict(kind="gaussian", amount=-0.1), "Received: amount=-0.1"),
    (dict(kind="gaussian", amount=(0.3, 0.1)), "low <= high.*Received: amount=\\(0.3, 0.1\\)"),
    (dict(kind="gaussian", amount=float("inf")), "finite.*Received: amount=inf"),
    (dict(kind="masking", amount=(0.0, 2.0)), "in \\[0, 1\\]"),
])
def test_bad_corruption_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Corruption(**kwargs)


@pytest.mark.parametrize("kind", ["gaussian", "masking"])
def test_a_corruption_range_draws_each_examples_amount_uniformly(kind):
    # Each row's noise std (or masked fraction), measured over its 1,000 values, spreads
    # uniformly over [0.05, 0.25]: its mean, quartiles and extremes match the uniform's.
    x = np.zeros((4000, 1000), "float32") if kind == "gaussian" else np.ones((4000, 1000), "float32")
    layer = Corruption(kind, amount=(0.05, 0.25), clip=False, seed=5)
    y = np.asarray(layer(x, training=True))
    per_row = y.std(axis=1) if kind == "gaussian" else (y == 0.0).mean(axis=1)
    np.testing.assert_allclose(np.quantile(per_row, [0.25, 0.5, 0.75]), [0.10, 0.15, 0.20],
                               atol=0.01)
    slack = 0.01 if kind == "gaussian" else 0.045  # a masked fraction of 1,000 is binomial
    assert abs(per_row.min() - 0.05) < slack and abs(per_row.max() - 0.25) < slack
    # Under tf.distribute the seed is a tensor: the levels come from a stream of their own.
    import tensorflow as tf

    y2 = np.asarray(layer(x, training=True, seed=tf.constant([7, 8])))
    per_row2 = y2.std(axis=1) if kind == "gaussian" else (y2 == 0.0).mean(axis=1)
    assert abs(np.median(per_row2) - 0.15) < 0.01 and per_row2.std() > 0.05


def test_a_builder_takes_a_corruption_range_and_its_keras_file_keeps_it(tmp_path):
    import kerasae

    model = kerasae.build("denoising_conv_ae", corruption_amount=[0.0, 0.2], filters=(4,),
                          input_shape=(8, 8, 1))
    path = str(tmp_path / "m.keras")
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    assert again.corruption.amount == (0.0, 0.2)
    x = np.full((64, 8, 8, 1), 0.5, "float32")
    noisy = np.asarray(again.corruption(x, training=True)) - x
    assert 0.03 < noisy.std() < 0.2  # some rows nearly clean, some at 0.2
    with pytest.raises(ValueError, match="low <= high"):
        kerasae.build("denoising_conv_ae", corruption_amount=[0.3, 0.1], input_shape=(8, 8, 1))
