"""kerasae.uses: every use on real Fashion-MNIST images with tiny, briefly trained models.

Numbers are checked against independent computations (numpy, scikit-learn,
scipy, tf.image.ssim, Pillow); files are real and PNGs are decoded with Pillow.
"""

import base64
import io
import json
import os
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kerasae
from kerasae import plots as _plots
from kerasae.uses import _compress
from kerasae.uses.codec import rangecoder
from tests.helpers import REPO, node_client

N = 300  # test images used by most tests


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """One BLAS thread: on 2 shared cores, threaded SVDs run up to 10x slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def fashion(fashion_mnist):
    x, y = fashion_mnist
    return x[:N], y[:N]


def _train(builder, x, **kw):
    import keras

    keras.utils.set_random_seed(0)
    model = kerasae.build(builder, filters=(4, 8), seed=0, **kw)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(x, epochs=2, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def ae(fashion):
    return _train("conv_ae", fashion[0], latent_dim=8)


@pytest.fixture(scope="module")
def vae(fashion):
    return _train("conv_vae", fashion[0], latent_dim=4)


@pytest.fixture(scope="module")
def ae_file(ae, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny_ae.keras"
    ae.save(path)
    return str(path)


def assert_png(path, size):
    """The PNG decodes (Pillow), has the expected pixel size and is not uniform."""
    from PIL import Image

    assert os.path.isfile(path), path
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == _plots.png_size(*size)
        pixels = np.asarray(im.convert("RGB"), dtype="float64")
    assert pixels.std() > 5.0
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20


def numpy_encode(model, x):
    code = model.encoder(x, training=False)
    code = code[0] if model.variational else code
    return np.asarray(code)


def numpy_psnr(a, b):
    mse = np.mean((np.asarray(a, "float64") - np.asarray(b, "float64")) ** 2)
    return 10 * np.log10(1.0 / mse)


def write_pngs(folder, images):
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(np.rint(img[..., 0] * 255).astype("uint8"), "L").save(
            os.path.join(folder, f"img{i:03d}.png"))
    return str(folder)


# --------------------------------------------------------------- range coder
@settings(max_examples=40, deadline=None)
@given(st.integers(2, 300).flatmap(
    lambda a: st.tuples(st.just(a), st.lists(st.lists(st.integers(0, a - 1), min_size=3,
                                                       max_size=3), max_size=40))))
def test_rangecoder_round_trips_any_symbols(case):
    alphabet, rows = case
    data = rangecoder.encode(rows, alphabet)
    assert rangecoder.decode(data, len(rows), 3, alphabet) == rows


def test_rangecoder_rate_is_near_the_entropy():
    rng = np.random.default_rng(0)
    p = np.array([0.6, 0.2, 0.1, 0.05, 0.03, 0.02])
    rows = rng.choice(len(p), size=(20000, 1), p=p)
    data = rangecoder.encode(rows.tolist(), 16)
    entropy = -(p * np.log2(p)).sum() * len(rows)  # bits, independent of the coder
    assert len(data) * 8 < entropy * 1.03 + 200
    assert rangecoder.decode(data, len(rows), 1, 16) == rows.tolist()


# ----------------------------------------------------------------- features
def test_features_writes_codes_and_scores_a_probe(ae, fashion, tmp_path):
    x, y = fashion
    r = kerasae.uses.features(ae, x, labels=y, out=tmp_path / "f", seed=0,
                              probe_cs=(0.1,), max_iter=200)
    codes = np.load(tmp_path / "f" / "codes.npy", allow_pickle=False)
    np.testing.assert_allclose(codes, numpy_encode(ae, x), atol=1e-5)
    saved = json.loads((tmp_path / "f" / "features.json").read_text())
    p = saved["probe"]
    assert p["codes"]["dims"] == 8 and p["pca"]["dims"] == 8 and p["pixels"]["dims"] == 784
    assert p["train_examples"] + p["test_examples"] == N
    for k in ("codes", "pca", "pixels"):
        assert 0.3 < p[k]["accuracy"] <= 1.0  # 10 classes: chance is ~0.1
    # The pixel probe, refitted independently with the chosen C on the same split.
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    tr, te = train_test_split(np.arange(N), test_size=0.25, random_state=0, stratify=y)
    flat = x.reshape(N, -1)
    scaler = StandardScaler().fit(flat[tr])
    clf = LogisticRegression(C=0.1, max_iter=200).fit(scaler.transform(flat[tr]),
                                                                   y[tr])
    expected = np.mean(clf.predict(scaler.transform(flat[te])) == y[te])
    assert p["pixels"]["accuracy"] == pytest.approx(expected, abs=2.5 / len(te))
    assert r["probe"] == saved["probe"]
    assert_png(tmp_path / "f" / "features.png", (6.4, 4.0))


def test_features_from_image_files_keeps_file_order(ae_file, fashion, tmp_path):
    x, _ = fashion
    folder = write_pngs(tmp_path / "imgs", x[:5])
    r = kerasae.uses.features(ae_file, folder, out=tmp_path / "f")
    assert r["files"] == [f"img{i:03d}.png" for i in range(5)]
    assert r["probe"] is None
    from kerasae.models.resolve import resolve_model

    model = resolve_model(ae_file).model
    codes = np.load(tmp_path / "f" / "codes.npy")
    np.testing.assert_allclose(codes, numpy_encode(model, x[:5]), atol=1e-5)
    assert sorted(os.listdir(tmp_path / "f")) == ["codes.npy", "features.json"]


# ------------------------------------------------------------------- reduce
def test_reduce_mse_table_matches_numpy_pca(ae, fashion, tmp_path):
    x, y = fashion
    fit = kerasae.data.load_numpy("fashion_mnist", "train[:2000]")[0]
    trainable = [w.trainable for w in ae.weights]
    r = kerasae.uses.reduce(ae, x, labels=y, pca_fit=fit, bottleneck_epochs=1,
                            out=tmp_path / "r")
    assert [w.trainable for w in ae.weights] == trainable  # the model is left as it was
    ae_row, pca_row, low_row, pca2_row = r["table"]
    assert low_row["method"] == "autoencoder + bottleneck" and low_row["dims"] == 2
    low_recon = r.arrays["reconstruction_low"]
    assert low_row["mse"] == pytest.approx(np.mean((x - low_recon) ** 2), rel=1e-5)
    recon = np.asarray(ae.decoder(numpy_encode(ae, x)))
    assert ae_row["mse"] == pytest.approx(np.mean((x - recon) ** 2), rel=1e-5)
    assert ae_row["psnr_db"] == pytest.approx(numpy_psnr(x, recon), abs=1e-4)
    # PCA by numpy's SVD of the centred fitting images.
    f = fit.reshape(len(fit), -1).astype("float64")
    mu = f.mean(axis=0)
    _, _, vt = np.linalg.svd(f - mu, full_matrices=False)
    flat = x.reshape(N, -1).astype("float64")
    for row, k in ((pca_row, 8), (pca2_row, 2)):
        v = vt[:k]
        rec = (flat - mu) @ v.T @ v + mu
        assert row["dims"] == k
        assert row["mse"] == pytest.approx(np.mean((flat - rec) ** 2), rel=1e-6)
    assert r["pca_mse_curve"][7] == pytest.approx(pca_row["mse"])
    assert np.all(np.diff(r["pca_mse_curve"]) <= 1e-12)
    assert np.load(tmp_path / "r" / "codes_2d.npy").shape == (N, 2)
    assert_png(tmp_path / "r" / "reduce_scatter.png", (11.4, 5.2))
    assert_png(tmp_path / "r" / "reduce_mse.png", (6.8, 4.6))


# ----------------------------------------------------------------- compress
def _parse_kae(path):
    """An independent reader of the documented .kae layout (version 2)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89KAE\r\n\x1a\n"
    version, length, crc = struct.unpack("<BII", data[8:17])
    blob = data[17:17 + length]
    assert zlib.crc32(blob) == crc
    return version, json.loads(blob), data[17 + length:]


