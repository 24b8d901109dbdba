"""The uses by name and the choices their commands offer (light: no TensorFlow)."""

USES = ("features", "reduce", "compress", "denoise", "anomaly", "generate")
EMBEDDINGS = ("bottleneck", "pca", "tsne")  # how reduce draws codes wider than 2-D
DEFAULT_ARITHMETIC = ("Sneaker", "Ankle boot", "Sandal")  # sneaker + (ankle boot - sandal)
DEFAULT_THRESHOLD = "percentile:99"  # anomaly: the rule on training scores
