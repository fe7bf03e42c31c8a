"""The small-sample factors of the plateau scan's robust scale (``trend._MAD_BIAS``).

The trend fit estimates the noise as 1.4826 x the MAD of a stretch's residuals about its
Theil-Sen line. For few points that is biased low (at 5 points its mean is 0.58 of the
noise's SD), more than the MAD of a plain sample (Croux & Rousseeuw's factors), because the
line is fitted to the same points. The factor for m points is 1 / E[1.4826 MAD] over draws
of unit Gaussian noise, computed with the fit's own pair slopes and medians: tabled to 20
points, and m / (m - 1.6) above, which this script checks to 60 points.

Run: python benchmarks/mad_factors.py   (about 15 s)
"""

from __future__ import annotations

import numpy as np

from diag.checks.lr import trend


def factor(m: int, draws: int, rng: np.random.Generator) -> float:
    t = np.arange(m, dtype=float)
    i, j = trend._pairs(m)
    y = rng.standard_normal((draws, m))
    slope = np.median((y[:, j] - y[:, i]) / (t[j] - t[i]), axis=1)
    resid = y - slope[:, None] * t
    resid -= np.median(resid, axis=1)[:, None]
    return float(1 / (1.4826 * np.median(np.abs(resid), axis=1)).mean())


def main() -> None:
    rng = np.random.default_rng(12345)
    table = {}
    for m in range(4, 61):
        f = factor(m, 40_000 if m <= 20 else 10_000, rng)
        if m <= 20:
            table[m] = round(f, 3)
        else:
            print(f"m={m}: drawn {f:.3f}, m / (m - 1.6) = {m / (m - 1.6):.3f} "
                  f"({(m / (m - 1.6)) / f - 1:+.1%})")
    print("_MAD_BIAS =", table)
    print("in diag:  ", trend._MAD_BIAS)


if __name__ == "__main__":
    main()
