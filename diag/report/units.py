"""Sizes as a person reads them. Pure standard library."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """Decimal units, as file sizes and downloads are counted: 308896 -> '309 KB'."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} GB"
