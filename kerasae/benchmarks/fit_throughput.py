"""Training throughput: `kerasae.fit` vs plain `model.fit` on numpy arrays, side by side.

    python -m kerasae.benchmarks.fit_throughput [--images 12000] [--epochs 2] [--rounds 3]

Both train the same conv AE (same config, same initial weights, same global batch,
one device, float32, verbose=0) on the same Fashion-MNIST images (digits if
Fashion-MNIST is not available). `model.fit` runs as compiled by default (one step
per call); for reference it also runs with `steps_per_execution=64`, the number of
steps `kerasae.fit` runs per call when no callback reads per-batch logs. The
trainers alternate in rounds so machine load hits all alike; each round's first
epoch (tracing) is not timed. Prints the median and the best images/s of each and
the ratios. On a shared or virtual machine the best epoch is the steadier figure (as
with `timeit`, other load only ever slows a run down); the median shows what a
typical epoch got.
"""

import argparse
import json
import statistics
import time

import numpy as np

from kerasae import data


def _images(n):
    try:
        x, _ = data.load_numpy("fashion_mnist", "train", source="raw")
    except (data.DataError, FileNotFoundError):
        x, _ = data.load_numpy("digits", "all")
    reps = int(np.ceil(n / len(x)))
    return np.concatenate([x] * reps)[:n]


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12000)
    parser.add_argument("--epochs", type=int, default=2,
                        help="timed epochs per round (after one untimed tracing epoch)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps-per-execution", type=int, default=64,
                        help="also time model.fit compiled with this steps_per_execution "
                             "(1: skip)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--json", default=None, help="also write the figures here")
    return parser


def _trainers(x, args):
    """`{name: run() -> [images/s of each timed epoch]}` on the same model and images."""
    # lazy: TensorFlow loads only when the benchmark runs, not for --help
    import keras

    from kerasae.models import ConvAE
    from kerasae.training import strategy as strategies
    from kerasae.training.train import fit

    n = len(x)
    config = dict(filters=(32, 64), latent_dim=16, input_shape=x.shape[1:], seed=0)
    keras.utils.set_random_seed(0)
    initial = ConvAE(**config).get_weights()
    source = data.from_array(x)
    strategy = strategies.make_strategy("one")

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.speeds.append(n / (time.perf_counter() - self.t))

    def run_keras(steps_per_execution=1):
        model = ConvAE(**config)
        model.set_weights(initial)
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      steps_per_execution=steps_per_execution)
        timer = EpochTimer()
        timer.speeds = []
        model.fit(x, batch_size=args.batch_size, epochs=args.epochs + 1, shuffle=True,
                  verbose=0, callbacks=[timer])
        return timer.speeds[1:]  # the first epoch traces

    def run_kerasae():
        model = ConvAE(**config)
        model.set_weights(initial)
        result = fit(model, source, epochs=args.epochs + 1, batch_size=args.batch_size,
                     validation=None, strategy=strategy, verbose=0, tensorboard=False)
        return [row["images_per_second"] for row in result.history[1:]]

    trainers = {"kerasae.fit": run_kerasae, "model.fit": run_keras}
    if args.steps_per_execution > 1:
        # For reference: Keras's own multi-step calls, the same device as kerasae.fit's
        # STEPS_PER_EXECUTION (which applies when no callback reads per-batch logs).
        spe = args.steps_per_execution
        trainers[f"model.fit spe={spe}"] = lambda: run_keras(spe)
    return config, trainers


def main(argv=None):
    args = _parser().parse_args(argv)
    x = _images(args.images)
    n = (len(x) // args.batch_size) * args.batch_size
    x = x[:n]
    config, trainers = _trainers(x, args)
    speeds = {k: [] for k in trainers}
    for _ in range(args.rounds):  # alternate, so machine load hits all alike
        for k, run in trainers.items():
            speeds[k] += run()
    med = {k: statistics.median(v) for k, v in speeds.items()}
    best = {k: max(v) for k, v in speeds.items()}
    ratio = med["kerasae.fit"] / med["model.fit"]
    best_ratio = best["kerasae.fit"] / best["model.fit"]
    print(f"conv_ae {config['filters']} latent {config['latent_dim']}, {n} images of "
          f"{x.shape[1:]}, global batch {args.batch_size}, one device, float32, verbose=0")
    print(f"{'trainer':<20}{'median images/s':>16}{'best images/s':>15}   epochs (images/s)")
    for k, v in speeds.items():
        print(f"{k:<20}{med[k]:>16.0f}{best[k]:>15.0f}   {'  '.join(f'{s:.0f}' for s in v)}")
    print(f"ratio kerasae.fit / model.fit: median {ratio:.2f}, best {best_ratio:.2f}")
    for k in list(speeds)[2:]:
        print(f"ratio kerasae.fit / {k}: median {med['kerasae.fit'] / med[k]:.2f}, "
              f"best {best['kerasae.fit'] / best[k]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"images_per_second": med, "best_images_per_second": best,
                       "ratio": ratio, "best_ratio": best_ratio, "runs": speeds}, f, indent=2)
    return ratio


if __name__ == "__main__":
    main()
