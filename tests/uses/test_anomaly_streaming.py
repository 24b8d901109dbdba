"""anomaly on image folders streams its images: the same scores as with the images in memory.

References: the same run with every image loaded (`stream=False`), numpy's SVD of the
normal training images (the PCA baseline), Keras's own forward pass (the scores).
"""

import numpy as np
import pytest

import kerasae
from kerasae.uses import _anomaly
from kerasae.uses.inputs import StreamedImages, load_inputs
from tests.helpers import photo_crops

SHAPE = (40, 40, 3)  # 4,800 values: the PCA baseline takes the Gram solver


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def model():
    """A small conv AE of 40x40 colour crops, trained one epoch (its weights are used as
    they are: `train=False`)."""
    import keras

    x = np.stack(photo_crops(64, seed=3, size=SHAPE[:2])).astype("float32") / 255
    keras.utils.set_random_seed(0)
    ae = kerasae.build("conv_ae", input_shape=SHAPE, filters=(8, 16), latent_dim=8, seed=0)
    ae.compile(optimizer=keras.optimizers.Adam(3e-3))
    ae.fit(x, epochs=1, batch_size=16, verbose=0)
    return ae


def _write(root, layout):
    """Photo crops (44x48, read at 40x40) in `layout`: class folders with `train/` +
    `test/`, class folders without, or one flat folder."""
    from PIL import Image

    folders = {"split": [f"{s}/{c}" for s in ("train", "test") for c in ("china", "flower")],
               "classes": ["china", "flower"], "flat": ["."]}[layout]
    for j, folder in enumerate(folders):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i, crop in enumerate(photo_crops(18, seed=j, size=(44, 48))):
            Image.fromarray(crop).save(root / folder / f"{i:02d}.png")
    return str(root)


def _run(model, folder, stream, monkeypatch, **kwargs):
    """`anomaly` with the images streamed or (`stream=False`) all loaded, and the type
    its images were held in."""
    held = set()

    def reading(*args, **kw):
        inputs = load_inputs(*args, **dict(kw, stream=stream))
        held.add(type(inputs.images))
        return inputs

    with monkeypatch.context() as m:
        m.setattr(_anomaly, "load_inputs", reading)
        r = kerasae.uses.anomaly(model, dataset=folder, **kwargs)
    return r, held


@pytest.mark.parametrize("layout", ["split", "classes", "flat"])
def test_streamed_scores_equal_those_of_the_images_in_memory(model, layout, tmp_path,
                                                             monkeypatch):
    folder = _write(tmp_path / "data", layout)
    runs = {}
    for stream in (True, False):
        runs[stream], held = _run(model, folder, stream, monkeypatch, train=False,
                                  out=tmp_path / f"out-{stream}")
        assert held == {StreamedImages if stream else np.ndarray}
    streamed, whole = runs[True], runs[False]
    assert sorted(streamed.arrays) == sorted(whole.arrays)
    for name, value in whole.arrays.items():
        np.testing.assert_allclose(streamed.arrays[name], value, rtol=1e-5, atol=1e-8,
                                   err_msg=name)
    assert streamed["threshold"]["value"] == pytest.approx(whole["threshold"]["value"],
                                                           rel=1e-5)
    assert streamed["pca_baseline"]["solver"].startswith("Gram matrix")
    if layout != "flat":
        assert streamed["roc_auc"] == pytest.approx(whole["roc_auc"], abs=1e-9)
        assert streamed["at_threshold"] == whole["at_threshold"]
    assert ("notes" in streamed.metrics) == (layout == "classes") == ("notes" in whole.metrics)
    assert (tmp_path / "out-True" / "scores.csv").read_text() == (
        tmp_path / "out-False" / "scores.csv").read_text()


@pytest.mark.parametrize("layout", ["split", "flat"])
def test_pca_baseline_is_numpys_svd_of_the_normal_training_images(model, layout, tmp_path):
    folder = _write(tmp_path / "data", layout)
    r = kerasae.uses.anomaly(model, dataset=folder, train=False)
    train = load_inputs(None, dataset=folder, split="train", shape=SHAPE)
    test = load_inputs(None, dataset=folder, split="auto", shape=SHAPE)
    fit = train.images if layout == "flat" else train.images[train.labels != 1]
    f = fit.reshape(len(fit), -1).astype("float64")
    mu = f.mean(axis=0)
    vt = np.linalg.svd(f - mu, full_matrices=False)[2][:8]
    centred = test.images.reshape(len(test), -1).astype("float64") - mu
    expected = ((centred - centred @ vt.T @ vt) ** 2).mean(axis=1)
    assert r["pca_baseline"]["components"] == 8
    # float32 Gram products: in-sample residuals (flat) are ~1e-5 of the images' variance.
    np.testing.assert_allclose(r.arrays["pca_scores"], expected, rtol=1e-4, atol=1e-8)


def test_a_streamed_detector_trains_on_the_normal_images_and_scores_all(model, tmp_path):
    folder = _write(tmp_path / "data", "split")
    r = kerasae.uses.anomaly(model, dataset=folder, epochs=2, batch_size=8, seed=1)
    assert r["training"]["images"] == 18 and r["training"]["retrained"]
    assert len(r["training"]["history"]["loss"]) == 2
    test = load_inputs(None, dataset=folder, split="test", shape=SHAPE)
    np.testing.assert_array_equal(r.arrays["is_anomaly"], test.labels == 1)
    recon = np.asarray(r.model.decoder(r.model.encoder(test.images)))
    np.testing.assert_allclose(r.arrays["scores"],
                               ((test.images - recon) ** 2).mean(axis=(1, 2, 3)),
                               rtol=1e-4, atol=1e-7)
    train = load_inputs(None, dataset=folder, split="train", shape=SHAPE)
    normal = train.images[train.labels == 0]
    recon = np.asarray(r.model.decoder(r.model.encoder(normal)))
    np.testing.assert_allclose(r.arrays["train_scores"],
                               ((normal - recon) ** 2).mean(axis=(1, 2, 3)),
                               rtol=1e-4, atol=1e-7)
    again = kerasae.uses.anomaly(model, dataset=folder, epochs=2, batch_size=8, seed=1)
    np.testing.assert_allclose(again.arrays["scores"], r.arrays["scores"], rtol=1e-5)
