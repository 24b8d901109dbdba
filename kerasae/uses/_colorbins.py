"""Training a colorizer over chroma bins: the targets, the rebalancing and the temperature.

A colorizer with `bins` (`kerasae.models.colorizer`) predicts a distribution over a
grid of (Cb, Cr) bins. Its training target is each pixel's chroma soft-encoded over
the bins (a Gaussian of half a bin around it, normalised), and the loss is the
cross-entropy to it, weighted per pixel by the rarity of the pixel's nearest bin in
the training photos: the bins' frequencies, smoothed by a Gaussian of half a bin,
mixed half and half with the uniform distribution and inverted, scaled so that the
expected weight is 1 (Zhang, Isola & Efros 2016, with lambda 0.5). Without it the
common near-grey bins dominate and the colours fade.

The temperature that reads the distribution (`AnnealedMean`) is chosen on photos held
out of training: the one among `TEMPERATURES` whose colorized photos are, on average,
as colourful as the originals (Hasler & Suesstrunk's M; the mean of the distribution
fades them, the mode overshoots).
"""

import numpy as np

from kerasae.models.colorizer import annealed_mean, chroma_centres, rgb_to_ycbcr, ycbcr_to_rgb
from kerasae.uses._colorize import colourfulness, psnr

MIX = 0.5  # Zhang et al.'s lambda: the uniform distribution's share in the rebalancing
TEMPERATURES = (1.0, 0.77, 0.58, 0.38, 0.25)


def nearest_bin(cbcr, bins):
    """The index of each chroma's nearest bin (`chroma_centres(bins)`'s order)."""
    steps = np.rint((np.clip(np.asarray(cbcr, "float64"), -0.5, 0.5) + 0.5) * (bins - 1))
    steps = steps.astype("int64")
    return steps[..., 0] * bins + steps[..., 1]


def bin_counts(cbcr, bins):
    """How many of the `(..., 2)` chroma values fall nearest each bin."""
    return np.bincount(nearest_bin(cbcr, bins).ravel(), minlength=bins * bins)


def rebalancing_weights(counts, bins, mix=MIX):
    """The per-bin loss weights of the module docstring, from `bin_counts`."""
    from scipy.ndimage import gaussian_filter

    p = np.asarray(counts, "float64").reshape(bins, bins)
    if p.sum() <= 0:
        raise ValueError("no pixels counted")
    p = gaussian_filter(p / p.sum(), sigma=0.5, mode="constant").ravel()
    p /= p.sum()
    w = 1.0 / ((1.0 - mix) * p + mix / p.size)
    return (w / (p * w).sum()).astype("float32")


def soft_targets(cbcr, bins):
    """numpy: each chroma soft-encoded over the bins (a Gaussian of half a bin)."""
    sigma = 0.5 / (bins - 1)
    d2 = ((np.asarray(cbcr, "float64")[..., None, :] - chroma_centres(bins)) ** 2).sum(-1)
    e = np.exp(-(d2 - d2.min(axis=-1, keepdims=True)) / (2 * sigma ** 2))
    return e / e.sum(axis=-1, keepdims=True)


def bin_loss(bins, weights):
    """The Keras loss `(chroma (b, h, w, 2), logits (b, h, w, bins * bins))` -> per-pixel
    rebalanced cross-entropy to the soft-encoded chroma (see the module docstring)."""
    from keras import ops  # lazy: keeps TensorFlow out of `import kerasae.uses`

    centres = chroma_centres(bins)
    c = ops.convert_to_tensor(centres.T)  # (2, Q)
    c2 = ops.convert_to_tensor((centres ** 2).sum(-1))
    w = ops.convert_to_tensor(np.asarray(weights, "float32"))
    scale = 1.0 / (2 * (0.5 / (bins - 1)) ** 2)

    def loss(chroma, logits):
        chroma = ops.cast(chroma, "float32")
        d2 = ops.maximum(ops.sum(chroma ** 2, axis=-1, keepdims=True)
                         - 2.0 * ops.matmul(chroma, c) + c2, 0.0)
        target = ops.softmax(-d2 * scale, axis=-1)
        pixel_weight = ops.take(w, ops.argmin(d2, axis=-1))
        ce = -ops.sum(target * ops.log_softmax(ops.cast(logits, "float32"), axis=-1), axis=-1)
        return pixel_weight * ce

    return loss


def temperature_scores(logits_of, photos, bins, gain=1.0):
    """`{temperature: (mean PSNR dB, mean M, mean M of the originals)}` over `photos`
    (RGB in [0, 1]), each photo's logits computed once by `logits_of(y)`."""
    rows = {t: [] for t in TEMPERATURES}
    for rgb in photos:
        ycc = rgb_to_ycbcr(rgb)
        y = ycc[..., :1]
        logits = logits_of(y)
        for t in TEMPERATURES:
            cbcr = gain * annealed_mean(logits, bins, t)
            out = np.clip(ycbcr_to_rgb(np.concatenate([y, cbcr], axis=-1)), 0, 1)
            rows[t].append((psnr(out, rgb), colourfulness(out), colourfulness(rgb)))
    return {t: tuple(float(v) for v in np.mean(r, axis=0)) for t, r in rows.items() if r}


def choose_temperature(scores):
    """The temperature whose mean colourfulness is nearest the originals'."""
    return min(scores, key=lambda t: abs(scores[t][1] - scores[t][2]))
