"""`diag size`: how big the model is, what uint8 / uint16 quantization costs in accuracy,
and weight files that round-trip (the article's tips 1, 2, 9 and 18).

``check.py`` measures, ``export.py`` writes and re-reads the weight files, ``figures.py``
draws. This module is torch-free: the registry reads it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from diag.checks.base import Check, always, lazy, option

_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2,
          "gib": 1024**3}


def parse_size(text: str) -> int:
    """'2MB' -> 2,000,000; '1.5MiB' -> 1,572,864; a bare number is bytes. ValueError("why;
    the fix") for anything else (a negative size, NaN, no number)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?[iI]?[bB])?\s*", str(text))
    if not m:
        raise ValueError("is not a size; write it like 2MB, 500KB or 1.5MiB (positive)")
    size = int(float(m.group(1)) * _UNITS[(m.group(2) or "b").lower()])
    if size <= 0:
        raise ValueError("is not a positive size; give a budget above 0 bytes, e.g. 2MB")
    return size


def export_folder(folder: str) -> Path:
    """``--export``: a folder that exists or can be made, writable. ValueError("why; the
    fix") when a file holds its name, a parent is a file, or it cannot be written."""
    path = Path(folder)
    if os.path.lexists(path) and not path.is_dir():
        raise ValueError("is a file, not a folder; give a folder for the weight files")
    probe = path
    while not os.path.lexists(probe) and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"cannot be made: {probe} is a file; give a folder path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"cannot be written ({probe} is read-only); pick a writable folder")
    return path


@dataclass(frozen=True)
class SizeOptions:
    """Options of `diag size` (``[tool.diag.size]``)."""

    max_size: str = option("2MB", "Budget for the fp32 weights: e.g. 2MB, 500KB, 1.5MiB.",
                           parse=parse_size)
    """The browser models are all under 2 MB: every byte is downloaded."""
    max_error: float | None = option(None, "Largest accepted error at --precision: pixels "
                                     "for landmark nets (0.5), 1 - top-1 agreement for "
                                     "classifiers (0.01), relative output change otherwise "
                                     "(0.01).", min=0)
    precision: str = option("uint8", "The precision you plan to ship.",
                            choices=("uint8", "uint16"))
    export: str | None = option(None, "Write the weights here (safetensors and tfjs "
                                "model.json + shards) and prove they load back.",
                                parse=lambda folder: export_folder(folder))
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
