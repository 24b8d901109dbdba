"""Datasets for autoencoders: TFDS names, offline raw IDX files, `digits`, arrays.

Every route ends in the same place: a `Source` of channels-last images (uint8,
or float32 already in [0, 1]) plus optional labels, from which
`Source.dataset(...)` makes a `tf.data.Dataset` of float32 images in [0, 1],
shuffled with a seed, batched by the global batch size and prefetched.

One module per route: `arrays` (numpy arrays, `.npz` / `.npy`), `embedded`
(`digits`), `idx` (raw MNIST-family IDX files), `tfds` (TensorFlow Datasets);
`splits` parses split strings, `source` holds `Source`, and `resolve` turns a
dataset argument into a `Source` (`get_source`) or a `tf.data.Dataset` (`load`).
"""

from kerasae.data.arrays import from_array, from_file
from kerasae.data.idx import (
                              RAW_DATASETS,
                              RAW_ENV,
                              SPLIT_SIZES,
                              load_raw,
                              raw_dirs,
                              read_idx,
                              tfds_order,
)
from kerasae.data.resolve import get_source, load, load_numpy, validation_source
from kerasae.data.source import DataError, Source, epoch_order, to_float
from kerasae.data.tfds import prepare_tfds_from_raw

__all__ = ["DataError", "RAW_DATASETS", "RAW_ENV", "SPLIT_SIZES", "Source", "epoch_order",
           "from_array", "from_file", "get_source", "load", "load_numpy", "load_raw",
           "prepare_tfds_from_raw", "raw_dirs", "read_idx", "tfds_order", "to_float",
           "validation_source"]
