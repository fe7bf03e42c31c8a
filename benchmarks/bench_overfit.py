"""Benchmark `diag overfit`: end-to-end wall time, and its training steps against a plain
hand-written PyTorch loop doing the same steps on the same model and data.

Run: python benchmarks/bench_overfit.py [--steps 200] [--repeats 3]
Prints the figures; asserts nothing (speed is measured here, never in tests).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def plain_loop(model, x, y, steps: int) -> float:  # type: ignore[no-untyped-def]
    import torch
    import torch.nn.functional as F

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if loss.item() <= 0.0:  # a hand-written loop reads the loss to know when to stop
            break
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "diag", "overfit", "--quiet", "--out",
                           "reports/bench"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    print(f"diag overfit (defaults, torch import included): {wall:.2f} s wall, "
          f"exit {proc.returncode}: {proc.stdout.strip()}")

    import torch

    from diag.checks.overfit import OverfitOptions
    from diag.checks.overfit.check import subset
    from diag.run.plan import Settings, Sources, build

    torch.set_num_threads(min(2, torch.get_num_threads()))
    # target 0 is never reached, so every step runs; confirm=False, or the check would go on
    # to rerun with twice the steps to test its hypotheses (not the same work as the loop)
    opts = OverfitOptions(max_steps=args.steps, target_loss=0.0, confirm=False)
    # The plan (data generation, the fit check) is built once, outside the timing: both
    # sides then train the same fresh model on the same 16 samples for the same steps.
    [job] = build(Sources(), Settings(seed=0, input_size=48), ["overfit"], {"overfit": opts})
    assert job.inputs is not None
    target = job.inputs.target
    data = subset(target.data, opts.samples, opts.seed)
    plain, check = [], []
    for _ in range(args.repeats):  # interleaved, so drift hits both alike
        plain.append(plain_loop(target.make_model(), data.x, data.y, args.steps))
        start = time.perf_counter()
        result = job.run()
        check.append(time.perf_counter() - start)
        assert result.metrics["steps"] == args.steps, result.metrics
    p, c = statistics.median(plain), statistics.median(check)
    print(f"{args.steps} steps on {len(data)} samples, tiny landmark net at 48 px, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}:")
    print(f"  plain PyTorch loop : {p:.3f} s ({1000 * p / args.steps:.2f} ms/step)")
    print(f"  diag overfit check : {c:.3f} s ({1000 * c / args.steps:.2f} ms/step, "
          "all diagnostics included)")
    ratio = c / p
    print(f"  ratio check/plain  : {ratio:.3f}x (budget 1.10x)"
          + ("" if ratio >= 0.95 else "  <- below 0.95: a bug in the benchmark until explained"))


if __name__ == "__main__":
    main()
