"""TFDS routes: a prepared copy, a download when its host answers, a copy built from raw files."""

import difflib
import gzip
import os
import socket
import tempfile

from kerasae._util.errors import MissingDependency, MissingFile
from kerasae.data.idx import RAW_DATASETS, SPLIT_SIZES, find_raw, raw_dirs, read_idx
from kerasae.data.source import DataError, Source


def tfds_module():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise MissingDependency(
            f"Loading named datasets needs tensorflow-datasets ({e}). "
            "Install it with: pip install tensorflow-datasets importlib_resources"
        ) from e
    return tfds


def builder(name, data_dir):
    tfds = tfds_module()
    try:
        return tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # TFDS raises its own DatasetNotFoundError
        if type(e).__name__ != "DatasetNotFoundError":
            raise
        names = tfds.list_builders()
        close = difflib.get_close_matches(name, names + ["digits"], n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise DataError(
            f"Unknown dataset {name!r}.{hint} Use a TFDS image dataset name "
            "(see tfds.list_builders()), 'digits', or a path to a .npz file. "
            f"Received: dataset={name!r}"
        ) from None


def host_reachable(host, port=443, timeout=3.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def download_hosts(builder):
    hosts = {"storage.googleapis.com"}
    for attr in ("URL",):
        url = getattr(type(builder), attr, None)
        if isinstance(url, str) and "://" in url:
            hosts.add(url.split("://", 1)[1].split("/", 1)[0])
    return sorted(hosts)


def from_tfds(builder, name, split):
    tfds = tfds_module()
    features = builder.info.features
    image_key = next(
        (k for k, f in features.items() if isinstance(f, tfds.features.Image)), None
    )
    if image_key is None:
        raise DataError(
            f"TFDS dataset {name!r} has no image feature; kerasae needs images. "
            f"Received: dataset={name!r}"
        )
    shape = features[image_key].shape
    if None in shape:
        raise DataError(
            f"TFDS dataset {name!r} has images of varying size {shape}; resize them "
            "to one size and pass a numpy array or .npz instead."
        )
    label_key = next(
        (k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)), None
    )
    try:
        data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    except Exception as e:
        raise DataError(f"TFDS could not read split {split!r} of {name!r}: {e}") from e
    labels = None if label_key is None else data[label_key].astype("int64")
    names = tuple(features[label_key].names) if label_key else ()
    return Source(data[image_key].astype("uint8"), labels, name=name, split=split,
                  route="tfds", label_names=names)



def prepare_tfds_from_raw(name, data_dir, raw_dir=None):
    """Builds a real TFDS dataset of `name` in `data_dir` from local raw IDX files.

    For machines where TFDS cannot download and rejects re-compressed files as a
    manual download (their archive checksums differ): the content is verified
    here instead, then TFDS's own builder writes its usual files, which
    `tfds.load(name, data_dir=data_dir)` reads like any downloaded copy.

    Returns:
        The TFDS builder, prepared.
    """
    tfds = tfds_module()
    if name not in RAW_DATASETS:
        raise DataError(
            f"Only {', '.join(RAW_DATASETS)} can be prepared from raw files. "
            f"Received: name={name!r}"
        )
    registered = type(tfds.builder(name, data_dir=data_dir))
    spec = RAW_DATASETS[name]
    dirs = raw_dirs(raw_dir, name)

    paths = {}
    for split, files in spec["files"].items():
        for stem, sha in files:
            path = find_raw(stem, dirs)
            if path is None:
                raise MissingFile(
                    f"Raw file {stem}[.gz] for {name} not found in: {', '.join(dirs)}."
                )
            read_idx(path, sha)  # verify before handing it to TFDS
            paths[stem] = path

    class _FromRawFiles(registered, skip_registration=True):
        name = registered.name

        def _split_generators(self, dl_manager):
            del dl_manager
            out = []
            for split, ((img, _), (lab, _)) in spec["files"].items():
                out.append(tfds.core.SplitGenerator(
                    name=split,
                    gen_kwargs=dict(num_examples=SPLIT_SIZES[split],
                                    data_path=paths[img], label_path=paths[lab]),
                ))
            return out

    with tempfile.TemporaryDirectory(prefix="kerasae-idx-") as tmp:
        paths = {stem: _decompressed(path, tmp) for stem, path in paths.items()}
        builder = _FromRawFiles(data_dir=data_dir)
        builder.download_and_prepare()
    return builder


def _decompressed(path, tmp):
    # TFDS's MNIST reader expects extracted files.
    if not path.endswith(".gz"):
        return path
    out = os.path.join(tmp, os.path.basename(path)[:-3])
    with gzip.open(path, "rb") as f, open(out, "wb") as g:
        g.write(f.read())
    return out
