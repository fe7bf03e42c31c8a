"""Benchmark the leak census: the default training loop with a census after every
iteration against the same loop uninstrumented, side by side in one run.

Run: python benchmarks/bench_leaks.py [--iterations 30] [--repeats 3]
Prints the ratio (budget 1.25x) and how many iterations a planted leak needs to be seen.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from diag import checks
    from diag.checks.leaks.census import TensorCensus
    from diag.checks.leaks.check import training_step_factory
    from diag.inputs.target import build_target
    from diag.run.plan import DEFAULT_SAMPLES

    torch.set_num_threads(min(2, torch.get_num_threads()))
    target = build_target(input_size=48, samples=DEFAULT_SAMPLES)
    factory = training_step_factory(target)

    def plain() -> float:
        step = factory()
        start = time.perf_counter()
        for _ in range(args.iterations):
            step()
        return time.perf_counter() - start

    def instrumented() -> float:
        step = factory()
        census = TensorCensus()
        census.scan_baseline()  # once per run, included
        start = time.perf_counter()
        for i in range(args.iterations):
            census.iteration = i
            with census:
                step()
            census.take()
        return time.perf_counter() - start

    plain(), instrumented()  # warm caches
    p_times, i_times = [], []
    for _ in range(args.repeats):
        p_times.append(plain())
        i_times.append(instrumented())
    p, i = statistics.median(p_times), statistics.median(i_times)
    print(f"default loop (tiny landmark net, 48 px, batch 12), {args.iterations} iterations, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}:")
    print(f"  uninstrumented : {p:.3f} s ({1000 * p / args.iterations:.2f} ms/iter)")
    print(f"  census on      : {i:.3f} s ({1000 * i / args.iterations:.2f} ms/iter)")
    print(f"  ratio          : {i / p:.3f}x (budget 1.25x)")

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import leaky

    for n in range(4, 11):
        r = checks.leaks(leaky.list_of_losses, iterations=5 + n, warmup=5)
        if r.status.value == "fail":
            print(f"  a leak of one tensor/iter is reported after {n} iterations past warm-up "
                  "(budget 10)")
            break
    else:
        print("  a leak of one tensor/iter was NOT reported within 10 iterations")
    start = time.perf_counter()
    r = checks.leaks()
    print(f"  full `leaks` check on the default loop: {time.perf_counter() - start:.2f} s, "
          f"status {r.status.value}")


if __name__ == "__main__":
    main()
