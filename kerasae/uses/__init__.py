"""What autoencoders are for: one call per use, each scored against the obvious alternative.

| use        | what it does                                   | compared with                     |
| ---------- | ---------------------------------------------- | --------------------------------- |
| `features` | images -> codes (`codes.npy`), linear probe    | raw pixels, PCA at the same size  |
| `reduce`   | 2-D / N-D codes, scatter by class, MSE table   | PCA at the same size              |
| `compress` | quantized + range-coded codes in a `.kae` file | JPEG at the same PSNR, zlib/lzma  |
| `denoise`  | clean images from noisy ones                   | gaussian and median filters       |
| `anomaly`  | reconstruction error, threshold on train data  | PCA reconstruction error          |
| `generate` | VAE samples, interpolation, latent arithmetic  | PCA-Gaussian, pixel-space ops     |
| `colorize` | grey photos -> colour (a `Colorizer`, no AE)   | grey as RGB, training mean chroma |

Every use takes a model (an `Autoencoder`, a `.keras` path or a zoo preset
name) and images (default: the Fashion-MNIST test split; or an array, or image
files / directories), returns a `Result` (`.metrics` JSON-able numbers,
`.arrays`, `.files`) and, given `out=DIR`, writes `<use>.json` and its PNGs
there, all or nothing. The same uses are `kerasae <use> --model M --out DIR`.
`colorize(images_or_folder, model="colorize_photos", out=None)` takes photos first and a
colorizer (not an autoencoder); `train_colorizer(folder, out)` trains one
(`kerasae colorize IMAGES...`, `kerasae colorize --train FOLDER --out DIR`).

Modules: one per use (private, re-exported here; `_colortrain` trains a colorizer);
`inputs` (what a use runs on), `result` (`Result`, the all-or-nothing `Output`),
`options` (the choices of the commands; light), and `codec/` (`kae`, the `.kae`
compressed-codes file, and `rangecoder`, its adaptive range coder). Names load on first
use.

Example:
    >>> import kerasae
    >>> r = kerasae.uses.reduce("conv_ae_fashion_mnist", out="runs/reduce")
    >>> r["table"]
"""

from kerasae._util import lazy as _lazy

__getattr__, __dir__ = _lazy.exports(__name__, {
    "Detector": "kerasae.uses.detector:Detector",
    "Ensemble": "kerasae.uses.ensemble:Ensemble",
    "Result": "kerasae.uses.result:Result",
    "anomaly": "kerasae.uses._anomaly:anomaly",
    "check_applies": "kerasae.uses.inputs:check_applies",
    "colorize": "kerasae.uses._colorize:colorize",
    "compress": "kerasae.uses._compress:compress",
    "decode_file": "kerasae.uses.codec.kae:decode_file",
    "decompress": "kerasae.uses._compress:decompress",
    "denoise": "kerasae.uses._denoise:denoise",
    "encode_file": "kerasae.uses.codec.kae:encode_file",
    "features": "kerasae.uses._features:features",
    "generate": "kerasae.uses._generate:generate",
    "kae": "kerasae.uses.codec.kae",
    "rangecoder": "kerasae.uses.codec.rangecoder",
    "read_header": "kerasae.uses.codec.kae:read_header",
    "reduce": "kerasae.uses._reduce:reduce",
    "train_colorizer": "kerasae.uses._colortrain:train_colorizer",
})

__all__ = ["Detector", "Ensemble", "Result", "anomaly", "check_applies", "colorize", "compress",
           "decode_file", "decompress", "denoise", "encode_file", "features", "generate", "kae",
           "rangecoder", "read_header", "reduce", "train_colorizer"]