def test_compress_file_round_trip_and_numbers(ae, fashion, tmp_path):
    x = fashion[0][:60]
    r = kerasae.uses.compress(ae, x, out=tmp_path / "c", sweep=True, sweep_count=30)
    path = tmp_path / "c" / "images.kae"
    version, header, payload = _parse_kae(path)
    assert version == 2
    assert header["count"] == 60 and header["code_shape"] == [8]
    assert header["payload_bytes"] == len(payload) and header["payload_crc32"] == zlib.crc32(payload)
    size = os.path.getsize(path)
    assert r["file_bytes"] == size and r["bits_per_image"] == pytest.approx(size * 8 / 60)
    # Dequantize the file's symbols by hand and decode: the decoded images.
    q = header["quantization"]
    offset = np.frombuffer(base64.b64decode(q["offset"]), "<f4")
    scale = np.frombuffer(base64.b64decode(q["scale"]), "<f4")
    symbols = np.asarray(rangecoder.decode(payload, 60, 8, 1 << q["bits"]))
    assert symbols.min() >= 0 and symbols.max() < 256
    codes = numpy_encode(ae, x)
    assert np.all(np.abs(offset + scale * symbols - codes) <= scale / 2 + 1e-6)
    expected = np.asarray(ae.decoder((offset + scale * symbols).astype("float32")))
    images, _ = kerasae.uses.decode_file(path, ae)
    np.testing.assert_allclose(images, expected, atol=1e-6)
    assert r["psnr_db"] == pytest.approx(numpy_psnr(x, expected), abs=1e-4)
    # JPEG at the reported quality, recomputed with Pillow and numpy.
    from PIL import Image

    j = r["jpeg_at_equal_psnr"]
    decoded, sizes, scans = [], [], []
    for img in x:
        buf = io.BytesIO()
        Image.fromarray(np.rint(img[..., 0] * 255).astype("uint8"), "L").save(
            buf, format="JPEG", quality=j["quality"], optimize=True)
        data = buf.getvalue()
        sizes.append(len(data))
        sos = data.find(b"\xff\xda")  # start of scan; its header length follows
        scans.append(len(data) - (sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")) - 2)
        decoded.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())), "float64") / 255)
    assert j["psnr_db"] == pytest.approx(numpy_psnr(x[..., 0], np.array(decoded)), abs=1e-6)
    assert j["bits_per_image"] == pytest.approx(np.mean(sizes) * 8)
    assert j["scan_bits_per_image"] == pytest.approx(np.mean(scans) * 8)
    for q_other in (max(1, j["quality"] - 1), min(100, j["quality"] + 1)):
        other, _, _ = _compress.jpeg_round_trip(x, q_other)
        assert abs(j["psnr_db"] - r["psnr_db"]) <= abs(numpy_psnr(x, other) - r["psnr_db"]) + 1e-9
    assert [row["bits"] for row in r["rate_distortion"]["autoencoder"]] == list(range(2, 9))
    assert_png(tmp_path / "c" / "compress.png", _plots.image_rows_size(3, 10))
    assert_png(tmp_path / "c" / "compress_rd.png", (6.8, 4.6))


