"""Every ``--format`` choice maps to one Reporter (a test keeps this complete)."""

from __future__ import annotations

from diag.report.console import ConsoleReporter
from diag.report.interface import Reporter
from diag.report.json import JsonReporter

REPORTERS: dict[str, type[Reporter]] = {
    "text": ConsoleReporter,
    "json": JsonReporter,
}
