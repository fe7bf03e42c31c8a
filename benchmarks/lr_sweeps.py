"""Record the range test's raw sweeps on the nine tasks (benchmarks/lr_tasks.py), so that a
reading of them can be scored offline against the grid (benchmarks/lr_readings.py) without
sweeping again: per task and seed, the sweep's LRs, each of diag's sweeps' losses as
recorded, and torch-lr-finder's suggestion on the same model and batches.

Run: python benchmarks/lr_sweeps.py [--seeds N] [--out FILE] [--fresh | --fresh2 | --fresh3]
[--sweeps K --steps N] (default 20 seeds, benchmarks/data/lr_sweeps.json; ``--fresh``: the
tasks added after the candidates were fixed, lr_tasks.fresh_tasks, to lr_sweeps_fresh.json;
``--fresh2``, ``--fresh3``: the second and third batches (lr_tasks.fresh_tasks_2, _3), to
lr_sweeps_fresh2.json, lr_sweeps_fresh3.json;
``--sweeps K --steps N``: K sweeps of N steps each instead of diag's default, to
lr_sweeps_KxN[_fresh].json).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def record(seeds: int, group: str = "", sweeps: int | None = None, steps: int = 100
           ) -> dict[str, Any]:
    import torch
    from bench_lr import torch_lr_finder_answer
    from lr_tasks import GROUPS
    from torch_lr_finder import LRFinder

    from diag.checks.lr.rangetest import range_test

    torch.set_num_threads(min(2, torch.get_num_threads()))
    out: dict[str, Any] = {}
    for task in GROUPS[group]():
        rows = []
        start = time.perf_counter()
        for seed in range(seeds):
            model = task.make(seed)
            opt = torch.optim.Adam(model.parameters(), lr=1e-7)
            more = {} if sweeps is None else {"sweeps": sweeps}
            rt = range_test(model, opt, task.batches(seed), task.loss, start_lr=1e-7,
                            end_lr=10.0, num_iter=steps, **more)
            model = task.make(seed)
            opt = torch.optim.Adam(model.parameters(), lr=1e-7)
            finder = LRFinder(model, opt, task.loss, device="cpu")
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                finder.range_test(task.loader(seed), start_lr=1e-7, end_lr=10.0, num_iter=100)
                finder.reset()
            rows.append({"seed": seed, "lrs": [float(f"{v:.6g}") for v in rt.lrs],
                         "sweeps": [[float(f"{v:.6g}") for v in s] for s in rt.sweeps],
                         "torch_lr_finder": torch_lr_finder_answer(finder.history)})
        out[task.name] = rows
        print(f"{task.name}: {seeds} seeds in {time.perf_counter() - start:.1f} s", flush=True)
    return out


def main() -> None:
    seeds = int(sys.argv[sys.argv.index("--seeds") + 1]) if "--seeds" in sys.argv else 20
    from lr_tasks import group_suffix

    group = group_suffix(sys.argv)
    sweeps = int(sys.argv[sys.argv.index("--sweeps") + 1]) if "--sweeps" in sys.argv else None
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 100
    shape = "" if (sweeps, steps) == (None, 100) else f"_{sweeps}x{steps}"
    name = f"lr_sweeps{shape}{group}.json"
    path = (Path(sys.argv[sys.argv.index("--out") + 1]) if "--out" in sys.argv
            else Path(__file__).resolve().parent / "data" / name)
    path.write_text(json.dumps({"seeds": seeds, "steps": steps,
                                "runs": record(seeds, group, sweeps, steps)}) + "\n")
    print(f"written {path}")


if __name__ == "__main__":
    main()