def test_compress_decode_cli_writes_named_pngs(ae_file, fashion, tmp_path):
    from PIL import Image

    from kerasae import cli

    folder = write_pngs(tmp_path / "in", fashion[0][:4])
    assert cli.main(["compress", "--model", ae_file, "--images", folder, "--no-jpeg",
                     "--no-sweep", "--out", str(tmp_path / "c")]) == 0
    kae = tmp_path / "c" / "images.kae"
    assert _parse_kae(kae)[1]["names"] == [f"img{i:03d}.png" for i in range(4)]
    assert cli.main(["compress", "--decode", str(kae), "--model", ae_file,
                     "--out", str(tmp_path / "d")]) == 0
    decoded = np.load(tmp_path / "d" / "decoded.npy")
    with Image.open(tmp_path / "d" / "images" / "img002.png") as im:
        assert im.size == (28, 28)
        np.testing.assert_allclose(np.asarray(im) / 255.0, decoded[2, ..., 0], atol=0.5 / 255 + 1e-6)


def test_kae_damage_and_wrong_model_are_refused(ae, vae, fashion, tmp_path):
    import keras

    path = tmp_path / "x.kae"
    kerasae.uses.encode_file(ae, fashion[0][:10], path)
    data = path.read_bytes()
    (tmp_path / "cut.kae").write_bytes(data[:-3])
    with pytest.raises(ValueError, match="damaged or truncated"):
        kerasae.uses.decode_file(tmp_path / "cut.kae", ae)
    (tmp_path / "bad.kae").write_bytes(b"PK" + data[2:])
    with pytest.raises(ValueError, match="not a .kae file"):
        kerasae.uses.decode_file(tmp_path / "bad.kae", ae)
    other = kerasae.build("conv_ae", filters=(4, 8), latent_dim=8, seed=1)
    keras.utils.set_random_seed(1)
    with pytest.raises(ValueError, match="other weights"):
        kerasae.uses.decode_file(path, other)
    with pytest.raises(ValueError, match="codes of shape"):
        kerasae.uses.decode_file(path, vae)


