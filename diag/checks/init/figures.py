"""Figure of `diag init`: the output std and the weight gradient norm per layer."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from diag.report.figures import new_figure
from diag.result import CheckResult


def per_layer(rows: list[dict[str, object]], title: str) -> Figure:
    names = [str(r["layer"]) for r in rows]
    fig = new_figure(8.0, 6.0)
    top, bottom = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(names))
    for ax, key, label, color in (
            (top, "out_std", "output std (unitless)", "tab:blue"),
            (bottom, "grad_norm", "|weight gradient| (loss per weight unit)", "tab:red")):
        raw = [float(r[key]) if r[key] else 0.0 for r in rows]  # type: ignore[arg-type]
        values = np.array([v if v > 0 else np.nan for v in raw], dtype=float)
        ax.plot(x, values, marker="o", ms=3, color=color)
        if any(v > 0 for v in raw):
            ax.set_yscale("log")
        ax.set_ylabel(label + "\nlog scale", fontsize=8)
        ax.grid(True, alpha=0.3)
    top.set_title(title)
    bottom.set_xticks(x, labels=names, rotation=60, ha="right", fontsize=6)
    bottom.set_xlabel("layer (forward order)")
    return fig


def figures(result: CheckResult) -> dict[str, Figure]:
    rows = result.plot_data.get("rows")
    if not rows:
        return {}
    return {"layers": per_layer(rows, "init: output std and gradient norm per layer at "
                                      "step 0")}
