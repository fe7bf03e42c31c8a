"""The one interface every output format implements."""

from __future__ import annotations

from typing import Protocol

from diag.report import Report


class Reporter(Protocol):
    """Turns a Report into text for stdout (or a file)."""

    def render(self, report: Report) -> str: ...
