"""`diag size`: how big the model is, what uint8 / uint16 quantization costs in accuracy,
and weight files that round-trip (the article's tips 1, 2, 9 and 18).

``check.py`` measures, ``export.py`` writes and re-reads the weight files, ``figures.py``
draws. This module is torch-free: the registry reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from diag.checks.base import Check, always, lazy, option


@dataclass(frozen=True)
class SizeOptions:
    """Options of `diag size` (``[tool.diag.size]``)."""

    max_size: str = option("2MB", "Budget for the fp32 weights: e.g. 2MB, 500KB, 1.5MiB.")
    """The browser models are all under 2 MB: every byte is downloaded."""
    max_error: float | None = option(None, "Largest accepted error at --precision: pixels "
                                     "for landmark nets (0.5), 1 - top-1 agreement for "
                                     "classifiers (0.01), relative output change otherwise "
                                     "(0.01).", min=0)
    precision: str = option("uint8", "The precision you plan to ship.",
                            choices=("uint8", "uint16"))
    export: str | None = option(None, "Write the weights here (safetensors and tfjs "
                                "model.json + shards) and prove they load back.")
    seed: int = 0



CHECK = Check(
    name="size",
    title="How big is the model, what does quantization cost, do weight files round-trip?",
    options=SizeOptions,
    needs=always("target"),
    run=lazy("diag.checks.size.check:run"),
    figures=lazy("diag.checks.size.figures:figures"),
    key_metrics=("params", "fp32_bytes", "uint8_bytes", "uint8_error", "uint16_error",
                 "worst_layer"),
)
