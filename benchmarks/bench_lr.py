"""Benchmark lr-schedule: the detectors on a 100,000-point history (budget 1 s), and the LR
range test against the same number of plain training steps (budget +10%).

Run: python benchmarks/bench_lr.py
"""

from __future__ import annotations

import statistics
import time

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


if __name__ == "__main__":
    main()
