"""Benchmark whole `diag` processes, as a user meets them: `--help`, `lr-schedule --history`
on a 100,000-row CSV, `overfit`, `check`, `speed`, `data` and `init` on the defaults. Each
command runs in a fresh process, the commands interleaved round by round; the median of the
rounds is printed with its target.

Run: python benchmarks/bench_startup.py [--repeats 3] [--only help]
Prints the figures; asserts nothing (speed is never asserted in tests).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_history(path: Path, rows: int = 100_000) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    i = np.arange(rows)
    loss = np.exp(-i / (rows / 3)) * (1 + 0.05 * rng.standard_normal(rows)) + 0.1
    with open(path, "w") as fh:
        fh.write("step,loss,lr\n")
        np.savetxt(fh, np.column_stack([i, loss, np.full(rows, 1e-3)]),
                   fmt=["%d", "%.6f", "%g"], delimiter=",")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="only the commands whose name contains TEXT (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        history = Path(tmp) / "history.csv"
        write_history(history)
        out = str(Path(tmp) / "out")
        commands = {
            "--help": (["--help"], 0.3),
            "lr-schedule --history (100k rows)": (
                ["lr-schedule", "--history", str(history), "--out", out, "--quiet"], 1.0),
            "lr-schedule --history (100k rows) --no-plots": (
                ["lr-schedule", "--history", str(history), "--out", out, "--quiet",
                 "--no-plots"], 1.0),
            "overfit (defaults)": (["overfit", "--out", out, "--quiet"], 10.0),
            "check (defaults)": (["check", "--out", out, "--quiet"], 15.0),
            "speed (defaults, full sweep)": (["speed", "--out", out, "--quiet"], 20.0),
            "data (defaults)": (["data", "--out", out, "--quiet"], 5.0),
            "init (defaults)": (["init", "--out", out, "--quiet"], 5.0),
        }
        if args.only:
            commands = {k: v for k, v in commands.items() if any(t in k for t in args.only)}
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, (argv, _target) in commands.items():
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "diag", *argv], capture_output=True,
                               check=False)
                times[name].append(time.perf_counter() - start)
    print(f"whole processes, median of {args.repeats} interleaved rounds:")
    for name, (_argv, target) in commands.items():
        t = statistics.median(times[name])
        print(f"  {name:45} {t:6.2f} s (target < {target:g} s; min {min(times[name]):.2f}, "
              f"max {max(times[name]):.2f})"
              + ("" if t < target else "  <- over target"))


if __name__ == "__main__":
    main()
