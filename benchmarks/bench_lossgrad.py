"""Benchmark loss-grad: all properties for one loss on (8, 10) inputs (budget 2 s on 2 cores,
torch import excluded).

Run: python benchmarks/bench_lossgrad.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch


def main() -> None:
    from diag import checks

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import losses

    torch.set_num_threads(min(2, torch.get_num_threads()))
    cases = [("cross_entropy", "index"), ("focal_safe", "index"), ("l1", "like"),
             ("hinge", "binary")]
    for name, kind in cases:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            checks.loss_grad(getattr(losses, name), target=kind, pred_shape=(8, 10),
                             reference=torch.nn.functional.l1_loss if name == "l1" else None)
            times.append(time.perf_counter() - start)
        print(f"{name:14} all properties on (8, 10): {statistics.median(times):.3f} s "
              "(budget 2 s)")


if __name__ == "__main__":
    main()
