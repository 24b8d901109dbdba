"""Shared parts of the uses: model and input resolution, metrics, all-or-nothing output."""

import dataclasses
import hashlib
import json
import math
import os
import shutil

import numpy as np

from kerasae import _resolve
from kerasae._files import sha256_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm",
                  ".ppm", ".pbm", ".pnm")
BATCH = 256


# ------------------------------------------------------------------- results
@dataclasses.dataclass
class Result:
    """What a use returns: JSON-able `metrics`, numpy `arrays`, and the `files` it wrote.

    `result["key"]` reads `result.metrics["key"]`.
    """

    use: str
    metrics: dict
    arrays: dict = dataclasses.field(default_factory=dict)
    files: list = dataclasses.field(default_factory=list)
    model: object = None

    def __getitem__(self, key):
        return self.metrics[key]

    def __repr__(self):
        files = ", ".join(os.path.basename(f) for f in self.files) or "none"
        return f"Result(use={self.use!r}, metrics={list(self.metrics)}, files=[{files}])"


def jsonable(value):
    """Numpy scalars and arrays to Python; non-finite floats to `None`."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


class Output:
    """All-or-nothing output: files go to a hidden staging folder beside `out`.

    On success (`commit()`, or leaving the `with` block without an error) they
    are moved into `out`; on an error the staging folder is deleted, so a failed
    run leaves nothing partial behind. With `out=None` nothing is written.
    """

    def __init__(self, out):
        self.out = None if out is None else os.path.abspath(os.fspath(out))
        self.names = []
        self.stage = None
        if self.out is not None:
            if os.path.exists(self.out) and not os.path.isdir(self.out):
                raise ValueError(
                    f"The output path exists and is not a directory. Choose a directory "
                    f"for --out. Received: out={os.fspath(out)!r}"
                )
            parent = os.path.dirname(self.out)
            os.makedirs(parent, exist_ok=True)
            self.stage = os.path.join(
                parent, f".{os.path.basename(self.out)}.partial-{os.getpid()}-{id(self)}"
            )

    @property
    def enabled(self):
        return self.out is not None

    def path(self, name):
        """A path to write `name` to (inside the staging folder)."""
        if not self.enabled:
            raise RuntimeError("This output writes nothing (out=None).")
        os.makedirs(os.path.dirname(os.path.join(self.stage, name)), exist_ok=True)
        if name not in self.names:
            self.names.append(name)
        return os.path.join(self.stage, name)

    def final(self, name):
        return os.path.join(self.out, name)

    def json(self, name, data):
        path = self.path(name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(jsonable(data), f, indent=2, sort_keys=False, allow_nan=False)
            f.write("\n")
        return path

    def npy(self, name, array):
        path = self.path(name)
        np.save(path, np.asarray(array), allow_pickle=False)
        return path

    def commit(self):
        if not self.enabled:
            return []
        os.makedirs(self.out, exist_ok=True)
        written = []
        for name in self.names:
            src = os.path.join(self.stage, name)
            if not os.path.exists(src):
                continue
            dst = os.path.join(self.out, name)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.isdir(src) and os.path.isdir(dst):
                shutil.rmtree(dst)  # a bundle from an earlier run is replaced whole
            os.replace(src, dst)
            written.append(dst)
        self.discard()
        return written

    def discard(self):
        if self.stage and os.path.isdir(self.stage):
            shutil.rmtree(self.stage, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.discard()
        return False


# --------------------------------------------------------------------- model
@dataclasses.dataclass
class ModelRef:
    """A resolved model and where it came from."""

    model: object
    name: str
    source: str  # "preset", "file" or "memory"
    path: str = None
    file_sha256: str = None
    weights_sha256: str = None

    def info(self):
        return {"name": self.name, "source": self.source, "path": self.path,
                "file_sha256": self.file_sha256, "weights_sha256": self.weights_sha256,
                "builder": getattr(self.model, "builder_name", None),
                "latent_dim": int(self.model.latent_dim),
                "code_shape": list(self.model.code_shape),
                "image_shape": list(self.model.image_shape),
                "variational": bool(self.model.variational)}


def weights_sha256(model):
    """A fingerprint of a model's weights: sha256 over each weight's dtype, shape and bytes."""
    h = hashlib.sha256()
    for w in model.get_weights():
        w = np.ascontiguousarray(w)
        h.update(f"{w.dtype.str}{w.shape};".encode())
        h.update(w.tobytes())
    return h.hexdigest()


def resolve_model(model):
    """An `Autoencoder`, a `.keras` path or a zoo preset name -> `ModelRef`."""
    from kerasae.models import Autoencoder

    if isinstance(model, ModelRef):
        return model
    if isinstance(model, Autoencoder):
        return ModelRef(model, model.name, "memory", weights_sha256=weights_sha256(model))
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            "model must be a kerasae Autoencoder, a .keras file or a zoo preset name. "
            f"Received: model={type(model).__name__}"
        )
    text = os.fspath(model)
    if _resolve.names_a_file(text):
        loaded = _resolve.load_keras_file(text)
        return ModelRef(loaded, os.path.splitext(os.path.basename(text))[0], "file",
                        path=os.path.abspath(text), file_sha256=sha256_file(text),
                        weights_sha256=weights_sha256(loaded))
    zoo = _resolve.zoo_module(text)
    preset = zoo.get_preset(text)
    loaded = zoo.load_model(preset.label)
    weights = preset.entry.get("files", {}).get("model.weights.h5", {}).get("sha256")
    # name@version, so a .kae header names exactly the weights that decode it.
    return ModelRef(loaded, preset.label, "preset", file_sha256=weights,
                    weights_sha256=weights_sha256(loaded))


def fresh_copy(model):
    """A new, untrained model with the architecture of `model`."""
    import kerasae

    if getattr(model, "builder_name", None):
        config = dict(model.builder_config or {})
        return kerasae.get_builder(model.builder_name)(**config)
    return type(model).from_config(model.get_config())


# -------------------------------------------------------------------- inputs
@dataclasses.dataclass
class Inputs:
    """Images as float32 in [0, 1], shape `(n, H, W, C)`, with optional labels and names."""

    images: np.ndarray
    labels: np.ndarray = None
    names: list = None
    label_names: tuple = ()
    description: dict = dataclasses.field(default_factory=dict)

    def __len__(self):
        return len(self.images)

    def subset(self, index):
        index = np.asarray(index)
        return Inputs(
            self.images[index],
            None if self.labels is None else self.labels[index],
            None if self.names is None else [self.names[i] for i in index],
            self.label_names, dict(self.description, subset=int(len(index))),
        )


def _is_pathlike_input(value):
    if isinstance(value, (list, tuple)):
        return len(value) > 0 and all(isinstance(v, (str, os.PathLike)) for v in value)
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if text.lower().endswith((".npz", ".npy")):
            return False  # an array file: a dataset, read by kerasae.data
        return os.path.exists(text) or text.lower().endswith(IMAGE_SUFFIXES) or "/" in text
    return False


def expand_files(paths):
    """Files and directories -> a sorted list of files (non-recursive, no hidden files)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            found = sorted(
                os.path.join(p, n) for n in os.listdir(p)
                if not n.startswith(".") and os.path.isfile(os.path.join(p, n))
            )
            if not found:
                raise ValueError(
                    f"The directory {p!r} holds no image files. Point to a folder of "
                    f"PNG/JPEG images. Received: images={p!r}"
                )
            files.extend(found)
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise FileNotFoundError(f"No such file or directory: {p!r}. Received: images={p!r}")
    if not files:
        raise ValueError("No image files were given. Received: images=[]")
    return files


