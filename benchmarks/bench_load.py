"""`diag overfit` on the defaults, quiet and beside CPU hogs, with torch's default thread
count (``--threads <cores>``, what diag did before it chose) and with diag's own choice.
Whole processes, the four runs interleaved round by round, median of the rounds.

Hogs: processes looping float32 matmuls on one thread each, as other CI jobs would.

Run: python benchmarks/bench_load.py [--rounds 3] [--hogs 2]
Prints the table and the targets; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_threads import hog  # noqa: E402  (the same hog process as the thread table's)


def run(args: list[str], out: str) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",
                                                            "MKL_NUM_THREADS")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "diag", "overfit", "--no-plots", "--format",
                           "json", "--out", out, *args], capture_output=True, text=True,
                          env=env)
    wall = time.perf_counter() - start
    try:
        metrics = json.loads(proc.stdout)["checks"][0]["metrics"]
        how = f"{metrics.get('threads')} ({metrics.get('threads_source')})"
    except (ValueError, KeyError, IndexError):
        how = f"exit {proc.returncode}"
    return wall, how


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hogs", type=int, default=2)
    args = parser.parse_args()
    from diag.run.threads import available_cores

    cores = available_cores()
    sides = {"torch default": ["--threads", str(cores)], "diag's choice": []}
    times: dict[tuple[str, str], list[float]] = {}
    chosen: dict[tuple[str, str], list[str]] = {}
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for load in ("quiet", "busy"):
                stop = ctx.Event()
                hogs = [ctx.Process(target=hog, args=(stop,)) for _ in range(args.hogs)]
                if load == "busy":
                    for h in hogs:
                        h.start()
                    time.sleep(2.0)
                try:
                    for side, extra in sides.items():
                        wall, how = run(extra, tmp)
                        times.setdefault((load, side), []).append(wall)
                        chosen.setdefault((load, side), []).append(how)
                finally:
                    stop.set()
                    for h in hogs:
                        if h.is_alive():
                            h.join(timeout=30)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"diag overfit (defaults), {cores} cores, {args.hogs} hogs when busy, median of "
          f"{args.rounds} interleaved rounds (whole processes, torch import included)")
    for (load, side), t in med.items():
        print(f"  {load:5} {side:14} {t:7.2f} s  threads: {'; '.join(chosen[(load, side)])}")
    default, ours = "torch default", "diag's choice"
    print(f"busy/quiet with diag's choice: {med[('busy', ours)] / med[('quiet', ours)]:.2f}x "
          "(target <= 3x)")
    print(f"quiet, diag's choice / torch default: "
          f"{med[('quiet', ours)] / med[('quiet', default)]:.3f}x (target <= 1.10x)")
    print(f"busy, torch default / diag's choice: "
          f"{med[('busy', default)] / med[('busy', ours)]:.2f}x")


if __name__ == "__main__":
    main()
