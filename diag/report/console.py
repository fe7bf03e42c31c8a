"""Terminal reporter (rich): a table of checks, key metrics, findings with hints.

What each check adds (its key metrics, extra rows such as the leak attribution table)
comes from the registry; this module only lays it out.
"""

from __future__ import annotations

import io
import math
import os
import sys
from typing import Any, TextIO

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from diag.report import Report
from diag.result import CheckResult, Severity

STYLES = {"pass": "green", "warn": "yellow", "fail": "red", "error": "bold red", "skip": "dim"}
SEVERITY_STYLES = {"info": "dim", "warn": "yellow", "fail": "red", "error": "bold red"}


def fmt(value: Any) -> str:
    """A number as a person reads it: 4 significant digits, scientific when tiny or huge."""
    if isinstance(value, float):
        if math.isfinite(value) and value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


def _check(name: str) -> Any:
    from diag.checks.registry import BY_NAME

    return BY_NAME.get(name)


def key_metrics(result: CheckResult) -> str:
    check = _check(result.name)
    names = check.key_metrics if check is not None else ()
    if names:  # also 'loss.metric' keys, as checks of several objects write them
        items = [(k, v) for k, v in result.metrics.items()
                 if k in names or k.rsplit(".", 1)[-1] in names]
    else:
        items = list(result.metrics.items())
    if any("." in k for k, _ in items):  # several objects checked: their verdicts only
        items = [(k, v) for k, v in items if isinstance(v, bool)]
        failed = [k for k, v in items if v is False]
        return "\n".join(f"{k}=False" for k in failed) if failed else f"{len(items)} checks ok"
    items = items[:6]
    return "\n".join(f"{k}={fmt(v)}" for k, v in items if v is not None)


class ConsoleReporter:
    """The text format: a rich table on a terminal, plain text elsewhere."""

    def __init__(self, verbose: bool = False, quiet: bool = False) -> None:
        self.verbose = verbose
        self.quiet = quiet

    def renderable(self, report: Report) -> Group:
        table = Table(title="diag", title_justify="left", expand=False, show_lines=False)
        table.add_column("check", style="bold")
        table.add_column("status")
        table.add_column("summary", overflow="fold")
        table.add_column("key metrics", overflow="fold")
        table.add_column("time", justify="right")
        for c in report.checks:
            status = Text(c.status.value.upper(), style=STYLES.get(c.status.value, ""))
            table.add_row(c.name, status, c.summary, key_metrics(c), f"{c.duration_s:.1f}s")
        parts: list[Any] = [table]
        for c in report.checks:
            check = _check(c.name)
            extra, seen = (check.console(c) if check is not None and check.console
                           else ([], set()))
            parts.extend(extra)
            shown = [f for f in c.findings if (self.verbose or f.severity != Severity.INFO)
                     and not (f.location and f.location in seen)]
            if not shown:
                continue
            parts.append(Text(f"\n{c.name} findings:", style="bold"))
            for f in shown:
                line = Text(f"  {f.severity.value.upper():5} ",
                            style=SEVERITY_STYLES.get(f.severity.value, ""))
                line.append(f.message)
                if f.location:
                    line.append(f"  [{f.location}]", style="cyan")
                parts.append(line)
                if f.hint:
                    parts.append(Text(f"        hint: {f.hint}", style="italic"))
        artifacts = [a for c in report.checks for a in c.artifacts]
        if artifacts:
            parts.append(Text("\nfiles: " + ", ".join(artifacts), style="dim"))
        if report.interrupted:
            doing = ("drawing plots" if report.interrupted == "plots"
                     else f"running {report.interrupted}")
            parts.append(Text(f"\ninterrupted while {doing}",
                              style="bold red"))
        return Group(*parts)

    def _quiet_lines(self, report: Report) -> str:
        return "".join(f"{r.name}: {r.status.value}: {r.summary}\n" for r in report.checks)

    def render(self, report: Report) -> str:
        if self.quiet:
            return self._quiet_lines(report)
        console = Console(width=120, record=True, color_system=None, force_terminal=False,
                          file=io.StringIO())
        console.print(self.renderable(report))
        return console.export_text()

    def write(self, report: Report, stream: TextIO) -> None:
        if self.quiet:
            stream.write(self._quiet_lines(report))
            return
        # CI logs are not terminals: give the table room instead of rich's 80 columns.
        tty = stream.isatty() if hasattr(stream, "isatty") else False
        wide = None if tty or os.environ.get("COLUMNS") else 120
        Console(file=stream if stream is not sys.stdout else None, highlight=False,
                width=wide).print(self.renderable(report))