_GRAY_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "F"}


def read_image(path):
    """One image file -> float32 `(H, W, C)` in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                mode = im.mode
            if mode in _GRAY_MODES:
                arr = np.asarray(im)
                if mode == "1":
                    arr = arr.astype("float32")
                elif mode.startswith("I;16") or mode == "I":
                    arr = arr.astype("float32") / 65535.0
                elif mode == "F":
                    arr = arr.astype("float32")
                else:
                    arr = arr.astype("float32") / 255.0
                arr = arr[..., None]
            elif mode in ("LA", "RGB", "RGBA"):
                arr = np.asarray(im).astype("float32") / 255.0
            else:
                arr = np.asarray(im.convert("RGB")).astype("float32") / 255.0
    except UnidentifiedImageError:
        raise ValueError(
            f"{path!r} is not an image file Pillow can read. Remove it or pass only "
            f"image files. Received: file={path!r}"
        ) from None
    except OSError as e:
        raise ValueError(
            f"Could not read the image {path!r} ({e}). Received: file={path!r}"
        ) from e
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise ValueError(
            f"Pixel values of {path!r} fall outside [0, 1] after scaling. "
            f"Received: min={arr.min():g}, max={arr.max():g}"
        )
    return arr


def read_images(paths):
    """Image files (or directories of them) -> `Inputs` with file names."""
    files = expand_files(paths)
    arrays = [read_image(f) for f in files]
    first = arrays[0].shape
    for f, a in zip(files, arrays):
        if a.shape != first:
            raise ValueError(
                f"All images must have the same size and channels; {files[0]!r} is "
                f"{_shape_text(first)} but {f!r} is {_shape_text(a.shape)}. "
                f"Received: shape={a.shape}"
            )
    names = [os.path.basename(f) for f in files]
    return Inputs(np.stack(arrays).astype("float32"), None, names,
                  description={"files": len(files), "from": _common_dir(files)})


def _common_dir(files):
    dirs = {os.path.dirname(os.path.abspath(f)) for f in files}
    return dirs.pop() if len(dirs) == 1 else None


def _shape_text(shape):
    return "x".join(str(int(d)) for d in shape)


def load_inputs(images=None, labels=None, *, dataset="fashion_mnist", split="test",
                limit=None):
    """Resolves what a use runs on.

    Args:
        images: `None` (use `dataset`/`split`), a numpy array of images (uint8 or
            float in [0, 1]), a `kerasae.data.Source`, or image files/directories.
        labels: int labels for an array of images. Defaults to `None`.
        dataset: dataset name or `.npz`/`.npy` path used when `images` is `None`.
            Defaults to `"fashion_mnist"`.
        split: split of `dataset`. Defaults to `"test"`.
        limit: keep the first `limit` images. Defaults to all.

    Returns:
        `Inputs`.
    """
    from kerasae import data as data_lib

    if images is None:
        src = data_lib.get_source(dataset, split)
        inputs = Inputs(src.numpy(), src.labels, None, tuple(src.label_names or ()),
                        {"dataset": os.fspath(dataset), "split": src.split, "route": src.route})
    elif isinstance(images, Inputs):
        inputs = images
    elif isinstance(images, data_lib.Source):
        inputs = Inputs(images.numpy(), images.labels, None, tuple(images.label_names or ()),
                        {"source": images.name, "split": images.split})
    elif isinstance(images, np.ndarray):
        src = data_lib.from_array(images, labels)
        inputs = Inputs(src.numpy(), src.labels, None, (), {"array": list(images.shape)})
        labels = None
    elif _is_pathlike_input(images):
        inputs = read_images(images)
    elif isinstance(images, (str, os.PathLike)):
        images = os.fspath(images)
        src = data_lib.get_source(images, split)
        inputs = Inputs(src.numpy(), src.labels, None, tuple(src.label_names or ()),
                        {"dataset": images, "split": src.split, "route": src.route})
    else:
        raise TypeError(
            "images must be None, a numpy array, a kerasae.data.Source, or image "
            f"file/directory paths. Received: images={type(images).__name__}"
        )
    if labels is not None:
        labels = np.asarray(labels).astype("int64").reshape(-1)
        if len(labels) != len(inputs):
            raise ValueError(
                f"Got {len(inputs)} images but {len(labels)} labels. "
                f"Received: labels.shape={labels.shape}"
            )
        inputs = dataclasses.replace(inputs, labels=labels)
    if limit is not None:
        limit = int(limit)
        if limit < 1:
            raise ValueError(f"limit must be a positive integer. Received: limit={limit}")
        inputs = inputs.subset(np.arange(min(limit, len(inputs))))
    return inputs


def check_images(model, images, what="images"):
    """Raises a clear ValueError unless `images` fit `model`'s input shape."""
    expected = tuple(int(d) for d in model.image_shape)
    shape = tuple(images.shape[1:])
    if shape != expected:
        hint = ""
        if len(shape) == len(expected) and shape[:-1] == expected[:-1]:
            hint = (f" The channels differ ({shape[-1]} vs {expected[-1]}): convert the "
                    f"images, e.g. PIL's .convert('{'L' if expected[-1] == 1 else 'RGB'}').")
        elif len(shape) == len(expected):
            hint = f" Resize the images to {expected[0]}x{expected[1]}."
        raise ValueError(
            f"The {what} are {_shape_text(shape)} but {model.name} expects "
            f"{_shape_text(expected)} (height x width x channels).{hint} "
            f"Received: shape={tuple(images.shape)}"
        )


