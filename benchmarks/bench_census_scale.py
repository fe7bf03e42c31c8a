"""The leak census's overhead as the model grows: the same Adam steps on ResNets of about
0.1 M, 1 M, 10 M and 25 M parameters (bench_scale.py's models, 32 images of 32x32), with and
without the census the leaks check takes every iteration (its cheap phase one), one step
each way in turn (A B A B ...), medians, in one process. Beside the whole-step ratio, the
census's own call (``take()``, the gc scan that is all phase one does per step) is timed
inside the counted steps: its ratio to the plain step does not drown in the steps' noise.

Run: python benchmarks/bench_census_scale.py [--sizes 0.1M,1M,10M,25M]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import WIDTHS  # noqa: E402

STEPS = {"0.1M": 30, "1M": 30, "10M": 10, "25M": 6}
"""Steps per round, each way (3 rounds by default)."""


def main() -> None:
    from diag.checks.leaks.census import TensorCensus

    from architectures import ResNet

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="0.1M,1M,10M,25M")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 3, 32, 32, generator=g), torch.randint(0, 10, (32,), generator=g)
    for size in args.sizes.split(","):
        torch.manual_seed(0)
        model = ResNet(classes=10, width=WIDTHS[size])
        opt = torch.optim.Adam(model.parameters(), 1e-3)

        def step(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt) -> None:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

        step()
        steps = STEPS[size]
        plain: list[float] = []
        counted: list[float] = []
        own: list[float] = []
        census = TensorCensus(attribute=False, scan=True)
        census.begin()
        try:
            for _ in range(args.rounds * steps):  # one step each way, alternating
                start = time.perf_counter()
                step()
                plain.append(time.perf_counter() - start)
                start = time.perf_counter()
                with census:
                    step()
                taken = time.perf_counter()
                census.take()
                end = time.perf_counter()
                counted.append(end - start)
                own.append(end - taken)
        finally:
            census.end()
        a, b, c = (statistics.median(v) for v in (plain, counted, own))
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{size:5} ({params:5.1f} M params, {len(plain)} steps each way): plain "
              f"{a:.3f} s/step, with the census {b:.3f} s/step: {b / a:.3f}x; the census's "
              f"own take() {1000 * c:.2f} ms/step: (plain + take) / plain = {(a + c) / a:.3f}x "
              "(target 1.10x)", flush=True)

if __name__ == "__main__":
    main()
