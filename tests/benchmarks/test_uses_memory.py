"""The uses' memory benchmark: its crops, and a failed run says why."""

import numpy as np
import pytest
from PIL import Image

from kerasae.benchmarks import uses_memory


def test_crops_are_64x64_colour_in_one_folder_per_photo(tmp_path):
    pytest.importorskip("skimage")
    uses_memory.write_crops(tmp_path, 12)
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert folders == sorted(uses_memory.PHOTOS)
    files = sorted(tmp_path.rglob("*.png"))
    assert len(files) == 12
    sizes = {np.asarray(Image.open(f)).shape for f in files}
    assert sizes == {(64, 64, 3)}
    # Crops of one photo come from it: its first crop is somewhere inside the photo.
    from skimage import data

    photo = data.astronaut()
    crop = np.asarray(Image.open(tmp_path / "astronaut" / "00000.png"))
    found = any(np.array_equal(photo[t:t + 64, l:l + 64], crop)
                for t in range(photo.shape[0] - 63) for l in range(photo.shape[1] - 63)
                if photo[t, l, 0] == crop[0, 0, 0] and np.array_equal(photo[t, l], crop[0, 0]))
    assert found


def test_a_failed_run_raises_with_its_error(tmp_path):
    with pytest.raises(RuntimeError, match="kerasae reduce failed"):
        uses_memory.run_use("reduce", str(tmp_path / "missing.keras"), str(tmp_path),
                            str(tmp_path / "out"))
