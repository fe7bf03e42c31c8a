"""Markdown reporter: ``summary.md`` (also what goes to $GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import os

from diag.report import Report
from diag.result import Severity

ICONS = {"pass": "✅", "warn": "⚠️", "fail": "❌", "error": "💥", "skip": "⏭️"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


class MarkdownReporter:
    def render(self, report: Report) -> str:
        lines = ["# diag report", "", "| check | status | summary | time (s) |",
                 "|---|---|---|---|"]
        lines.extend(f"| {c.name} | {ICONS.get(c.status.value, '')} {c.status.value} | "
                     f"{_cell(c.summary)} | {c.duration_s:.1f} |" for c in report.checks)
        if report.interrupted:
            lines += ["", f"**Interrupted** while running `{report.interrupted}`."]
        for c in report.checks:
            shown = [f for f in c.findings if f.severity != Severity.INFO] or list(c.findings)
            if not shown and not c.artifacts:
                continue
            lines += ["", f"## {c.name}", ""]
            for f in shown:
                loc = f" (`{f.location}`)" if f.location else ""
                hint = f" — {f.hint}" if f.hint else ""
                lines.append(f"- **{f.severity.value}**{loc}: {_cell(f.message)}{_cell(hint)}")
            for a in c.artifacts:
                if a.endswith(".png"):
                    lines.append(f"- plot: `{os.path.basename(a)}`")
        return "\n".join(lines) + "\n"
