"""The range-test benchmark's truth: for each task of benchmarks/lr_tasks.py, a grid search
over Adam learning rates (10^-4 to 10^0 in quarter decades, 3 epochs, 2 seeds; the mean
training loss afterwards). Computed once and committed as benchmarks/data/lr_grid.json.

Run: pip install -e '.[bench]' && python benchmarks/lr_grid.py

``--min-steps N``: a sensitivity check of that truth, not the truth: each task trains at least
N Adam steps (its epochs raised to match; 3 epochs are 12 steps on iris and the browser net,
168 on digits), written to benchmarks/data/lr_grid_steps<N>.json. `python
benchmarks/bench_lr.py --rescore FILE` scores the committed sweeps' answers against it.

``--only NAME[,NAME]``: those tasks only, merged into the existing file (a task added later
gets its truth with the same settings without the others being recomputed).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lr_tasks import tasks, train_loss_after  # noqa: E402

OUT = Path(__file__).resolve().parent / "data" / "lr_grid.json"
EPOCHS, SEEDS = 3, (0, 1)
EXPONENTS = np.arange(-4, 0.01, 0.25)


def main() -> None:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    min_steps = int(sys.argv[sys.argv.index("--min-steps") + 1]) if "--min-steps" in sys.argv \
        else 0
    out = OUT.with_name(f"lr_grid_steps{min_steps}.json") if min_steps else OUT
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
    result: dict[str, object] = {"epochs": EPOCHS, "seeds": list(SEEDS),
                                 "optimizer": "Adam", "tasks": {}}
    if only and out.exists():
        result = json.loads(out.read_text())
    if min_steps:
        result["min_steps"] = min_steps
    for task in tasks(only):
        start = time.perf_counter()
        epochs = max(EPOCHS, math.ceil(min_steps / task.batches_per_epoch))
        grid = {}
        for e in EXPONENTS:
            lr = float(10 ** e)
            grid[f"{lr:.6g}"] = statistics.mean(
                train_loss_after(task, lr, seed, epochs) for seed in SEEDS)
        row = summary(grid, task.batches_per_epoch, epochs)
        result["tasks"][task.name] = row  # type: ignore[index]
        low, high = row["within_2x_of_best_loss"]
        print(f"{task.name:22} best lr {row['best_lr']:.3g} (loss {row['best_loss']:.4g}); "
              f"within 2x: {low:.3g}-{high:.3g}  [{time.perf_counter() - start:.0f} s]",
              flush=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


def summary(grid: dict[str, float], batches_per_epoch: int, epochs: int) -> dict[str, Any]:
    """A task's entry in the grid file from its loss at each LR (inf: it blew up): the best
    LR and its loss, the LRs within 2x of that loss, every loss (None for inf), the steps."""
    finite = {k: v for k, v in grid.items() if math.isfinite(v)}
    best = min(finite, key=finite.__getitem__)
    good = sorted(float(k) for k, v in finite.items() if v <= 2 * finite[best])
    return {"best_lr": float(best), "best_loss": finite[best],
            "within_2x_of_best_loss": [good[0], good[-1]],
            "loss_by_lr": {k: (v if math.isfinite(v) else None) for k, v in grid.items()},
            "batches_per_epoch": batches_per_epoch, "epochs": epochs,
            "steps": epochs * batches_per_epoch}


if __name__ == "__main__":
    main()
