"""What autoencoders are for: one call per use, each scored against the obvious alternative.

| use        | what it does                                  | compared with                    |
| ---------- | --------------------------------------------- | -------------------------------- |
| `features` | images -> codes (`codes.npy`), linear probe   | raw pixels, PCA at the same size |
| `reduce`   | 2-D / N-D codes, scatter by class, MSE table  | PCA at the same size             |
| `compress` | quantized + range-coded codes in a `.kae` file | JPEG at the same PSNR, zlib/lzma |
| `denoise`  | clean images from noisy ones                  | gaussian and median filters      |
| `anomaly`  | reconstruction error, threshold on train data | PCA reconstruction error         |
| `generate` | VAE samples, interpolation, latent arithmetic | PCA-Gaussian, pixel-space ops    |

Every use takes a model (an `Autoencoder`, a `.keras` path or a zoo preset
name) and images (default: the Fashion-MNIST test split; or an array, or image
files / directories), returns a `Result` (`.metrics` JSON-able numbers,
`.arrays`, `.files`) and, given `out=DIR`, writes `<use>.json` and its PNGs
there, all or nothing. The same uses are `kerasae <use> --model M --out DIR`.

Modules: `kae` (the `.kae` compressed-codes file), `rangecoder` (its adaptive
range coder); the uses themselves live in private modules and are re-exported
here.

Example:
    >>> import kerasae
    >>> r = kerasae.uses.reduce("conv_ae_fashion_mnist", out="runs/reduce")
    >>> r["table"]
"""

from kerasae.uses import kae, rangecoder
from kerasae.uses._anomaly import anomaly
from kerasae.uses._common import Result
from kerasae.uses._compress import compress, decompress
from kerasae.uses._denoise import denoise
from kerasae.uses._features import features
from kerasae.uses._generate import generate
from kerasae.uses._reduce import reduce
from kerasae.uses.kae import decode_file, encode_file, read_header


def add_cli(subparsers):
    """Registers `kerasae features|reduce|compress|denoise|anomaly|generate`."""
    from kerasae.uses import cli

    cli.add_cli(subparsers)


__all__ = ["Result", "add_cli", "anomaly", "compress", "decode_file", "decompress", "denoise",
           "encode_file", "features", "generate", "kae", "rangecoder", "read_header", "reduce"]