# ------------------------------------------------------------------ denoise
def test_denoise_numbers_match_independent_metrics(ae, fashion, tmp_path):
    import tensorflow as tf
    from scipy import ndimage

    from kerasae import metrics

    x = fashion[0][:100]
    r = kerasae.uses.denoise(ae, x, noise_std=0.2, seed=3, out=tmp_path / "d")
    res = r["results"]
    rng_noisy = metrics.gaussian_noise(x, 0.2, 3)
    np.testing.assert_array_equal(r.arrays["noisy"], rng_noisy)
    assert res["noisy"]["psnr_db"] == pytest.approx(numpy_psnr(x, rng_noisy), abs=1e-6)
    denoised = np.asarray(ae.decoder(numpy_encode(ae, rng_noisy)))
    assert res["autoencoder"]["psnr_db"] == pytest.approx(numpy_psnr(x, denoised), abs=1e-4)
    tf_ssim = tf.image.ssim(tf.constant(x), tf.constant(denoised), max_val=1.0).numpy().mean()
    assert res["autoencoder"]["ssim"] == pytest.approx(float(tf_ssim), abs=1e-4)
    best_g = max(numpy_psnr(x, ndimage.gaussian_filter(rng_noisy, (0, s, s, 0)))
                 for s in (0.5, 0.75, 1.0, 1.5, 2.0))
    assert res["gaussian_filter"]["psnr_db"] == pytest.approx(best_g, abs=1e-4)
    best_m = max(numpy_psnr(x, ndimage.median_filter(rng_noisy, (1, k, k, 1)))
                 for k in (2, 3, 5))
    assert res["median_filter"]["psnr_db"] == pytest.approx(best_m, abs=1e-4)
    assert res["noisy"]["psnr_db"] < res["gaussian_filter"]["psnr_db"]
    assert_png(tmp_path / "d" / "denoise.png", _plots.image_rows_size(5, 10))


