"""JSON reporter: the ``diag-report/1`` document."""

from __future__ import annotations

import json

from diag.report import Report


class JsonReporter:
    def render(self, report: Report) -> str:
        return json.dumps(report.to_dict(), indent=2, sort_keys=False, allow_nan=False) + "\n"