def need_labels(inputs, use):
    if inputs.labels is None:
        raise ValueError(
            f"{use} needs class labels; use a labelled dataset (e.g. fashion_mnist) or "
            f"pass labels=. Received: labels=None"
        )


def label_name(inputs, k):
    names = inputs.label_names
    return names[k] if names and 0 <= k < len(names) else str(k)


# ------------------------------------------------------------------ forward
def _run(submodel, x, batch_size):
    # Eager calls per batch: no tf.function is traced per model, so running many
    # fresh models (an anomaly sweep) does not trigger retracing.
    outs = []
    for i in range(0, len(x), batch_size):
        out = submodel(np.asarray(x[i:i + batch_size], dtype="float32"), training=False)
        outs.append([np.asarray(o) for o in out] if isinstance(out, (list, tuple))
                    else np.asarray(out))
    if not outs:
        raise ValueError(f"No images to run. Received: shape={tuple(np.shape(x))}")
    if isinstance(outs[0], list):
        return [np.concatenate([o[j] for o in outs]) for j in range(len(outs[0]))]
    return np.concatenate(outs)


def encode(model, x, batch_size=BATCH):
    """Codes as float32 numpy, `(n,) + code_shape` (VAE: `z_mean`)."""
    out = _run(model.encoder, x, batch_size)
    if model.variational:
        out = out[0]
    return np.asarray(out, dtype="float32")