# ------------------------------------------------------------------ anomaly
@pytest.mark.slow
def test_anomaly_numbers_match_sklearn_and_export_carries_threshold(ae, tmp_path):
    from sklearn.metrics import precision_score, recall_score, roc_auc_score

    r = kerasae.uses.anomaly(ae, held_out="Trouser", epochs=1, train_limit=1200, limit=400,
                             threshold="mean+2std", out=tmp_path / "a", seed=0)
    scores, y = r.arrays["scores"], r.arrays["is_anomaly"]
    x, labels = kerasae.data.load_numpy("fashion_mnist", "test[:400]")
    np.testing.assert_array_equal(y, labels == 1)
    recon = np.asarray(r.model.decoder(numpy_encode(r.model, x)))
    np.testing.assert_allclose(scores, ((x - recon) ** 2).mean(axis=(1, 2, 3)), rtol=1e-4,
                               atol=1e-7)
    assert r["roc_auc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert r["pca_baseline"]["roc_auc"] == pytest.approx(
        roc_auc_score(y, r.arrays["pca_scores"]), abs=1e-12)
    ts = r.arrays["train_scores"]
    t = ts.mean() + 2 * ts.std()
    assert r["threshold"]["value"] == pytest.approx(t)
    flagged = scores > t
    assert r["at_threshold"]["precision"] == pytest.approx(
        precision_score(y, flagged, zero_division=0))
    assert r["at_threshold"]["recall"] == pytest.approx(recall_score(y, flagged))
    # Training data had no trousers; the model is a new one, not `ae`.
    assert r["training"]["images"] == int(np.sum(
        kerasae.data.load_numpy("fashion_mnist", "train[:1200]")[1] != 1))
    assert r.model is not ae
    manifest = json.loads((tmp_path / "a" / "detector" / "manifest.json").read_text())
    block = manifest["anomaly"]
    assert block["score"] == "mse" and block["threshold"] == pytest.approx(t)
    assert block["scaling"]["input_scale"] == pytest.approx(1 / 255)
    assert block["threshold_rule"]["method"] == "mean+kstd"
    # The deployment clients (onnxruntime in Python and in Node) flag the same images.
    detector = str(tmp_path / "a" / "detector")
    py_scores, py_flags = _python_client(detector).anomaly(x)
    np.testing.assert_allclose(py_scores, scores, rtol=1e-4, atol=1e-6)
    clear = np.abs(scores - t) > 1e-5  # ignore images on the threshold itself
    np.testing.assert_array_equal(py_flags[clear], (scores > t)[clear])
    node = _node_check(detector, x, tmp_path)
    if node is not None:
        assert node["failures"] == [] and node["anomaly"]["threshold"] == pytest.approx(t)
        np.testing.assert_array_equal(np.array(node["images"]["flags"])[clear],
                                      (scores > t)[clear])
    assert_png(tmp_path / "a" / "anomaly.png", (11.0, 4.6))
    assert_png(tmp_path / "a" / "anomaly_examples.png", _plots.image_rows_size(2, 10))




