"""Uses that stream: PCA of images a block at a time, and images read from files when indexed.

References: numpy's SVD of the centred images (PCA), the images read whole (streaming).
"""

import numpy as np
import pytest
from PIL import Image

from kerasae.uses import _pca
from kerasae.uses.inputs import StreamedImages, load_inputs, shuffled_batches


def _images(n, shape, seed=0):
    """Correlated images in [0, 1]: a few smooth patterns mixed, plus noise."""
    rng = np.random.default_rng(seed)
    d = int(np.prod(shape))
    basis = rng.normal(size=(6, d))
    x = rng.normal(size=(n, 6)) * np.array([3, 2, 1.5, 1, 0.5, 0.25]) @ basis
    x += 0.1 * rng.normal(size=(n, d))
    return ((x - x.min()) / (x.max() - x.min())).reshape((n,) + shape).astype("float32")


def _svd_reference(fit, x, k):
    f = fit.reshape(len(fit), -1).astype("float64")
    mu = f.mean(axis=0)
    _, s, vt = np.linalg.svd(f - mu, full_matrices=False)
    flat = x.reshape(len(x), -1).astype("float64")
    mses = []
    for j in range(1, k + 1):
        rec = (flat - mu) @ vt[:j].T @ vt[:j] + mu
        mses.append(np.mean((flat - rec) ** 2))
    return mu, vt[:k], s[:k] ** 2 / (len(f) - 1), np.array(mses)


@pytest.mark.parametrize("shape", [(12, 12, 1), (40, 40, 3)])  # covariance, Gram
def test_streamed_pca_equals_numpy_svd(shape):
    fit, x = _images(300, shape), _images(120, shape, seed=1)
    k = 10
    pca = _pca.fit_pca(fit, k)
    assert pca.solver.startswith("covariance" if np.prod(shape) <= 4096 else "Gram")
    mu, vt, var, mses = _svd_reference(fit, x, k)
    np.testing.assert_allclose(pca.mean_, mu, atol=1e-6)
    # The six patterns' components agree up to sign (beyond them the noise's are nearly
    # tied, so only their span is defined); the explained variances match.
    dots = np.abs(np.sum(pca.components_[:6] * vt[:6], axis=1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-4)
    np.testing.assert_allclose(pca.explained_variance_, var, rtol=1e-3)  # float32 Gram
    np.testing.assert_allclose(_pca.mse_curve(pca, x), mses, rtol=1e-4)
    coords = _pca.transform(pca, x, 3)
    ref = (x.reshape(len(x), -1) - mu) @ vt[:3].T
    np.testing.assert_allclose(np.abs(coords), np.abs(ref), atol=1e-3)
    assert _pca.psnr_at(pca, x, k) == pytest.approx(-10 * np.log10(mses[-1]), abs=1e-3)


def test_gram_solver_fits_evenly_spaced_images_when_there_are_many(monkeypatch):
    monkeypatch.setattr(_pca, "GRAM_MAX_IMAGES", 50)
    fit = _images(200, (40, 40, 3))
    pca = _pca.fit_pca(fit, 8)
    assert pca.fitted_on == 50
    index = np.linspace(0, 199, 50).round().astype("int64")
    mu, vt, _, _ = _svd_reference(fit[index], fit[:5], 8)
    np.testing.assert_allclose(pca.mean_, mu, atol=1e-6)
    np.testing.assert_allclose(np.abs(np.sum(pca.components_[:6] * vt[:6], axis=1)), 1.0,
                               atol=1e-4)


def test_streamed_images_read_what_the_whole_read_gives(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("cats", "dogs"):
        (tmp_path / c).mkdir()
        for i in range(7):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype="uint8")).save(
                tmp_path / c / f"{i}.png")
    whole = load_inputs(None, dataset=str(tmp_path), shape=(16, 16, 3))
    streamed = load_inputs(None, dataset=str(tmp_path), shape=(16, 16, 3), stream=True)
    s = streamed.images
    assert isinstance(s, StreamedImages) and isinstance(whole.images, np.ndarray)
    assert s.shape == whole.images.shape == (14, 16, 16, 3) and len(s) == 14
    np.testing.assert_array_equal(s[3], whole.images[3])
    np.testing.assert_array_equal(s[-1], whole.images[-1])
    np.testing.assert_array_equal(s[2:9], whole.images[2:9])
    np.testing.assert_array_equal(s[[5, 0, 13]], whole.images[[5, 0, 13]])
    np.testing.assert_array_equal(np.asarray(s), whole.images)
    np.testing.assert_array_equal(streamed.labels, whole.labels)
    assert streamed.names == whole.names
    pieces = [block for _, block in s.blocks(4)]
    assert [len(p) for p in pieces] == [4, 4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(pieces), whole.images)
    # A subset is a view: its images are the whole read's at those indices, nested too.
    odd = streamed.subset(np.arange(1, 14, 2))
    assert isinstance(odd.images, StreamedImages) and odd.images.shape == (7, 16, 16, 3)
    np.testing.assert_array_equal(odd.images[:], whole.images[1::2])
    np.testing.assert_array_equal(odd.images.subset(whole.labels[1::2] == 1)[[1, 0]],
                                  whole.images[1::2][whole.labels[1::2] == 1][[1, 0]])
    assert odd.names == whole.names[1::2]


def test_shuffled_batches_hold_every_row_once_an_epoch_in_a_new_order():
    x = np.arange(10, dtype="float32")[:, None]
    data = shuffled_batches(4, 0, x, -x)
    assert len(data) == 3
    orders = []
    for _ in range(2):
        batches = [data[i] for i in range(len(data))]
        assert [len(b[0]) for b in batches] == [4, 4, 2]
        rows = np.concatenate([b[0] for b in batches])[:, 0]
        np.testing.assert_array_equal(np.concatenate([b[1] for b in batches])[:, 0], -rows)
        assert sorted(rows) == list(range(10))
        orders.append(rows)
        data.on_epoch_end()
    assert not np.array_equal(orders[0], orders[1])


def test_the_pixel_probe_on_the_training_span_is_the_probe_on_all_pixels():
    """More pixels than training images: logistic regression on the projection equals it
    on the standardised pixels (the reference: scikit-learn on all 900 columns)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from kerasae.uses import _features

    rng = np.random.default_rng(0)
    w = rng.normal(size=(900, 3))
    x, xt = rng.normal(size=(120, 900)), rng.normal(size=(60, 900))
    y = np.argmax(x @ w + 5 * rng.normal(size=(120, 3)), axis=1)
    train, test, scaled = _features._pixel_probe_rows(x.astype("float32"), xt)
    assert not scaled and train.shape == (120, 119)  # centred: rank n - 1
    scaler = StandardScaler().fit(x)
    full = LogisticRegression(C=0.01, max_iter=5000, tol=1e-10).fit(scaler.transform(x), y)
    small = LogisticRegression(C=0.01, max_iter=5000, tol=1e-10).fit(train, y)
    np.testing.assert_allclose(small.decision_function(test[:]),
                               full.decision_function(scaler.transform(xt)), atol=1e-4)
