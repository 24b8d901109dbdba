"""`Ensemble`: detectors fitted on the same data, their scores combined into one.

Two autoencoders that fail on different data do better together than either alone:
on ADBench's 8 tabular sets (`kerasae.benchmarks.adbench`) the default pair, a
`dense_vae` at its defaults and PyOD's AutoEncoder's architecture (`PYOD_AE`:
d-64-32-64-d, batch normalisation, dropout 0.2) both scored with `score="robust"`,
beats each of its members, IsolationForest and PyOD's own AutoEncoder (README's table).

Each member's scores s become `(log(s + 1e-12) - m) / sd`, m and sd the mean and
standard deviation of that member's log training scores, so the members count alike
whatever their units; the ensemble's score is the mean of these. The threshold is a
rule on the combined training scores, as `Detector`'s. The members share the training
budget (`steps` split between them, at least 2 epochs each) and the seed.

An ensemble is not exported in one bundle (the clients in `export/` score one model):
`export(out_dir)` is refused and says to export the members (`members_`) one by one.
"""

import numpy as np

from kerasae._util.errors import InvalidValue
from kerasae.uses._scores import choose_threshold
from kerasae.uses.detector import STEPS_TARGET, Detector

# PyOD's AutoEncoder (pyod.models.auto_encoder, its defaults) as a kerasae stacked_ae
PYOD_AE = dict(hidden_units=(64,), latent_dim=32, code_activation="relu", batch_norm=True,
               dropout=0.2, kernel_initializer="he_uniform")
DEFAULT_MEMBERS = (("dense_vae", {}), ("stacked_ae", PYOD_AE))
EPS = 1e-12


def _members(members):
    if isinstance(members, str) and members == "auto":
        return DEFAULT_MEMBERS
    out = []
    for m in members if isinstance(members, (list, tuple)) else [members]:
        if isinstance(m, str):
            m = (m, {})
        if not (isinstance(m, tuple) and len(m) == 2 and isinstance(m[0], str)
                and isinstance(m[1], dict)):
            raise InvalidValue(
                "members is 'auto' or a list of builder names or (name, builder kwargs) "
                f"pairs, e.g. ['dense_vae', ('stacked_ae', {{'hidden_units': (64,)}})]. "
                f"Received: member={m!r}")
        out.append(m)
    if len(out) < 2:
        raise InvalidValue(f"An ensemble needs at least 2 members. Received: {len(out)}")
    return tuple(out)


class Ensemble:
    """Detectors of the same data with their scores combined (see the module docstring).

    Args:
        members: `"auto"` (a `dense_vae` and PyOD's AutoEncoder's architecture), or a
            list of builder names or `(name, builder kwargs)` pairs. Defaults to `"auto"`.
        score: each member's score, `"robust"` or `"mse"` (see `Detector`).
            Defaults to `"robust"`.
        threshold, contamination: the rule on the combined training scores, as
            `Detector`'s. Defaults to `None` (`"percentile:99"`).
        columns, label, impute: how a table is read at `fit`, as `Detector`'s.
            Defaults to `None`.
        steps: optimizer steps of the `"auto"` budget, split between the members.
            Defaults to `500`.
        epochs, batch_size, learning_rate, seed, verbose: as `Detector`'s, for every member.

    Example:
        >>> ens = Ensemble(contamination=0.1).fit(x_train)
        >>> flags = ens.predict(x_test)
    """

    def __init__(self, members="auto", *, score="robust", threshold=None, contamination=None,
                 columns=None, label=None, impute=None, steps=STEPS_TARGET, epochs="auto",
                 batch_size="auto", learning_rate=1e-3, seed=0, verbose=0):
        self.members = _members(members)
        share = max(1, steps // len(self.members))
        # each member checks its own arguments (score, budget, builder name) now
        self.members_ = [Detector(name, score=score, threshold=threshold,
                                  contamination=contamination, columns=columns, label=label,
                                  impute=impute, epochs=epochs,
                                  batch_size=batch_size, learning_rate=learning_rate,
                                  seed=seed, verbose=verbose, steps=share, **kwargs)
                         for name, kwargs in self.members]
        self.threshold = self.members_[0]._threshold_rule()  # checked by the members
        self.threshold_ = self.threshold_rule_ = self.train_scores_ = self._log_stats = None

    def fit(self, x, y=None):
        """Fits every member on `x` (`y` is ignored) and sets the threshold on the
        combined training scores. Returns the ensemble."""
        self._log_stats = None
        logs = []
        for member in self.members_:
            member.fit(x)
            logs.append(np.log(member.train_scores_ + EPS))
        self._log_stats = [(float(v.mean()), float(v.std()) or 1.0) for v in logs]
        self.train_scores_ = self._combined([m.train_scores_ for m in self.members_])
        self.threshold_, self.threshold_rule_ = choose_threshold(self.train_scores_,
                                                                 self.threshold)
        self.threshold_rule_["scores"] = "mean of the members' standardised log scores"
        return self

    def _check_fitted(self):
        if self._log_stats is None:
            raise InvalidValue("The ensemble is not fitted: call fit(x) first. "
                               "Received: fitted=False")

    def decision_function(self, x):
        """One combined score per row (per time step of a series), higher is more
        anomalous."""
        self._check_fitted()
        return self._combined([member.decision_function(x) for member in self.members_])

    def _combined(self, scores):
        """The mean of the members' standardised log scores."""
        return np.mean([(np.log(s + EPS) - m) / sd
                        for s, (m, sd) in zip(scores, self._log_stats)], axis=0)

    score = decision_function

    def predict(self, x):
        """1 where the combined score is above the threshold, else 0."""
        scores = self.decision_function(x)
        return (np.nan_to_num(scores, nan=-np.inf) > self.threshold_).astype("int64")

    def export(self, out_dir, **kwargs):
        """Refused: the clients in `export/` score one model (see the module docstring)."""
        raise InvalidValue(
            "An Ensemble is not exported as one bundle: the clients in export/ score one "
            "model's reconstruction error, not a combination of several. Export a member "
            "with ens.members_[i].export(out_dir) (its own scores and threshold), or fit "
            f"one Detector for export. Received: members={[n for n, _ in self.members]}")
