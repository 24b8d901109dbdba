"""Training under `tf.distribute`: strategies, the loop, checkpoints and run records.

Modules: `options` (option names and `FitOptions`; light, read by the command
line), `strategy` (strategies by name, cluster position), `loop` (the
`Trainer`), `interrupt` (Ctrl-C between compiled calls), `checkpoints`
(per-epoch checkpoints and resume), `records` (`FitResult`, `history.csv`,
`run.json`), `lock` (one run per output directory), `train` (`kerasae.fit`). Names load on
first use, so reading the options costs no TensorFlow import.
"""

from kerasae._util import lazy as _lazy

__getattr__, __dir__ = _lazy.exports(__name__, {
    "FitOptions": "kerasae.training.options:FitOptions",
    "FitResult": "kerasae.training.records:FitResult",
    "RunDirectoryBusy": "kerasae.training.lock:RunDirectoryBusy",
    "LR_SCHEDULES": "kerasae.training.options:LR_SCHEDULES",
    "PRECISIONS": "kerasae.training.options:PRECISIONS",
    "STEPS_PER_EXECUTION": "kerasae.training.options:STEPS_PER_EXECUTION",
    "STRATEGIES": "kerasae.training.options:STRATEGIES",
    "Trainer": "kerasae.training.loop:Trainer",
    "TrainingInterrupted": "kerasae.training.interrupt:TrainingInterrupted",
    "fit": "kerasae.training.train:fit",
    "make_strategy": "kerasae.training.strategy:make_strategy",
    "strategy_kind": "kerasae.training.strategy:strategy_kind",
    "worker_info": "kerasae.training.strategy:worker_info",
})

__all__ = ["FitOptions", "FitResult", "LR_SCHEDULES", "PRECISIONS", "RunDirectoryBusy",
           "STEPS_PER_EXECUTION",
           "STRATEGIES", "Trainer", "TrainingInterrupted", "fit", "make_strategy",
           "strategy_kind", "worker_info"]
