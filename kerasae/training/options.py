"""What a training run can be asked for: the option names and one validated settings object.

Light (no TensorFlow), so the command line reads its choices from here.
"""

import dataclasses
import numbers

from kerasae._util.errors import InvalidType, InvalidValue
from kerasae._util.names import unknown_name_error

STRATEGIES = ("auto", "one", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
LR_SCHEDULES = ("constant", "cosine", "warmup_cosine")
# Share of the steps over which "warmup_cosine" rises linearly from 0 to the rate.
WARMUP_FRACTION = 0.05
VERBOSITY = (0, 1, 2)
# Steps per call of the compiled loop when no callback of the caller reads
# per-batch logs (as Keras's steps_per_execution). The cap keeps a Ctrl-C waiting
# for at most this many steps; a live progress bar is updated about every
# PROGRESS_SECONDS.
STEPS_PER_EXECUTION = 64
PROGRESS_SECONDS = 0.2


def _whole(value, arg, low=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidType(f"`{arg}` must be an integer. Received: {arg}={value!r}")
    if value < low:
        raise InvalidValue(f"`{arg}` must be >= {low}. Received: {arg}={value!r}")
    return int(value)


@dataclasses.dataclass
class FitOptions:
    """The settings of one `kerasae.fit` run, checked when made (see `kerasae.fit`)."""

    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = None  # None: 1e-3, or the start preset's fine-tune rate
    lr_schedule: str = "constant"
    optimizer: object = "adam"
    seed: int = 0
    precision: str = "float32"
    jit_compile: bool = False
    out_dir: str = None
    resume: bool = True
    early_stopping: int = None
    tensorboard: bool = True
    callbacks: list = dataclasses.field(default_factory=list)
    steps_per_epoch: int = None
    verbose: int = 1
    shuffle: bool = True

    def __post_init__(self):
        if self.lr_schedule not in LR_SCHEDULES:
            raise unknown_name_error("schedule", self.lr_schedule, LR_SCHEDULES, "lr_schedule")
        if self.precision not in PRECISIONS:
            raise unknown_name_error("precision", self.precision, PRECISIONS, "precision")
        self.epochs = _whole(self.epochs, "epochs")
        self.batch_size = _whole(self.batch_size, "batch_size")
        self.seed = _whole(self.seed, "seed", low=0)
        if self.steps_per_epoch is not None:
            self.steps_per_epoch = _whole(self.steps_per_epoch, "steps_per_epoch")
        self.callbacks = list(self.callbacks or [])
        if self.learning_rate is None:  # resolved by `kerasae.fit` from the start point
            return
        if isinstance(self.learning_rate, bool) or not isinstance(
                self.learning_rate, numbers.Real) or not 0 < self.learning_rate < float("inf"):
            raise InvalidValue(
                "`learning_rate` must be a finite number > 0, e.g. 1e-3. "
                f"Received: learning_rate={self.learning_rate!r}"
            )
