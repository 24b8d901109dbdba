"""TFDS routes: a prepared copy (read by index from ArrayRecord files, else streamed), a
download when its host answers, a copy built from raw files (ArrayRecord by default)."""

import contextlib
import difflib
import gzip
import logging
import os
import socket
import tempfile

import numpy as np

from kerasae._util.errors import MissingDependency, MissingFile
from kerasae.data import image_options as opts
from kerasae.data.idx import RAW_DATASETS, SPLIT_SIZES, find_raw, raw_dirs, read_idx
from kerasae.data.source import DataError, Source
from kerasae.data.streams import SHUFFLE_BUFFER, StreamSource


def tfds_module():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise MissingDependency(
            f"Loading named datasets needs tensorflow-datasets ({e}). "
            "Install it with: pip install tensorflow-datasets importlib_resources"
        ) from e
    return tfds


@contextlib.contextmanager
def _quiet_absl():
    """TFDS's absl warnings while kerasae probes for a copy (kerasae reports what it
    found itself, e.g. "Variant folder ... has no dataset_info.json" is "not prepared")."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def builder(name, data_dir):
    """The TFDS builder of `name`. Only TFDS's own registry is asked (no community
    list, no GCS), so an unknown name fails at once and offline."""
    tfds = tfds_module()
    try:
        with _quiet_absl():
            return tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # TFDS raises its own DatasetNotFoundError
        if isinstance(e, ValueError) and "Parsing builder name" in str(e):
            raise DataError(
                f"{name!r} is neither a file or folder that exists nor a dataset name (TFDS "
                "names look like 'mnist' or 'cifar10:3.0.2'). A dataset is a folder of images, "
                "a .npz, .npy or .csv file, 'digits' or a TFDS dataset name. Received: "
                f"dataset={name!r}") from None
        if type(e).__name__ != "DatasetNotFoundError":
            raise
        # with_community_datasets=False: the community list is fetched from GCS.
        names = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(name, names + ["digits"], n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise DataError(
            f"Unknown dataset {name!r}.{hint} A dataset is a folder of images, a .npz or "
            ".npy file, 'digits', or a TFDS image dataset name (see "
            f"tfds.list_builders()). Received: dataset={name!r}"
        ) from None


def is_prepared(builder):
    with _quiet_absl():
        return builder.is_prepared()


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


def _keys(builder, name):
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
    label_key = next(
        (k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)), None
    )
    return features, image_key, label_key


class TFDSArraySource(Source):
    """A TFDS split read by index from its random-access data source (ArrayRecord files)."""

    def __init__(self, builder, split, image_key, label_key, *, name, label_names):
        super().__init__(name=name, split=split, route="tfds", label_names=label_names)
        self._builder, self._keys = builder, (image_key, label_key)
        self._source = builder.as_data_source(split)
        self.image_shape = tuple(builder.info.features[image_key].shape)
        self._labels = None

    def __len__(self):
        return len(self._source)

    def load_batch(self, indices):
        items = self._source.__getitems__([int(i) for i in np.asarray(indices)])
        return np.stack([np.asarray(item[self._keys[0]], dtype="uint8") for item in items])

    @property
    def labels(self):
        image_key, label_key = self._keys
        if label_key is None:
            return None
        if self._labels is None:  # one pass over the records, images not decoded
            skip = self._builder.as_data_source(
                self.split, decoders={image_key: tfds_module().decode.SkipDecoding()})
            self._labels = np.asarray([skip[i][label_key] for i in range(len(skip))], "int64")
        return self._labels


def _random_access(builder):
    tfds = tfds_module()
    formats = builder.info.available_file_formats() if hasattr(
        builder.info, "available_file_formats") else {builder.info.file_format}
    return bool(set(formats) & set(tfds.core.file_adapters.FileFormat.with_random_access()))


def from_tfds(builder, name, split, *, image_size=None, resize="crop"):
    """A `Source` of a prepared TFDS split, read by index where the files allow it (ArrayRecord),
    else streamed (TFRecord): never loaded whole."""
    tfds = tfds_module()
    features, image_key, label_key = _keys(builder, name)
    shape = tuple(features[image_key].shape)
    names = tuple(features[label_key].names) if label_key else ()
    size = opts.parse_image_size(image_size)
    try:
        length = builder.info.splits[split].num_examples
    except Exception as e:  # noqa: BLE001 - TFDS raises several types for a bad split
        raise DataError(f"TFDS has no split {split!r} of {name!r}: {e}") from None
    if None not in shape and size is None and _random_access(builder):
        return TFDSArraySource(builder, split, image_key, label_key, name=name,
                               label_names=names)
    if None in shape[:2] and size is None:
        raise DataError(
            f"TFDS dataset {name!r} has images of varying size {shape}; pass image_size "
            "(--image-size 64) to size them. Received: image_size=None"
        )
    feature = features[image_key]
    channels = shape[-1] or 3
    skip = {image_key: tfds.decode.SkipDecoding()}

    def make(epoch):
        import tensorflow as tf

        ds = builder.as_dataset(split=split, shuffle_files=False, decoders=skip)
        label = (lambda e: e[label_key]) if label_key else (lambda e: tf.constant(-1, tf.int64))
        return ds.map(lambda e: (e[image_key], tf.cast(label(e), tf.int64)))

    def decode(data):
        x = feature.decode_example(data)
        return fit_image(x, size, resize) if size is not None else x

    out_shape = (size + (channels,)) if size is not None else shape
    return StreamSource(make, length, image_shape=out_shape, dtype="uint8", decode=decode,
                        has_labels=label_key is not None, shuffle_buffer=SHUFFLE_BUFFER,
                        name=name, split=split, route="tfds", label_names=names)


def prepare_tfds_from_raw(name, data_dir, raw_dir=None, file_format="array_record"):
    """Builds a real TFDS dataset of `name` in `data_dir` from local raw IDX files.

    For machines where TFDS cannot download and rejects re-compressed files as a
    manual download (their archive checksums differ): the content is verified
    here instead, then TFDS's own builder writes its usual files, which
    TFDS reads like any downloaded copy. `file_format="array_record"` (the default)
    gives random access (`tfds.data_source`, and kerasae reads it by index);
    `"tfrecord"` is what `tfds.load` streams.

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
        builder.download_and_prepare(file_format=file_format)
    return builder


def _decompressed(path, tmp):
    # TFDS's MNIST reader expects extracted files.
    if not path.endswith(".gz"):
        return path
    out = os.path.join(tmp, os.path.basename(path)[:-3])
    with gzip.open(path, "rb") as f, open(out, "wb") as g:
        g.write(f.read())
    return out


def fit_image(x, size, mode):
    """A uint8 `(H, W, C)` image tensor sized to `size = (height, width)` by `mode`, in
    the `tf.data` graph (TFDS images, already decoded)."""
    import tensorflow as tf

    height, width = size
    x = tf.cast(x, tf.float32)
    h, w = tf.shape(x)[0], tf.shape(x)[1]
    if mode == "crop":
        scale = tf.minimum(tf.cast(h, tf.float64) / height, tf.cast(w, tf.float64) / width)
        ch = tf.cast(tf.round(scale * height), tf.int32)
        cw = tf.cast(tf.round(scale * width), tf.int32)
        x = tf.image.crop_to_bounding_box(x, (h - ch) // 2, (w - cw) // 2, ch, cw)
        x = tf.image.resize(x, size, antialias=True)
    elif mode == "pad":
        x = tf.image.resize_with_pad(x, height, width, antialias=True)
    else:
        x = tf.image.resize(x, size, antialias=True)
    x = tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)
    return tf.ensure_shape(x, [height, width, None])
