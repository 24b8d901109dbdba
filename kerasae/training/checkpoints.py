"""Per-epoch checkpoints of model, optimizer and history, one directory per worker.

Rerunning a run resumes from its last checkpoint (BackupAndRestore semantics):
the epoch counter, the weights and the optimizer state come back, and so does
the history of the epochs already run, so best-model tracking carries on.
"""

import json
import os

import tensorflow as tf

from kerasae._util.files import atomic_write

MAX_TO_KEEP = 2


class RunCheckpoints:
    """The checkpoints of one worker under `out_dir/checkpoints/worker-<i>`."""

    def __init__(self, out_dir, task_index, model, optimizer, epoch_var):
        self.directory = os.path.join(out_dir, "checkpoints", f"worker-{task_index}")
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var)
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
        path = self.latest + ".history.json"
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return json.load(f)

    def save(self, epoch, history):
        """Checkpoints the state after `epoch` (0-based) together with `history`."""
        prefix = self.manager.save(checkpoint_number=epoch + 1)
        atomic_write(prefix + ".history.json", json.dumps(history))
