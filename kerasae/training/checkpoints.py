"""Per-epoch checkpoints (model, optimizer, epoch counter and history as one unit) and
model files written whole, never half.

Rerunning a run resumes from its last checkpoint (BackupAndRestore semantics).
The history of the epochs already run is a string variable inside the checkpoint,
so the checkpoint and its history are committed together: a kill at any point
leaves the previous checkpoint with its own history. `model.keras` and
`best.keras` are written to a temporary file beside them and renamed, and only
with finite weights.
"""

import json
import os

import numpy as np
import tensorflow as tf

from kerasae._util.errors import InvalidValue
from kerasae._util.files import remove_stale, staged_file

MAX_TO_KEEP = 2


class RunCheckpoints:
    """The checkpoints of one worker under `out_dir/checkpoints/worker-<i>`."""

    def __init__(self, out_dir, task_index, model, optimizer, epoch_var):
        self.directory = os.path.join(out_dir, "checkpoints", f"worker-{task_index}")
        self.history = tf.Variable("[]", dtype=tf.string, trainable=False, name="history")
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var,
                                              history=self.history)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                  max_to_keep=MAX_TO_KEEP)

    @property
    def latest(self):
        return self.manager.latest_checkpoint

    def restore(self):
        """Restores the last checkpoint, if any; returns its history (a list of rows)."""
        if not self.latest:
            return []
        self.checkpoint.restore(self.latest).expect_partial()
        history = json.loads(self.history.numpy().decode())
        legacy = self.latest + ".history.json"  # checkpoints of kerasae 0.1 kept it beside
        if not history and os.path.exists(legacy):
            with open(legacy) as f:
                history = json.load(f)
        return history

    def save(self, epoch, history):
        """Checkpoints the state after `epoch` (0-based) together with `history`."""
        self.history.assign(json.dumps(history))
        self.manager.save(checkpoint_number=epoch + 1)


def check_finite(model, what):
    """Refuses to save non-finite weights (they would poison every later use)."""
    bad = [w.name for w in model.weights if not np.isfinite(np.asarray(w)).all()]
    if bad:
        raise InvalidValue(
            f"The weights became NaN or infinite ({', '.join(bad[:3])}); {what} was not "
            f"written. Lower the learning rate (--lr) and rerun with --no-resume. "
            f"Received: non_finite_weights={len(bad)}"
        )


def save_model(model, path):
    """Writes `model` as a `.keras` file through a temporary file, finite weights only."""
    check_finite(model, os.path.basename(path))
    remove_stale(os.path.dirname(os.path.abspath(path)))
    with staged_file(path, suffix=".keras") as tmp:
        model.save(tmp)
