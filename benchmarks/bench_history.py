"""Reading logs: TensorBoard event files of 1,000,000 scalar points (written by torch's
SummaryWriter, 4 tags), read by `diag.inputs.history.load_log` and by `lr-schedule
--history` as a whole process; and the 100,000-row CSV for comparison. Median of the
repeats; the files are written once (SummaryWriter takes about a minute for a million).

Run: python benchmarks/bench_history.py [--points 1000000] [--repeats 3]
Prints the figures and the targets (event files: < 3 s; CSV: < 1 s); asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_events(folder: Path, points: int) -> float:
    from torch.utils.tensorboard import SummaryWriter

    start = time.perf_counter()
    tags = ("train/loss", "val/loss", "lr", "grad_norm")
    with SummaryWriter(log_dir=str(folder)) as w:
        for step in range(points // len(tags)):
            for k, tag in enumerate(tags):
                w.add_scalar(tag, 1.0 / (1 + step / 1000) + 0.01 * k, step)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from bench_startup import write_history

    from diag.inputs.history import load_log

    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp) / "runs" / "big"
        wrote = write_events(events, args.points)
        csv = Path(tmp) / "history.csv"
        write_history(csv)
        size = sum(p.stat().st_size for p in events.rglob("*"))
        print(f"event file: {args.points:,} points, {size / 1e6:.1f} MB, written by "
              f"SummaryWriter in {wrote:.1f} s")
        inproc, proc_ev, proc_csv = [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            log = load_log(str(events))
            inproc.append(time.perf_counter() - t0)
            assert sum(len(x) for x, _ in log.series.values()) == args.points
            for argv, times in ((["--history", str(events)], proc_ev),
                                (["--history", str(csv)], proc_csv)):
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "diag", "lr-schedule", *argv, "--out",
                                str(Path(tmp) / "out"), "--quiet", "--no-plots",
                                "--metric", "train/loss" if "runs" in argv[1] else "loss"],
                               capture_output=True, check=False)
                times.append(time.perf_counter() - t0)
        print(f"load_log on the event file (in process):        "
              f"{statistics.median(inproc):.2f} s (target < 3 s)")
        print(f"lr-schedule --history on it (whole process):     "
              f"{statistics.median(proc_ev):.2f} s")
        print(f"lr-schedule --history on 100k CSV rows (process): "
              f"{statistics.median(proc_csv):.2f} s (target < 1 s)")


if __name__ == "__main__":
    main()
