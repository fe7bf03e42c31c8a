"""Progress as a statistical question (numpy only).

A stretch of a loss curve is summarised by a robust straight line: the Theil-Sen slope (the
median of all pairwise slopes), with a standard error from the residuals' robust scale
(1.4826 x their median absolute deviation) and the stretch's length. Its *pace* is the fall
that slope gives over a tenth of the whole run (at least 5 points: ``horizon``), as a
fraction of the level (the stretch's median):

- **improving**: the fall is significantly above zero (one-sided test, level ``ALPHA``)
  and its pace is at least ``PACE`` (1 % of the level per tenth of the run);
- **flat** (a plateau): the fall is not significantly above zero, and it is small in
  practice: even the optimistic end of its one-sided 95 % bound is under ``PACE``;
- **slow**: significant but under ``PACE`` (a slow, steady fall: no plateau, no "lower the
  LR"), or **unsure**: a pace of ``PACE`` or more that the noise cannot confirm; the report
  says so.

Curves longer than ``MAX_POINTS`` are judged on bucket means (the same line, less noise per
point, the same standard error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np

ALPHA = 0.05
"""One-sided significance level of every trend test."""
FAMILYWISE = True
"""The plateau scan's "still improving somewhere" is tested at ALPHA for all its candidates
together (Bonferroni); False: each candidate at ALPHA alone, the rule before
(benchmarks/bench_plateau.py compares the two)."""
PACE = 0.01
"""Practical size: under 1 % of the level per tenth of the run is no meaningful progress."""
MAX_POINTS = 256
CANDIDATES = 64
"""Plateau onsets tried: every point of a short curve, else this many evenly spaced (the
change point then places the onset between them)."""
"""Theil-Sen is quadratic in the points: longer stretches are judged on bucket means."""
_Z = 1.6448536269514722  # the standard normal's 95th percentile (ALPHA = 0.05, one-sided)


def median(a: np.ndarray) -> float:
    """np.median of a finite 1-D array, without its per-call overhead (the plateau scan
    takes thousands of medians of short arrays)."""
    n = a.size
    k = n // 2
    if n < 3:
        return float(a[0] if n == 1 else (a[0] + a[1]) / 2)
    # two ranks even for an odd size: numpy 2's partition with a single rank runs 1.5-5x
    # slower here (32,641 slopes: 350 us against 75-245)
    p = np.partition(a, (k - 1, k))
    return float(p[k] if n % 2 else (p[k - 1] + p[k]) / 2)


@lru_cache(maxsize=1024)
def t_quantile(dof: int, z: float = _Z) -> float:
    """Student's t 95th percentile (one-sided) for ``dof`` degrees of freedom, by the
    Cornish-Fisher expansion around the normal's (within 1 % from dof 3 on); ``z``: the
    normal's quantile of another level (the expansion is rougher there for a few dof)."""
    if dof <= 0:
        return math.inf
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    return z + g1 / dof + g2 / dof ** 2 + g3 / dof ** 3


@dataclass(frozen=True)
class Trend:
    """A robust line through one stretch of a curve (positions in points of the curve)."""

    slope: float
    """Change per point (negative: falling)."""
    se: float
    """Standard error of the slope."""
    points: int
    """Points in the stretch (before any bucketing)."""
    level: float
    """The stretch's median, the scale of "practical"."""
    horizon: int
    """Points over which the pace is projected (a tenth of the whole run, at least 5)."""
    t: float
    """The one-sided critical value used (Student's t for the fit's degrees of freedom)."""

    @property
    def pace(self) -> float:
        """Projected fall over ``horizon`` points, as a fraction of the level."""
        return -self.slope * self.horizon / self.scale

    @property
    def pace_se(self) -> float:
        return self.se * self.horizon / self.scale

    @property
    def scale(self) -> float:
        return max(abs(self.level), 1e-12)

    @property
    def significant(self) -> bool:
        """The fall is significantly above zero (one-sided)."""
        return self.pace - self.t * self.pace_se > 0

    @property
    def improving(self) -> bool:
        return self.significant and self.pace >= PACE

    def t_at(self, z: float) -> float:
        """The one-sided critical value at another level, given by its normal quantile ``z``
        (the fit's degrees of freedom: its points, bucketed to at most MAX_POINTS, less 2)."""
        return t_quantile(min(self.points, MAX_POINTS) - 2, z)

    def improving_at(self, z: float) -> bool:
        """``improving`` at another one-sided level, given by its normal quantile ``z``."""
        return self.pace >= PACE and self.pace - self.t_at(z) * self.pace_se > 0

    @property
    def flat(self) -> bool:
        return not self.significant and self.pace + self.t * self.pace_se < PACE

    @property
    def verdict(self) -> str:
        if self.improving:
            return "improving"
        if self.flat:
            return "flat"
        return "slow" if self.significant else "unsure"


