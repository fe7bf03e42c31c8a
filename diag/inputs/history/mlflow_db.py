"""MLflow's database store: ``mlflow.db``, the SQLite file MLflow 3 writes by default
(``sqlite:///mlflow.db``). Its ``runs`` table lists the runs and ``metrics`` holds every
logged point (``key, value, step, is_nan``). One run is read: ``--run NAME`` (its name or
id), else the newest active run; the others are named in the report. Read with Python's own
``sqlite3``, read-only; no MLflow install is needed.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from diag.errors import DataError
from diag.inputs.history.core import Log, others_note

MAGIC = b"SQLite format 3\x00"


def is_db(path: Path) -> bool:
    """A SQLite file, by its header (what is inside is checked by ``read``)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def read(path: Path, run: str | None = None) -> Log:
    """The chosen run's metrics as a Log; bad input is a DataError naming the file."""
    hint = "pass MLflow's tracking database (mlflow.db), a run folder, or a log file"
    try:
        con = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise DataError(f"--history {path} cannot be opened as a database: {exc}",
                        hint=hint) from None
    try:
        tables = {r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"runs", "metrics"} <= tables:
            raise DataError(f"--history {path} is a SQLite database without MLflow's "
                            "'runs' and 'metrics' tables", hint=hint)
        runs = con.execute(
            "SELECT run_uuid, COALESCE(name, ''), COALESCE(start_time, 0) FROM runs "
            "WHERE lifecycle_stage IS NULL OR lifecycle_stage = 'active' "
            "ORDER BY start_time DESC, run_uuid").fetchall()
        with_metrics = {r[0] for r in con.execute("SELECT DISTINCT run_uuid FROM metrics")}
        runs = [r for r in runs if r[0] in with_metrics]
        if not runs:
            raise DataError(f"--history {path}: no MLflow run in it has metrics",
                            hint="log metrics with mlflow.log_metric(name, value, step=...)")
        label = {uuid: name or uuid for uuid, name, _ in runs}
        if run is None:
            chosen = runs[0][0]
        else:
            picked = [uuid for uuid, name, _ in runs if run in (name, uuid)]
            if not picked:
                raise DataError(f"--run {run!r}: no such run in {path}",
                                hint="runs: " + ", ".join(list(label.values())[:20]))
            chosen = picked[0]
        rows = con.execute(
            "SELECT key, value, step, is_nan FROM metrics WHERE run_uuid = ? "
            "ORDER BY key, step, timestamp", (chosen,)).fetchall()
    except sqlite3.Error as exc:
        raise DataError(f"--history {path} cannot be read as an MLflow database: {exc}",
                        hint=hint) from None
    finally:
        con.close()
    others = [label[uuid] for uuid, _, _ in runs if uuid != chosen]
    log = Log("mlflow-db", str(path), "step", notes=others_note(
        others, path.name, repr(label[chosen]), "newest", run is not None))
    series: dict[str, tuple[list[float], list[float]]] = {}
    for key, value, step, is_nan in rows:
        xs, ys = series.setdefault(str(key), ([], []))
        try:
            xs.append(float(step or 0))
            ys.append(float("nan") if is_nan else float(value))
        except (TypeError, ValueError):
            raise DataError(f"--history {path}: metric {key!r} has a value {value!r} at step "
                            f"{step!r} that is not a number", hint=hint) from None
    for key, (xs, ys) in series.items():
        log.series[key] = (np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64))
    return log
