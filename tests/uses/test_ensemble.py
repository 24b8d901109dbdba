"""PyOD's AutoEncoder's blocks in stacked_ae, the robust score and the Ensemble, each
against numpy; the robust detector's export scored alike by the Python client."""

import importlib.util
import os

import keras
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from kerasae import StackedAE, data
from kerasae._util.errors import InvalidType, InvalidValue
from kerasae.uses._scores import robust_spread
from kerasae.uses.detector import Detector
from kerasae.uses.ensemble import PYOD_AE, Ensemble

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = os.path.join(ROOT, "export", "python", "kerasae_client.py")


def _records(n=400, d=8, seed=0):
    """Rows near a 2-D subspace, one heavy-tailed feature (rare huge values, as
    annthyroid's TSH), the first 12 rows off the subspace."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)) @ rng.normal(size=(2, d)) * 5 + 50
    x += rng.normal(scale=0.3, size=x.shape)
    heavy = rng.choice(n, 8, replace=False)
    x[heavy, 0] += 400  # a heavy tail on feature 0
    x[:12] += rng.normal(scale=8, size=(12, d))
    y = np.zeros(n, "int64")
    y[:12] = y[heavy] = 1
    return x.astype("float32"), y


def test_pyod_blocks_are_dense_bn_act_dropout_and_match_numpy():
    m = StackedAE(input_shape=(6,), **PYOD_AE)
    names = [layer.name for layer in m.encoder.layers]
    assert names == ["image", "scale", "dense_0", "dense_0_bn", "dense_0_act", "dense_0_dropout",
                     "code", "code_bn", "code_act", "code_dropout"]
    bn = m.encoder.get_layer("dense_0_bn")
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)
    assert m.encoder.get_layer("dense_0").activation.__name__ == "linear"
    # Inference (dropout off, BN on its moving statistics) against numpy, with moving
    # statistics that are not the initial ones.
    rng = np.random.default_rng(1)
    for name in ("dense_0_bn", "code_bn"):
        layer = m.encoder.get_layer(name)
        gamma, beta, mean, var = layer.get_weights()
        layer.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(size=beta.shape),
                           rng.normal(size=mean.shape), rng.uniform(0.5, 2, var.shape)])
    x = rng.normal(size=(5, 6)).astype("float32")
    h = x  # the scale layer is not adapted yet: identity
    for dense, norm in (("dense_0", "dense_0_bn"), ("code", "code_bn")):
        w, b = m.encoder.get_layer(dense).get_weights()
        g, be, mu, var = m.encoder.get_layer(norm).get_weights()
        h = np.maximum((h @ w + b - mu) / np.sqrt(var + 1e-5) * g + be, 0)
    np.testing.assert_allclose(m.encoder.predict(x, verbose=0), h, rtol=1e-4, atol=1e-5)


def test_plain_stacked_ae_keeps_its_graph():
    m = StackedAE(input_shape=(6,), hidden_units=(4,), latent_dim=2)
    assert [layer.name for layer in m.encoder.layers] == ["image", "scale", "dense_0", "code"]
    assert [layer.name for layer in m.decoder.layers] == ["code", "decoder_dense_0",
                                                          "reconstruction", "unscale"]


@pytest.mark.parametrize("kwargs, error", [
    (dict(dropout=1.0), InvalidValue), (dict(dropout=-0.1), InvalidValue),
    (dict(batch_norm="yes"), InvalidType), (dict(kernel_initializer="nope"), InvalidValue)])
def test_bad_block_arguments_are_refused(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        StackedAE(input_shape=(6,), **kwargs)


def test_robust_spread_is_numpys_mad_with_its_floor():
    x, _ = _records()
    scale = np.full(x.shape[1], 1.0)
    got = robust_spread(data.from_array(x, kind="vector"), scale)
    mad = 1.4826 * np.median(np.abs(x - np.median(x, axis=0)), axis=0)
    np.testing.assert_allclose(got, np.maximum(mad, 0.1), rtol=1e-6)
    const = np.tile(x[:1], (50, 1))  # constant features: the model's own scale
    np.testing.assert_allclose(robust_spread(data.from_array(const, kind="vector"),
                                             np.arange(1, 9.0)), np.arange(1, 9.0))
    tight = x.copy()
    tight[:, 3] = 5.0 + (np.arange(len(x)) % 2) * 1e-3  # a spread far under the scale
    np.testing.assert_allclose(robust_spread(data.from_array(tight, kind="vector"),
                                             np.full(8, 2.0))[3], 0.2)


def test_bad_detector_and_ensemble_arguments():
    with pytest.raises(InvalidValue, match="score is 'mse' or 'robust'"):
        Detector("stacked_ae", score="mad")
    with pytest.raises(InvalidValue, match="steps"):
        Detector("stacked_ae", steps=0)
    with pytest.raises(InvalidValue, match="at least 2 members"):
        Ensemble(["dense_vae"])
    with pytest.raises(InvalidValue, match="members is 'auto'"):
        Ensemble(["dense_vae", 3])
    with pytest.raises(InvalidValue, match="percentile"):
        Ensemble(threshold="percentile:200")
    with pytest.raises(InvalidValue, match="not fitted"):
        Ensemble().decision_function(_records()[0])
    with pytest.raises(InvalidValue, match="not both"):
        Detector("stacked_ae", threshold=3.0, contamination=0.05)


def test_fitting_stacked_ae_at_its_image_default_on_records_says_input_shape():
    from kerasae import fit
    from kerasae.data.source import DataError

    with pytest.raises(DataError, match=r"input_shape=\(30,\)"):
        fit(StackedAE(), np.zeros((8, 30), "float32"), epochs=1, verbose=0)


@pytest.mark.slow
def test_detector_reads_a_frame_by_its_label_and_impute_and_checks_widths():
    pd = pytest.importorskip("pandas")
    x, y = _records(n=200)
    frame = pd.DataFrame(x, columns=[f"f{j}" for j in range(8)]).assign(anomaly=y)
    frame.iloc[3, 2] = np.nan
    det = Detector("stacked_ae", label="anomaly", impute="median", steps=50).fit(frame)
    assert det.columns_ == tuple(f"f{j}" for j in range(8))  # the label is no feature
    filled = x.copy()
    filled[3, 2] = np.nanmedian(frame["f2"])
    np.testing.assert_allclose(det.decision_function(frame), det.decision_function(filled),
                               rtol=1e-5)
    # New rows are filled with the training data's median, not their own.
    new = frame.iloc[:20].copy()
    new.iloc[0, 2] = np.nan
    want = x[:20].copy()
    want[[0, 3], 2] = np.nanmedian(frame["f2"])
    np.testing.assert_allclose(det.decision_function(new), det.decision_function(want),
                               rtol=1e-5)
    with pytest.raises(InvalidValue, match=r"fitted on 8 feature\(s\) per row; these data "
                                           r"have 10"):
        det.decision_function(np.zeros((4, 10), "float32"))


@pytest.fixture(scope="module")
def fitted():
    x, _ = _records()
    return x, Ensemble(members=["dense_vae", ("stacked_ae", PYOD_AE)], steps=120).fit(x)


@pytest.mark.slow
def test_robust_scores_are_numpys(fitted):
    x, ens = fitted
    member = ens.members_[1]
    recon = member.model_.predict(x, verbose=0).astype("float64")
    mad = 1.4826 * np.median(np.abs(x - np.median(x, axis=0)), axis=0)
    scale = np.asarray(member.model_.encoder.get_layer("scale").scale.numpy(), "float64")
    spread = np.maximum(mad, 0.1 * scale)
    want = (((x - recon) / spread) ** 2).mean(axis=1)
    np.testing.assert_allclose(member.decision_function(x), want, rtol=1e-4)
    np.testing.assert_allclose(member.train_scores_, want, rtol=1e-4)


@pytest.mark.slow
def test_ensemble_combines_standardised_log_scores(fitted):
    x, ens = fitted
    logs = [np.log(m.train_scores_ + 1e-12) for m in ens.members_]
    stats = [(v.mean(), v.std()) for v in logs]
    train = np.mean([(v - m) / s for v, (m, s) in zip(logs, stats)], axis=0)
    assert ens.threshold_ == pytest.approx(np.percentile(train, 99))
    x_new, _ = _records(seed=5)
    want = np.mean([(np.log(m.decision_function(x_new) + 1e-12) - mu) / s
                    for m, (mu, s) in zip(ens.members_, stats)], axis=0)
    np.testing.assert_allclose(ens.decision_function(x_new), want, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(ens.predict(x_new), (want > ens.threshold_).astype(int))
    # the rows off the subspace and far out on the heavy tail come out on top
    assert roc_auc_score(_records()[1], ens.decision_function(x)) > 0.95


@pytest.mark.slow
def test_ensemble_export_is_refused_and_writes_nothing(fitted, tmp_path):
    _, ens = fitted
    with pytest.raises(InvalidValue, match="members_"):
        ens.export(tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_robust_detector_exports_its_spread_and_the_client_scores_alike(fitted, tmp_path):
    x, ens = fitted
    member = ens.members_[1]
    member.export(tmp_path / "det")
    spec = importlib.util.spec_from_file_location("kerasae_client", CLIENT)
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    model = client.KerasaeExport(str(tmp_path / "det"))
    assert model.manifest["anomaly"]["scale"] == pytest.approx(member.spread_.tolist())
    scores, flags = model.anomaly(x)
    np.testing.assert_allclose(scores, member.decision_function(x), rtol=1e-3)
    clear = np.abs(scores - member.threshold_) > 1e-3 * member.threshold_
    assert clear.sum() >= len(x) - 2
    np.testing.assert_array_equal(flags[clear], member.predict(x).astype(bool)[clear])


def test_checking_the_block_arguments_leaves_the_seeded_weights_alone():
    # The same seed gives a records stacked_ae the weights plain Keras Dense layers get,
    # built in the same order: checking kernel_initializer drew no random number.
    keras.utils.set_random_seed(3)
    m = StackedAE(input_shape=(6,), hidden_units=(), latent_dim=2)
    keras.utils.set_random_seed(3)
    code, out = keras.layers.Dense(2), keras.layers.Dense(6)
    code.build((None, 6))
    out.build((None, 2))
    np.testing.assert_array_equal(m.encoder.get_layer("code").kernel.numpy(), code.kernel.numpy())
    np.testing.assert_array_equal(m.decoder.get_layer("reconstruction").kernel.numpy(),
                                  out.kernel.numpy())
