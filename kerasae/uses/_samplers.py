"""Where a VAE's sampled codes come from: the prior N(0, I), or a Gaussian fitted to the
codes of real images (`generate`'s `sampler`)."""

import numpy as np

from kerasae._util.errors import InvalidValue
from kerasae.models import predict
from kerasae.uses.options import SAMPLERS


def check_sampler(sampler):
    if sampler not in SAMPLERS:
        raise InvalidValue(f"sampler must be one of {', '.join(SAMPLERS)}: 'prior' decodes "
                           "z ~ N(0, I), 'fitted' a Gaussian fitted to the images' codes, "
                           "'auto' fitted when there are more images than code dimensions. "
                           f"Received: sampler={sampler!r}")


def sampler_record(asked, sampler, count, latent_dim):
    """The metrics' `sampler` and, when `"auto"` chose it, `sampler_chosen_by` (why)."""
    if asked != "auto":
        return {"sampler": sampler}
    sign = ">" if sampler == "fitted" else "<="
    return {"sampler": sampler,
            "sampler_chosen_by": f"auto: {count} images {sign} {latent_dim} code dimensions"}


def chosen_sampler(sampler, count, latent_dim):
    """`"auto"` -> `"fitted"` when `count` images can fit a full covariance to
    `latent_dim`-D codes (more images than dimensions), else `"prior"`; others as given."""
    if sampler != "auto":
        return sampler
    return "fitted" if count > latent_dim else "prior"


def latent_draws(model, images, sampler):
    """`draw(n, rng)`: float32 codes `(n, latent_dim)` from the prior N(0, I) (`"prior"`)
    or from a Gaussian fitted (mean, full covariance) to the codes `z_mean` of `images`
    (`"fitted"`: ex-post density estimation, Ghosh et al., ICLR 2020; it decodes where
    the codes of real images lie when they have drifted from the prior)."""
    d = model.latent_dim
    if sampler == "auto":
        sampler = chosen_sampler(sampler, 0 if images is None else len(images), d)
    if sampler == "prior":
        return lambda n, rng: rng.standard_normal((n, d)).astype("float32")
    if len(images) <= d:
        raise InvalidValue(
            f"sampler='fitted' fits a full covariance to the {d}-D codes, which needs more "
            f"images than code dimensions ({d + 1} or more); pass more images or use "
            f"sampler='prior' (--sampler prior). Received: {len(images)} images")
    codes = predict.encode(model, images).reshape(len(images), -1).astype("float64")
    mean, cov = codes.mean(axis=0), np.cov(codes, rowvar=False).reshape(d, d)
    return lambda n, rng: rng.multivariate_normal(mean, cov, n).astype("float32")
