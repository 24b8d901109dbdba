"""A colorizer over chroma bins: the bins, the annealed mean, the rebalanced loss, the
share of it taken back and the reading chosen on held-out photos, each against numpy
written out here."""

import json

import numpy as np
import pytest
from PIL import Image

from kerasae.cli import main as cli_main
from kerasae.models.colorizer import AnnealedMean, Colorizer, chroma_centres, logits_model
from kerasae.uses import _colorbins, colorize, train_colorizer


def test_the_bins_are_a_grid_with_grey_at_a_centre_and_pixels_go_to_the_nearest():
    c = chroma_centres(5)
    assert c.shape == (25, 2)
    assert c[0].tolist() == [-0.5, -0.5] and c[12].tolist() == [0, 0] and c[24].tolist() == [0.5, 0.5]
    assert c[1].tolist() == [-0.5, -0.25]  # Cr is the fast axis
    pixels = np.array([[0.0, 0.0], [-0.5, -0.5], [0.1, -0.2], [0.9, -0.9], [0.13, 0.12]])
    by_hand = [int(np.argmin(((c - p.clip(-0.5, 0.5)) ** 2).sum(1))) for p in pixels]
    assert _colorbins.nearest_bin(pixels, 5).tolist() == by_hand == [12, 0, 11, 20, 17]


def test_the_annealed_mean_is_the_mean_at_1_and_tends_to_the_mode():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4, 25)).astype("float32")
    c = chroma_centres(5).astype("float64")
    for t in (1.0, 0.38):
        p = np.exp(logits / t) / np.exp(logits / t).sum(-1, keepdims=True)
        layer = AnnealedMean(5, t)
        np.testing.assert_allclose(np.asarray(layer(logits)), p @ c, atol=1e-6)
    peaked = np.zeros((1, 25), "float32")
    peaked[0, 7], peaked[0, 8] = 5.0, 4.0
    assert np.abs(np.asarray(AnnealedMean(5, 0.05)(peaked))[0] - c[7]).max() < 1e-6
    for bad in (4, 2, 67, True, 3.0):
        with pytest.raises(ValueError, match="odd integer in"):
            AnnealedMean(bad)
    for bad in (0, -0.1, 1.5, "x"):
        with pytest.raises(ValueError, match=r"temperature is in \(0, 1\]"):
            AnnealedMean(5, bad)


