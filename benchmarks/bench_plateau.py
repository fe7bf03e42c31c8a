"""The plateau scan's power and false alarms on generated curves, with the "still improving"
test per candidate (at 5 % each, the rule before) and for the candidates as a family (5 % in
all, Bonferroni: ``trend.FAMILYWISE``), and with the fit's robust scale (the MAD of a
stretch's residuals) corrected for its small-sample bias (``trend.SMALL_SAMPLE``: diag's
rule) or not. The same curves every way.

- Falling curves (no plateau): 0.3 + 0.7 exp(-t / tau), tau = n/2, n, 2n, with
  multiplicative noise 1, 2, 5 %, n = 20-2000: any plateau found is a false alarm.
- Plateau curves: the same fall reaching its floor (5 time constants) at 30, 50 or 70 % of
  n, flat after it, n = 50-2000: the plateau should be found, near its knee.

Run: python benchmarks/bench_plateau.py [--seeds N]   (default 40 per cell)
"""

from __future__ import annotations

import sys

import numpy as np

from diag.checks.lr import trend
from diag.checks.lr.detect import detect_plateau


def falling(n: int, tau: float, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    out: np.ndarray = (0.3 + 0.7 * np.exp(-t / tau)) * (1 + noise * rng.standard_normal(n))
    return out


def plateaued(n: int, knee: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    base = np.where(t < knee, 0.3 + 0.7 * np.exp(-t / (knee / 5)), 0.3 + 0.7 * np.exp(-5))
    out: np.ndarray = base * (1 + noise * rng.standard_normal(n))
    return out


def score(seeds: int) -> tuple[int, int, int, int, int]:
    false_alarms = falls = 0
    for n in (20, 50, 100, 400, 2000):
        for ratio in (0.5, 1.0, 2.0):
            for noise in (0.01, 0.02, 0.05):
                false_alarms += sum(detect_plateau(falling(n, ratio * n, noise, s)) is not None
                                    for s in range(seeds))
                falls += seeds
    found = plateaus = far = 0
    for n in (50, 100, 400, 2000):
        for frac in (0.3, 0.5, 0.7):
            for noise in (0.01, 0.02, 0.05):
                knee = int(frac * n)
                onsets = [detect_plateau(plateaued(n, knee, noise, s)) for s in range(seeds)]
                found += sum(v is not None for v in onsets)
                far += sum(v is not None and abs(v - knee) > 0.25 * n for v in onsets)
                plateaus += seeds
    return false_alarms, falls, found, plateaus, far


def main() -> None:
    seeds = int(sys.argv[sys.argv.index("--seeds") + 1]) if "--seeds" in sys.argv else 40
    default = trend.FAMILYWISE, trend.SMALL_SAMPLE
    for label, familywise, small in (("per candidate at 5 % (before)", False, False),
                                     ("as a family, plain MAD (before)", True, False),
                                     ("as a family, MAD corrected (diag)", True, True)):
        trend.FAMILYWISE, trend.SMALL_SAMPLE = familywise, small
        fa, falls, found, plateaus, far = score(seeds)
        print(f"{label:34} false plateaus on falling curves {fa}/{falls} ({fa / falls:.1%}); "
              f"plateaus found {found}/{plateaus} ({found / plateaus:.1%}), onset more than "
              f"n/4 from the knee {far}")
    trend.FAMILYWISE, trend.SMALL_SAMPLE = default

if __name__ == "__main__":
    main()
