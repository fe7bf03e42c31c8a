"""Console rows of `diag leaks`: what grows, and where it was created."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from diag.report.console import fmt
from diag.result import CheckResult


def rows(result: CheckResult) -> tuple[list[Any], set[str]]:
    """The attribution table, biggest first (none when nothing grows), and the locations
    of the findings it already shows."""
    table_rows = result.plot_data.get("attribution") if result.plot_data else None
    if not table_rows:
        return [], set()
    table = Table(title=f"\n{result.name}: what grows, and where it was created (biggest "
                  "first)", title_justify="left")
    table.add_column("created at", style="cyan")
    table.add_column("tensor")
    table.add_column("op")
    table.add_column("tensors/iter", justify="right")
    table.add_column("bytes/iter", justify="right")
    table.add_column("graph nodes/iter", justify="right")
    table.add_column("hint", overflow="fold")
    for r in table_rows:
        table.add_row(r["created_at"], r["tensor"], r["op"], fmt(r["tensors_per_iter"]),
                      fmt(r["bytes_per_iter"]), fmt(r["graph_nodes_per_iter"]), r["hint"])
    return [table], {r["created_at"] for r in table_rows}
