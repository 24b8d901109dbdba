"""Datasets for autoencoders: your own folders, arrays, tables, time series and `tf.data`
pipelines, TFDS, raw IDX.

Every route ends in a `Source`: a dataset read by index (or, for streams, in
order), batch by batch, never whole, from which `Source.dataset(...)` makes a
`tf.data.Dataset` of float32 batches (images in [0, 1]; records and windows of a
series of any range), shuffled with a seed, batched by the global batch size and
prefetched.

One module per route: `folders` (image folders; `images` decodes and sizes),
`arrays` (arrays, `.npz`, memory-mapped `.npy`), `streams` (a user's
`tf.data.Dataset`; TFDS without random access), `tfds` (TensorFlow Datasets),
`idx` (raw MNIST-family IDX files), `embedded` (`digits`), `tables` (records of a
`.csv` file, array or DataFrame; `csvfile` streams a `.csv` file, `columns` picks and
checks columns), `series` (windows of a time series); `cache` keeps decoded
images on disk, `splits` parses split strings, `source` holds `Source`, and
`resolve` turns a dataset argument into sources (`get_source`,
`train_and_validation`) or a `tf.data.Dataset` (`load`).
"""

from kerasae.data.arrays import from_array, from_file
from kerasae.data.cache import cached
from kerasae.data.folders import FolderSource, folder, image_files
from kerasae.data.idx import (RAW_DATASETS, RAW_ENV, SPLIT_SIZES, load_raw, raw_dirs,
                              read_idx, tfds_order)
from kerasae.data.image_options import COLOR_MODES, RESIZE_MODES, parse_image_size
from kerasae.data.resolve import (get_source, load, load_numpy, train_and_validation,
                                  validation_source)
from kerasae.data.series import SeriesSource, series
from kerasae.data.source import ArraySource, DataError, Source, epoch_order, to_float
from kerasae.data.streams import StreamSource, from_tf_dataset
from kerasae.data.tables import IMPUTE, TableSource, table
from kerasae.data.tfds import prepare_tfds_from_raw

__all__ = ["COLOR_MODES", "IMPUTE", "ArraySource", "DataError", "FolderSource", "RAW_DATASETS",
           "RAW_ENV", "RESIZE_MODES", "SPLIT_SIZES", "SeriesSource", "Source", "StreamSource",
           "TableSource", "cached", "epoch_order", "folder", "from_array", "from_file",
           "from_tf_dataset", "get_source", "image_files", "load", "load_numpy", "load_raw",
           "parse_image_size", "prepare_tfds_from_raw", "raw_dirs", "read_idx", "series",
           "table", "tfds_order", "to_float", "train_and_validation", "validation_source"]