def decode(model, z, batch_size=BATCH):
    return np.asarray(_run(model.decoder, z, batch_size), dtype="float32")


def reconstruct(model, x, batch_size=BATCH):
    return decode(model, encode(model, x, batch_size), batch_size)


# ------------------------------------------------------------------ metrics
# The definitions are kerasae.evaluate's, so the uses report the numbers the model
# cards report: PSNR is computed from the MEAN MSE over the images (peak 1).


def mse_per_image(a, b):
    from kerasae import evaluate

    return evaluate.mse_per_image(a, b)


def psnr(a, b):
    """PSNR in dB of the mean MSE between two image batches (pixels in [0, 1])."""
    from kerasae import evaluate

    return evaluate.psnr(float(np.mean(mse_per_image(a, b))))


def psnr_per_image(a, b):
    """PSNR of each image pair in dB (`inf` for identical images)."""
    from kerasae import evaluate

    return np.array([evaluate.psnr(m) for m in mse_per_image(a, b)])


def ssim(a, b):
    """Mean SSIM (kerasae.evaluate: 11x11 Gaussian window, sigma 1.5, valid filtering)."""
    from kerasae import evaluate

    return float(np.mean(evaluate.ssim_per_image(a, b)))


def image_quality(clean, output):
    """`{"mse", "psnr_db", "ssim"}` of `output` against `clean`."""
    mse = float(np.mean(mse_per_image(clean, output)))
    from kerasae import evaluate

    return {"mse": mse, "psnr_db": evaluate.psnr(mse), "ssim": ssim(clean, output)}


def summary(values):
    v = np.asarray(values, dtype="float64")
    return {"mean": float(v.mean()), "std": float(v.std()), "median": float(np.median(v))}
