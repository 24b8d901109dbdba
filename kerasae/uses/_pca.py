"""PCA of images read a block at a time, at memory that does not grow with their number.

Two exact solvers, picked by the number of values in an image `d` (height x width x channels):
- `d <= COVARIANCE_MAX_DIM`: the mean and `X^T X` are summed over every fitting image a
  block at a time (float64), and the covariance's eigenvectors are the components; memory
  is `d^2` floats whatever the number of images (Fashion-MNIST: 784^2).
- larger images (64x64 colour: 12,288 pixels): the Gram matrix of at most
  `GRAM_MAX_IMAGES` fitting images spread evenly over them; its eigenvectors give the
  components (`X^T u / sqrt(lambda)`), at most that many.
Both equal scikit-learn's PCA on the same images (up to the components' signs).
"""

import dataclasses

import numpy as np

from kerasae.metrics import psnr
from kerasae.uses.inputs import blocks

COVARIANCE_MAX_DIM = 4096  # d x d float64: 134 MB at 4,096 values
GRAM_MAX_IMAGES = 1536  # images the Gram solver is fitted on: 75 MB of 64x64x3 float32
BLOCK = 256  # images per float64 product (25 MB of 64x64x3)


@dataclasses.dataclass
class Pca:
    """`mean_` (d,) and orthonormal `components_` (k, d), largest variance first."""

    mean_: np.ndarray
    components_: np.ndarray
    explained_variance_: np.ndarray
    fitted_on: int
    solver: str
    total_variance_: float = 1.0

    @property
    def explained_variance_ratio_(self):
        return self.explained_variance_ / self.total_variance_


def evenly_spaced(n, most):
    """Indices of at most `most` of `n` items, spread evenly (all of them if they fit)."""
    if n <= most:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, most).round().astype("int64"))


def fit_pca(images, max_components):
    """`Pca` of `images` (an array or `StreamedImages`), at most `max_components`."""
    d = int(np.prod(images.shape[1:]))
    if d <= COVARIANCE_MAX_DIM:
        return _by_covariance(images, d, max_components)
    return _by_gram(images, d, max_components)


def _by_covariance(images, d, k):
    n, total, outer = len(images), np.zeros(d), np.zeros((d, d))
    for _, x in blocks(images, BLOCK):
        x = x.reshape(len(x), d).astype("float64")
        total += x.sum(axis=0)
        outer += x.T @ x
    mean = total / n
    cov = (outer - n * np.outer(mean, mean)) / max(n - 1, 1)
    values, vectors = np.linalg.eigh(cov)
    k = int(min(k, d, n))
    order = np.argsort(values)[::-1][:k]
    return Pca(mean, vectors[:, order].T.copy(), np.maximum(values[order], 0), n,
               f"covariance of all {n} images", float(np.trace(cov)))


def _by_gram(images, d, k):
    index = evenly_spaced(len(images), GRAM_MAX_IMAGES)
    x = np.asarray(images[index], dtype="float32").reshape(len(index), d)
    mean = x.astype("float64").mean(axis=0)
    x -= mean.astype("float32")
    gram = np.zeros((len(x), len(x)))
    for i in range(0, len(x), 512):
        gram[i:i + 512] = (x[i:i + 512] @ x.T).astype("float64")
    total = float(np.trace(gram))
    values, vectors = np.linalg.eigh(gram)
    del gram
    keep = int(min(k, d, len(x) - 1))
    order = np.argsort(values)[::-1][:keep]
    values, vectors = np.maximum(values[order], 1e-30), vectors[:, order]
    comps = ((vectors / np.sqrt(values)).T.astype("float32") @ x).astype("float64")
    n = len(x)
    del x
    comps /= np.linalg.norm(comps, axis=1, keepdims=True)  # float32 products: renormalise
    return Pca(mean, comps, values / max(n - 1, 1), n,
               f"Gram matrix of {n} images spread evenly (GRAM_MAX_IMAGES)",
               total / max(n - 1, 1))


def mse_curve(pca, images):
    """Reconstruction MSE of `images` for 1..k components, averaged over pixels and
    images: `||x - mu||^2 - sum_j (v_j . (x - mu))^2` per image, a block at a time."""
    k = len(pca.components_)
    sums = np.zeros(k)
    for _, x in blocks(images, BLOCK):
        centred = x.reshape(len(x), -1).astype("float64") - pca.mean_
        proj = centred @ pca.components_.T
        residual = (centred ** 2).sum(axis=1)[:, None] - np.cumsum(proj ** 2, axis=1)
        sums += np.maximum(residual, 0).sum(axis=0)
    return sums / len(images) / pca.mean_.size


def errors(pca, images, k):
    """Each image's reconstruction MSE through `k` components (float64, averaged over its
    values), a block at a time."""
    comps = pca.components_[:k]
    out = []
    for _, x in blocks(images, BLOCK):
        centred = x.reshape(len(x), -1).astype("float64") - pca.mean_
        out.append(((centred - centred @ comps.T @ comps) ** 2).mean(axis=1))
    return np.concatenate(out)


def transform(pca, images, k):
    """The first `k` principal coordinates of `images` (float64), a block at a time."""
    comps = pca.components_[:k]
    return np.concatenate([(x.reshape(len(x), -1).astype("float64") - pca.mean_) @ comps.T
                           for _, x in blocks(images, BLOCK)])


def psnr_at(pca, images, k):
    """PSNR of `images` through `k` components (unclipped), from the MSE over them all."""
    comps, total = pca.components_[:k], 0.0
    for _, x in blocks(images, BLOCK):
        flat = x.reshape(len(x), -1).astype("float64")
        recon = (flat - pca.mean_) @ comps.T @ comps + pca.mean_
        total += float(((flat - recon) ** 2).sum())
    return psnr(total / (len(images) * pca.mean_.size))
