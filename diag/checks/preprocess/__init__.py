"""`diag preprocess`: do preprocessing and postprocessing round-trip exactly?

``check.py`` draws the probes and checks every property, ``figures.py`` shows what the
network sees. This module is torch-free: the registry reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from diag.checks.base import Check, always, lazy, option

PROBE_SIZES: tuple[tuple[int, int], ...] = ((64, 64), (48, 80), (90, 50), (37, 53), (120, 71))
"""(H, W): square, landscape, portrait, odd, and a size that is scaled down."""


@dataclass(frozen=True)
class PreprocessOptions:
    """Options of `diag preprocess` (it has no config keys)."""

    sizes: tuple[tuple[int, int], ...] = option(PROBE_SIZES, internal=True)
    point_tolerance_px: float = option(0.5, internal=True)
    """Round trip: max error in pixels of the original image."""
    seed: int = 0




CHECK = Check(
    name="preprocess",
    title="Do preprocessing and postprocessing round-trip? What does the network see?",
    options=PreprocessOptions,
    needs=always("pipeline"),
    run=lazy("diag.checks.preprocess.check:run"),
    figures=lazy("diag.checks.preprocess.figures:figures"),
    key_metrics=("max_point_error_px", "max_round_trip_error_px", "dynamic_range",
                 "declared_channel_order"),
)
