"""Terminal reporter (rich): a table of checks, key metrics, findings with hints."""

from __future__ import annotations

import io
import math
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from diag.report import Report
from diag.result import CheckResult, Severity

STYLES = {"pass": "green", "warn": "yellow", "fail": "red", "error": "bold red", "skip": "dim"}
SEVERITY_STYLES = {"info": "dim", "warn": "yellow", "fail": "red", "error": "bold red"}

# The few metrics worth a glance per check; the JSON report has them all.
KEY_METRICS: dict[str, tuple[str, ...]] = {
    "overfit": ("steps", "initial_loss", "final_loss", "target_loss", "accuracy",
                "dead_relu_fraction"),
    "lr-schedule": ("plateau_start", "oscillation_start", "divergence_start", "recommended_lr",
                    "verify_gain", "range_test_suggested_lr"),
    "loss-grad": ("gradient_correct", "grad_reaches_pred", "finite_at_edges",
                  "batch_independent", "reduction", "reference_match"),
    "preprocess": ("max_point_error_px", "max_round_trip_error_px", "dynamic_range",
                   "declared_channel_order"),
    "leaks": ("tensors_per_iter", "bytes_per_iter", "graph_nodes_per_iter", "tensors_final"),
}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isfinite(value) and value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


def key_metrics(result: CheckResult) -> str:
    names = KEY_METRICS.get(result.name)
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
    return "\n".join(f"{k}={_fmt(v)}" for k, v in items if v is not None)


class ConsoleReporter:
    """Renders to a rich Console; ``render`` gives the same as plain text."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose

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
            rows = c.plot_data.get("attribution") if c.plot_data else None
            if rows:
                parts.append(_attribution_table(c.name, rows))
            shown = [f for f in c.findings if self.verbose or f.severity != Severity.INFO]
            if rows:
                shown = [f for f in shown if f.location not in {r["created_at"] for r in rows}]
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
            parts.append(Text(f"\ninterrupted while running {report.interrupted}",
                              style="bold red"))
        return Group(*parts)

    def print(self, report: Report, console: Console) -> None:
        console.print(self.renderable(report))

    def render(self, report: Report) -> str:
        console = Console(width=120, record=True, color_system=None, force_terminal=False,
                          file=io.StringIO())
        console.print(self.renderable(report))
        return console.export_text()


def _attribution_table(name: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"\n{name}: what grows, and where it was created (biggest first)",
                  title_justify="left")
    table.add_column("created at", style="cyan")
    table.add_column("tensor")
    table.add_column("op")
    table.add_column("tensors/iter", justify="right")
    table.add_column("bytes/iter", justify="right")
    table.add_column("graph nodes/iter", justify="right")
    table.add_column("hint", overflow="fold")
    for r in rows:
        table.add_row(r["created_at"], r["tensor"], r["op"], _fmt(r["tensors_per_iter"]),
                      _fmt(r["bytes_per_iter"]), _fmt(r["graph_nodes_per_iter"]), r["hint"])
    return table