def _bucketed(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions, values), at most MAX_POINTS of them: bucket centres and means."""
    n = len(x)
    t = np.arange(n, dtype=float)
    if n <= MAX_POINTS:
        return t, x
    edges = np.linspace(0, n, MAX_POINTS + 1).astype(int)
    sums = np.add.reduceat(x, edges[:-1])
    counts = np.diff(edges)
    centres = (edges[:-1] + edges[1:] - 1) / 2
    return centres, sums / counts


@lru_cache(maxsize=MAX_POINTS + 1)
def _pairs(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i < j) of m points: the same few lengths recur across a curve's fits."""
    i, j = np.triu_indices(m, k=1)
    i.flags.writeable = False
    j.flags.writeable = False
    return i, j


@lru_cache(maxsize=MAX_POINTS + 1)
def _spread(m: int) -> float:
    """The sum of squared deviations of the positions 0..m-1 (an unbucketed stretch's),
    computed as for any positions: the same number every fit of that length."""
    t = np.arange(m, dtype=float)
    return float(np.sum((t - t.mean()) ** 2))


SMALL_SAMPLE = True
"""The plateau scan's fits correct their robust scale for its small-sample bias (False: not,
the rule before; benchmarks/bench_plateau.py compares the two). Only there: the scan takes
the earliest "flat" stretch among up to 64, so a short stretch whose scale came out small by
chance is the one chosen (a single fit, such as the overfitting rule's, is not so picked)."""
_MAD_BIAS = {4: 1.839, 5: 1.738, 6: 1.552, 7: 1.36, 8: 1.316, 9: 1.241, 10: 1.221,
             11: 1.184, 12: 1.166, 13: 1.149, 14: 1.137, 15: 1.123, 16: 1.122, 17: 1.105,
             18: 1.102, 19: 1.094, 20: 1.088}
"""1 / E[1.4826 MAD] of the residuals of this module's Theil-Sen line through m points of
unit Gaussian noise (40,000 draws each; ``python benchmarks/mad_factors.py``); above 20
points m / (m - 1.6) (within 1 % of the draws to 60 points)."""


def _mad_small_sample(m: int) -> float:
    """The factor that makes the residual MAD of an m-point fit unbiased for Gaussian noise:
    biased low for few points (at 5 points its mean is 0.58 of the noise's SD), which made
    a short stretch look "flat" or "improving" by chance. Under 4 points: none (the t
    quantile, for 1 degree of freedom, is the guard there)."""
    if m < 4:
        return 1.0
    return _MAD_BIAS.get(m) or m / (m - 1.6)


