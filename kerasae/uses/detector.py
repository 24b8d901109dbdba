"""`Detector`: an autoencoder anomaly detector of records or series, in one object.

The detector holds the model (with the scaling fitted on the training data inside
it) and a threshold on its scores, with PyOD's verbs: `fit(x)`, `decision_function(x)`
(or `score`), `predict(x)`; `export(out_dir)` writes it for other runtimes, the
threshold and the scale in the manifest's anomaly block, so the clients in
`export/` flag what `predict` flags.

- Records `(n, features)` (arrays, DataFrames, `.csv` / `.npz` / `.npy` files,
  `kerasae.data.table` sources): one score per row, the mean squared
  reconstruction error in the model's scaled units.
- Series `(T, channels)` (arrays, `.csv` files, `kerasae.data.series` sources), for
  a family of series windows (e.g. `conv1d_ae`): windows of `window` steps every
  `stride` steps are scored, and each time step gets the mean score of the windows
  that hold it (`per_step="mean"`), or the score of the window that ends at it
  (`"last"`: causal, each step scored from the past only).

With `postprocess="likelihood"` (series only), the step scores form a stream that
continues the training series: `decision_function(x)` gives Numenta's anomaly
likelihood of x's steps (`kerasae.uses._scores.anomaly_likelihood`), computed on the
training series' step scores followed by x's, the training ones as its probationary
history. Steps before the first full window (NaN) take the next finite score in the
stream and stay NaN in the output. Its default threshold is 0.5 (a likelihood of about
`1 - 1e-5`, Numenta's alarm).

The score is the mean squared reconstruction error in the model's scaled units
(`score="mse"`: each feature's error divided by the spread the model scales it by), or
with `score="robust"` divided by a spread the anomalies in the training data cannot
inflate: `max(1.4826 * MAD_j, 0.1 * scale_j)` per feature j (MAD: the median absolute
deviation of the raw training values, from up to 100,000 of them; `scale_j` the model's
own). A heavy-tailed feature then no longer hides the rows that stray on it (ADBench's
annthyroid: ROC-AUC 0.71 -> 0.87 for PyOD's AutoEncoder's architecture). Either way
the export's anomaly block carries the spread (`scale`), so the clients score alike.

Records and series with named columns (a DataFrame, a `.csv` file) are scored by the
columns the detector was fitted on (`columns_`), found by name in any order.

The threshold is a rule on the training scores: `"percentile:99"` (the default),
`"mean+3std"`, `contamination=0.05` (the top 5 % of the training scores are
anomalies, as PyOD's `contamination`), or a number; `threshold_rule_` records it.
With the likelihood, a rule is taken on the likelihood scores of the training series
replayed after itself.
"""

import types

import numpy as np

from kerasae._util.errors import InvalidValue
from kerasae.data.tables import is_frame
from kerasae.models import registry, scaling
from kerasae.uses._scores import (anomaly_likelihood, choose_threshold, fill_gaps,
                                  parse_threshold, robust_spread)
from kerasae.uses.options import DEFAULT_THRESHOLD

STEPS_TARGET = 500  # optimizer steps of an "auto" training budget (see `_budget`)
SCORES = ("mse", "robust")
POSTPROCESS = (None, "likelihood")  # what becomes of a series' step scores
LIKELIHOOD_THRESHOLD = 0.5  # NAB's Numenta alarm: likelihood >= 1 - 1e-5
# A series' default window: 48 steps, or 16 for the likelihood's stream (NAB, causal: 56.75
# standard with 16, 51.65 with 48; `kerasae.benchmarks.nab --detector kerasae_default`)
WINDOW, LIKELIHOOD_WINDOW = 48, 16


