"""Loss-curve detectors: plateau, oscillation, divergence, no learning (pure, numpy only).

Each takes a sequence of numbers (per epoch or per step, as the history counts) and gives
the index where the condition starts, or None. They are tuned to be robust to minibatch
noise: a noisy per-step curve that still trends down is neither a plateau nor an oscillation.
Also: a pure-Python replica of torch's ReduceLROnPlateau, so users see both side by side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

FloatArray = np.ndarray
Curve = Sequence[float] | FloatArray
"""A curve: a list of numbers or a numpy array."""


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


SHORT = 20
"""Curves with fewer points get their findings with a caveat (and no "no learning" when
they move by more than a tenth of their level)."""


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


def curvature_noise(x: FloatArray) -> float:
    """Noise per point from second differences (MAD): white noise gives its sigma; a smooth
    swing, even a large one, adds little (unlike differences from a short smoothing)."""
    if len(x) < 5:
        return 0.0
    d2 = x[2:] - 2 * x[1:-1] + x[:-2]
    return float(1.4826 * np.median(np.abs(d2 - np.median(d2))) / math.sqrt(6))


def _medians_se(sigma: float, *sizes: int) -> float:
    """The standard error of a difference of medians of ``sizes`` points each, under
    Gaussian noise of ``sigma`` a point (a median of n points: 1.2533 sigma / sqrt(n))."""
    return 1.2533 * sigma * math.sqrt(sum(1 / n for n in sizes))


def _tail_noise(x: FloatArray) -> float:
    """Noise per point judged on the curve's second half: the steep early fall is signal,
    and would pass for noise in a short curve."""
    return curvature_noise(x[len(x) // 2:]) if len(x) >= 10 else curvature_noise(x)


def _finite_prefix(values: Curve) -> tuple[FloatArray, int | None]:
    x = np.asarray(values, dtype=float)
    bad = np.flatnonzero(~np.isfinite(x))
    first_bad = int(bad[0]) if bad.size else None
    return (x if first_bad is None else x[:first_bad]), first_bad


def _tolerance(s: FloatArray, sigma: float, w: int, p: CurveParams) -> FloatArray:
    scale = max(float(np.max(np.abs(s))) if s.size else 0.0, 1e-12)
    floor = max(3 * sigma / math.sqrt(w), 1e-9 * scale)
    out: FloatArray = np.maximum(p.rel_tol * np.abs(s), floor)
    return out


def detect_no_learning(values: Curve, params: CurveParams = CurveParams()
                       ) -> int | None:
    """0 when the curve never leaves its starting level (e.g. stuck at ln(C)), else None."""
    x, _ = _finite_prefix(values)
    if len(x) < 5:
        return None
    w = window(len(x))
    s = smooth(x, w)
    tol = _tolerance(s, noise_sigma(x), w, params)
    return 0 if s[0] - float(np.min(s)) < tol[0] else None


def detect_plateau(values: Curve, params: CurveParams = CurveParams(),
                   start: int = 0) -> int | None:
    """Where the plateau at the end of the curve begins (at or after ``start``), or None.

    A statistical question (``trend``): from the onset to the end, the robust trend's pace
    is confidently under 5 % of the level per run length, and no later stretch to the end
    is still significantly improving. A flat stretch the loss later leaves is a stall, not
    a plateau (``detect_stall``): only a plateau at the current LR justifies lowering it.
    """
    from diag.checks.lr.trend import horizon_of, plateau_onset

    x, _ = _finite_prefix(values)
    if len(x) - start < 5:
        return None
    onset = plateau_onset(x[start:], horizon=horizon_of(len(x)))
    return None if onset is None else start + onset


def detect_stall(values: Curve, params: CurveParams = CurveParams(), start: int = 0,
                 stop: int | None = None, steps: Sequence[int] = ()) -> tuple[int, int] | None:
    """The first flat stretch between ``start`` and ``stop`` that the loss later leaves with
    a clear fall at the same LR: (first index, index where the fall has begun), or None. A
    slow start (chance level, warm-up, init), never a reason to lower the LR. A flat stage
    ended by an LR step drop (``steps``) is the schedule at work, not a stall."""
    x, _ = _finite_prefix(values)
    if len(x) > 4000:  # judge long per-step curves on 2,000 bucket means, map back
        k = len(x) // 2000
        m = len(x) // k
        coarse = x[: m * k].reshape(m, k).mean(axis=1)
        found = detect_stall(coarse, params, start // k,
                             None if stop is None else stop // k, [p // k for p in steps])
        return None if found is None else (found[0] * k, found[1] * k)
    stop = len(x) if stop is None else min(stop, len(x))
    n = stop - start
    w = window(len(x))
    need = max(5, w)  # a few flat points in a slow, noisy descent are no stall
    if n < need + 3:
        return None
    s = smooth_robust(x, 3)
    sigma = _tail_noise(x)
    a = start
    while a + need <= stop:
        band = max(4 * sigma / math.sqrt(3), 0.005 * abs(float(s[a])), 1e-12)
        b = a
        lo = hi = float(s[a])
        while b + 1 < stop and max(hi, float(s[b + 1])) - min(lo, float(s[b + 1])) <= band:
            b += 1
            lo, hi = min(lo, float(s[b])), max(hi, float(s[b]))
        if b - a + 1 >= need:
            level = float(np.median(x[a:b + 1]))
            limit = next((p for p in steps if p > b), len(x))  # same LR segment only
            left = np.flatnonzero(s[b + 1:limit] < level - 5 * band)
            if left.size:
                return a, b + 1
            return None
        a += 1
    return None


def still_improving(values: Curve, start: int = 0) -> tuple[bool, float, int]:
    """Is the loss still falling significantly over its last fifth (at least 5 points)?
    (yes/no, the fall over that window as a fraction of the level, the window in points).
    See ``trend``."""
    verdict, fall, w = tail_trend(values, start)
    return verdict in ("improving", "slow"), fall, w


def tail_trend(values: Curve, start: int = 0) -> tuple[str, float, int]:
    """The trend verdict of the last fifth of the curve from ``start`` ("improving", "slow",
    "flat" or "unsure"), its fall over the window as a fraction of the level, and the
    window."""
    from diag.checks.lr.trend import fit, horizon_of

    x, _ = _finite_prefix(values)
    seg = x[start:]
    n = len(seg)
    if n < 5:
        return "unsure", 0.0, n
    w = min(max(n // 5, 5), n)
    trend = fit(seg[-w:], horizon=horizon_of(len(x)))
    fall = -trend.slope * (w - 1) / trend.scale
    return trend.verdict, fall, w


def detect_spikes(values: Curve, limit: int = 20) -> list[int]:
    """Points that jump far above their neighbours and come back down within two points:
    a spike is a finding, not divergence (vectorised: fine on millions of points)."""
    from numpy.lib.stride_tricks import sliding_window_view

    x, _ = _finite_prefix(values)
    n = len(x)
    if n < 7:
        return []
    med = np.median(sliding_window_view(np.pad(x, 3, mode="edge"), 7), axis=1)
    # noise relative to the level: minibatch noise scales with the loss
    rel = curvature_noise(x / np.maximum(np.abs(med), 1e-12))
    jump = x - med
    threshold = np.maximum(np.maximum(8 * rel, 0.3) * np.abs(med), 1e-12)
    prev = np.concatenate([[np.inf], x[1:] - x[:-1]])
    nxt = np.minimum(np.concatenate([x[1:], [np.inf]]), np.concatenate([x[2:], [np.inf] * 2]))
    hit = (jump > threshold) & (prev > threshold) & (nxt < med + 0.5 * jump)
    hit[:2] = False
    hit[n - 2:] = False
    return [int(i) for i in np.flatnonzero(hit)[:limit]]


def ends_at_worst(values: Curve) -> int | None:
    """The last point, when it is above every earlier one, the first included: the run ends
    worse than it began, a jump the curve's end leaves unresolved. One point cannot tell a
    spike (``detect_spikes`` needs the points after it) from the start of a divergence
    (``detect_divergence`` needs a window of them), so the caller warns of both instead of
    calling either. None for a curve with a NaN/Inf or under 5 points.

    A last point that merely jumps as a spike would (under the start) is not enough: on
    per-step minibatch losses an unlucky last batch does that at 2.6 % of end points (the
    range-test tasks, 300 Adam steps, every end from the 20th: benchmarks/
    bench_divergence.py), and a watched training would end on a false warning that often."""
    x, first_bad = _finite_prefix(values)
    if first_bad is not None or len(x) < 5:
        return None
    return len(x) - 1 if float(x[-1]) > float(np.max(x[:-1])) else None


def detect_periodic_oscillation(values: Curve, params: CurveParams = CurveParams(),
                                start: int = 0) -> int | None:
    """Oscillation of any period (4 to 40 points) around a flat level in the curve's tail:
    the detrended tail's autocorrelation swings to -0.5 or below at half a period and back
    up at a full one, with swings of at least ``osc_rel_amp`` of the level and more than
    the net progress. Noisy curves that trend down have no such structure."""
    x, _ = _finite_prefix(values)
    seg = x[start:]
    n = len(seg)
    if n < 12:
        return None
    tail_start = max(0, n // 2 - 1) if n >= 24 else 0
    tail = seg[tail_start:]
    m = len(tail)
    t = np.arange(m, dtype=float)
    coef = np.polyfit(t, tail, 1)
    r = tail - np.polyval(coef, t)
    var = float(np.dot(r, r))
    if var <= 0:
        return None
    max_lag = min(m // 2, 20)
    acf = np.array([float(np.dot(r[:-k], r[k:])) / var for k in range(1, max_lag + 1)])
    half = next((k for k in range(2, max_lag + 1) if acf[k - 1] <= -0.5), None)
    if half is None:
        return None
    if 2 * half <= max_lag and acf[2 * half - 1] < 0.2:
        return None
    level = abs(float(np.median(tail))) or 1e-12
    amplitude = float(np.std(r)) * math.sqrt(2)
    progress = -float(coef[0]) * (m - 1)
    if amplitude < params.osc_rel_amp * level or progress > amplitude:
        return None
    # onset: where the swings first reach half their size
    env = smooth(np.abs(r), 2 * half)
    big = np.flatnonzero(env >= 0.5 * float(np.max(env)))
    return start + tail_start + (int(big[0]) if big.size else 0)


def detect_swings(values: Curve, params: CurveParams = CurveParams(), start: int = 0,
                  min_swings: int = 2) -> int | None:
    """Slow oscillation with net progress: the smoothed loss climbs back up by 10 % of its
    level (and well above its noise) at least ``min_swings`` times. Where the first such
    climb begins, or None. A single bump (an augmentation switch) is not an oscillation."""
    x, _ = _finite_prefix(values)
    seg = x[start:]
    n = len(seg)
    if n < 8:
        return None
    ws = max(3, window(n) // 2)
    s = smooth_robust(seg, ws)
    # noise relative to the level (minibatch noise scales with the loss), per point
    level = np.maximum(np.abs(smooth(seg, max(ws, 5))), 1e-12)
    rel_noise = curvature_noise((seg / level)[n // 3:])  # not the early fall
    swings: list[int] = []
    edge = ws // 2  # the smoothing's edges repeat single raw points: not trusted
    trough = edge
    i = edge + 1
    while i < n - edge:
        if s[i] < s[trough]:
            trough = i
        elif s[i] - s[trough] > abs(float(s[trough])) * max(
                0.1, 8 * rel_noise / math.sqrt(ws)) + 1e-12:
            swings.append(trough)
            while i + 1 < n - edge and s[i + 1] >= s[i]:  # ride the climb to its top
                i += 1
            trough = i
        i += 1
    if len(swings) < min_swings:
        return None
    return start + swings[0]


def detect_overfitting(train: Sequence[float] | None, val: Sequence[float],
                       params: CurveParams = CurveParams()) -> int | None:
    """Where a validation curve bottoms out before rising by more than its noise: the index
    of its best value, or None.

    The best level is the minimum of a moving median (a tenth of the curve, at least 5
    points: the raw minimum of a noisy curve is biased low); the final level is the median
    of the last fifth (at least 3 points). Overfitting when the final level is above the
    best by more than the one-sided 95 % bound of their difference under the curve's own
    noise, and by at least 5 % of the best, and the training curve (when given) is lower
    at the end than at the validation's best. With a training curve, a rise of 5 % that the
    validation's noise alone cannot confirm also counts when the gap between the two curves
    widens significantly from the best on (its Theil-Sen trend, one-sided 95 %).
    """
    from diag.checks.lr.trend import fit, t_quantile

    v, _ = _finite_prefix(val)
    tr = _finite_prefix(train)[0] if train is not None else None
    n = min(len(v), len(tr)) if tr is not None else len(v)
    if n < 5:
        return None
    v = v[:n]
    levels = _validation_levels(v)
    if levels is None:
        return None
    best, lo, hi, best_level, final, w, k = levels
    se = _medians_se(curvature_noise(v), k, w)
    rise = final - best_level
    train_falls = tr is None or float(np.median(tr[n - k:n])) < float(
        np.median(tr[lo:hi]))
    if rise <= 0.05 * abs(best_level) or not train_falls:
        return None
    if rise > t_quantile(k - 1) * se:
        return best
    if tr is not None and n - best >= 5:
        gap = fit(v[best:] - tr[best:n])
        if gap.slope - gap.t * gap.se > 0:  # the gap widens, beyond its noise
            return best
    return None


def validation_rise(val: Sequence[float]) -> tuple[int, float] | None:
    """(index of the best, rise of the final level over it as a fraction) when a validation
    curve ends 5 % or more above its best, significant or not; None otherwise. The levels
    are those of ``detect_overfitting``."""
    v, _ = _finite_prefix(val)
    levels = _validation_levels(v) if len(v) >= 5 else None
    if levels is None:
        return None
    best, _lo, _hi, best_level, final, _w, _k = levels
    fraction = (final - best_level) / max(abs(best_level), 1e-12)
    return (best, fraction) if fraction >= 0.05 else None


def _validation_levels(v: FloatArray) -> tuple[int, int, int, float, float, int, int] | None:
    """A validation curve's best (raw index near the smoothed minimum, the window around it,
    the smoothed minimum) and final level (median of the last fifth), with the window widths
    (w, k); None when the minimum lies in the last fifth."""
    n = len(v)
    w = max(5, (n // 10) | 1)
    s = smooth_robust(v, w)
    k = max(3, n // 5)
    centre = int(np.argmin(s))
    if centre >= n - k:
        return None
    lo, hi = max(0, centre - w // 2), min(n, centre + w // 2 + 1)
    return (lo + int(np.argmin(v[lo:hi])), lo, hi, float(s[centre]),
            float(np.median(v[-k:])), w, k)


def detect_divergence(values: Curve, params: CurveParams = CurveParams()
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
    jump = detect_blow_up(x)
    if jump is not None:  # where the loss left its best on the way there
        rise = _rise_start(x, params) if n >= 10 else None
        if rise is not None and rise <= jump:
            return rise
        best = float(np.min(x[:jump]))
        near = np.flatnonzero(x[:jump] <= 1.2 * best)
        return int(near[-1])
    if n < 10:
        return None
    return _rise_start(x, params)


_Z_DIVERGENCE = 2.3263478740408408
"""The standard normal's 99th percentile: a rise is divergence (a failure) only when it
stands out of the noise at 1 % (one-sided)."""

BLOW_UP = 5.0
"""A jump to this many times the running best is a blow-up..."""
RECOVERED = 2.0
"""...unless the loss later comes back under this many times that best (a spike)."""


def detect_blow_up(values: Curve) -> int | None:
    """The first jump to ``BLOW_UP`` x the running best (of a positive loss, on a 5-point
    moving median from 10 points on) that never comes back under ``RECOVERED`` x that best
    for the rest of the run: divergence, however the loss wobbles afterwards. A spike that
    recovers is not one (``detect_spikes``)."""
    x, _ = _finite_prefix(values)
    if len(x) < 3 or (x <= 0).any():
        return None
    if len(x) >= 10:  # the best of raw noisy points is a lucky draw, not a level
        from numpy.lib.stride_tricks import sliding_window_view

        x = np.median(sliding_window_view(np.pad(x, 2, mode="reflect"), 5), axis=1)
    best = np.minimum.accumulate(x)
    later_min = np.minimum.accumulate(x[::-1])[::-1]
    hit = (x[1:] >= BLOW_UP * best[:-1]) & (later_min[1:] > RECOVERED * best[:-1])
    found = np.flatnonzero(hit)
    return int(found[0]) + 1 if found.size else None


def _rising(x: FloatArray, m: int, skip: int) -> bool:
    """The raw points after the smoothed minimum ``m`` rise significantly (one-sided 1 %):
    a smoothed noisy curve that never learned wanders up from its lowest point by chance,
    and 20 % of its level is within its noise. The minimum's own ``skip`` points are left
    out of the test (their choice as the lowest pulled them down: a line from them rises by
    selection alone). Three points or more after them: their Theil-Sen slope is above zero.
    Fewer (a rise in the last two points of a run): each is above the minimum's points by
    more than the noise of a point and of their median (``curvature_noise``)."""
    from diag.checks.lr import trend

    tail = x[m + skip:]
    if len(tail) >= 3:
        fitted = trend.fit(tail)
        return fitted.slope - fitted.t_at(_Z_DIVERGENCE) * fitted.se > 0
    if not len(tail):
        return False
    base = x[m:m + skip]
    sigma = curvature_noise(x) * math.sqrt(1 + 1.2533 ** 2 / len(base))
    return bool(np.all(tail - float(np.median(base)) > _Z_DIVERGENCE * sigma))


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
    if (rise > params.div_rel_rise * level and ups >= 0.6 and near_top
            and _rising(x, m, max(3, w // 2) // 2 + 1)):
        return m
    # A blow-up that settles: after its best, the loss ends well above where it started
    # (most later steps may go down, so the steady-rise test above misses it). The rise of
    # the end's median over the start's must also stand out of the noise (one-sided 1 %);
    # a flat curve that only wobbles ends 20 % up by chance often enough (a published
    # 16-point log that never learned read as divergence).
    k = max(3, w // 2)
    start, final = float(np.median(x[:k])), float(np.median(x[-k:]))
    noise = _Z_DIVERGENCE * _medians_se(curvature_noise(x), k, k)
    if (final > start + params.div_rel_rise * max(abs(start), 1e-12) and start > s[m]
            and final - start > noise):
        jump = np.flatnonzero(s[m:] > s[m] + 0.5 * (final - float(s[m])))
        return m + int(jump[0]) - 1 if jump.size and jump[0] > 0 else m
    return None


def detect_oscillation(values: Curve, params: CurveParams = CurveParams()
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
    starts = range(0, last + 1, stride)
    # every window the scan may ask about (each start and the one half a window later),
    # judged at once
    lag1s = _windows_oscillating(x, s, w, sorted({*starts, *(min(i + w // 2, last)
                                                              for i in starts)}), params)

    for i in starts:
        lag1 = lag1s[i]
        # it must persist: the window half a window later oscillates too (chance
        # alternation in noise does not last), and from there on the detrended curve's
        # lag-1 autocorrelation is strongly negative beyond chance (noise: about 0)
        if lag1 is None or lag1s[min(i + w // 2, last)] is None or \
                not _alternates(x[i:]):
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


def _windows_oscillating(x: FloatArray, s: FloatArray, w: int, starts: list[int],
                         params: CurveParams) -> dict[int, float | None]:
    """For each start i: the median |change| of the window x[i:i+w] when that window
    alternates (most consecutive non-zero changes flip sign) with up/down changes well above
    its lag-2 changes and its level, while its smoothed curve ``s`` makes no net progress;
    else None. All windows at once, in blocks (the same numbers as one window at a time: a
    median of each row, and the same comparisons)."""
    out: dict[int, float | None] = {}
    if not starts:
        return out
    d = np.diff(x)
    d2 = x[2:] - x[:-2]
    span = np.arange(w)
    block = max(1, (1 << 16) // w)  # about 65,000 values (0.5 MB) of windows at a time
    for k in range(0, len(starts), block):
        st = np.asarray(starts[k:k + block], dtype=np.intp)
        rows = st[:, None] + span
        d1 = d[rows[:, :-1]]
        lag1 = np.median(np.abs(d1), axis=1)
        lag2 = np.median(np.abs(d2[rows[:, :-2]]), axis=1)
        level = np.abs(np.median(x[rows], axis=1))
        signs = np.sign(d1)
        # the share of flips among consecutive changes; a window with a zero change is
        # judged among its non-zero ones (at least 3 of them)
        alternation = np.count_nonzero(signs[:, 1:] != signs[:, :-1], axis=1) / (w - 2)
        enough = np.ones(len(st), dtype=bool)
        for j in np.flatnonzero(np.count_nonzero(signs, axis=1) < w - 1).tolist():
            nz = d1[j][d1[j] != 0]
            enough[j] = nz.size >= 3
            alternation[j] = (float(np.mean(np.sign(nz[1:]) != np.sign(nz[:-1])))
                              if enough[j] else 0.0)
        progress = s[st] - s[st + w - 1]
        ok = (enough & (alternation >= params.osc_alternation)
              & (lag1 >= params.osc_ratio * np.maximum(lag2, 1e-12 * np.maximum(level, 1e-12)))
              & (lag1 / 2 >= params.osc_rel_amp * level)
              & (progress < params.rel_tol * level + lag1 / 2))
        for j, i in enumerate(st.tolist()):
            out[i] = float(lag1[j]) if ok[j] else None
    return out


def _alternates(seg: FloatArray) -> bool:
    """Up, down, up...: the linearly detrended stretch's lag-1 autocorrelation is -0.5 or
    below and significant (z = r * sqrt(n) <= -3; white noise gives r about 0 +- 1/sqrt(n))."""
    m = len(seg)
    if m < 9:
        return False
    t = np.arange(m, dtype=float)
    r = seg - np.polyval(np.polyfit(t, seg, 1), t)
    var = float(np.dot(r, r))
    if var <= 0:
        return False
    rho = float(np.dot(r[:-1], r[1:])) / var
    return rho <= -0.5 and rho * math.sqrt(m) <= -3.0


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
    """Every detector on one curve (positions, not the file's epoch numbers)."""

    plateau_start: int | None
    """No meaningful progress from here to the end (of the last LR segment's run)."""
    oscillation_start: int | None
    divergence_start: int | None
    no_learning: bool
    nonfinite_at: int | None
    window: int
    stall: tuple[int, int] | None = None
    """A flat stretch the loss later left: (start, where the fall resumed)."""
    still_improving: bool = False
    improvement: float = 0.0
    """Fall over the last window, as a fraction of the level (0.07 = 7 %)."""
    improvement_window: int = 0
    spikes: tuple[int, ...] = ()
    analysis_start: int = 0
    """Where warm-up (a rising LR) ends; nothing before it is a detection."""
    segment_start: int = 0
    """Where the last stretch of the LR schedule (after its last step drop) begins."""
    lr_steps: tuple[int, ...] = ()
    """Positions where the LR dropped in one step (by 1.5x or more)."""
    lr_collapse: int | None = None
    """Where the LR fell 1,000x below its peak, or under 1e-7, with most of the run left."""
    tail: str = "unsure"
    """The last fifth's trend verdict: improving, flat or unsure."""
    ends_at_worst: int | None = None
    """The last point, when it is above every earlier one (``ends_at_worst``) on a curve
    that learned and did not diverge: a jump the curve's end leaves unresolved."""


def lr_phases(lrs: Sequence[float] | None, n: int) -> tuple[int, tuple[int, ...], int]:
    """(end of warm-up, step drops, start of the last segment) of an LR column. Warm-up is
    the leading stretch where the LR rises to its peak (from below 2/3 of it); a step is a
    drop by 1.5x or more between two points; the last segment follows the last step."""
    if lrs is None or len(lrs) != n or n == 0:
        return 0, (), 0
    lr = np.asarray(lrs, dtype=float)
    if not np.isfinite(lr).all() or (lr <= 0).any():
        return 0, (), 0
    peak = int(np.argmax(lr))
    warm_end = peak if lr[0] < lr[peak] / 1.5 else 0
    # a step: a drop by 1.5x or more right after two points at the same LR (a linear or
    # cosine decay to zero also has large ratios near its end, but never a constant stretch)
    held = np.zeros(n, dtype=bool)
    held[2:] = np.abs(lr[1:-1] - lr[:-2]) <= 1e-6 * lr[:-2]
    drops = np.flatnonzero(lr[1:] <= lr[:-1] / 1.5) + 1
    steps = tuple(int(i) for i in drops if i - 1 >= warm_end and held[i])
    seg = steps[-1] if steps else warm_end
    return warm_end, steps, seg


def diagnose(values: Sequence[float], params: CurveParams = CurveParams(),
             initial: float | None = None, lrs: Sequence[float] | None = None,
             validation: bool = False) -> CurveDiagnosis:
    """Every detector on one curve.

    ``initial``: the loss before the first step, when known (a curve whose best value is
    still well above it diverged from the start). ``lrs``: the LR per point, when logged:
    warm-up is no detection, a drop after a step decay is expected, and plateau /
    still-improving are judged in the last LR segment. ``validation``: a rise is
    overfitting (judged with the training curve by the caller), not divergence.
    """
    x, first_bad = _finite_prefix(values)
    n = len(values)
    warm_end, steps, seg = lr_phases(lrs, n)
    collapse = lr_collapse(lrs, n, warm_end)
    if collapse is not None:  # per-batch decay: every "segment" is the LR running out
        seg, steps = warm_end, ()
    seg = min(seg, max(len(x) - 1, 0))
    divergence = None
    if not validation:
        tail = detect_divergence(list(values)[warm_end:], params)
        divergence = None if tail is None else tail + warm_end
        if (divergence is None and initial is not None and math.isfinite(initial)
                and len(x) and float(np.min(x)) > initial + params.div_rel_rise * max(
                    abs(initial), 1e-12)):
            divergence = 0
    # a validation curve's verdict is overfitting or not (the caller's, with the training
    # curve); its flat stretches are no reason to change the LR
    plateau = None if validation else detect_plateau(x, params, start=seg)
    # period 2 (the article's case) is located precisely by its own detector; any other
    # period by the autocorrelation of the last LR segment's tail
    oscillation = None
    if not validation:  # a validation curve's wobble is evaluation noise, not the LR
        oscillation = detect_oscillation(x, params)
        if oscillation is None:
            oscillation = detect_periodic_oscillation(x, params, start=seg)
        if oscillation is None and divergence is None:
            oscillation = detect_swings(x, params, start=warm_end)
        if oscillation is not None and oscillation < warm_end:
            oscillation = None
    tail_verdict, improvement, imp_w = tail_trend(x, start=seg)
    improving = tail_verdict in ("improving", "slow")  # still falling, significantly
    stall = None if validation else detect_stall(x, params, start=warm_end, stop=plateau,
                                                 steps=steps)
    flat = detect_no_learning(x, params) == 0
    if flat and 0 < len(x) < SHORT:  # a short curve that moves is telling something
        level = abs(float(np.median(x))) or 1e-12
        flat = float(np.max(x) - np.min(x)) <= 0.1 * level
    rises = len(x) > 0 and float(np.median(x[-max(3, window(len(x)) // 2):])) > float(
        np.median(x[:3])) * (1 + params.div_rel_rise)
    no_learning = flat and oscillation is None and not rises and not validation
    worst = None if divergence is not None or flat else ends_at_worst(values)
    return CurveDiagnosis(
        plateau_start=plateau,
        oscillation_start=oscillation,
        divergence_start=divergence,
        no_learning=no_learning,
        nonfinite_at=first_bad,
        window=window(n),
        stall=stall,
        still_improving=improving and plateau is None,
        improvement=improvement,
        improvement_window=imp_w,
        spikes=tuple(detect_spikes(x)),
        analysis_start=warm_end,
        segment_start=seg,
        lr_steps=steps,
        lr_collapse=collapse,
        tail=tail_verdict,
        ends_at_worst=worst,
    )


COLLAPSE = 1000.0
"""An LR this many times below its peak has stopped training..."""
LR_FLOOR = 1e-7
"""...and so has any LR under this; diag never recommends one."""


def lr_collapse(lrs: Sequence[float] | None, n: int, start: int = 0) -> int | None:
    """Where the logged LR first falls ``COLLAPSE`` x below its peak (from ``start``) or under
    ``LR_FLOOR``, when that leaves a tenth of the run or more: a scheduler stepped per batch
    instead of per epoch. A linear or cosine decay reaches such values in its last steps
    only, and is no collapse."""
    if lrs is None or len(lrs) != n or n == 0:
        return None
    lr = np.asarray(lrs, dtype=float)
    if not np.isfinite(lr).all() or (lr < 0).any():
        return None
    peak = float(np.max(lr[start:])) if start < n else 0.0
    if peak <= 0:
        return None
    low = np.flatnonzero((np.arange(n) >= start) & ((lr <= peak / COLLAPSE) | (lr < LR_FLOOR)))
    if not low.size or low[0] > 0.9 * n:
        return None
    return int(low[0])


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


@dataclass(frozen=True)
class RangeSuggestion:
    """The range test's answer: an LR, or None with the reason there is no trustworthy
    one; ``spread`` is how far (decades) the answer moves across smoothings."""

    lr: float | None
    reason: str
    spread: float
    smoothed: tuple[float, ...] = ()
    """The loss as the suggestion saw it (the middle smoothing width; NaN where the sweep's
    loss was not finite), point for point with the sweep: what the plot draws."""
    rules: tuple[tuple[str, float], ...] = ()
    """Each rule's LR behind the answer (name, LR)."""


def suggest_range_lr(lrs: Sequence[float], losses: Sequence[float]) -> RangeSuggestion:
    """The range test's answer: the median of three rules on the same sweep, each a
    different reading of where training works (``range_rules``): the steepest fall of the
    smoothed loss, the entry into its valley, and a tenth of the LR at its minimum. Chosen
    by leave-one-task-out on eight tasks against grid searches (benchmarks/bench_lr.py).

    None, with the reason, when the loss never fell clearly, fell from the very first LRs,
    or no two of the three rules agree within a decade (the median would be a guess).
    ``spread`` is the distance in decades between the two rules nearest each other."""
    rules = range_rules(lrs, losses)
    valley = rules.pop("_valley")
    assert isinstance(valley, RangeSuggestion)
    if valley.lr is None and valley.reason.startswith(("the loss never fell", "only ",
                                                       "the loss falls from the very")):
        return valley
    answer, gap = median_of_rules(v for v in rules.values() if isinstance(v, float))
    if answer is None and math.isinf(gap):
        return RangeSuggestion(None, "fewer than two rules found an LR in the sweep",
                               math.inf, valley.smoothed)
    if answer is None:
        shown = ", ".join(f"{k} {v:.2g}" for k, v in rules.items() if isinstance(v, float))
        return RangeSuggestion(None, f"the rules disagree by more than a decade ({shown})",
                               gap, valley.smoothed)
    return RangeSuggestion(answer, "", gap, valley.smoothed,
                           tuple((k, v) for k, v in rules.items() if isinstance(v, float)))


def median_of_rules(lrs: Iterable[float | None]) -> tuple[float | None, float]:
    """The range test's ensemble from its rules' LRs: their median (in log), or None when
    fewer than two were found or no two agree within a decade; and the distance in decades
    between the nearest two (inf with fewer than two)."""
    found = sorted(v for v in lrs if v is not None and v > 0)
    if len(found) < 2:
        return None, math.inf
    gap = min(math.log10(b / a) for a, b in zip(found, found[1:], strict=False))
    if gap > 1.0:
        return None, gap
    return float(10 ** np.median(np.log10(found))), gap


def range_rules(lrs: Sequence[float], losses: Sequence[float]
                ) -> dict[str, float | None | RangeSuggestion]:
    """Each rule's LR on one sweep: ``steepest`` (the steepest fall per decade of the
    bias-corrected EMA of the loss, beta 0.98), ``valley`` (``valley_lr``), ``min_tenth`` (a
    tenth of the LR at the smoothed minimum); ``_valley`` is the valley rule's full answer."""
    valley = valley_lr(lrs, losses)
    x = np.asarray(losses, float)
    lr = np.asarray(lrs, float)
    ok = np.isfinite(x)
    min_tenth = None
    if ok.sum() >= 5:
        min_tenth = float(lr[ok][int(np.argmin(ema(x[ok], 0.98)))]) / 10
    return {"steepest": steepest_lr(lrs, losses), "valley": valley.lr,
            "min_tenth": min_tenth, "_valley": valley}


def valley_lr(lrs: Sequence[float], losses: Sequence[float]) -> RangeSuggestion:
    """Where the sweep's smoothed loss first gets within 20 % (of its whole fall) of its
    minimum: the entry into the valley, before the LRs where training breaks. Median over a
    small ensemble of thresholds (15-25 %) and smoothing widths (0.7-1.5x), the width set by
    the loss's own noise.

    None, with the reason, when the loss never fell clearly above its noise, fell from the
    very first LRs (start the sweep lower), or the answer moves over a decade."""
    x = np.asarray(losses, float)
    lr = np.asarray(lrs, float)
    ok = np.isfinite(x)
    x, lr = x[ok], lr[ok]
    n = len(x)
    if n < 10:
        return RangeSuggestion(None, f"only {n} finite points in the sweep", math.inf)
    rel_noise = curvature_noise(x / np.maximum(np.abs(smooth(x, 5)), 1e-12))
    base_w = int(min(max(5, 5 + 60 * rel_noise), max(5, n // 4)))
    middle = smooth_robust(x, max(5, base_w))
    shown = np.full(len(ok), np.nan)
    shown[ok] = middle
    curve = tuple(shown.tolist())
    picks: list[int] = []
    for wm in (0.7, 1.0, 1.5):
        w = max(5, int(base_w * wm))
        s = middle if wm == 1.0 else smooth_robust(x, w)
        i_min = int(np.argmin(s))
        start = float(np.median(s[: max(3, n // 10)]))
        drop = start - float(s[i_min])
        noise = rel_noise * abs(start) / math.sqrt(w)
        if drop <= max(0.05 * abs(start), 4 * noise, 1e-12):
            fell = drop / max(abs(start), 1e-12)
            return RangeSuggestion(None, f"the loss never fell clearly (by {fell:.1%} of its "
                                   f"start; noise {rel_noise:.1%} per step)", math.inf,
                                   curve)
        picks.extend(int(np.flatnonzero(s[: i_min + 1] <= s[i_min] + frac * drop)[0])
                     for frac in (0.15, 0.2, 0.25))
    chosen = lr[picks]
    spread = float(np.log10(chosen.max() / chosen.min()))
    if int(np.median(picks)) < max(3, n // 20):
        return RangeSuggestion(None, "the loss falls from the very first LRs of the sweep: "
                               "start it lower", spread, curve)
    if spread > 1.0:
        return RangeSuggestion(None, f"too noisy: the answer moves {spread:.1f} decades "
                               "across smoothings", spread, curve)
    return RangeSuggestion(float(10 ** np.median(np.log10(chosen))), "", spread, curve)


def suggestion_spread(lrs: Sequence[float], losses: Sequence[float]) -> tuple[float | None, float]:
    """The suggestion (width 10) and its spread in decades across ``SMOOTHINGS``."""
    found = [s for s in (suggest_lr(lrs, losses, w) for w in SMOOTHINGS) if s]
    if not found:
        return None, math.inf
    return suggest_lr(lrs, losses, 10), float(np.log10(max(found) / min(found)))
