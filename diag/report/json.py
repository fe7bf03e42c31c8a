"""JSON reporter: the ``diag-report/1`` document."""

from __future__ import annotations

import json
from typing import TextIO

from diag.report import Report


class JsonReporter:
    def __init__(self, verbose: bool = False, quiet: bool = False) -> None:
        """JSON carries everything; ``verbose`` and ``quiet`` do not change it."""

    def render(self, report: Report) -> str:
        return json.dumps(report.to_dict(), indent=2, sort_keys=False, allow_nan=False) + "\n"

    def write(self, report: Report, stream: TextIO) -> None:
        stream.write(self.render(report))
        stream.flush()
