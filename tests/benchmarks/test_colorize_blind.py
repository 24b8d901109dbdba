"""The blind-judging kit of a colorizer's pictures, against numpy and counts by hand."""

import json

import numpy as np
import pytest
from PIL import Image

from kerasae.benchmarks import colorize_blind


def _folder(tmp_path, n=5, h=6, w=4):
    """A `kerasae colorize` output folder: n three-panel PNGs and their colorize.json."""
    rng = np.random.default_rng(3)
    folder = tmp_path / "colour"
    folder.mkdir()
    made = {}
    for i in range(n):
        y = rng.integers(0, 256, (h, w, 1), dtype="uint8")
        grey = np.repeat(y, 3, axis=-1)
        colorized, original = (rng.integers(0, 256, (h, w, 3), dtype="uint8") for _ in "ab")
        Image.fromarray(np.concatenate([grey, colorized, original], axis=1)).save(
            folder / f"p{i}.png")
        made[f"p{i}"] = {"grey": grey, "colorized": colorized, "original": original,
                         "sepia": np.round(np.clip(y / 255.0 * [1.351, 1.203, 0.937], 0, 1)
                                           * 255).astype("uint8")}
    (folder / "colorize.json").write_text(json.dumps(
        {"images": [{"image": f"p{i}", "psnr": 20.0} for i in range(n)]}))
    return folder, made


def test_kit_holds_each_panel_and_its_controls_shuffled(tmp_path):
    folder, made = _folder(tmp_path)
    key = tmp_path / "key.json"
    answers = colorize_blind.write_kit(str(folder), str(tmp_path / "blind"), str(key))
    kinds = [kind for _, kind in answers.values()]
    # 5 photos: 5 colorized, 5 sepia, originals of photos 0, 2, 4, greys of 0 and 4
    assert sorted(kinds) == sorted(["colorized"] * 5 + ["sepia"] * 5 + ["original"] * 3
                                   + ["grey"] * 2)
    assert json.loads(key.read_text()) == answers
    for file, (photo, kind) in answers.items():
        got = np.asarray(Image.open(tmp_path / "blind" / file))
        np.testing.assert_allclose(got, made[photo][kind], atol=1)  # sepia: float rounding
    unshuffled = [[photo, kind] for photo, kind, _ in colorize_blind.pictures(str(folder))]
    assert list(answers.values()) != unshuffled and len(unshuffled) == len(answers)
    again = colorize_blind.write_kit(str(folder), str(tmp_path / "b2"), str(tmp_path / "k2"))
    assert again == answers  # the seed fixes the order


def test_score_tallies_labels_per_kind(tmp_path):
    answers = {"img00.png": ["a", "colorized"], "img01.png": ["a", "sepia"],
               "img02.png": ["b", "colorized"], "img03.png": ["a", "original"],
               "img04.png": ["b", "sepia"]}
    labels = tmp_path / "labels.txt"
    labels.write_text("img00: COLOUR - blue sky\nimg01.png: sepia, brown\n"
                      "img02: SEPIA - olive\nimg03: colour\nnotes at the end\n")
    table, missing = colorize_blind.score(answers, colorize_blind.read_labels(str(labels)))
    assert table == {"colorized": {"COLOUR": 1, "SEPIA": 1, "GREY": 0},
                     "sepia": {"COLOUR": 0, "SEPIA": 1, "GREY": 0},
                     "original": {"COLOUR": 1, "SEPIA": 0, "GREY": 0}}
    assert missing == ["img04.png"]
    labels.write_text("img00: PURPLE\n")
    with pytest.raises(ValueError, match="PURPLE.*one of COLOUR, SEPIA, GREY"):
        colorize_blind.read_labels(str(labels))


def test_kit_refusals_say_what_to_give(tmp_path):
    folder, _ = _folder(tmp_path, n=1)
    with pytest.raises(ValueError, match="would show the judges the answers"):
        colorize_blind.write_kit(str(folder), str(tmp_path / "blind"),
                                 str(tmp_path / "blind" / "key.json"))
    assert not (tmp_path / "blind").exists()
    Image.fromarray(np.zeros((4, 8, 3), "uint8")).save(folder / "p0.png")  # grey | colorized
    with pytest.raises(ValueError, match="not three panels"):
        colorize_blind.write_kit(str(folder), str(tmp_path / "blind"), str(tmp_path / "k"))
    with pytest.raises(FileNotFoundError, match="colorize.json not found"):
        colorize_blind.write_kit(str(tmp_path), str(tmp_path / "blind"), str(tmp_path / "k"))
