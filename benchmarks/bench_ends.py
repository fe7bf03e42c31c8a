"""How often lr-schedule's "ends at its worst" warning fires where it should not: on
generated falling and plateau curves (benchmarks/bench_plateau.py's), on every truncation
(from the 20th point on) of the labelled training logs in tests/data/curves/, and on
per-step minibatch losses (the range-test tasks of benchmarks/lr_tasks.py, 300 Adam steps
at LR 1e-3 and 1e-2, every end point from the 20th; needs the bench extra).

Run: python benchmarks/bench_ends.py
"""

from __future__ import annotations

import sys
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here))
sys.path.insert(0, str(here.parent / "tests"))


def generated(seeds: int = 40) -> tuple[int, int, int, int]:
    from bench_plateau import falling, plateaued

    from diag.checks.lr.detect import diagnose

    fa = falls = pa = plateaus = 0
    for n in (20, 50, 100, 400, 2000):
        for ratio in (0.5, 1.0, 2.0):
            for noise in (0.01, 0.02, 0.05):
                for s in range(seeds):
                    fa += diagnose(list(falling(n, ratio * n, noise, s))).ends_at_worst \
                        is not None
                    falls += 1
    for n in (50, 100, 400, 2000):
        for frac in (0.3, 0.5, 0.7):
            for noise in (0.01, 0.02, 0.05):
                for s in range(seeds):
                    curve = list(plateaued(n, int(frac * n), noise, s))
                    pa += diagnose(curve).ends_at_worst is not None
                    plateaus += 1
    return fa, falls, pa, plateaus


def truncated_logs() -> tuple[int, int]:
    from curve_labels import CURVES, LABELS, file_of, keys

    from diag.checks.lr.detect import diagnose
    from diag.inputs.history import load_history

    hits = total = 0
    for part in ("tune", "heldout", "round5"):
        for key in keys(part):
            label = LABELS[key]
            if "train_metric" in label or label.get("alone"):
                continue
            values = list(load_history(str(CURVES / file_of(key)), label["metric"],
                                       label.get("lr_column")).values)
            for end in range(20, len(values) + 1):
                hits += diagnose(values[:end]).ends_at_worst is not None
                total += 1
    return hits, total


def minibatch_steps(steps: int = 300) -> tuple[int, int]:
    import torch
    from lr_tasks import tasks

    from diag.checks.lr.detect import diagnose

    torch.set_num_threads(min(2, torch.get_num_threads()))
    hits = total = 0
    for task in tasks():
        for lr in (1e-3, 1e-2):
            model = task.make(0)
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            batches = task.batches(0)
            losses = []
            for _ in range(steps):
                xb, yb = next(batches)
                loss = task.loss(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            for end in range(20, steps + 1):
                hits += diagnose(losses[:end]).ends_at_worst is not None
                total += 1
    return hits, total


def main() -> None:
    fa, falls, pa, plateaus = generated()
    print(f"generated: on {fa}/{falls} falling curves, {pa}/{plateaus} plateau curves")
    hits, total = truncated_logs()
    print(f"labelled training logs, every end from the 20th point: {hits}/{total}")
    hits, total = minibatch_steps()
    print(f"per-step minibatch losses, every end from the 20th step: {hits}/{total}")


if __name__ == "__main__":
    main()
