"""``--history`` given a run folder: the logs frameworks leave, found by their layout.

- Lightning: ``lightning_logs/version_N/metrics.csv`` or its event files;
- TensorBoard: ``runs/<name>/events.out.tfevents.*``;
- Hugging Face: ``checkpoint-*/trainer_state.json`` (the highest checkpoint of a run);
- MLflow: ``mlruns/<experiment>/<run>/`` (``meta.yaml`` beside ``metrics/``), or its
  database ``mlflow.db`` (MLflow 3's default store; the newest run in it, or ``--run``);
- W&B: ``wandb/run-*/files/wandb-history.jsonl``, or a UI export ``wandb_export*.csv``;
- Ultralytics' ``results.csv``, Keras' CSVLogger ``training.log``/``*.csv``.

Each log belongs to a run (its folder). With several runs the newest is read and the others
are named in the report; ``--run NAME`` picks one by its folder name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from diag.errors import DataError
from diag.inputs.history import mlflow, tensorboard
from diag.inputs.history.core import others_note

MAX_DEPTH = 6
MAX_ENTRIES = 20000
"""A folder walk stops here: --history is a run folder, not a disk."""
LOOKED_FOR = ("metrics.csv (Lightning)", "events.out.tfevents.* (TensorBoard)",
              "trainer_state.json (Hugging Face)",
              "mlruns/<exp>/<run>/metrics or mlflow.db (MLflow)",
              "wandb-history.jsonl or wandb_export*.csv (W&B)", "results.csv (Ultralytics)")


@dataclass(frozen=True)
class Run:
    """One run's log: the folder that names the run, and what to read."""

    name: str
    folder: Path
    kind: str
    """lightning, tensorboard, huggingface, mlflow, mlflow-db, wandb, csv."""
    files: tuple[Path, ...]

    @property
    def mtime(self) -> float:
        return max((f.stat().st_mtime for f in self.files if f.exists()), default=0.0)


def _checkpoint_number(path: Path) -> int:
    m = re.search(r"checkpoint-(\d+)", str(path))
    return int(m.group(1)) if m else -1


def runs_in(folder: Path) -> list[Run]:
    """Every run log under ``folder`` (a bounded walk, no symlinks followed)."""
    found: dict[tuple[Path, str], list[Path]] = {}
    files: list[str]
    seen = 0
    base_depth = len(folder.parts)
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        seen += len(dirs) + len(files)
        if seen > MAX_ENTRIES or len(here.parts) - base_depth >= MAX_DEPTH:
            dirs[:] = []
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("artifacts",
                                                                           "__pycache__")]
        if mlflow.is_run(here):
            found[(here, "mlflow")] = [here / "meta.yaml"]
            dirs[:] = []
            continue
        for name in files:
            path = here / name
            if tensorboard.is_event_file(name):
                found.setdefault((here, "tensorboard"), []).append(path)
            elif name == "metrics.csv":
                found[(here, "lightning")] = [path]
            elif name == "trainer_state.json":
                key = (here.parent if here.name.startswith("checkpoint-") else here,
                       "huggingface")
                best = found.get(key)
                if best is None or _checkpoint_number(path) > _checkpoint_number(best[0]):
                    found[key] = [path]
            elif name == "wandb-history.jsonl":
                run_dir = here.parent if here.name == "files" else here
                found[(run_dir, "wandb")] = [path]
            elif name.startswith("wandb_export") and name.endswith(".csv"):
                found[(path, "wandb")] = [path]
            elif name == "results.csv":
                found[(here, "csv")] = [path]
            elif name == "mlflow.db":
                found[(path, "mlflow-db")] = [path]
    runs = []
    for (where, kind), paths in found.items():
        rel = where.relative_to(folder) if where != folder else Path(where.name)
        runs.append(Run(str(rel), where, kind, tuple(paths)))
    # a Lightning run with a metrics.csv and event files: one run, the CSV (every metric)
    csv_runs = {r.folder for r in runs if r.kind == "lightning"}
    return [r for r in runs if not (r.kind == "tensorboard" and r.folder in csv_runs)]


def holds_runs(r: Run) -> bool:
    """A log file that is a store of several runs itself: MLflow's database, a W&B export."""
    return r.kind == "mlflow-db" or (r.kind == "wandb" and r.files[0].suffix == ".csv")


def choose(folder: Path, run: str | None) -> tuple[Run, list[str], str | None]:
    """The run to read (``run`` or the newest), notes naming the others, and the run to
    pick inside it: ``run`` when it names no run of the folder and the folder's one log is
    a store of runs (``holds_runs``), whose reader then picks it; else None."""
    runs = runs_in(folder)
    if not runs:
        raise DataError(f"--history {folder}: no training log found in the folder",
                        hint=f"looked for {'; '.join(LOOKED_FOR)}; or pass the log file "
                             "itself")
    if run is not None:
        picked = [r for r in runs if r.name == run or r.folder.name == run
                  or r.name.endswith("/" + run)]
        if not picked and len(runs) == 1 and holds_runs(runs[0]):
            return runs[0], [], run
        if not picked:
            raise DataError(f"--run {run!r}: no such run in {folder}",
                            hint="runs: " + ", ".join(sorted(r.name for r in runs)))
        chosen = max(picked, key=lambda r: r.mtime)
    else:
        chosen = max(runs, key=lambda r: (r.mtime, r.name))
    others = sorted(r.name for r in runs if r is not chosen)
    return chosen, others_note(others, str(folder), chosen.name, "newest", run is not None), None
