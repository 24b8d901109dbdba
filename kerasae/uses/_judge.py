"""What generated images are measured with: a judge classifier, the Fréchet distance of its
features, and the non-autoencoder generator (a Gaussian in a PCA subspace)."""

import numpy as np


def frechet_distance(a, b):
    """Fréchet distance between Gaussians fitted to feature sets `a` and `b` (rows).

    `|mu_a - mu_b|^2 + tr(A + B - 2 (A B)^(1/2))`, with `tr (A B)^(1/2)` computed as
    the sum of square roots of the eigenvalues of the symmetric `A^(1/2) B A^(1/2)`,
    which stays real and stable for singular covariances (dead ReLU features).
    """
    a = np.asarray(a, dtype="float64")
    b = np.asarray(b, dtype="float64")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = root_a @ cov_b @ root_a
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
                 - 2.0 * tr_covmean)


class _Judge:
    """A small MLP classifier trained on real images: its hidden layer gives the
    features of the Fréchet distance, its output the class of a generated image."""

    def __init__(self, images, labels, seed):
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        self.clf = MLPClassifier(hidden_layer_sizes=(256,), max_iter=40, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.clf.fit(images.reshape(len(images), -1), labels)

    def features(self, images):
        flat = images.reshape(len(images), -1)
        return np.maximum(flat @ self.clf.coefs_[0] + self.clf.intercepts_[0], 0.0)

    def predict(self, images):
        return self.clf.predict(images.reshape(len(images), -1))

    def confidence(self, images):
        return float(self.clf.predict_proba(images.reshape(len(images), -1)).max(axis=1).mean())

    def accuracy(self, images, labels):
        return float(np.mean(self.predict(images) == labels))


def pca_gaussian_sampler(images, dims):
    """The non-autoencoder generator: a Gaussian in the top-`dims` PCA subspace.

    Returns `sample(n, rng)`, images clipped to [0, 1].
    """
    from sklearn.decomposition import PCA

    flat = images.reshape(len(images), -1)
    k = int(min(dims, flat.shape[1], len(flat) - 1))
    pca = PCA(n_components=k, svd_solver="auto", random_state=0).fit(flat)

    def sample(n, rng):
        z = rng.standard_normal((n, k)) * np.sqrt(pca.explained_variance_)
        return np.clip(pca.inverse_transform(z), 0, 1).reshape(
            (n,) + images.shape[1:]).astype("float32")

    sample.components = k
    return sample