def test_the_rebalanced_loss_is_the_weighted_cross_entropy_to_the_soft_targets():
    from scipy.ndimage import gaussian_filter

    bins = 7
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 1000, bins * bins)
    counts[24] = 50_000  # grey dominates, as in photos
    weights = _colorbins.rebalancing_weights(counts, bins)
    p = gaussian_filter((counts / counts.sum()).reshape(bins, bins), 0.5, mode="constant").ravel()
    p /= p.sum()
    assert np.sum(p * weights) == pytest.approx(1.0, rel=1e-5)  # expected weight 1
    assert weights[24] == weights.min() and weights.max() / weights.min() > 5
    w_hand = 1 / (0.5 * p + 0.5 / p.size)
    np.testing.assert_allclose(weights, w_hand / np.sum(p * w_hand), rtol=1e-5)
    np.testing.assert_allclose(_colorbins.rebalancing_weights(counts, bins, mix=1.0), 1.0,
                               rtol=1e-6)  # all uniform: no rebalancing

    chroma = rng.uniform(-0.5, 0.5, (2, 3, 5, 2)).astype("float32")
    logits = rng.normal(size=(2, 3, 5, bins * bins)).astype("float32")
    # by hand: the target a Gaussian of half a bin (sigma 1/12) around each pixel's chroma
    centres = chroma_centres(bins).astype("float64")
    d2 = ((chroma[..., None, :].astype("float64") - centres) ** 2).sum(-1)
    target = np.exp(-d2 / (2 * (0.5 / 6) ** 2))
    target /= target.sum(-1, keepdims=True)
    np.testing.assert_allclose(_colorbins.soft_targets(chroma, bins), target, atol=1e-9)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = weights[d2.argmin(-1)] * -(target * log_p).sum(-1)
    got = np.asarray(_colorbins.bin_loss(bins, weights)(chroma, logits))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def _warm_folder(folder, n=12, size=80):
    """Colour photos whose colour follows the luminance: dark blue, bright orange."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(n):
        y = rng.uniform(0, 1, (size // 8, size // 8)).repeat(8, 0).repeat(8, 1)
        rgb = np.stack([y, 0.6 * y + 0.2 * (1 - y), 1 - y], axis=-1)
        Image.fromarray((rgb * 255).astype("uint8")).save(folder / f"p{i:02d}.png")
    return folder


def test_taking_back_the_rebalancing_recovers_the_photos_distribution():
    """A model trained with per-bin weights w predicts w * p (normalised), the minimiser of
    the weighted cross-entropy; undo 1 gives p back, undo 0 leaves it, and a share in
    between is the normalised geometric mix."""
    rng = np.random.default_rng(2)
    bins = 5
    counts = rng.integers(1, 500, bins * bins)
    counts[12] = 20_000
    w = _colorbins.rebalancing_weights(counts, bins).astype("float64")
    p = rng.dirichlet(np.ones(bins * bins))  # one pixel's true distribution
    skewed = np.log(w * p / np.sum(w * p))  # what the rebalanced training predicts
    for undo, expected in ((1.0, p), (0.0, w * p / np.sum(w * p)),
                           (0.5, np.sqrt(w) * p / np.sum(np.sqrt(w) * p))):
        z = skewed + _colorbins.logit_shift(counts, bins, undo)
        np.testing.assert_allclose(np.exp(z) / np.exp(z).sum(), expected, rtol=1e-5)


def test_the_reading_is_the_most_colourful_within_the_tolerance_of_the_best_psnr():
    scores = {(0.0, 0.38): (18.0, 50.0, 60.0), (0.0, 1.0): (18.7, 35.0, 60.0),
              (0.5, 0.38): (18.81, 30.0, 60.0), (0.5, 1.0): (18.9, 20.0, 60.0)}
    assert _colorbins.choose_reading(scores) == (0.0, 1.0)  # 18.7 >= 18.9 - 0.2
    assert _colorbins.choose_reading(scores, tolerance=0.1) == (0.5, 0.38)
    assert _colorbins.choose_reading(scores, tolerance=0.0) == (0.5, 1.0)


def test_shifting_the_logits_adds_to_what_the_model_predicts():
    from kerasae.models.colorizer import shift_logits

    model = Colorizer(bins=5, width=4, depth=2)
    y = np.random.default_rng(3).uniform(size=(1, 16, 24, 1)).astype("float32")
    before = np.asarray(logits_model(model)(y))
    shift = np.linspace(-1, 1, 25).astype("float32")
    shift_logits(model, shift)
    np.testing.assert_allclose(np.asarray(logits_model(model)(y)), before + shift, atol=1e-5)


@pytest.mark.slow
def test_training_over_bins_chooses_the_reading_on_held_out_photos(tmp_path):
    """train_colorizer with bins holds a tenth of the photos out, scores each reading
    (share of the rebalancing taken back, temperature) on them, checked by hand from the
    model's logits and the training photos' bins counted here, keeps the most colourful
    within 0.2 dB of the best PSNR, and its model.keras carries it."""
    import keras

    from kerasae.uses._colorize import colourfulness

    folder = _warm_folder(tmp_path / "photos")
    r = train_colorizer(str(folder), str(tmp_path / "run"), steps=40, batch_size=4, crop=32,
                        short_side=64, bins=17, verbose=0)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["bins"] == 17 and run["chroma_gain"] == 1.0 and run["train_photos"] == 11
    assert run["loss"][-1] < run["loss"][0]
    model = keras.saving.load_model(tmp_path / "run" / "model.keras", compile=False,
                                    safe_mode=True)
    centres = chroma_centres(17).astype("float64")

    def read(name):
        im = Image.open(folder / name).convert("RGB")
        rgb = np.asarray(im.resize((64, 64), Image.LANCZOS), "float64") / 255
        y = rgb @ np.array([0.299, 0.587, 0.114])
        cb, cr = (rgb[..., 2] - y) / 1.772, (rgb[..., 0] - y) / 1.402
        return rgb, y, np.stack([cb, cr], -1).reshape(-1, 2)

    counts = np.zeros(17 * 17)
    for name in sorted(set(p.name for p in folder.iterdir()) - set(run["gain_photos"])):
        near = np.argmin(((read(name)[2][:, None] - centres) ** 2).sum(-1), axis=1)
        counts += np.bincount(near, minlength=17 * 17)
    log_w = np.log(_colorbins.rebalancing_weights(counts, 17).astype("float64"))
    chosen = run["undo_rebalance"]
    by_hand = {}
    for undo in _colorbins.UNDOS:
        for t in _colorbins.TEMPERATURES:
            rows = []
            for name in run["gain_photos"]:
                rgb, y, _ = read(name)
                z = np.asarray(logits_model(model)(y[None, ..., None].astype("float32"))[0],
                               "float64") + (chosen - undo) * log_w  # the saved shift undone
                p = np.exp((z - z.max(-1, keepdims=True)) / t)
                cb, cr = np.moveaxis((p / p.sum(-1, keepdims=True)) @ centres, -1, 0)
                out = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr,
                                y + 1.772 * cb], axis=-1).clip(0, 1)
                rows.append((10 * np.log10(1 / np.mean((out - rgb) ** 2)), colourfulness(out),
                             colourfulness(rgb)))
            by_hand[undo, t] = np.mean(rows, axis=0)
    got = {(row["undo_rebalance"], row["temperature"]): row for row in run["reading_scores"]}
    assert set(got) == set(by_hand)
    for key, row in by_hand.items():
        assert [got[key][k] for k in ("psnr", "colourfulness", "colourfulness_original")] == \
            pytest.approx(row.tolist(), abs=2e-2), key
    best = max(v[0] for v in by_hand.values())
    near = [k for k, v in by_hand.items() if v[0] >= best - 0.2]
    assert (chosen, run["temperature"]) == max(near, key=lambda k: by_hand[k][1])
    assert r["temperature"] == run["temperature"] == model.get_layer("chroma").temperature
    from kerasae.cli.colorize import _reading_lines  # what `kerasae colorize --train` prints

    lines = _reading_lines(run)
    assert lines[0].startswith(f"reading: undo_rebalance {chosen:g}, temperature "
                               f"{run['temperature']:g} (the most colourful within 0.2 dB")
    grid = {float(ln.split()[0]): ln.split()[1:] for ln in lines[3:]}
    assert sorted(grid) == list(_colorbins.UNDOS)  # rows: the share; columns: temperatures
    at = 3 * _colorbins.TEMPERATURES.index(run["temperature"])
    assert float(grid[chosen][at]) == pytest.approx(by_hand[chosen, run["temperature"]][0],
                                                    abs=0.02)
    assert grid[chosen][at + 2].endswith("*") and sum(ln.count("*") for ln in lines) == 1
    # the baselines on the same held-out photos, by hand
    grey = np.mean([10 * np.log10(1 / np.mean((np.repeat(read(n)[1][..., None], 3, -1)
                                               - read(n)[0]) ** 2)) for n in run["gain_photos"]])
    assert run["reading_baselines"]["psnr_grey"] == pytest.approx(grey, abs=0.02)
    assert f"grey {run['reading_baselines']['psnr_grey']:.2f} dB" in lines[1]
    c = colorize(str(folder / "p00.png"), model=str(tmp_path / "run" / "model.keras"))
    assert c["images"][0]["colourfulness"] > 0
    assert c["model"]["bins"] == 17 and c["model"]["temperature"] == run["temperature"]


def test_the_command_takes_bins_and_temperature_and_refuses_what_cannot_go_together(
        tmp_path, capsys):
    folder = _warm_folder(tmp_path / "photos", n=2)
    for flags, said in ((["--bins", "0", "--temperature", "0.5"], "--bins 0 regresses"),
                        (["--bins", "16"], "odd integer"),
                        (["--temperature", "0.5"], "drop one"),  # regression by default
                        (["--bins", "17", "--temperature", "2"], "temperature is in (0, 1]"),
                        (["--undo-rebalance", "0.5"], "add --bins 17"),  # regression default
                        (["--bins", "17", "--undo-rebalance", "1.5"],
                         "Received: --undo-rebalance 1.5"),
                        (["--chroma-gain", "nan"], "finite factor above 0"),
                        (["--steps", "0"], "Received: --steps 0")):
        code = cli_main(["colorize", "--train", str(folder), "--out", str(tmp_path / "r"),
                         *flags])
        err = capsys.readouterr().err
        assert code == 2 and said in err, err
        assert not (tmp_path / "r").exists()
    code = cli_main(["colorize", str(folder / "p00.png"), "--bins", "5"])
    assert code == 2 and "only applies with --train" in capsys.readouterr().err
    assert Colorizer(bins=5).get_layer("chroma_logits").filters == 25
    assert Colorizer(bins=0).get_layer("chroma").filters == 2  # 0 regresses, as --bins 0
    with pytest.raises(ValueError, match="drop one"):
        Colorizer(temperature=0.5)  # a temperature without bins would do nothing
    for bad in (float("nan"), float("inf"), 0.0, True):
        with pytest.raises(ValueError, match="chroma_gain is a finite factor above 0"):
            Colorizer(chroma_gain=bad)
