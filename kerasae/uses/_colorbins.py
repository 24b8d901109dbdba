"""Training a colorizer over chroma bins: the targets, the rebalancing and the temperature.

A colorizer with `bins` (`kerasae.models.colorizer`) predicts a distribution over a
grid of (Cb, Cr) bins. Its training target is each pixel's chroma soft-encoded over
the bins (a Gaussian of half a bin around it, normalised), and the loss is the
cross-entropy to it, weighted per pixel by the rarity of the pixel's nearest bin in
the training photos: the bins' frequencies, smoothed by a Gaussian of half a bin,
mixed half and half with the uniform distribution and inverted, scaled so that the
expected weight is 1 (Zhang, Isola & Efros 2016, with lambda 0.5). Without it the
common near-grey bins dominate and the colours fade.

The rebalancing also skews what the model predicts: trained with per-bin weights w, it
predicts about w(c) p(c), normalised, where p is the photos' own distribution, so the
rare (vivid) colours are overstated, and mean PSNR falls below the mean-chroma baseline
(measured: README's Colorization). Reading it, a share `undo` of the skew is taken
back: `logit_shift` adds `-undo * log w` to the logits (1: p itself; the logit
adjustment of Menon et al. 2021). The temperature then reads the distribution
(`AnnealedMean`: its mean fades the colours, its mode overshoots them).

The reading (undo, temperature) is chosen on photos held out of training: the most
colourful (Hasler & Suesstrunk's M) among the readings whose mean PSNR is within
`TOLERANCE_DB` of the best reading's, so colour is bought with at most a fifth of a
decibel.
"""

import numpy as np

from kerasae.models.colorizer import annealed_mean, chroma_centres, rgb_to_ycbcr, ycbcr_to_rgb
from kerasae.uses._colorize import colourfulness, psnr

MIX = 0.5  # Zhang et al.'s lambda: the uniform distribution's share in the rebalancing
TEMPERATURES = (1.0, 0.77, 0.58, 0.38, 0.25)
UNDOS = (0.0, 0.25, 0.5, 0.75, 1.0)  # shares of the rebalancing's skew taken back
TOLERANCE_DB = 0.2  # PSNR given up, at most, for the most colourful reading


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


def logit_shift(counts, bins, undo):
    """What to add to the logits to take back a share `undo` (0 to 1) of the
    rebalancing's skew (the module docstring): `-undo * log w` per bin, w the
    `rebalancing_weights` of the training photos' bin `counts`."""
    return (-float(undo) * np.log(rebalancing_weights(counts, bins))).astype("float32")


def reading_scores(logits_of, photos, bins, counts, gain=1.0, undos=UNDOS,
                   temperatures=TEMPERATURES):
    """`{(undo, temperature): (mean PSNR dB, mean M, mean M of the originals)}` over
    `photos` (RGB in [0, 1]) for each of `undos` x `temperatures`, each photo's logits
    computed once by `logits_of(y)`."""
    shifts = {u: logit_shift(counts, bins, u) for u in undos}
    rows = {(u, t): [] for u in undos for t in temperatures}
    for rgb in photos:
        y = rgb_to_ycbcr(rgb)[..., :1]
        logits, original = logits_of(y), colourfulness(rgb)
        for u, t in rows:
            cbcr = gain * annealed_mean(logits + shifts[u], bins, t)
            out = np.clip(ycbcr_to_rgb(np.concatenate([y, cbcr], axis=-1)), 0, 1)
            rows[u, t].append((psnr(out, rgb), colourfulness(out), original))
    return {k: tuple(float(v) for v in np.mean(r, axis=0)) for k, r in rows.items() if r}


def choose_reading(scores, tolerance=TOLERANCE_DB):
    """The most colourful reading among those within `tolerance` dB of the best mean PSNR
    (`reading_scores`' keys and rows)."""
    best = max(row[0] for row in scores.values())
    near = [k for k, row in scores.items() if row[0] >= best - tolerance]
    return max(near, key=lambda k: scores[k][1])
