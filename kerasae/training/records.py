"""What a run leaves behind: `FitResult`, `history.csv` and the `run.json` record."""

import dataclasses
import json
import os
import time

import keras

from kerasae._util.errors import InvalidValue
from kerasae._util.files import atomic_write
from kerasae._util.versions import versions
from kerasae.training.strategy import num_workers, strategy_kind, tf_config


@dataclasses.dataclass
class FitResult:
    """What `fit` returns: the trained model, the per-epoch history, the run record and
    the path of `reconstructions.png` (`None` when none was drawn: no `out_dir`, not the
    chief, or data that are not images)."""

    model: keras.Model
    history: list
    run: dict
    out_dir: str = None
    picture: str = None


def write_history_csv(path, history):
    """One row per epoch, a column per logged value (floats in full precision)."""
    keys = ["epoch"] + sorted({k for row in history for k in row if k != "epoch"})
    lines = [",".join(keys)]
    for row in history:
        lines.append(",".join(
            "" if row.get(k) is None else repr(row[k]) if isinstance(row[k], float)
            else str(row[k]) for k in keys
        ))
    atomic_write(path, "\n".join(lines) + "\n")


def run_record(trainer, status="finished"):
    """The `run.json` content of a run: `finished`, `running` (written at its start),
    `interrupted` (Ctrl-C) or `failed` (see `write_end`). `epochs_run` and `final` are
    those of the epochs the last checkpoint holds."""
    o = trainer.options
    history = trainer.kept_history
    optimizer = o.optimizer if isinstance(o.optimizer, str) else type(o.optimizer).__name__
    return {
        "builder": trainer.model.builder_name,
        "config": trainer.model.builder_config,
        # The weights the run started from (a preset or a file), or None: from scratch.
        "weights": getattr(trainer.model, "start_point", None),
        "dataset": {**_where(trainer.train_src.info()),
                    "validation": _validation(trainer.val_src)},
        "strategy": strategy_kind(trainer.strategy),
        "replicas": trainer.replicas,
        "workers": num_workers(tf_config()) or 1,
        "global_batch_size": o.batch_size,
        "epochs": o.epochs,
        "epochs_run": len(history),
        "resumed_from_epoch": trainer.start_epoch,
        "seed": o.seed,
        "precision": o.precision,
        "jit_compile": bool(o.jit_compile),
        "learning_rate": o.learning_rate,
        "lr_schedule": o.lr_schedule,
        "optimizer": optimizer,
        "shuffle": bool(o.shuffle),
        "versions": versions(),
        "status": status,
        "final": history[-1] if history else {},
        "wall_seconds": time.time() - trainer.started,
    }


def _where(info):
    """The data's record, with the absolute path of a folder or file named relatively (so
    export's calibration finds it from any folder)."""
    name = info.get("name")
    if isinstance(name, str) and os.path.exists(name) and not os.path.isabs(name):
        return dict(info, path=os.path.abspath(name))
    return info


def _validation(src):
    if src is None:
        return None
    return {"name": src.name, "split": src.split, "examples": len(src)}


def write_run(out_dir, run):
    atomic_write(os.path.join(out_dir, "run.json"), json.dumps(run, indent=2))


RUN_KEYS = ("builder", "config", "weights", "dataset")
DATASET_KEYS = ("name", "split", "route", "examples", "image_shape", "image_size", "resize")


def _what(record):
    d = record.get("dataset") or {}
    return {"builder": record.get("builder"),
            "config": {k: v for k, v in (record.get("config") or {}).items() if k != "name"},
            "weights": record.get("weights"),
            "dataset": {k: d.get(k) for k in DATASET_KEYS if k in d}}


def check_resumable(out_dir, trainer):
    """Refuses to resume a run directory that holds another model or other data."""
    path = os.path.join(out_dir, "run.json")
    if not os.path.exists(path):
        return
    try:
        with open(path) as f:
            before = _what(json.load(f))
    except (OSError, ValueError):
        return  # an unreadable record: the checkpoint itself decides
    now = _what({"builder": trainer.model.builder_name, "config": trainer.model.builder_config,
                 "weights": getattr(trainer.model, "start_point", None),
                 "dataset": trainer.train_src.info()})
    diffs = []
    for key in RUN_KEYS:
        a, b = before[key], now[key]
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"{key} {k}: {a.get(k)!r} there, {b.get(k)!r} now"
                      for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            diffs.append(f"{key}: {a!r} there, {b!r} now")
    if diffs:
        raise InvalidValue(
            f"{out_dir!r} holds another run ({'; '.join(diffs[:3])}), so it is not resumed. "
            f"Pass --no-resume (resume=False) to start over in it, or pick another --out. "
            f"Received: out_dir={out_dir!r}"
        )


def write_start(out_dir, trainer):
    """The run's record before its first epoch (`status: running`), for resume checks."""
    write_run(out_dir, run_record(trainer, "running"))


def error_line(error):
    """`"<ExceptionType>: <first line of its message>"`."""
    first = next((line for line in str(error).strip().splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def write_end(out_dir, trainer, error):
    """The record of a run that `error` stopped: `interrupted` (Ctrl-C) or `failed` with
    `"error"`, the error's first line. Writing it never hides `error`: a failure to
    write (a full disk) becomes a note on it."""
    try:
        if isinstance(error, KeyboardInterrupt):
            run = run_record(trainer, "interrupted")
        else:
            run = {**run_record(trainer, "failed"), "error": error_line(error)}
        write_run(out_dir, run)
    except Exception as e:  # noqa: BLE001 - the run's own error is the one to raise
        error.add_note(f"{os.path.join(out_dir, 'run.json')} could not be updated and still "
                       f"says 'running' ({error_line(e)}).")
