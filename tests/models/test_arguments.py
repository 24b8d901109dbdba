"""Bad builder arguments: a clear ValueError / TypeError, never a raw TF traceback."""

import inspect

import keras
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kerasae


@pytest.mark.parametrize("builder, kwargs, error, match", [
    ("conv_ae", dict(latent_dim=0), ValueError, "`latent_dim` must be a positive integer. Received: latent_dim=0"),
    ("conv_ae", dict(filters=(32, -1)), ValueError, r"Received: filters\[1\]=-1"),
    ("conv_ae", dict(filters=()), ValueError, "at least one size.*Received: filters=()"),
    ("conv_ae", dict(latent_dim=2.5), TypeError, "positive integer. Received: latent_dim=2.5"),
    ("stacked_ae", dict(hidden_units="64"), TypeError, "tuple of positive integers.*Received: hidden_units='64'"),
    ("stacked_ae", dict(activation="rleu"), ValueError, "Unknown activation 'rleu'. Did you mean 'relu'.*Received: activation='rleu'"),
    ("conv_vae", dict(reconstruction="bcee"), ValueError, "Did you mean 'bce'.*Available: bce, gaussian, mse, ssim_l1. Received: reconstruction='bcee'"),
    ("conv_ae", dict(corruption="gausian"), ValueError, "Did you mean 'gaussian'.*Received: corruption='gausian'"),
    ("conv_ae", dict(decoder="deconv"), ValueError, "Available: transpose, upsample. Received: decoder='deconv'"),
    ("conv_ae", dict(input_shape=(28, 28)), ValueError, r"\(H, W, 1\). Received: input_shape=\(28, 28\)"),
    ("conv_ae", dict(input_shape=(0, 28, 1)), ValueError, r"Received: input_shape\[0\]=0"),
    ("dense_vae", dict(beta=-1.0), ValueError, "Received: beta=-1.0"),
    ("stacked_ae", dict(sparsity="l2"), ValueError, "Available: kl, l1. Received: sparsity='l2'"),
    ("sparse_stacked_ae", dict(sparsity_target=1.5), ValueError, "strictly between 0 and 1. Received: sparsity_target=1.5"),
    ("conv_ae", dict(seed=-3), TypeError, "Received: seed=-3"),
])
def test_bad_arguments_name_the_argument_and_the_fix(builder, kwargs, error, match):
    with pytest.raises(error, match=match):
        kerasae.build(builder, **kwargs)


def test_positional_arguments_are_refused():
    with pytest.raises(TypeError, match="keyword arguments only"):
        kerasae.ConvAE(16)


def test_missing_weights_file_is_clear(tmp_path):
    missing = str(tmp_path / "nope.weights.h5")
    with pytest.raises(FileNotFoundError, match="does not exist.*Received: weights="):
        kerasae.ConvAE(weights=missing)


def test_weights_file_round_trip(tmp_path):
    a = kerasae.ConvAE(filters=(4,), latent_dim=3, input_shape=(8, 8, 1), seed=1)
    path = tmp_path / "a.weights.h5"
    a.save_weights(path)
    b = kerasae.ConvAE(filters=(4,), latent_dim=3, input_shape=(8, 8, 1), weights=str(path))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert (wa == wb).all()


def _is_ours(message):
    return "Received:" in message


sizes = st.one_of(st.integers(-3, 40), st.floats(-2, 40), st.none(), st.text(max_size=3))
shapes = st.one_of(
    st.tuples(st.integers(-2, 40), st.integers(-2, 40), st.integers(-1, 4)),
    st.tuples(st.integers(-2, 800)),
    st.tuples(st.integers(1, 12), st.integers(1, 12)),
    st.lists(st.integers(1, 6), max_size=5).map(tuple),
)
# A strategy for each kind of default a builder argument has (read from its signature:
# no builder is special-cased by name).
BY_DEFAULT = [
    (bool, st.one_of(st.booleans(), st.integers(-1, 2), st.none())),
    (int, sizes),
    (float, st.one_of(st.floats(-1, 5), st.just(float("nan")), st.just(float("inf")),
                      st.text(max_size=2))),
    (str, st.sampled_from(["relu", "gelu", "sigmoid", "nope", "", "Relu", "mse", "bce"])),
    (tuple, st.one_of(st.lists(st.integers(-4, 32), max_size=3).map(tuple), sizes)),
]


def _strategy(param):
    if param.name == "input_shape":
        return shapes
    for kind, strategy in BY_DEFAULT:
        if isinstance(param.default, kind):
            return strategy
    return st.one_of(st.none(), sizes)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(builder=st.sampled_from(kerasae.list_builders()), data=st.data())
def test_builder_arguments_never_leak_a_backend_error(builder, data):
    params = [p for p in inspect.signature(kerasae.get_builder(builder)).parameters.values()
              if p.name not in ("weights", "name", "seed")]
    chosen = data.draw(st.lists(st.sampled_from(params), min_size=1, max_size=4, unique=True))
    kwargs = {p.name: data.draw(_strategy(p), label=p.name) for p in chosen}
    try:
        model = kerasae.build(builder, **kwargs)
    except (ValueError, TypeError) as e:
        assert _is_ours(str(e)), f"{type(e).__name__}: {e}"
        return
    finally:
        keras.backend.clear_session()
    x = keras.ops.zeros((1, *model.image_shape))
    assert tuple(model(x).shape) == (1, *model.image_shape)