def _budget(n, batch_size, epochs, steps=STEPS_TARGET, least=5):
    """`(batch size, epochs)`: "auto" trains about `steps` steps, `least` to 50 epochs (a
    small budget: on ADBench's sets longer training let the model reconstruct the
    anomalies too)."""
    if batch_size == "auto":
        batch_size = 64 if n < 5000 else 256
    batch_size = min(int(batch_size), n)
    if epochs == "auto":
        per_epoch = max(1, n // batch_size)
        epochs = int(np.clip(round(steps / per_epoch), least, 50))
    return batch_size, int(epochs)


def _training_fill(src):
    """What scoring fills missing cells with: the fill values `src` (or the source a
    `Subset` of it is cut from) computed on the training data, as `impute=` takes them."""
    src = _cut_from(src, "fill")
    if src is None or getattr(src, "fill", None) is None:
        return None
    return types.SimpleNamespace(columns=tuple(src.columns), impute=src.impute,
                                 fill=np.asarray(src.fill), name="the training data")


def _named_columns(src):
    """The feature column names of a `.csv` or DataFrame source (or of the source a
    `Subset` of it is cut from), else `None`."""
    if getattr(src, "route", None) not in ("csv", "dataframe"):
        return None
    src = _cut_from(src, "columns")
    return None if src is None else tuple(src.columns)


def _cut_from(src, attr):
    """`src`, or the source a `Subset` of it is cut from, that has `attr` (or `None`)."""
    while src is not None and not hasattr(src, attr):
        src = getattr(src, "parent", None)
    return src


class Detector:
    """An autoencoder anomaly detector (see the module docstring).

    Args:
        model: a builder name (`"stacked_ae"`, `"dense_vae"`, `"conv1d_ae"`, ...), or a
            kerasae model / preset / `.keras` file to fine-tune. Defaults to
            `"stacked_ae"`.
        window: steps per window, for a family of series. Defaults to the model's
            input length, else 48, or 16 with `postprocess="likelihood"`.
        stride: steps between windows. Defaults to `1`.
        threshold: the rule on the training scores (`"percentile:P"`, `"mean+Kstd"` or
            a number). Defaults to `None`: `"percentile:99"`, or `0.5` with
            `postprocess="likelihood"`.
        contamination: the expected fraction of anomalies in the training data; sets
            the threshold at that top fraction instead. Defaults to `None`.
        columns, label, impute: how a table or series (a DataFrame, a `.csv` file) is
            read at `fit`: its feature columns (default: every numeric one), a label
            column to leave out of the features, and `"mean"`, `"median"` or `"zero"` to
            fill missing cells (see `kerasae.data.table`). Scoring reads the columns fitted
            on, by name. Defaults to `None`.
        score: `"mse"` (in the model's scaled units) or `"robust"` (each feature's
            error over a robust spread; see the module docstring). Defaults to `"mse"`.
        per_step: how a series' window scores become step scores, `"mean"` or
            `"last"` (causal). Defaults to `None`: `"mean"`, or `"last"` with
            `postprocess="likelihood"` (a stream's statistic, scored from the past).
        postprocess: `None` (the step scores as they are) or `"likelihood"` (Numenta's
            anomaly likelihood of the step scores, the training series as history;
            series only, see the module docstring). Defaults to `None`.
        epochs, batch_size: `"auto"` trains about `steps` steps (5 to 50 epochs, or
            from 2 on with fewer steps than 500; batch 64, or 256 from 5,000 examples
            on). Defaults to `"auto"`.
        learning_rate: Adam's. Defaults to `1e-3`.
        seed: seed of the weights, shuffling and noise. Defaults to `0`.
        verbose: 0 silent, 1 progress bar, 2 a line per epoch. Defaults to `0`.
        steps: optimizer steps of the `"auto"` budget. Defaults to `500`.
        **builder_kwargs: arguments of the builder (e.g. `hidden_units=(64, 32)`).

    Example:
        >>> det = Detector("stacked_ae", contamination=0.1).fit(x_train)
        >>> flags = det.predict(x_test)
    """

    def __init__(self, model="stacked_ae", *, window=None, stride=1,
                 threshold=None, contamination=None, columns=None, label=None, impute=None,
                 score="mse", per_step=None, postprocess=None, epochs="auto",
                 batch_size="auto", learning_rate=1e-3, seed=0, verbose=0,
                 steps=STEPS_TARGET, **builder_kwargs):
        if contamination is not None and threshold is not None:
            raise InvalidValue(
                "Give the threshold rule or the contamination, not both: contamination "
                "sets the threshold at the training scores' top fraction. "
                f"Received: threshold={threshold!r}, contamination={contamination!r}")
        if contamination is not None:
            if not isinstance(contamination, (int, float)) or not 0 < contamination < 0.5:
                raise InvalidValue("contamination is the fraction of anomalies, in (0, 0.5). "
                                   f"Received: contamination={contamination!r}")
            threshold = f"percentile:{100 * (1 - contamination):g}"
        if not isinstance(score, str) or score not in SCORES:
            raise InvalidValue(f"score is 'mse' or 'robust'. Received: score={score!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise InvalidValue(f"steps is a positive whole number. Received: steps={steps!r}")
        if per_step is None:
            per_step = "last" if postprocess == "likelihood" else "mean"
        if per_step not in ("mean", "last"):
            raise InvalidValue(f"per_step is 'mean' or 'last'. Received: per_step={per_step!r}")
        if not isinstance(postprocess, (str, type(None))) or postprocess not in POSTPROCESS:
            raise InvalidValue("postprocess is None or 'likelihood'. "
                               f"Received: postprocess={postprocess!r}")
        self.model, self.window, self.stride = model, window, stride
        self.threshold, self.per_step, self.postprocess = threshold, per_step, postprocess
        self.score_kind, self.steps = score, steps
        self.columns, self.label, self.impute = columns, label, impute
        parse_threshold(self._threshold_rule())  # a wrong rule fails now, not after training
        self.epochs, self.batch_size, self.learning_rate = epochs, batch_size, learning_rate
        self.seed, self.verbose, self.builder_kwargs = seed, verbose, builder_kwargs
        self.model_ = self.threshold_ = self.train_scores_ = self.history_ = None
        self.epochs_ = self.batch_size_ = self._resolved = None
        self.threshold_rule_ = self.columns_ = self.train_step_scores_ = None
        self.spread_ = self._fill = None
        if postprocess and self._kind_known():  # else (a preset to load) at fit
            self._check_postprocess(self._kind())

    def _threshold_rule(self):
        if self.threshold is not None:
            return self.threshold
        return LIKELIHOOD_THRESHOLD if self.postprocess == "likelihood" else DEFAULT_THRESHOLD

    def _kind_known(self):
        """Whether `_kind()` is known without loading a model."""
        if isinstance(self.model, str):
            return self.model in registry.list_builders()
        return hasattr(self.model, "input_kind")

    def _check_postprocess(self, kind):
        if self.postprocess == "likelihood" and kind != "series":
            raise InvalidValue(
                "postprocess='likelihood' is for series: it reads the step scores as a "
                "stream in time, and records have no order. Use postprocess=None for "
                f"records. Received: postprocess='likelihood', input={kind!r}")

    # ------------------------------------------------------------------ data
    def _given(self):
        """The model to start from when `model` is not a builder name (resolved once)."""
        if isinstance(self.model, str) and self.model in registry.list_builders():
            return None
        if isinstance(self.model, str) or not hasattr(self.model, "input_kind"):
            if self._resolved is None:
                from kerasae.models import resolve_model  # lazy: loading a model loads Keras

                self._resolved = resolve_model(self.model).model
            return self._resolved
        return self.model

    def _kind(self):
        m = self.model_ if self.model_ is not None else self._given()
        if m is not None:
            return "series" if m.input_kind == "series" else "vector"
        return "series" if registry.get_contract(self.model).input_kind == "series" else "vector"

    def _source(self, x, window=None, fitting=False):
        """`x` as a `kerasae.data.Source` of records or of windows (`fitting`: read by the
        detector's `columns` and `label`, else by the columns fitted on)."""
        from kerasae import data  # lazy: the data routes load on first use

        if isinstance(x, data.Source):
            return x
        self._check_width(x, fitting)
        if self._kind() == "series" and getattr(x, "ndim", 0) == 3:  # windows already cut
            return data.from_array(x, kind="series")
        # Named columns (a DataFrame, a .csv file) are read by the names fitted on, in
        # their order: reordered or extra columns cannot shift features silently.
        named = is_frame(x) or str(x).lower().endswith(".csv")
        columns = list(self.columns_) if named and self.columns_ else self.columns
        read = dict(columns=self.columns, label=self.label) if fitting else \
            dict(columns=columns)
        impute = self.impute if fitting or self._fill is None else self._fill
        if impute is self._fill and impute is not None and not named:  # by position
            impute = types.SimpleNamespace(**dict(
                vars(impute), columns=tuple(str(j) for j in range(len(impute.fill)))))
        if self._kind() == "series":
            return data.series(x, window=window or self.window or self.default_window(),
                               stride=self.stride, impute=impute, **read)
        return data.table(x, impute=impute, **read)

    def _check_width(self, x, fitting):
        """An array of another feature count than the fitted model's, in one line."""
        if (fitting or self.model_ is None or not hasattr(x, "shape") or is_frame(x)
                or self.columns is not None):  # columns picked from the array: read so
            return
        want = self.model_.image_shape[-1]
        got = x.shape[-1] if getattr(x, "ndim", 0) >= 2 else 1
        if got != want:
            raise InvalidValue(
                f"The detector was fitted on {want} feature(s) per "
                f"{'time step' if self._kind() == 'series' else 'row'}; these data have "
                f"{got}. Pass the same columns, in the same order. "
                f"Received: shape={tuple(x.shape)}")

    # ------------------------------------------------------------------ verbs
    def fit(self, x, y=None):
        """Trains the model on `x` (mostly normal data; `y` is ignored) and sets the
        threshold on its scores. Returns the detector."""
        from kerasae.training import fit  # lazy: training loads TensorFlow

        self.columns_ = None  # a new fit reads all of x's columns
        self._check_postprocess(self._kind())
        src = self._source(x, self._model_window(), fitting=True)
        self._check_steps(src)
        batch_size, epochs = _budget(len(src), self.batch_size, self.epochs, self.steps,
                                     least=5 if self.steps >= STEPS_TARGET else 2)
        kwargs = dict(self.builder_kwargs)
        if isinstance(self.model, str) and self.model in registry.list_builders():
            kwargs.setdefault("input_shape", tuple(src.image_shape))
            model, builder_kwargs = self.model, kwargs
        else:  # fine-tune a given model, its scaling fitted again to these data
            model, builder_kwargs = self._given(), None
            scaling.adapt(model, src)
        result = fit(model, src, epochs=epochs, batch_size=batch_size,
                     learning_rate=self.learning_rate, validation=None, strategy="one",
                     seed=self.seed, verbose=self.verbose, tensorboard=False,
                     builder_kwargs=builder_kwargs)
        self.model_, self.history_ = result.model, result.history
        self.columns_ = _named_columns(src)
        self._fill = _training_fill(src)  # scoring fills missing cells as training did
        self.epochs_, self.batch_size_ = epochs, batch_size
        self.spread_ = (robust_spread(src, scaling.scale_spec(self.model_))
                        if self.score_kind == "robust" else None)
        self.train_scores_ = self._window_scores(src)
        self.train_step_scores_ = (src.per_step(self.train_scores_, how=self.per_step)
                                   if hasattr(src, "per_step") else None)
        basis = self.train_scores_
        if self.postprocess == "likelihood":
            replay = self._likelihood(self.train_step_scores_)
            basis = replay[np.isfinite(replay)]
        self.threshold_, self.threshold_rule_ = choose_threshold(basis, self._threshold_rule())
        if self.postprocess == "likelihood":
            self.threshold_rule_["scores"] = "likelihood of the training series after itself"
        return self

    def _check_steps(self, src):
        if self.postprocess == "likelihood" and not hasattr(src, "per_step"):
            raise InvalidValue(
                "postprocess='likelihood' scores the time steps of a series: pass the "
                "series (T, channels), a .csv file or a kerasae.data.series source, not "
                f"windows already cut. Received: {type(src).__name__} without time steps")

    def _likelihood(self, steps):
        """The likelihood scores of `steps`, a stream continuing the training series."""
        history = self.train_step_scores_
        stream = fill_gaps(np.concatenate([history, steps]))
        out = anomaly_likelihood(stream, len(history))[len(history):]
        out[np.isnan(steps)] = np.nan
        return out

    def default_window(self):
        """The window of a series when neither `window` nor the model sets one."""
        return LIKELIHOOD_WINDOW if self.postprocess == "likelihood" else WINDOW

    def _model_window(self):
        m = self._given()
        if m is not None and m.input_kind == "series":
            return m.image_shape[0]
        return self.window

    def _check_fitted(self):
        if self.model_ is None:
            raise InvalidValue("The detector is not fitted: call fit(x) first. "
                               "Received: fitted=False")

    def _window_scores(self, src):
        return np.concatenate([scaling.scores(self.model_, batch, spread=self.spread_)
                               for _, batch in src.batches(4096)])

    def window_scores(self, x):
        """One score per example: per row of records, per window of a series."""
        self._check_fitted()
        return self._window_scores(self._source(x, self._fitted_window()))

    def _fitted_window(self):
        shape = self.model_.image_shape
        return shape[0] if registry.input_kind(shape) == "series" else None

    def decision_function(self, x):
        """Anomaly scores, higher is more anomalous: one per row of records, one per time
        step of a series (steps in no window get NaN); with `postprocess="likelihood"`,
        the likelihood of x's steps after the training series'."""
        self._check_fitted()
        src = self._source(x, self._fitted_window())
        self._check_steps(src)
        scores = self._window_scores(src)
        if not hasattr(src, "per_step"):
            return scores
        steps = src.per_step(scores, how=self.per_step)
        return self._likelihood(steps) if self.postprocess == "likelihood" else steps

    score = decision_function

    def predict(self, x):
        """1 where the score is above the threshold, else 0 (PyOD's convention)."""
        scores = self.decision_function(x)
        return (np.nan_to_num(scores, nan=-np.inf) > self.threshold_).astype("int64")

    def export(self, out_dir, **kwargs):
        """Exports the model with the threshold and the scale in the manifest's anomaly
        block (see `kerasae.export.export`; the clients in `export/` score and flag
        windows or rows as `window_scores` and `predict` do).

        A likelihood detector is refused: the clients flag a window whose score is over
        the threshold, and cannot compute the likelihood (a statistic of the stream and
        of the training scores), so they would not flag what `predict` flags."""
        from kerasae.export import export  # lazy: exporting loads TensorFlow and tf2onnx

        if self.postprocess == "likelihood":
            raise InvalidValue(
                "A postprocess='likelihood' detector cannot be exported: the clients in "
                "export/ flag window scores over a threshold and do not compute the "
                "anomaly likelihood, so they would not flag what predict flags. Export "
                "the model for raw window scores with kerasae.export.export(det.model_, "
                "out_dir), or fit a Detector with postprocess=None. "
                "Received: postprocess='likelihood'")
        self._check_fitted()
        scale = (scaling.scale_spec(self.model_) if self.spread_ is None
                 else [float(v) for v in self.spread_])
        series = self._fitted_window() is not None
        block = {"score": "mse", "threshold": self.threshold_, "scale": scale,
                 "columns": list(self.columns_) if self.columns_ else None,
                 # how a series' window scores become the step scores predict flags
                 "per_step": self.per_step if series else None,
                 "stride": self.stride if series else None}
        block = {k: v for k, v in block.items() if v is not None}
        metadata = dict(kwargs.pop("metadata", None) or {}, anomaly=block)
        return export(self.model_, out_dir, metadata=metadata, **kwargs)
