"""Pure detectors over number sequences (no torch): tested with literal sequences."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def slope(values: Sequence[float]) -> float:
    """Least-squares slope per index step (0 for fewer than two points)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


@dataclass(frozen=True)
class Growth:
    """Whether a quantity keeps growing after warm-up, and how fast."""

    growing: bool
    per_iter: float
    """Least-squares slope over the post-warm-up part, units per iteration."""
    total: float
    """Last value minus the value at the end of warm-up."""


def persistent_growth(values: Sequence[float], warmup: int = 0, tail: int = 3) -> Growth:
    """A trend that keeps going to the end of the run, not a one-off step.

    Growing when, after ``warmup`` points: the series ends higher than it started, it grew
    within the last ``max(tail, n/4)`` steps, it went up at least twice, and more often up
    than down. Lazily created state (one step up, then flat), a buffer that fills and stays
    full, and noise around a level are not growth.
    """
    post = [float(v) for v in values[warmup:] if v is not None and math.isfinite(float(v))]
    n = len(post)
    if n < 4:
        return Growth(False, 0.0, 0.0)
    diffs = [b - a for a, b in zip(post[:-1], post[1:], strict=True)]
    ups = sum(d > 0 for d in diffs)
    downs = sum(d < 0 for d in diffs)
    k = min(max(tail, n // 4), n - 1)
    total = post[-1] - post[0]
    growing = total > 0 and post[-1] > post[-1 - k] and ups >= 2 and ups > downs
    return Growth(growing, slope(post), total)
