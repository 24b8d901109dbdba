"""The blind-judging kit of a colorizer's pictures, against numpy and counts by hand."""

import json

import numpy as np
import pytest
from PIL import Image

from kerasae.benchmarks import colorize_blind


def _sepia(y):
    """BT.601 YCbCr -> RGB of luminance y (h, w, 1) under Cb -0.079, Cr 0.048, by hand."""
    cb, cr = -0.079, 0.048
    return np.clip(np.concatenate([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr,
                                   y + 1.772 * cb], axis=-1), 0, 1)


def _folder(tmp_path, n=5, h=6, w=4, grey_inputs=1):
    """A `kerasae colorize` output folder: n three-panel PNGs (the first with transparency),
    `grey_inputs` two-panel ones (a grey input: no original), and their colorize.json."""
    rng = np.random.default_rng(3)
    folder = tmp_path / "colour"
    folder.mkdir()
    made, rows = {}, []
    for i in range(n):
        y = rng.integers(0, 256, (h, w, 1), dtype="uint8")
        colorized, original = (rng.integers(0, 256, (h, w, 3), dtype="uint8") for _ in "ab")
        strip = np.concatenate([np.repeat(y, 3, axis=-1), colorized, original], axis=1)
        alpha = np.full((h, 3 * w, 1), 255, "uint8")
        if i == 0:
            alpha[:2] = 0  # the top two rows transparent: shown mid-grey
        Image.fromarray(np.concatenate([strip, alpha], axis=-1)).save(folder / f"p{i}.png")
        a = alpha[:, :w] / 255.0

        def shown(rgb):
            return np.round((rgb / 255.0 * a + 0.5 * (1 - a)) * 255)

        grey = shown(np.repeat(y, 3, axis=-1).astype(float))
        made[f"p{i}"] = {"grey": grey, "colorized": shown(colorized), "original":
                         shown(original), "sepia": np.round(_sepia(grey[..., :1] / 255) * 255)}
        rows.append({"image": f"p{i}", "psnr": 20.0})
    for i in range(grey_inputs):  # 2 panels of width 6: 12 pixels, divisible by 3
        Image.fromarray(np.zeros((h, 12, 3), "uint8")).save(folder / f"g{i}.png")
        rows.append({"image": f"g{i}"})
    (folder / "colorize.json").write_text(json.dumps({"images": rows}))
    return folder, made


def test_kit_holds_each_panel_and_its_controls_shuffled(tmp_path):
    folder, made = _folder(tmp_path)
    key = tmp_path / "key.json"
    answers = colorize_blind.write_kit(str(folder), str(tmp_path / "blind"), str(key))
    kinds = [kind for _, kind in answers.values()]
    # 5 colour photos (the grey input skipped): 5 colorized, 5 sepia, originals of
    # photos 0, 2, 4, greys of 0 and 4
    assert sorted(kinds) == sorted(["colorized"] * 5 + ["sepia"] * 5 + ["original"] * 3
                                   + ["grey"] * 2)
    assert json.loads(key.read_text()) == answers
    assert sorted(p.name for p in (tmp_path / "blind").iterdir()) == sorted(answers)
    for file, (photo, kind) in answers.items():
        got = np.asarray(Image.open(tmp_path / "blind" / file)).astype(float)
        np.testing.assert_allclose(got, made[photo][kind], atol=1)  # float rounding
    top = np.asarray(Image.open(tmp_path / "blind" / next(
        f for f, a in answers.items() if a == ["p0", "original"])))[:2]
    assert (np.abs(top.astype(int) - 128) <= 1).all()  # transparent: mid-grey
    unshuffled = [[photo, kind] for photo, kind, _ in colorize_blind.pictures(str(folder))]
    assert list(answers.values()) != unshuffled and len(unshuffled) == len(answers)
    again = colorize_blind.write_kit(str(folder), str(tmp_path / "b2"), str(tmp_path / "k2"))
    assert again == answers  # the seed fixes the order


def test_score_tallies_labels_per_kind(tmp_path, capsys):
    answers = {"img00.png": ["a", "colorized"], "img01.png": ["a", "sepia"],
               "img02.png": ["b", "colorized"], "img03.png": ["a", "original"],
               "img04.png": ["b", "sepia"]}
    labels = tmp_path / "labels.txt"
    labels.write_text("img00: COLOR - blue sky\nimg01.png: sepia, brown\n"
                      "img02: SEPIA - olive\nimg03: colour\nnotes at the end\n")
    table, missing, colorized = colorize_blind.score(
        answers, colorize_blind.read_labels(str(labels)))
    assert table == {"colorized": {"COLOUR": 1, "SEPIA": 1, "GREY": 0},
                     "sepia": {"COLOUR": 0, "SEPIA": 1, "GREY": 0},
                     "original": {"COLOUR": 1, "SEPIA": 0, "GREY": 0}}
    assert missing == ["img04.png"] and colorized == {"a": "COLOUR", "b": "SEPIA"}
    key = tmp_path / "key.json"
    key.write_text(json.dumps(answers))
    assert colorize_blind.main(["--score", str(key), str(labels)]) == 0
    out = capsys.readouterr().out
    assert "colorized pictures called colour: 1 of 2; b: SEPIA" in out
    assert "not labelled: img04.png" in out
    for text, problem in [("img00: PURPLE\n", "PURPLE.*one of COLOUR, SEPIA, GREY"),
                          ("img5 SEPIA\n", "line 1 'img5 SEPIA': not `imgNN: LABEL`"),
                          ("img00: GREY\nimg00: SEPIA\n", "line 2: img00.png labelled a "
                           "second time")]:
        labels.write_text(text)
        with pytest.raises(ValueError, match=problem):
            colorize_blind.read_labels(str(labels))
    with pytest.raises(ValueError, match="key does not hold: img25.png"):
        colorize_blind.score(answers, {"img25.png": "COLOUR"})


def test_kit_refusals_say_what_to_give_and_write_nothing(tmp_path, capsys):
    folder, _ = _folder(tmp_path, n=1)
    blind = tmp_path / "blind"
    (tmp_path / "answers").mkdir()
    for key, problem in [(blind / "key.json", "inside --out"),
                         (blind / "sub" / "key.json", "inside --out"),
                         (tmp_path / "answers", "already exists"),
                         (tmp_path / "nodir" / "key.json", "its folder does not exist")]:
        with pytest.raises(ValueError, match=problem):
            colorize_blind.write_kit(str(folder), str(blind), str(key))
        assert not blind.exists()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "img00.png").write_bytes(b"")
    with pytest.raises(ValueError, match="not an empty folder"):
        colorize_blind.write_kit(str(folder), str(tmp_path / "old"), str(tmp_path / "k"))
    (tmp_path / "g").mkdir()
    grey_only, _ = _folder(tmp_path / "g", n=0)
    with pytest.raises(ValueError, match="measured no colour photo"):
        colorize_blind.write_kit(str(grey_only), str(blind), str(tmp_path / "k"))
    Image.fromarray(np.zeros((4, 8, 3), "uint8")).save(folder / "p0.png")
    with pytest.raises(ValueError, match="not three panels"):
        colorize_blind.write_kit(str(folder), str(blind), str(tmp_path / "k"))
    assert not blind.exists() and not (tmp_path / "k").exists()
    assert colorize_blind.main([str(tmp_path), "--out", str(blind), "--key",
                                str(tmp_path / "k")]) == 2
    assert "colorize.json not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        colorize_blind.main(["--score", "a", "b", "--out", "x"])
    assert "give it alone" in capsys.readouterr().err
