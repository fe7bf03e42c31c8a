"""The one interface every output format implements."""

from __future__ import annotations

from typing import Protocol, TextIO

from diag.report import Report


class Reporter(Protocol):
    """Turns a Report into text: ``render`` for files and tests, ``write`` for a stream (the
    text format colours a terminal; the others write what ``render`` gives)."""

    def render(self, report: Report) -> str: ...

    def write(self, report: Report, stream: TextIO) -> None: ...
