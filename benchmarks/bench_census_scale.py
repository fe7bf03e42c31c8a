"""The leak census's overhead as the model grows: the same Adam steps on ResNets of about
0.1 M, 1 M, 10 M and 25 M parameters (bench_scale.py's models, 32 images of 32x32), with and
without the census the leaks check takes every iteration (its cheap phase one), interleaved
(A B A B ...), median of 3 rounds, in one process.

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
        plain, counted = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(steps):
                step()
            plain.append(time.perf_counter() - start)
            census = TensorCensus(attribute=False, scan=True)
            census.begin()
            start = time.perf_counter()
            for _ in range(steps):
                with census:
                    step()
                census.take()
            counted.append(time.perf_counter() - start)
            census.end()
        a, b = statistics.median(plain), statistics.median(counted)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{size:5} ({params:5.1f} M params): plain {a / steps:.3f} s/step, with the "
              f"census {b / steps:.3f} s/step: {b / a:.3f}x (target 1.10x)", flush=True)


if __name__ == "__main__":
    main()
