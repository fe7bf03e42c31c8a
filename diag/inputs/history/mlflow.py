"""MLflow's file store: ``mlruns/<experiment>/<run>/metrics/<name>``, one file per metric,
each line ``timestamp value step`` (a metric named ``train/loss`` is the file
``metrics/train/loss``). The run's metrics are paired by step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diag.errors import DataError
from diag.inputs.history.core import Log


def is_run(folder: Path) -> bool:
    return (folder / "metrics").is_dir() and (folder / "meta.yaml").is_file()


def read(run: Path) -> Log:
    log = Log("mlflow", str(run), "step")
    metrics = run / "metrics"
    for path in sorted(p for p in metrics.rglob("*") if p.is_file()):
        name = path.relative_to(metrics).as_posix()
        xs: list[float] = []
        ys: list[float] = []
        with open(path, encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, start=1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) < 2:
                    raise DataError(f"--history {path} line {n}: expected 'timestamp value "
                                    "step'", hint="is this an MLflow metric file?")
                try:
                    value = float(parts[1])
                    step = float(parts[2]) if len(parts) > 2 else float(len(xs))
                except ValueError:
                    raise DataError(f"--history {path} line {n}: {line.strip()!r} is not "
                                    "'timestamp value step'",
                                    hint="is this an MLflow metric file?") from None
                xs.append(step)
                ys.append(value)
        log.series[name] = (np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64))
    if not log.series:
        raise DataError(f"--history {run}: the MLflow run has no metrics",
                        hint="log metrics with mlflow.log_metric(name, value, step=...)")
    return log
