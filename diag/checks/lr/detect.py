"""Loss-curve detectors: plateau, oscillation, divergence, no learning (pure, numpy only).

Each takes a sequence of numbers (per epoch or per step, as the history counts) and gives
the index where the condition starts, or None. They are tuned to be robust to minibatch
noise: a noisy per-step curve that still trends down is neither a plateau nor an oscillation.
Also: a pure-Python replica of torch's ReduceLROnPlateau, so users see both side by side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FloatArray = np.ndarray


@dataclass(frozen=True)
class CurveParams:
    """Thresholds, named so tests and users can see them."""

    rel_tol: float = 0.01
    """A plateau improves by less than this fraction of its level over a window."""
    osc_ratio: float = 2.5
    """Up/down changes (lag 1) must exceed the lag-2 changes by this factor: an alternation,
    not noise (about 1) or a trend (about 0.5)."""
    osc_rel_amp: float = 0.03
    """...and its half peak-to-peak be at least this fraction of the loss level."""
    osc_alternation: float = 0.7
    """Fraction of consecutive changes that flip sign (up, down, up...); noise gives 2/3."""
    div_rel_rise: float = 0.2
    """Divergence: the smoothed loss ends this fraction above its minimum (or more)."""


def window(n: int) -> int:
    """Analysis window: a tenth of the curve, at least 5 points, at most 2,000."""
    return int(min(max(5, n // 10), 2000))


def smooth(x: FloatArray, w: int) -> FloatArray:
    """Centred moving mean (shrinking at the edges), O(n) with cumulative sums."""
    n = len(x)
    if n == 0:
        return x.astype(float)
    h = max(w // 2, 0)
    c = np.concatenate([[0.0], np.cumsum(x, dtype=float)])
    lo = np.clip(np.arange(n) - h, 0, n)
    hi = np.clip(np.arange(n) + h + 1, 0, n)
    out: FloatArray = (c[hi] - c[lo]) / (hi - lo)
    return out


def smooth_robust(x: FloatArray, w: int) -> FloatArray:
    """Centred moving median for curves up to 5,000 points (robust to up/down alternation
    and spikes), the moving mean beyond (O(n))."""
    n = len(x)
    if n > 5000 or w < 3:
        return smooth(x, w)
    h = max(w // 2, 1)
    padded = np.pad(x, h, mode="edge")
    from numpy.lib.stride_tricks import sliding_window_view

    # An even number of points: the median of an up/down alternation is its midpoint.
    out: FloatArray = np.median(sliding_window_view(padded, 2 * h), axis=1)[:n]
    return out


def noise_sigma(x: FloatArray) -> float:
    """Robust noise level per point: MAD of lag-2 differences (an up/down oscillation, which
    is signal, cancels in them; white noise does not)."""
    if len(x) < 4:
        return 0.0
    r = x - smooth(x, 4)  # detrended: a smooth decay has no noise
    d = r[2:] - r[:-2]
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2))


def _finite_prefix(values: Sequence[float]) -> tuple[FloatArray, int | None]:
    x = np.asarray(values, dtype=float)
    bad = np.flatnonzero(~np.isfinite(x))
    first_bad = int(bad[0]) if bad.size else None
    return (x if first_bad is None else x[:first_bad]), first_bad


def _tolerance(s: FloatArray, sigma: float, w: int, p: CurveParams) -> FloatArray:
    scale = max(float(np.max(np.abs(s))) if s.size else 0.0, 1e-12)
    floor = max(3 * sigma / math.sqrt(w), 1e-9 * scale)
    out: FloatArray = np.maximum(p.rel_tol * np.abs(s), floor)
    return out


def detect_no_learning(values: Sequence[float], params: CurveParams = CurveParams()
                       ) -> int | None:
    """0 when the curve never leaves its starting level (e.g. stuck at ln(C)), else None."""
    x, _ = _finite_prefix(values)
    if len(x) < 5:
        return None
    w = window(len(x))
    s = smooth(x, w)
    tol = _tolerance(s, noise_sigma(x), w, params)
    return 0 if s[0] - float(np.min(s)) < tol[0] else None


def detect_plateau(values: Sequence[float], params: CurveParams = CurveParams()) -> int | None:
    """First index after which the smoothed loss improves by less than ``rel_tol`` (and less
    than its noise) over the next window; the flat stretch must last a whole window."""
    x, _ = _finite_prefix(values)
    n = len(x)
    w = window(n)
    if n < 2 * w:
        return None
    s = smooth_robust(x, w)
    tol = _tolerance(s, noise_sigma(x), w, params)
    best_so_far = np.minimum.accumulate(s)
    # min over the next w points: a reversed running minimum over sliding windows
    ahead = np.array([s[i + 1 : i + 1 + w].min() for i in range(0, n - w)]) if n - w < 20000 \
        else _ahead_min_strided(s, w)
    improvement = best_so_far[: n - w] - ahead
    flat = improvement < tol[: n - w]
    if not flat.any():
        return None
    # the first index that starts a flat stretch lasting at least one window
    run = 0
    for i, f in enumerate(flat):
        run = run + 1 if f else 0
        if run >= w // 2 + 1:
            return i - run + 1
    last = int(np.flatnonzero(flat)[0])
    return last if flat[last:].all() and n - last >= 2 * w else None


def _ahead_min_strided(s: FloatArray, w: int) -> FloatArray:
    from numpy.lib.stride_tricks import sliding_window_view

    out: FloatArray = sliding_window_view(s[1:], w).min(axis=1)[: len(s) - w]
    return out


def detect_divergence(values: Sequence[float], params: CurveParams = CurveParams()
                      ) -> int | None:
    """NaN/Inf (where the rise towards it began, or the first bad value), or a sustained
    increase after the minimum that lasts at least a window and ends near its top."""
    x, first_bad = _finite_prefix(values)
    n = len(x)
    if first_bad is not None:
        if n >= 10:
            start = _rise_start(x, params)
            if start is not None:
                return start
        return first_bad
    if n < 10:
        return None
    return _rise_start(x, params)


def _rise_start(x: FloatArray, params: CurveParams) -> int | None:
    n = len(x)
    w = window(n)
    s = smooth(x, max(3, w // 2))
    m = int(np.argmin(s))
    if n - 1 - m < max(3, w // 2):
        return None
    rise = float(s[-1] - s[m])
    level = max(abs(float(s[m])), float(s[0] - s[m]), 1e-12)
    tail = s[m:]
    ups = float(np.mean(np.diff(tail) > 0))
    near_top = s[-1] >= tail.max() - 0.25 * (tail.max() - s[m])
    if rise > params.div_rel_rise * level and ups >= 0.6 and near_top:
        return m
    # A blow-up that settles: after its best, the loss ends well above where it started
    # (most later steps may go down, so the steady-rise test above misses it).
    k = max(3, w // 2)
    start, final = float(np.median(x[:k])), float(np.median(x[-k:]))
    if final > start + params.div_rel_rise * max(abs(start), 1e-12) and start > s[m]:
        jump = np.flatnonzero(s[m:] > s[m] + 0.5 * (final - float(s[m])))
        return m + int(jump[0]) - 1 if jump.size and jump[0] > 0 else m
    return None


def detect_oscillation(values: Sequence[float], params: CurveParams = CurveParams()
                       ) -> int | None:
    """First window where the loss flips up and down with an amplitude well above its noise,
    at least ``osc_rel_amp`` of its level, while making no net progress.

    "Well above its noise" is scale-free: for an up/down alternation the lag-1 changes are
    large and the lag-2 changes small; for noise both are alike, for a trend lag-2 is larger.
    """
    x, _ = _finite_prefix(values)
    n = len(x)
    w = max(window(n), 8)  # enough changes in a window to tell alternation from chance
    if n < 2 * w:
        return None
    s = smooth(x, w)
    stride = 1 if n <= 2000 else max(1, w // 4)
    last = n - w
    cache: dict[int, float | None] = {}

    def lag1_if_oscillating(i: int) -> float | None:
        if i not in cache:
            seg = x[i : i + w]
            d1 = np.diff(seg)
            lag1 = float(np.median(np.abs(d1)))
            lag2 = float(np.median(np.abs(seg[2:] - seg[:-2])))
            nz = d1[d1 != 0]
            level = abs(float(np.median(seg)))
            ok = False
            if nz.size >= 3:
                alternation = float(np.mean(np.sign(nz[1:]) != np.sign(nz[:-1])))
                progress = float(s[i] - s[i + w - 1])
                ok = (alternation >= params.osc_alternation
                      and lag1 >= params.osc_ratio * max(lag2, 1e-12 * max(level, 1e-12))
                      and lag1 / 2 >= params.osc_rel_amp * level
                      and progress < params.rel_tol * level + lag1 / 2)
            cache[i] = lag1 if ok else None
        return cache[i]

    for i in range(0, last + 1, stride):
        lag1 = lag1_if_oscillating(i)
        # it must persist: the window half a window later oscillates too (chance
        # alternation in noise does not last)
        if lag1 is None or lag1_if_oscillating(min(i + w // 2, last)) is None:
            continue
        d1 = np.diff(x[i : i + w])
        signs = np.sign(d1)
        # the first change from which signs flip every time to the window's end...
        flips = signs[1:] != signs[:-1]
        for j in range(len(flips) - 1):
            if flips[j:].all() and abs(d1[j]) >= 0.25 * lag1:
                return int(i + j + 1)  # ...and the value it leads to
        big = np.flatnonzero(np.abs(d1) >= 0.5 * lag1)
        return int(i + big[0] + 1) if big.size else i
    return None


def reduce_on_plateau_steps(values: Sequence[float], lr: float = 1e-3, factor: float = 0.1,
                            patience: int = 10, threshold: float = 1e-4,
                            cooldown: int = 0, min_lr: float = 0.0, eps: float = 1e-8
                            ) -> list[int]:
    """Indices where torch.optim.lr_scheduler.ReduceLROnPlateau (mode='min',
    threshold_mode='rel', the defaults) would cut the learning rate on this curve."""
    best = math.inf
    bad = 0
    cool = 0
    cuts: list[int] = []
    for i, v in enumerate(values):
        current = float(v)
        if current < best * (1.0 - threshold):
            best = current
            bad = 0
        else:
            bad += 1
        if cool > 0:
            cool -= 1
            bad = 0
        if bad > patience:
            new_lr = max(lr * factor, min_lr)
            if lr - new_lr > eps:
                lr = new_lr
                cuts.append(i)
            cool = cooldown
            bad = 0
    return cuts


@dataclass(frozen=True)
class CurveDiagnosis:
    """Every detector on one curve."""

    plateau_start: int | None
    oscillation_start: int | None
    divergence_start: int | None
    no_learning: bool
    nonfinite_at: int | None
    window: int


def diagnose(values: Sequence[float], params: CurveParams = CurveParams(),
             initial: float | None = None) -> CurveDiagnosis:
    """Every detector on one curve. ``initial`` is the loss before the first step, when
    known: a curve whose best value is still well above it diverged from the start."""
    x, first_bad = _finite_prefix(values)
    divergence = detect_divergence(values, params)
    if (divergence is None and initial is not None and math.isfinite(initial) and len(x)
            and float(np.min(x)) > initial + params.div_rel_rise * max(abs(initial), 1e-12)):
        divergence = 0
    return CurveDiagnosis(
        plateau_start=detect_plateau(values, params),
        oscillation_start=detect_oscillation(values, params),
        divergence_start=divergence,
        no_learning=detect_no_learning(values, params) == 0,
        nonfinite_at=first_bad,
        window=window(len(values)),
    )


def envelope(values: Sequence[float], max_points: int) -> list[int]:
    """Positions to keep so a curve fits in ``max_points``: each of ``max_points // 2``
    buckets keeps its min and its max (in order), and its first NaN/Inf; every position
    when the curve is short enough."""
    n = len(values)
    if n <= max_points:
        return list(range(n))
    x = np.asarray(values, dtype=float)
    buckets = max(max_points // 2, 1)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep: list[int] = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if hi <= lo:
            continue
        seg = x[lo:hi]
        bad = np.flatnonzero(~np.isfinite(seg))
        if bad.size:
            keep.append(lo + int(bad[0]))
            continue
        a, b = lo + int(np.argmin(seg)), lo + int(np.argmax(seg))
        keep.extend(sorted({a, b}))
    return keep


def ema(values: Sequence[float], beta: float) -> FloatArray:
    """Bias-corrected exponential moving average (the LR finder's smoothing)."""
    out = np.empty(len(values))
    avg = 0.0
    for i, v in enumerate(values):
        avg = beta * avg + (1 - beta) * float(v)
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def suggest_lr(lrs: Sequence[float], losses: Sequence[float], width: int = 9) -> float | None:
    """The LR at the middle of the loss's fall: where the smoothed loss first gets halfway
    from its starting level down to its minimum.

    The steepest-slope point that many finders pick is a derivative of noise and jumps; a
    level crossing of a centred (lag-free) median smoothing barely moves. On a clean sigmoid
    fall both give the same point.
    """
    x = np.asarray(losses, float)
    lr = np.asarray(lrs, float)
    ok = np.isfinite(x)
    if ok.sum() < 5:
        return None
    x, lr = x[ok], lr[ok]
    s = smooth_robust(x, max(2, min(width, len(x) // 3)))
    k = max(3, len(s) // 10)
    start = float(np.median(s[:k]))
    i_min = int(np.argmin(s))
    drop = start - float(s[i_min])
    if drop <= 0 or i_min == 0:
        return None
    below = np.flatnonzero(s[: i_min + 1] <= start - 0.5 * drop)
    return float(lr[int(below[0])]) if below.size else float(lr[i_min])


def steepest_lr(lrs: Sequence[float], losses: Sequence[float], beta: float = 0.98) -> float | None:
    """The classic suggestion: the steepest fall of the smoothed loss (for comparison)."""
    x = np.asarray(losses, float)
    lr = np.asarray(lrs, float)
    ok = np.isfinite(x)
    if ok.sum() < 5:
        return None
    s = ema(x[ok], beta)
    grad = np.gradient(s, np.log10(lr[ok]))
    return float(lr[ok][int(np.argmin(grad))])


SMOOTHINGS = (4, 6, 10, 16)
"""Median-window widths (points) over which the suggestion's stability is measured."""


def smoothed_range_losses(losses: Sequence[float], width: int = 10) -> FloatArray:
    """The range test's losses as the suggestion sees them (centred median, no lag)."""
    x = np.asarray(losses, float)
    if len(x) < 3:
        return x
    return smooth_robust(x, max(2, min(width, len(x) // 3)))


def suggestion_spread(lrs: Sequence[float], losses: Sequence[float]) -> tuple[float | None, float]:
    """The suggestion (width 10) and its spread in decades across ``SMOOTHINGS``."""
    found = [s for s in (suggest_lr(lrs, losses, w) for w in SMOOTHINGS) if s]
    if not found:
        return None, math.inf
    return suggest_lr(lrs, losses, 10), float(np.log10(max(found) / min(found)))
