"""Loss histories from the logs people have, one reader per format behind one function:
``load_history(path)`` takes a file or a run folder and returns the curve, its validation
twin and the learning rate, the same way in every format.

Formats: CSV (Keras' CSVLogger with any separator, Lightning's ``metrics.csv``,
Ultralytics, W&B UI exports), JSON (lists, Hugging Face's ``trainer_state.json``, W&B's
``wandb-history.jsonl``), TensorBoard event files (extra: ``diag[tensorboard]``), MLflow run
folders and its SQLite database (``mlflow.db``), and plain text logs (common line shapes,
or ``--pattern``). NaN/Inf are data (they mean divergence), not parse errors.
"""

from __future__ import annotations

import os
from pathlib import Path

from diag.errors import DataError, UsageError
from diag.inputs.history import csvlog, find, jsonlog, mlflow, mlflow_db, tensorboard, text
from diag.inputs.history.core import (
    INDEX_COLUMNS,
    MIN_POINTS,
    History,
    Log,
    one_run_log,
    to_history,
    validation_of,
)
from diag.inputs.history.csvlog import _fast_columns

__all__ = ["INDEX_COLUMNS", "MIN_POINTS", "History", "Log", "_fast_columns", "load_history",
           "load_log", "load_pair"]


def _looks_like_csv(head: str) -> bool:
    """A header line and a first row with the same number of cells, the row mostly
    numbers or empty cells (so "2025-06-04 17:36:55,374 - INFO - ..." is text)."""
    lines = [ln for ln in head.splitlines() if ln.strip()][:2]
    if len(lines) < 2:
        return len(lines) == 1 and any(d in lines[0] for d in ",;\t")
    delimiter = csvlog.sniff_delimiter(lines[0])
    if delimiter not in lines[0]:
        return False
    header, row = lines[0].split(delimiter), lines[1].split(delimiter)
    if len(header) != len(row):
        return False
    numeric = 0
    for cell in row:
        cell = cell.strip().strip('"')
        if cell == "":
            numeric += 1
            continue
        try:
            float(cell)
            numeric += 1
        except ValueError:
            pass
    return numeric * 2 >= len(row)


def load_log(path: str, metric: str = "loss", lr_column: str | None = None,
             run: str | None = None, pattern: str | None = None,
             val_metric: str | None = None) -> Log:
    """The series of a log file or run folder (see the module doc). Bad input is a
    DataError (exit 2) naming the file and what was looked for."""
    p = Path(path)
    if not os.path.exists(p):
        raise DataError(f"--history file not found: {path}", hint="check the path")
    if p.is_dir():
        if pattern is not None:
            raise UsageError("--pattern reads a text log", hint="pass the log file itself")
        if mlflow.is_run(p):
            return mlflow.read(p)
        chosen, notes, inner = find.choose(p, run)
        log = _read_run(chosen, metric, lr_column, val_metric, inner)
        log.notes.extend(notes)
        return log
    return _read_file(p, metric, lr_column, pattern, val_metric, run)


def _read_run(r: find.Run, metric: str, lr_column: str | None, val_metric: str | None,
              inner: str | None = None) -> Log:
    """One run's log; ``inner``: the run to pick inside a store of runs (find.choose)."""
    if r.kind == "mlflow":
        return mlflow.read(r.folder)
    if r.kind == "tensorboard":
        return tensorboard.read(list(r.files), str(r.folder))
    return _read_file(r.files[0], metric, lr_column, None, val_metric, inner)


def _read_file(p: Path, metric: str, lr_column: str | None, pattern: str | None,
               val_metric: str | None, run: str | None = None) -> Log:
    path = str(p)
    if mlflow_db.is_db(p):
        return mlflow_db.read(p, run)
    event_file = tensorboard.is_event_file(p)
    head = ""
    if pattern is None and not event_file:
        try:
            with open(p, encoding="utf-8-sig", errors="replace") as fh:
                head = fh.read(4096)
        except OSError as exc:
            raise DataError(f"--history {path} cannot be read: {exc}",
                            hint="pass a readable log file") from None
        if not head.strip():
            raise DataError(f"--history {path} is empty",
                            hint="write a header row and values")
    is_json = p.suffix.lower() in (".json", ".jsonl") or head.lstrip().startswith(("[", "{"))
    is_csv = not is_json and (p.suffix.lower() in (".csv", ".tsv") or _looks_like_csv(head))
    if run is not None and not is_csv:  # a CSV says itself whether it is a W&B export
        raise one_run_log(run, path)
    if pattern is not None:
        return text.read(path, pattern)
    if event_file:
        return tensorboard.read([p], path)
    if is_json:
        return jsonlog.read(path, metric)
    if is_csv:
        return csvlog.read(path, metric, lr_column, val_metric, run)
    return text.read(path)


def load_history(path: str, metric: str = "loss", lr_column: str | None = None,
                 run: str | None = None, pattern: str | None = None) -> History:
    """The ``metric`` curve of a log file or run folder."""
    return to_history(load_log(path, metric, lr_column, run, pattern), metric, lr_column)


def load_pair(path: str, metric: str = "loss", val_metric: str | None = None,
              lr_column: str | None = None, run: str | None = None,
              pattern: str | None = None) -> tuple[History, History | None]:
    """The training curve and its validation twin (``val_metric``, else found by name),
    read once."""
    log = load_log(path, metric, lr_column, run, pattern, val_metric)
    train = to_history(log, metric, lr_column)
    val = val_metric or validation_of(log.names(), train.metric)
    if val is None or val not in log.series:
        if val_metric is not None:
            raise DataError(f"--history {path} has no column {val_metric!r} for validation",
                            hint=f"series: {', '.join(log.names()[:20])}")
        return train, None
    try:
        return train, to_history(log, val, lr_column)
    except DataError:
        if val_metric is not None:
            raise
        return train, None  # a validation series too short to judge: the training one alone
