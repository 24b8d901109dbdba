"""The choices the uses' commands offer (light: no TensorFlow). Which uses apply to a
model is its family's contract (`kerasae.models.registry.USES`)."""

EMBEDDINGS = ("bottleneck", "pca", "tsne")  # how reduce draws codes wider than 2-D
DEFAULT_ARITHMETIC = ("Sneaker", "Ankle boot", "Sandal")  # sneaker + (ankle boot - sandal)
DEFAULT_THRESHOLD = "percentile:99"  # anomaly: the rule on training scores
SAMPLERS = ("prior", "fitted")  # generate: codes from N(0, I) or a Gaussian fitted to codes