def horizon_of(run: int) -> int:
    """The pace's horizon for a run of ``run`` points: a tenth of it, at least 5 points."""
    return max(5, run // 10)


def fit(values: np.ndarray, horizon: int | None = None, unbiased: bool = False) -> Trend:
    """The Theil-Sen line of ``values`` (finite numbers) and its uncertainty; ``horizon``
    defaults to ``horizon_of(len(values))``; ``unbiased``: the noise's scale corrected for
    its small-sample bias (``_mad_small_sample``)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    horizon = max(int(horizon or horizon_of(n)), 1)
    level = median(x) if n else 0.0
    if n < 3:
        return Trend(0.0, math.inf, n, level, horizon, math.inf)
    t, y = _bucketed(x)
    slope = median(_pair_slopes(t, y))
    resid = y - slope * t
    resid = resid - median(resid)
    spread = _spread(len(t)) if len(t) == n else float(np.sum((t - t.mean()) ** 2))
    return _trend(slope, median(np.abs(resid)), n, len(t), level, horizon, unbiased, spread)


def _pair_slopes(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The slope of every pair of points (i < j, ordered by i: ``_pairs``)."""
    i, j = _pairs(len(t))
    # in place: each temporary of up to 32,640 pairs is a fresh allocation (page faults)
    slopes: np.ndarray = y[j]
    slopes -= y[i]
    gaps = t[j]
    gaps -= t[i]
    slopes /= gaps
    return slopes


def _trend(slope: float, mad: float, points: int, fitted: int, level: float, horizon: int,
           unbiased: bool, spread: float) -> Trend:
    """The Trend of a Theil-Sen line through ``fitted`` positions (``points`` before any
    bucketing) whose residuals' median absolute deviation is ``mad``."""
    sigma = 1.4826 * mad * (_mad_small_sample(fitted) if unbiased else 1.0)
    se = sigma / math.sqrt(spread) if spread > 0 else math.inf
    return Trend(slope, se, points, level, horizon, t_quantile(fitted - 2))


def suffix_fits(values: np.ndarray, starts: np.ndarray, horizon: int | None = None,
                unbiased: bool = False) -> list[Trend]:
    """``[fit(values[c:], horizon, unbiased) for c in starts]``, the same numbers to the last
    bit, in a few array operations instead of a fit each (the plateau scan's 64 fits were
    most of a watched run's mid-run curve check). The stretches are suffixes of one curve,
    so their pairwise slopes are the same numbers, taken once: a stretch's pairs are a tail
    of them. Its residuals' and values' medians come from row sorts of one matrix, the
    points before each stretch set aside. A curve that is bucketed (over MAX_POINTS), has a
    non-finite value or a stretch under 3 points is fitted one stretch at a time."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    c = np.asarray(starts, dtype=int)
    if (n > MAX_POINTS or not c.size or n - int(c.max()) < 3
            or not np.isfinite(x).all()):
        return [fit(x[int(k):], horizon, unbiased) for k in c]
    t = np.arange(n, dtype=float)
    slopes = _pair_slopes(t, x)
    m = n - c  # points of each stretch
    # the pairs (i < j, ordered by i) inside the stretch from c are those from i = c on: a
    # tail of the same array
    tail = m * (m - 1) // 2
    slope = np.array([median(slopes[len(slopes) - p:]) for p in tail.tolist()])
    rows = np.arange(len(c))
    # each stretch's own positions 0..m-1 (as fit's), the points before it set aside (+inf
    # sorts last, and |inf - median| stays inf)
    local = t[None, :] - c[:, None]
    outside = local < 0
    resid = x[None, :] - slope[:, None] * local
    resid[outside] = np.inf
    resid.sort(axis=1)
    resid_med = _sorted_median(resid, m, rows)
    resid = np.abs(resid - resid_med[:, None])
    resid.sort(axis=1)
    mad = _sorted_median(resid, m, rows)
    level_rows = np.where(outside, np.inf, x[None, :])
    level_rows.sort(axis=1)
    level = _sorted_median(level_rows, m, rows)
    return [_trend(float(slope[k]), float(mad[k]), size, size, float(level[k]),
                   max(int(horizon or horizon_of(size)), 1), unbiased, _spread(size))
            for k, size in enumerate(m.tolist())]


def _sorted_median(rows: np.ndarray, counts: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Per row of ascending values, the median (as ``median``) of its first ``counts``."""
    k = counts // 2
    upper = rows[index, k]
    lower = rows[index, np.maximum(k - 1, 0)]
    out: np.ndarray = np.where(counts % 2 == 1, upper, (lower + upper) / 2)
    return out


def _near_best(t: np.ndarray, y: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """The bends among ``taus`` whose two-piece line's squared error is within a millionth
    of the least, found for all bends at once by the normal equations; ``change_point``
    then takes its least-squares answer for just these. The normal equations' rounding is
    far under a millionth at these sizes (to 256 points, 200 bends): on 3,000 generated
    curves, and in the tests, the bend is the one least squares finds over every bend. All
    of them when the equations are singular or give a non-finite error."""
    if len(taus) <= 2:
        return taus
    shifted = t[None, :] - taus[:, None].astype(float)
    a = np.minimum(shifted, 0)
    b = np.maximum(shifted, 0)
    ones = np.ones_like(a)
    design = np.stack([ones, a, b], axis=2)  # (bends, points, 3)
    gram = np.einsum("kpi,kpj->kij", design, design)
    rhs = np.einsum("kpi,p->ki", design, y)
    try:
        beta = np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        return taus
    sse = np.sum((np.einsum("kpi,ki->kp", design, beta) - y[None, :]) ** 2, axis=1)
    if not np.isfinite(sse).all():
        return taus
    least = float(sse.min())
    # (plus rounding's own size: a line through the points exactly is 0 either way)
    near: np.ndarray = taus[sse <= least * (1 + 1e-6) + 1e-20 * float(np.dot(y, y))]
    return near


def _least_bend(t: np.ndarray, y: np.ndarray, taus: np.ndarray) -> int | None:
    """The first of ``taus`` whose two-piece line has the least squared error (least
    squares, full rank), or None."""
    best, best_sse = None, math.inf
    for tau in taus:
        design = np.stack([np.ones_like(t), np.minimum(t - tau, 0), np.maximum(t - tau, 0)], 1)
        _, sse, rank, _ = np.linalg.lstsq(design, y, rcond=None)
        err = float(sse[0]) if sse.size else float(
            np.sum((design @ np.linalg.lstsq(design, y, rcond=None)[0] - y) ** 2))
        if rank == 3 and err < best_sse:
            best, best_sse = int(tau), err
    return best


def plateau_onset(values: np.ndarray, horizon: int | None = None, min_points: int = 5
                  ) -> int | None:
    """Where the plateau at the end of ``values`` begins, or None.

    Every stretch from a candidate start to the end is fitted. The plateau starts at the
    earliest candidate whose stretch is flat, later than the last candidate whose stretch
    is still improving (the final stretch, a tenth of the curve and at least
    ``min_points``, among them). A "slow" stretch does not hold the onset back: among the
    overlapping tests at the 5 % level, a few are significant by chance, and a slow but
    significant fall is under the practical size anyway. For the same reason "still
    improving" is tested for the candidates as a family (5 % in all, ``FAMILYWISE``): at 5 %
    each, a chance fall of one short stretch near the end hid plateaus of half the run.
    Candidates: every point up to ``CANDIDATES``, else that many evenly spaced.
    """
    x = np.asarray(values, dtype=float)
    n = len(x)
    shortest = max(min_points, math.ceil(0.1 * n))
    if n < shortest or n < 3:
        return None
    horizon = horizon or horizon_of(n)
    last = n - shortest
    candidates = np.unique(np.linspace(0, last, min(last + 1, CANDIDATES)).round().astype(int))
    fits = dict(zip((int(c) for c in candidates), suffix_fits(x, candidates, horizon, SMALL_SAMPLE),
                    strict=True))
    verdicts = {c: f.verdict for c, f in fits.items()}
    # "still improving somewhere" is asked of every candidate at once: at 5 % each, a few of
    # the short stretches near the end fall by chance and would hold off a plateau of half
    # the run. That question is tested at 5 % for the whole family (Bonferroni).
    z_family = NormalDist().inv_cdf(1 - ALPHA / (len(fits) if FAMILYWISE else 1))
    improving = [c for c, f in fits.items() if f.improving_at(z_family)]
    after = max(improving) if improving else -1
    flat = [c for c, v in verdicts.items() if v == "flat" and c > after]
    if not flat:
        return None
    earliest = min(flat)
    # The robust line tolerates a few falling points at the stretch's start, so the first
    # flat stretch may begin before the bend: the onset is the change point of a two-piece
    # line fitted from the last improving stretch on, when the rest from it is flat too.
    bend = change_point(x, max(after, 0), last)
    if bend is not None and bend > earliest and fit(x[bend:], horizon, SMALL_SAMPLE).flat:
        return bend
    return earliest


def change_point(values: np.ndarray, lo: int, hi: int) -> int | None:
    """The bend of the continuous two-piece line that fits ``values[lo:]`` best (least
    squares on a 5-point moving median, so single spikes do not pull it), searched in
    ``[lo + 2, hi]``; None when there is no room."""
    from diag.checks.lr.detect import smooth_robust

    x = np.asarray(values, dtype=float)[lo:]
    n = len(x)
    if hi - lo < 3 or n < 6:
        return None
    y = smooth_robust(x, 5)
    t = np.arange(n, dtype=float)
    if n > MAX_POINTS:
        step = n / MAX_POINTS
        keep = np.unique((np.arange(MAX_POINTS) * step).astype(int))
        t, y = t[keep], y[keep]
    taus = np.unique(np.linspace(2, hi - lo, min(hi - lo - 1, 200)).round().astype(int))
    best = _least_bend(t, y, _near_best(t, y, taus))
    if best is None:  # the few were rank-deficient to least squares: every bend, as before
        best = _least_bend(t, y, taus)
    return None if best is None else lo + best
