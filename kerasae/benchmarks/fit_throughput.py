"""Training throughput: `kerasae.fit` vs plain `model.fit` on numpy arrays, side by side.

    python -m kerasae.benchmarks.fit_throughput [--images 12000] [--epochs 2] [--rounds 3]
        [--model conv_ae|conv1d_ae] [--series synthetic|FILE.csv] [--window 48]

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

With `--model conv1d_ae` (issue 21) the case is a series: a conv1d_ae (filters 32, 16,
kernel 7) on `--images` windows of `--window` steps (stride 1) cut from a synthetic
series (a daily cycle plus noise; or `--series FILE.csv`, e.g. NAB's nyc_taxi.csv, all
its windows when it has fewer). `kerasae.fit` reads the series source (windows cut by
stride tricks, a batch copied at a time); `model.fit` gets the same windows as one
numpy array `(n, window, channels)`. The model's scaling is fitted once on the windows
before the initial weights are taken, so both start from the same scaled model.
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


def _series(args):
    """`(source, windows)`: the series source `kerasae.fit` reads and the same windows as
    a numpy array for `model.fit`, a whole number of batches of them."""
    if args.series == "synthetic":
        steps = np.arange(args.images + args.window - 1)
        rng = np.random.default_rng(0)
        values = (100 + 50 * np.sin(2 * np.pi * steps / 1440)
                  + rng.normal(0, 5, len(steps))).astype("float32")[:, None]
        name = "a synthetic series"
    else:
        values = data.series(args.series, window=args.window).values()
        name = args.series
    n = min(args.images, len(values) - args.window + 1)
    n = (n // args.batch_size) * args.batch_size
    if n == 0:
        raise SystemExit(f"{name} holds fewer than one batch ({args.batch_size}) of windows "
                         f"of {args.window} steps")
    source = data.series(np.array(values[:n + args.window - 1]), window=args.window,
                         name=name)
    windows = np.ascontiguousarray(source.load_batch(np.arange(n)))
    return source, windows


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12000,
                        help="images (windows, for --model conv1d_ae) to train on")
    parser.add_argument("--model", default="conv_ae", choices=("conv_ae", "conv1d_ae"),
                        help="conv_ae on images, or conv1d_ae on windows of a series")
    parser.add_argument("--series", default="synthetic",
                        help="conv1d_ae: 'synthetic' or a .csv series (timestamp,value)")
    parser.add_argument("--window", type=int, default=48, help="conv1d_ae: steps per window")
    parser.add_argument("--epochs", type=int, default=2,
                        help="timed epochs per round (after one untimed tracing epoch)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps-per-execution", type=int, default=64,
                        help="also time model.fit compiled with this steps_per_execution "
                             "(1: skip)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--json", default=None, help="also write the figures here")
    return parser


def _trainers(x, args, source=None):
    """`{name: run() -> [images/s of each timed epoch]}` on the same model and images
    (`x`; `kerasae.fit` reads `source`, by default `x` as an array source)."""
    # lazy: TensorFlow loads only when the benchmark runs, not for --help
    import keras

    from kerasae.models import Conv1DAE, ConvAE, scaling
    from kerasae.training import strategy as strategies
    from kerasae.training.train import fit

    n = len(x)
    if getattr(args, "model", "conv_ae") == "conv1d_ae":
        Model = Conv1DAE
        config = dict(filters=(32, 16), kernel_size=7, input_shape=x.shape[1:], seed=0)
    else:
        Model = ConvAE
        config = dict(filters=(32, 64), latent_dim=16, input_shape=x.shape[1:], seed=0)
    keras.utils.set_random_seed(0)
    first = Model(**config)
    scaling.adapt(first, x)  # records and series: the same fitted scaling for all (else 0)
    initial = first.get_weights()
    source = data.from_array(x) if source is None else source
    strategy = strategies.make_strategy("one")

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.speeds.append(n / (time.perf_counter() - self.t))

    def run_keras(steps_per_execution=1):
        model = Model(**config)
        model.set_weights(initial)
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      steps_per_execution=steps_per_execution)
        timer = EpochTimer()
        timer.speeds = []
        model.fit(x, batch_size=args.batch_size, epochs=args.epochs + 1, shuffle=True,
                  verbose=0, callbacks=[timer])
        return timer.speeds[1:]  # the first epoch traces

    def run_kerasae():
        model = Model(**config)
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
    if args.model == "conv1d_ae":
        source, x = _series(args)
        n, what = len(x), f"windows of {x.shape[1:]} from {source.name}"
    else:
        x, source = _images(args.images), None
        n = (len(x) // args.batch_size) * args.batch_size
        x = x[:n]
        what = f"images of {x.shape[1:]}"
    config, trainers = _trainers(x, args, source)
    speeds = {k: [] for k in trainers}
    for _ in range(args.rounds):  # alternate, so machine load hits all alike
        for k, run in trainers.items():
            speeds[k] += run()
    med = {k: statistics.median(v) for k, v in speeds.items()}
    best = {k: max(v) for k, v in speeds.items()}
    ratio = med["kerasae.fit"] / med["model.fit"]
    best_ratio = best["kerasae.fit"] / best["model.fit"]
    code = (f"latent {config['latent_dim']}" if "latent_dim" in config
            else f"kernel {config['kernel_size']}")
    print(f"{args.model} {config['filters']} {code}, {n} {what}, global batch "
          f"{args.batch_size}, one device, float32, verbose=0")
    print(f"{'trainer':<20}{'median images/s':>16}{'best images/s':>15}   epochs (images/s)")
    for k, v in speeds.items():
        print(f"{k:<20}{med[k]:>16.0f}{best[k]:>15.0f}   {'  '.join(f'{s:.0f}' for s in v)}")
    print(f"ratio kerasae.fit / model.fit: median {ratio:.2f}, best {best_ratio:.2f}")
    for k in list(speeds)[2:]:
        print(f"ratio kerasae.fit / {k}: median {med['kerasae.fit'] / med[k]:.2f}, "
              f"best {best['kerasae.fit'] / best[k]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "examples": n, "images_per_second": med,
                       "best_images_per_second": best, "ratio": ratio,
                       "best_ratio": best_ratio, "runs": speeds}, f, indent=2)
    return ratio


if __name__ == "__main__":
    main()
