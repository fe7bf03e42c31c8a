"""The plateau scan's cost: its stretch fits taken at once (``trend.suffix_fits``) against
one ``trend.fit`` a stretch, and its bend (``trend.change_point``: the normal equations for
every bend, least squares for the few near the best) against least squares for every bend
(``trend._least_bend``), interleaved in one run on the same curves; and a whole
``lr-schedule`` analysis (``analyse``) of 64 points (the watch's mid-run check) and 256
points. Both sides give the same numbers (tests/checks/test_lr_trend.py); this measures only
the time.

Run: python benchmarks/bench_scan.py [--repeats 20]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def curves(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    t = np.arange(n)
    return {"falling": 2 * np.exp(-t / (n / 4)) + 0.3 + 0.05 * rng.standard_normal(n),
            "plateau": 2 * np.exp(-t / (n / 20)) + 0.3 + 0.02 * rng.standard_normal(n)}


def measure(label: str, x: np.ndarray, repeats: int) -> None:
    from diag.checks.lr.check import analyse
    from diag.checks.lr.detect import smooth_robust
    from diag.checks.lr.trend import (
        SMALL_SAMPLE,
        _least_bend,
        change_point,
        fit,
        horizon_of,
        suffix_fits,
    )

    n = len(x)
    horizon = horizon_of(n)
    last = n - max(5, int(np.ceil(0.1 * n)))
    starts = np.unique(np.linspace(0, last, min(last + 1, 64)).round().astype(int))
    y = smooth_robust(x, 5)
    t = np.arange(n, dtype=float)
    taus = np.unique(np.linspace(2, last, min(last - 1, 200)).round().astype(int))
    sides: dict[str, Callable[[], Any]] = {
        "fits, one at a time": lambda: [fit(x[c:], horizon, SMALL_SAMPLE) for c in starts],
        "fits at once": lambda: suffix_fits(x, starts, horizon, SMALL_SAMPLE),
        "bend, every one by least squares": lambda: _least_bend(t, y, taus),
        "bend (change_point)": lambda: change_point(x, 0, last),
        "analyse": lambda: analyse(x.tolist(), list(range(n)), "step", [1e-3] * n, None,
                                   metric="loss", kind="train"),
    }
    times: dict[str, list[float]] = {k: [] for k in sides}
    for f in sides.values():
        f()  # warm-up
    for _ in range(repeats):
        for name, f in sides.items():
            start = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - start)
    shown = ", ".join(f"{k} {statistics.median(v) * 1e3:.2f} ms" for k, v in times.items())
    print(f"{label}: {shown} (median of {repeats}, interleaved)")


def main() -> None:
    repeats = int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 20
    for n in (64, 256):
        for kind, x in curves(n).items():
            measure(f"{n} points, {kind}", x, repeats)


if __name__ == "__main__":
    main()
