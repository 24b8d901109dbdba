"""Shared test helpers (plain functions): tiny builder configs, real data, files, subprocesses.

Fixtures live in `conftest.py`; what a test imports by name lives here.
"""

import csv
import functools
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Subprocesses run as a user's would: kerasae keeps TensorFlow's own log lines quiet.
ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}

# The real Fashion-MNIST (the original IDX files) that Debian packages.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_HINT = ("needs the real Fashion-MNIST files: apt-get install "
                      "dataset-fashion-mnist (bash .ci/run installs it)")
has_fashion_mnist = os.path.isfile(os.path.join(FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz"))
needs_fashion_mnist = pytest.mark.skipif(not has_fashion_mnist, reason=FASHION_MNIST_HINT)


NODE_DIR = os.path.join(REPO, "export", "node")


def node_client():
    """`node` for the export/node client, or `None` where Node.js or its packages are absent."""
    import shutil

    node = shutil.which("node")
    if node is None or not os.path.isdir(os.path.join(NODE_DIR, "node_modules",
                                                       "onnxruntime-node")):
        return None
    return node


NODE_HINT = ("needs Node.js and the export/node client's packages: (cd export/node && npm ci "
             "--ignore-scripts) (bash .ci/run installs them)")


def tiny_kwargs(name, **overrides):
    """The small example arguments a builder's contract gives, seeded (where it takes one)."""
    import inspect

    from kerasae.models import get_builder, get_contract

    kwargs = dict(get_contract(name).example)
    if "seed" in inspect.signature(get_builder(name)).parameters:
        kwargs["seed"] = 1
    kwargs.update(overrides)
    return kwargs


def build_tiny(name, **overrides):
    from kerasae.models import build

    return build(name, **tiny_kwargs(name, **overrides))


def sample(name, n=16, seed=0):
    """A batch of a builder's own kind and shape of input (its contract's sample)."""
    from kerasae.models import get_contract

    return get_contract(name).sample(n, seed)


@functools.lru_cache(maxsize=None)
def digits_batch(n=64):
    """A fixed batch of real 8x8 digits in [0, 1], shape (n, 8, 8, 1)."""
    from sklearn.datasets import load_digits

    images = load_digits().images[:n].astype("float32") / 16.0
    return images[..., None]


def photo_crops(n, seed, size=None, sizes=None):
    """`n` uint8 RGB crops of the two photographs scikit-learn ships (alternating): all
    `size` `(h, w)`, or each of a random `(h, w)` drawn from `sizes` `(low, high)`."""
    from sklearn.datasets import load_sample_images

    pictures = load_sample_images().images
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(n):
        pic = pictures[i % 2]
        h, w = size if size else rng.integers(*sizes, size=2)
        top, left = rng.integers(0, pic.shape[0] - h), rng.integers(0, pic.shape[1] - w)
        crops.append(pic[top:top + h, left:left + w])
    return crops


def sha256(path):
    """sha256 of a file, computed here with hashlib (independent of kerasae's helper)."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def files_under(folder):
    """Every file below `folder`, relative, sorted."""
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, fs in os.walk(folder) for f in fs)


def run_cli(args, cwd, *, env=ENV, check=True, timeout=900):
    """`python -m kerasae.cli ARGS` in a real subprocess; the CompletedProcess."""
    proc = subprocess.run([sys.executable, "-m", "kerasae.cli", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-5000:]}")
    return proc


def run_json(folder):
    """The `run.json` record of a training run directory."""
    with open(os.path.join(folder, "run.json")) as f:
        return json.load(f)


def assert_plain_float_weights(path):
    """An HDF5 weights file holds float datasets only and no object (pickled) attributes."""
    import h5py

    with h5py.File(path, "r") as f:
        def check(name, obj):
            if isinstance(obj, h5py.Dataset):
                assert obj.dtype.kind == "f", (name, obj.dtype)
            for key, value in obj.attrs.items():
                assert np.asarray(value).dtype.kind != "O", (name, key)
        f.visititems(check)


def default_child_signals():
    """`preexec_fn` for a subprocess that must see Ctrl-C and SIGTERM as a terminal sends
    them: a shell's background job (a test run started with `&`) ignores SIGINT, and its
    children inherit that."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def write_csv(path, header, rows):
    """A `.csv` file of `header` and `rows` (csv.writer); returns its path as a string."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _shared_data():
    """The project's real data (`../shared/data` beside the repository), or
    $KERASAE_SHARED_DATA; a fresh clone elsewhere falls back to /work/shared/data."""
    for path in (os.environ.get("KERASAE_SHARED_DATA"),
                 os.path.join(REPO, os.pardir, "shared", "data"), "/work/shared/data"):
        if path and os.path.isdir(path):
            return os.path.abspath(path)
    return os.path.join(REPO, os.pardir, "shared", "data")


SHARED_DATA = _shared_data()
ADBENCH_DIR = os.environ.get("KERASAE_ADBENCH_DATA", os.path.join(SHARED_DATA, "adbench"))
NAB_DIR = os.environ.get("KERASAE_NAB_DATA", os.path.join(SHARED_DATA, "nab"))


def per_family(names):
    """`names` (builder names) as pytest params for a test run per builder: the quick lane
    keeps one builder of each family module (the shortest name, e.g. `conv_ae` of
    `families/conv`), the others carry the `slow` mark. A new family's module is in the
    quick lane as it is added; the full suite runs every builder."""
    from kerasae.models import get_builder

    return _one_quick_per(names, lambda name: get_builder(name).__module__)


def per_kind(names):
    """As `per_family`, one builder per kind of input (image, vector, series) in the quick
    lane: for tests whose code paths differ by the input's kind, not by family (export)."""
    from kerasae.models import get_contract

    return _one_quick_per(names, lambda name: get_contract(name).input_kind)


def _one_quick_per(names, group):
    quick = {}
    for name in sorted(names, key=lambda n: (len(n), n)):
        quick.setdefault(group(name), name)
    return [pytest.param(n, marks=() if n in quick.values() else pytest.mark.slow)
            for n in names]
