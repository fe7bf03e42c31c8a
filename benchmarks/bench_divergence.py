"""lr-schedule's divergence verdict and its "ends at its worst" warning, where they should
and should not fire.

- Divergence on flat noisy curves (a run that never learned: 0.5 x (1 + sd x noise), sd 5,
  15, 30 %, 16-200 points, 200 seeds): each is a false divergence (its verdict is "no
  learning").
- Divergence power: a fall to a floor, then a linear rise by 50 %, 100 % or 300 % of the
  floor from 50, 70 or 85 % of the run, noise 2-10 %, 20-400 points, 20 seeds: found, and
  found within 0.15 n of where the rise began.
- "Ends at its worst" on generated falling and plateau curves (bench_plateau.py's), on every
  truncation (from the 20th point on) of the labelled training logs, and on per-step
  minibatch losses (the range-test tasks of benchmarks/lr_tasks.py, 300 Adam steps at LR
  1e-3 and 1e-2, every end from the 20th; needs the bench extra).

Run: python benchmarks/bench_divergence.py
"""

from __future__ import annotations

import sys
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here))
sys.path.insert(0, str(here.parent / "tests"))


def flat_noise(seeds: int = 200) -> list[tuple[int, float, int]]:
    import numpy as np

    from diag.checks.lr.detect import diagnose

    out = []
    for n in (16, 30, 60, 200):
        for sd in (0.05, 0.15, 0.3):
            hits = 0
            for s in range(seeds):
                x = np.abs(0.5 * (1 + sd * np.random.default_rng(s).standard_normal(n)))
                hits += diagnose(list(x)).divergence_start is not None
            out.append((n, sd, hits))
    return out


def power(seeds: int = 20) -> tuple[int, int, int]:
    import numpy as np

    from diag.checks.lr.detect import diagnose

    total = found = near = 0
    for n in (20, 50, 100, 400):
        for at in (0.5, 0.7, 0.85):
            for up in (0.5, 1.0, 3.0):
                for noise in (0.02, 0.05, 0.1):
                    for s in range(seeds):
                        rng = np.random.default_rng(s)
                        t = np.arange(n)
                        k = int(at * n)
                        base = np.where(t < k, 0.3 + 0.7 * np.exp(-t / (k / 4)), 0.0)
                        floor = 0.3 + 0.7 * np.exp(-4)
                        base[k:] = floor * (1 + up * (t[k:] - k) / max(n - 1 - k, 1))
                        x = base * (1 + noise * rng.standard_normal(n))
                        d = diagnose(list(x)).divergence_start
                        total += 1
                        found += d is not None
                        near += d is not None and abs(d - k) <= 0.15 * n
    return found, near, total


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
    for part in ("tune", "heldout", "round5", "round6"):
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
    rows = flat_noise()
    print("divergence on flat noisy curves (false), of 200 each: " + "; ".join(
        f"n={n} sd={sd:.0%}: {hits}" for n, sd, hits in rows))
    found, near, total = power()
    print(f"divergence found on {found}/{total} rising curves, {near} within 0.15 n of the "
          "rise's start")
    fa, falls, pa, plateaus = generated()
    print(f"ends at its worst, generated: on {fa}/{falls} falling curves, {pa}/{plateaus} "
          "plateau curves")
    hits, total = truncated_logs()
    print(f"ends at its worst, labelled training logs, every end from the 20th point: "
          f"{hits}/{total}")
    hits, total = minibatch_steps()
    print(f"ends at its worst, per-step minibatch losses, every end from the 20th step: "
          f"{hits}/{total}")


if __name__ == "__main__":
    main()
