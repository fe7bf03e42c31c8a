"""Every ``--format`` choice maps to one Reporter (a test keeps this complete); the session
writes stdout through ``reporter_for`` whatever the format, text included."""

from __future__ import annotations

from collections.abc import Callable

from diag.report.console import ConsoleReporter
from diag.report.interface import Reporter
from diag.report.json import JsonReporter
from diag.report.sarif import SarifReporter

REPORTERS: dict[str, Callable[..., Reporter]] = {
    "text": ConsoleReporter,
    "json": JsonReporter,
    "sarif": SarifReporter,
}


def reporter_for(fmt: str, *, verbose: bool = False, quiet: bool = False) -> Reporter:
    """The reporter of ``--format fmt``."""
    return REPORTERS[fmt](verbose=verbose, quiet=quiet)
