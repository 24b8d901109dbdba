"""Real images for int8 exports: what to calibrate on, and what to measure the loss on.

`representative` is an array, a `kerasae.data.Source`, or a dataset (a name, a
folder, a `.npz` / `.npy` file); `None` means the model's own training data: a
preset's `dataset` (its train split), or the dataset of the `run.json` beside a
`.keras` file; a folder with `train/` and `test/` folders calibrates on `train/` and is
measured on `test/`. The first 500 images calibrate. The loss is measured on
`quality_images` if given, else on the dataset's test split (a named dataset),
else on the next 1,000 images of `representative`, else (fewer than 100 left) on
the calibration images themselves, which the manifest says.
"""

import os

import numpy as np

from kerasae import data as data_lib
from kerasae._util.errors import InvalidValue
from kerasae.data.folders import has_split_folders
from kerasae.data.image_options import read_at
from kerasae.export.litert import CALIBRATION_IMAGES, QUALITY_IMAGES, as_images


def _read(spec, split, parts, n, resize="crop", options=None):
    if isinstance(spec, np.ndarray):
        return as_images(spec[:n], parts, "representative images")
    kwargs = dict(options or {})  # a table's or series' columns, label, window, ...
    if not kwargs and isinstance(spec, (str, os.PathLike)) \
            and os.path.exists(os.path.expanduser(spec)) \
            and not os.fspath(spec).endswith((".npz", ".npy")):
        # a folder or image files: read at the model's input, as training read them
        kwargs = read_at(parts.image_shape, resize)
    src = data_lib.get_source(spec, split, **kwargs)
    return as_images(src.take(n), parts, f"images of {getattr(src, 'name', spec)!r}")


def quantization_images(representative, quality_images, ref, parts):
    """`(calibration, measurement, {"calibration": note, "quality": note})`.

    `ref` is the exported model's `kerasae.models.resolve.ModelRef` (`None`: a model
    object), which knows its training data.
    """
    spec, split, resize, options = representative, "all", "crop", {}
    if spec is None:
        found = ref.training_data() if ref is not None else None
        if not found:
            raise InvalidValue(
                "An int8 export calibrates on real images of the training data: pass "
                "representative= (an array or a dataset; --representative DATASET). "
                "Received: representative=None"
            )
        spec, split, resize, options = found
    named = isinstance(spec, str) and not os.path.exists(os.path.expanduser(spec))
    # a folder with train/ and test/ (val/) folders: calibrate on train, measure on test
    split_folders = isinstance(spec, (str, os.PathLike)) and os.path.isdir(
        os.path.expanduser(spec)) and has_split_folders(os.path.expanduser(spec))
    if (named or split_folders) and split == "all":
        split = "train"
    pool = _read(spec, split, parts, CALIBRATION_IMAGES + QUALITY_IMAGES, resize, options)
    calibration = pool[:CALIBRATION_IMAGES]
    what = spec if isinstance(spec, str) else f"the given {type(spec).__name__}"
    notes = {"calibration": f"the first {len(calibration)} images of {what} ({split})"}
    if quality_images is not None:
        quality = _read(quality_images, "all" if not isinstance(quality_images, str) or
                        os.path.exists(quality_images) else "test", parts, 10 ** 9, resize)
        notes["quality"] = f"{len(quality)} given images"
    elif named or split_folders:
        quality = _read(spec, "test", parts, QUALITY_IMAGES, resize, options)
        notes["quality"] = f"the first {len(quality)} images of {spec} (test)"
    elif len(pool) - len(calibration) >= 100:
        quality = pool[len(calibration):]
        notes["quality"] = f"{len(quality)} images of {what} after the calibration images"
    else:
        quality = calibration
        notes["quality"] = "the calibration images themselves (too few others: in-sample)"
    return calibration, quality, notes
