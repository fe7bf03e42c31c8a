"""Benchmark lr-schedule: the detectors on a 100,000-point history (budget 1 s), the LR
range test against the same number of plain training steps (budget +10%), and the range
test's suggestion against a small grid search (the LR with the lowest training loss after
5 epochs) on real tables that ship inside scikit-learn (wine, breast cancer, diabetes) and
on the browser net: distance in decades (target <= 0.5) and spread over 5 seeds (target
<= 0.3 decades).

Run: pip install -e '.[bench]' && python benchmarks/bench_lr.py [--quick]
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np


def main() -> None:
    from diag.checks.lr.detect import diagnose, reduce_on_plateau_steps

    rng = np.random.default_rng(0)
    x = np.exp(-np.arange(100_000) / 30_000) * (1 + 0.1 * rng.standard_normal(100_000))
    x[60_000:] = x[60_000] * (1 + 0.1 * rng.standard_normal(40_000))  # a plateau
    times = []
    for _ in range(3):
        start = time.perf_counter()
        d = diagnose(x)
        reduce_on_plateau_steps(x)
        times.append(time.perf_counter() - start)
    print(f"detectors + ReduceLROnPlateau replica on 100,000 points: "
          f"{statistics.median(times):.3f} s (budget 1 s); plateau_start={d.plateau_start}")

    import torch

    from diag.checks.lr.rangetest import range_test
    from diag.inputs.target import build_target
    from diag.train import Trainer

    torch.set_num_threads(min(2, torch.get_num_threads()))
    target = build_target(input_size=48, samples=48)
    steps = 100

    def plain() -> float:
        trainer = Trainer(target.make_model(), target.data, target.loss_fn, batch_size=12)
        batches = trainer.batches()
        start = time.perf_counter()
        for i in range(steps):
            trainer.set_lr(1e-7 * (1e6 ** (i / (steps - 1))))
            loss = trainer.step(*next(batches))
            loss.item()
        return time.perf_counter() - start

    def finder() -> tuple[float, int]:
        trainer = Trainer(target.make_model(), target.data, target.loss_fn, batch_size=12)
        start = time.perf_counter()
        rt = range_test(trainer.model, trainer.optimizer, trainer.batches(), target.loss_fn,
                        end_lr=0.1, num_iter=steps, diverge=1e12)  # same step count
        return time.perf_counter() - start, len(rt.lrs)

    plain()
    p_times, f_times = [], []
    for _ in range(3):
        p_times.append(plain())
        t, n = finder()
        assert n == steps
        f_times.append(t)
    p, f = statistics.median(p_times), statistics.median(f_times)
    print(f"range test, {steps} steps (snapshot and restore included): {f:.3f} s against "
          f"{p:.3f} s of plain steps: {f / p:.3f}x (budget 1.10x)")


def _tables() -> dict[str, tuple[Any, Any, str]]:
    import torch
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

    out = {}
    for name, loader, task in (("wine", load_wine, "classify"),
                               ("breast_cancer", load_breast_cancer, "classify"),
                               ("diabetes", load_diabetes, "regression")):
        d = loader()
        x = torch.tensor(d.data, dtype=torch.float32)
        x = (x - x.mean(0)) / x.std(0)
        y = torch.tensor(d.target)
        y = ((y - y.mean()) / y.std()).float().unsqueeze(1) if task == "regression" \
            else y.long()
        out[name] = (x, y, task)
    return out


def suggestion_against_grid(seeds: int = 5, epochs: int = 5) -> None:
    """The suggestion on each model/data pair, against a grid search of Adam LRs."""
    import math

    import torch
    import torch.nn.functional as F
    from torch import nn

    from diag.checks.lr.detect import suggest_range_lr
    from diag.checks.lr.rangetest import range_test

    def mlp(x: Any, y: Any, task: str, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        out = int(y.max()) + 1 if task == "classify" else 1
        return nn.Sequential(nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, 64),
                             nn.ReLU(), nn.Linear(64, out))

    def batches(x: Any, y: Any, seed: int, bs: int = 32) -> Any:
        g = torch.Generator().manual_seed(seed)
        while True:
            order = torch.randperm(len(x), generator=g)
            for i in range(0, len(x) - bs + 1, bs):
                idx = order[i:i + bs]
                yield x[idx], y[idx]

    pairs: dict[str, Any] = {}
    for name, (x, y, task) in _tables().items():
        loss = F.cross_entropy if task == "classify" else F.mse_loss
        pairs[name] = (lambda s, x=x, y=y, t=task: mlp(x, y, t, s), x, y, loss)
    from diag.inputs.target import build_target

    t = build_target(input_size=48, samples=48)
    pairs["browser net (held out)"] = (lambda s: t.make_model(), t.data.x, t.data.y, t.loss_fn)

    print(f"range-test suggestion against a grid search (lowest training loss after {epochs} "
          f"epochs, Adam), {seeds} seeds:")
    for name, (make, x, y, loss_fn) in pairs.items():
        grid: dict[float, float] = {}
        for e in np.arange(-4, 0.01, 0.25):
            lr = float(10 ** e)
            vals = []
            for seed in range(2):
                model = make(seed)
                opt = torch.optim.Adam(model.parameters(), lr=lr)
                it = batches(x, y, seed)
                for _ in range(epochs * max(len(x) // 32, 1)):
                    xb, yb = next(it)
                    opt.zero_grad()
                    loss_fn(model(xb), yb).backward()
                    opt.step()
                with torch.no_grad():
                    v = float(loss_fn(model(x), y))
                vals.append(v if math.isfinite(v) else 1e9)
            grid[lr] = statistics.mean(vals)
        best = min(grid, key=grid.__getitem__)
        found, reasons = [], []
        for seed in range(seeds):
            model = make(seed)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            rt = range_test(model, opt, batches(x, y, seed), loss_fn)
            answer = suggest_range_lr(rt.lrs, rt.losses)
            if answer.lr is None:
                reasons.append(answer.reason)
            else:
                found.append(answer.lr)
        if not found:
            print(f"  {name:24} grid best {best:.3g}: no suggestion ({reasons[0]})")
            continue
        dist = [abs(math.log10(f / best)) for f in found]
        spread = math.log10(max(found) / min(found))
        print(f"  {name:24} grid best {best:.3g}; suggested {statistics.median(found):.3g} "
              f"(median of {len(found)}), distance {statistics.median(dist):.2f} decades "
              f"(max {max(dist):.2f}; target <= 0.5), spread {spread:.2f} decades "
              f"(target <= 0.3)" + (f"; {len(reasons)} seeds without one" if reasons else ""))


if __name__ == "__main__":
    import sys

    if "--quick" not in sys.argv:
        main()
    suggestion_against_grid()
