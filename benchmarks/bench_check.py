"""Benchmark `diag check` on the defaults: wall time end to end (torch import included) and
per check, as the report records it (budget 60 s on 2 cores, goal 30 s).

Run: python benchmarks/bench_check.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "diag", "check", "--out", tmp, "--quiet"],
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
        doc = json.loads((Path(tmp) / "report.json").read_text())
    print(f"diag check on the defaults: {wall:.1f} s wall, exit {proc.returncode} "
          "(budget 60 s, goal 30 s)")
    for c in doc["checks"]:
        print(f"  {c['name']:12} {c['status']:5} {c['duration_s']:6.2f} s")
    rest = wall - sum(c["duration_s"] for c in doc["checks"])
    print(f"  {'other':12} {'':5} {rest:6.2f} s (imports, target, plots, files)")


if __name__ == "__main__":
    main()
