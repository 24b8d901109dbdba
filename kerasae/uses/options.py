"""The choices the uses' commands offer (light: no TensorFlow). Which uses apply to a
model is its family's contract (`kerasae.models.registry.USES`)."""

EMBEDDINGS = ("bottleneck", "pca", "tsne")  # how reduce draws codes wider than 2-D
DEFAULT_ARITHMETIC = ("Sneaker", "Ankle boot", "Sandal")  # sneaker + (ankle boot - sandal)
DEFAULT_THRESHOLD = "percentile:99"  # anomaly: the rule on training scores
# generate: codes from N(0, I), a Gaussian fitted to the images' codes, or "auto" (fitted
# when there are more images than code dimensions, else the prior)
SAMPLERS = ("auto", "prior", "fitted")
SAMPLED_FROM = {"prior": "the prior N(0, I)", "fitted": "a Gaussian fitted to the images' codes"}
