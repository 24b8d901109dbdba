"""Raw IDX files of MNIST and Fashion-MNIST, verified by the sha256 of their content.

Examples come out in TFDS's own order (see `tfds_order`), so the raw and TFDS
routes yield identical splits. The *decompressed* bytes are checked against
pinned sha256 values, so re-gzipped copies pass and damaged ones do not.
"""

import gzip
import hashlib
import os

import numpy as np

from kerasae._util.errors import MissingFile
from kerasae.data.source import ArraySource, DataError
from kerasae.data.splits import slice_split

RAW_ENV = "KERASAE_RAW_DATA"

# sha256 of the DECOMPRESSED IDX files. Fashion-MNIST values were measured here
# on the Debian package's files; the MNIST values are the published checksums
# of the original files.
RAW_DATASETS = {
    "fashion_mnist": {
        "dirs": ("/usr/share/datasets/fashion-mnist",),
        "apt": "apt-get install dataset-fashion-mnist",
        "files": {
            "train": (
                ("train-images-idx3-ubyte",
                 "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
                ("train-labels-idx1-ubyte",
                 "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
            ),
            "test": (
                ("t10k-images-idx3-ubyte",
                 "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
                ("t10k-labels-idx1-ubyte",
                 "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
            ),
        },
        "labels": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                   "Shirt", "Sneaker", "Bag", "Ankle boot"),
    },
    "mnist": {
        "dirs": ("/usr/share/datasets/mnist",),
        "apt": None,
        "files": {
            "train": (
                ("train-images-idx3-ubyte",
                 "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
                ("train-labels-idx1-ubyte",
                 "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
            ),
            "test": (
                ("t10k-images-idx3-ubyte",
                 "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
                ("t10k-labels-idx1-ubyte",
                 "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
            ),
        },
        "labels": tuple(str(i) for i in range(10)),
    },
}
SPLIT_SIZES = {"train": 60000, "test": 10000}


def raw_dirs(raw_dir=None, name="fashion_mnist"):
    """Directories searched for raw files, in order."""
    dirs = []
    if raw_dir:
        dirs.append(os.fspath(raw_dir))
    if os.environ.get(RAW_ENV):
        dirs.extend(os.environ[RAW_ENV].split(os.pathsep))
    dirs.extend(RAW_DATASETS[name]["dirs"])
    return dirs


def find_raw(stem, dirs):
    for d in dirs:
        for candidate in (os.path.join(d, stem), os.path.join(d, stem + ".gz")):
            if os.path.isfile(candidate):
                return candidate
    return None


def read_idx(path, expected_sha256=None):
    """Reads an IDX file (gzipped or not) into a numpy array, verifying its content.

    The sha256 is taken over the decompressed bytes, so any re-compression of
    the original file passes and any change to the data does not.
    """
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            with open(path, "rb") as f:
                raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(
            f"Could not read {path}: {e}. The file is truncated or damaged; "
            "re-download it (or reinstall the package that provides it)."
        ) from e
    if expected_sha256 is not None:
        got = hashlib.sha256(raw).hexdigest()
        if got != expected_sha256:
            raise DataError(
                f"{path} does not hold the original data: sha256 of its content is "
                f"{got[:12]}..., expected {expected_sha256[:12]}.... It is damaged, "
                "truncated or a different file; replace it with the original."
            )
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(dims)):
        raise DataError(
            f"{path} is truncated: its header promises {dims} values but it holds "
            f"{len(raw) - offset} bytes of data. Re-download it."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def tfds_order(split, n):
    """The order TFDS writes a generated split in: keys sorted by md5(split + key).

    TFDS keys MNIST-family examples by their index in the raw file and sorts
    them by an md5 hash salted with the split name (documented as stable in
    `tensorflow_datasets/core/hashing.py`). Applying the same permutation to the
    raw files makes both routes yield identical examples in identical order.
    """
    salt = hashlib.md5(split.encode("utf-8"))

    def key(i):
        h = salt.copy()
        h.update(str(i).encode("utf-8"))
        return int(h.hexdigest(), 16)

    return np.array(sorted(range(n), key=key), dtype="int64")


def load_raw(name, split, raw_dir=None):
    """Reads a raw MNIST-family split from local IDX files, in TFDS order."""
    spec = RAW_DATASETS[name]
    base, sl = slice_split(split, 0)
    if base not in spec["files"]:
        raise DataError(
            f"{name} has splits {', '.join(spec['files'])}. Received: split={split!r}"
        )
    dirs = raw_dirs(raw_dir, name)
    (img_stem, img_sha), (lab_stem, lab_sha) = spec["files"][base]
    img_path, lab_path = find_raw(img_stem, dirs), find_raw(lab_stem, dirs)
    if img_path is None or lab_path is None:
        missing = img_stem if img_path is None else lab_stem
        raise MissingFile(
            f"Raw file {missing}[.gz] for {name} not found in: {', '.join(dirs)}."
        )
    images = read_idx(img_path, img_sha)
    labels = read_idx(lab_path, lab_sha)
    order = tfds_order(base, len(images))
    _, sl = slice_split(split, len(images))
    keep = order[sl]
    return ArraySource(images[keep][..., None], labels[keep].astype("int64"), name=name,
                  split=split, route="raw", label_names=spec["labels"])