def _python_client(directory):
    import importlib.util

    path = os.path.join(REPO, "export", "python", "kerasae_client.py")
    spec = importlib.util.spec_from_file_location("kerasae_client_for_uses", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.KerasaeExport(directory)


def _node_check(directory, images, tmp_path):
    """The Node client's report on `images`, or None when node or its packages are absent."""
    import subprocess

    script = os.path.join(REPO, "export", "node", "check.js")
    if node_client() is None:
        return None
    path = tmp_path / "images.npy"
    np.save(path, images.astype("float32"))
    done = subprocess.run(["node", script, directory, "--images", str(path), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_anomaly_threshold_rules():
    from kerasae.uses._anomaly import choose_threshold

    s = np.random.default_rng(0).gamma(2.0, size=1000)
    assert choose_threshold(s, "percentile:95")[0] == pytest.approx(np.percentile(s, 95))
    assert choose_threshold(s, "mean+3std")[0] == pytest.approx(s.mean() + 3 * s.std())
    assert choose_threshold(s, 0.5)[1]["train_flagged_fraction"] == pytest.approx(np.mean(s > 0.5))
    with pytest.raises(ValueError, match="percentile:P"):
        choose_threshold(s, "p99")


# ----------------------------------------------------------------- generate
def test_generate_needs_a_vae(ae, fashion, tmp_path):
    with pytest.raises(TypeError, match="needs a variational autoencoder"):
        kerasae.uses.generate(ae, fashion[0], labels=fashion[1], out=tmp_path / "g")
    assert not (tmp_path / "g").exists()


def test_generate_pictures_and_numbers(vae, fashion, tmp_path):
    from scipy import linalg

    from kerasae.uses._generate import frechet_distance

    x, y = fashion
    r = kerasae.uses.generate(vae, limit=N, grid=4, pairs=2, steps=5, eval_samples=60,
                              out=tmp_path / "g", seed=0)
    assert r.arrays["samples"].shape == (16, 28, 28, 1)
    interp = r.arrays["interpolation"]
    i, j = r["interpolation"]["pairs"][0]
    z = numpy_encode(vae, x[[i, j]])
    np.testing.assert_allclose(interp[0, 2], np.asarray(vae.decoder(z.mean(0, keepdims=True)))[0],
                               atol=1e-5)
    a = r["arithmetic"]
    assert a["expression"] == "Sneaker + (Ankle boot - Sandal)" and a["images"] == np.sum(y == 7)
    two = kerasae.uses.generate(vae, x[:2], between=(0, 1), steps=3, grid=2, arithmetic=None)
    z = numpy_encode(vae, x[:2])
    np.testing.assert_allclose(two.arrays["interpolation"][0, 1],
                               np.asarray(vae.decoder(z.mean(0, keepdims=True)))[0], atol=1e-5)
    with pytest.raises(ValueError, match="pairs of image indices"):
        kerasae.uses.generate(vae, x[:2], between=(0, 2), arithmetic=None)
    for v in (a["judged_as_b"]["vae"], a["judged_as_b"]["pixel_arithmetic"]):
        assert 0.0 <= v <= 1.0
    rng = np.random.default_rng(1)
    f1, f2 = rng.normal(size=(300, 6)), rng.normal(1.0, 2.0, size=(200, 6))
    c1, c2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    ref = np.sum((f1.mean(0) - f2.mean(0)) ** 2) + np.trace(c1 + c2 - 2 * linalg.sqrtm(c1 @ c2).real)
    assert frechet_distance(f1, f2) == pytest.approx(ref, rel=1e-8)
    assert_png(tmp_path / "g" / "generate_samples.png", _plots.image_grid_size(4, 4, 2))
    assert_png(tmp_path / "g" / "generate_interpolation.png", _plots.image_rows_size(4, 5))
    assert_png(tmp_path / "g" / "generate_arithmetic.png", _plots.image_rows_size(4, 10))


def test_generate_fitted_sampler_draws_where_the_codes_lie(vae, fashion, tmp_path, capsys):
    from kerasae import cli
    from kerasae.uses._samplers import latent_draws

    x, y = fashion
    codes = numpy_encode(vae, x).astype("float64")
    draws = latent_draws(vae, x, "fitted")(20000, np.random.default_rng(0)).astype("float64")
    scale = codes.std(0).max()
    np.testing.assert_allclose(draws.mean(0), codes.mean(0), atol=0.03 * scale)
    np.testing.assert_allclose(np.cov(draws, rowvar=False), np.cov(codes, rowvar=False),
                               atol=0.05 * scale ** 2)
    prior = latent_draws(vae, x, "prior")(5, np.random.default_rng(3))
    np.testing.assert_array_equal(
        prior, np.random.default_rng(3).standard_normal((5, 4)).astype("float32"))
    r = kerasae.uses.generate(vae, x, labels=y, sampler="fitted", grid=2, pairs=1, steps=3,
                              eval_samples=60, arithmetic=None)
    assert r["sampler"] == "fitted" and r["samples"]["count"] == 60
    vae.save(tmp_path / "vae.keras")
    assert cli.main(["generate", "--model", str(tmp_path / "vae.keras"), "--limit", "200",
                     "--sampler", "fitted", "--grid", "2", "--pairs", "1", "--steps", "3",
                     "--eval-samples", "50", "--no-arithmetic", "--out", str(tmp_path / "g")]) == 0
    out = capsys.readouterr().out
    assert "samples: codes from a Gaussian fitted to the images' codes (--sampler fitted)" in out
    assert "Fréchet distance: VAE " in out
    assert json.loads((tmp_path / "g" / "generate.json").read_text())["sampler"] == "fitted"
    # "auto" (the default) fits where the images outnumber the 4 code dimensions
    small = dict(grid=2, pairs=1, steps=3, arithmetic=None)
    five, four = (kerasae.uses.generate(vae, x[:k], **small) for k in (5, 4))
    assert five["sampler"] == "fitted" and five["sampler_chosen_by"] == \
        "auto: 5 images > 4 code dimensions"
    assert four["sampler"] == "prior" and four["sampler_chosen_by"] == \
        "auto: 4 images <= 4 code dimensions"
    assert "sampler_chosen_by" in five and "sampler_chosen_by" not in r  # asked: fitted
    with pytest.raises(ValueError, match="sampler must be one of auto, prior, fitted.*"
                                         "Received: sampler='posterior'"):
        kerasae.uses.generate(vae, x[:2], sampler="posterior", arithmetic=None)
    with pytest.raises(ValueError, match="more images than code dimensions \\(5 or more\\).*"
                                         r"\(--sampler prior\). Received: 4 images"):
        kerasae.uses.generate(vae, x[:4], sampler="fitted", arithmetic=None)


# --------------------------------------------------------------- bad inputs
def _bad_inputs(tmp_path, fashion):
    cases = {}
    # Arrays are the user's own tensors: never resized or converted, so a wrong shape
    # is an error (image files and folders are read at the model's size instead).
    cases["big"] = (np.zeros((2, 32, 32, 1), "float32"), "expects 28x28x1")
    cases["rgb"] = (np.zeros((2, 28, 28, 3), "float32"), "channels differ")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("a folder without images")
    cases["empty"] = (str(empty), "holds no image files")
    mixed = tmp_path / "mixed"
    write_pngs(mixed, fashion[0][:2])
    (mixed / "broken.png").write_text("not an image")
    cases["text"] = (str(mixed), "not an image file")
    return cases


@pytest.mark.parametrize("case", ["big", "rgb", "empty", "text"])
def test_bad_image_inputs_fail_clearly_and_write_nothing(ae, fashion, tmp_path, case):
    images, phrase = _bad_inputs(tmp_path, fashion)[case]
    for use in (kerasae.uses.features, kerasae.uses.reduce, kerasae.uses.compress,
                kerasae.uses.denoise):
        out = tmp_path / f"out-{use.__name__}"
        with pytest.raises(ValueError, match=phrase) as info:
            use(ae, images, out=out)
        assert "Received:" in str(info.value)
        assert not out.exists()
        assert not [n for n in os.listdir(tmp_path) if n.startswith(f".out-{use.__name__}")]


def test_cli_reports_bad_input_and_leaves_no_output(ae_file, vae, fashion, tmp_path, capsys):
    from kerasae import cli

    images, _ = _bad_inputs(tmp_path, fashion)["text"]
    assert cli.main(["features", "--model", ae_file, "--images", images,
                     "--out", str(tmp_path / "o")]) == 1
    assert "not an image file" in capsys.readouterr().err
    assert cli.main(["generate", "--model", ae_file, "--limit", "50",
                     "--out", str(tmp_path / "g")]) == 1
    assert "needs a variational autoencoder" in capsys.readouterr().err
    assert cli.main(["features", "--model", str(tmp_path / "missing.keras"),
                     "--out", str(tmp_path / "o")]) == 1
    assert "No model file" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "g").exists()


def test_cli_denoise_on_noisy_files_writes_pngs(ae_file, fashion, tmp_path):
    from PIL import Image

    from kerasae import cli

    noisy = np.clip(fashion[0][:3] + 0.2 * np.random.default_rng(0).normal(
        size=fashion[0][:3].shape), 0, 1)
    folder = write_pngs(tmp_path / "noisy", noisy)
    assert cli.main(["denoise", "--model", ae_file, "--images", folder,
                     "--out", str(tmp_path / "d")]) == 0
    saved = json.loads((tmp_path / "d" / "denoise.json").read_text())
    assert saved["results"] is None and saved["noise"] == "inputs taken as noisy"
    for i in range(3):
        with Image.open(tmp_path / "d" / "denoised" / f"img{i:03d}.png") as im:
            assert im.size == (28, 28) and im.mode == "L"


def test_a_run_directory_named_like_a_preset_does_not_hide_the_preset(tmp_path, monkeypatch):
    from kerasae.models.resolve import resolve_model

    name = "stacked_ae_fashion_mnist"
    monkeypatch.chdir(tmp_path)
    (tmp_path / name / "checkpoints").mkdir(parents=True)
    ref = resolve_model(name)
    assert (ref.source, ref.name) == ("preset", f"{name}@1")
    # With a separator it is a path: the error says it is a directory and what to pass.
    with pytest.raises(FileNotFoundError, match="It is a directory.*model.keras"):
        resolve_model(f"{name}/")
