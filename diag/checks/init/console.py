"""Console rows of `diag init`: the per-layer table, when something is wrong."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from diag.result import CheckResult, Status


def rows(result: CheckResult) -> tuple[list[Any], set[str]]:
    """The per-layer table (only when the check warns or fails: the JSON report and the
    plot always have the numbers)."""
    layer_rows = result.plot_data.get("rows") if result.plot_data else None
    if not layer_rows or result.status not in (Status.WARN, Status.FAIL):
        return [], set()
    table = Table(title=f"\n{result.name}: layer by layer at step 0 (forward order)",
                  title_justify="left")
    for col in ("layer", "out mean", "out std", "act", "dead", "sat", "w std", "Glorot",
                "He", "|b|", "|g|", "|g|/|w|"):
        table.add_column(col, justify="left" if col in ("layer", "act") else "right",
                         no_wrap=True)

    def fmt(v: float) -> str:
        return f"{v:.3g}"


    def pct(v: float | None) -> str:
        return "" if v is None else f"{v:.0%}"

    for r in layer_rows:
        table.add_row(r["layer"], fmt(r["out_mean"]), fmt(r["out_std"]), r["activation"],
                      pct(r["dead_fraction"]), pct(r["saturated_fraction"]),
                      fmt(r["weight_std"]), fmt(r["glorot_std"]), fmt(r["he_std"]),
                      "" if r["bias_mean_abs"] is None else fmt(r["bias_mean_abs"]),
                      fmt(r["grad_norm"]), fmt(r["grad_ratio"]))
    return [table], set()
