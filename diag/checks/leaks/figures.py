"""Figures of `diag leaks`: tf.memory()-style curves per iteration."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from diag.report.figures import new_figure
from diag.result import CheckResult


def census_curves(series: dict[str, list[float]], warmup: int, title: str) -> Figure:
    """tf.memory()-style curves per iteration, warm-up shaded."""
    panels = [("tensors", "live tensors (count)"), ("storages", "storages (count)"),
              ("bytes", "live tensor bytes (MiB)"), ("graph_nodes", "autograd nodes (count)")]
    fig = new_figure(9.0, 6.0)
    for i, (key, label) in enumerate(panels):
        ax = fig.add_subplot(2, 2, i + 1)
        values = np.asarray(series.get(key, []), float)
        if key == "bytes":
            values = values / 2**20
        x = np.arange(1, len(values) + 1)
        ax.plot(x, values, marker=".", lw=1.2)
        if warmup:
            ax.axvspan(0.5, warmup + 0.5, color="0.85", label="warm-up")
            ax.legend(loc="upper left", fontsize=7)
        ax.set_xlabel("iteration (step() calls)")
        ax.set_ylabel(label)
        ax.set_title(key.replace("_", " "), fontsize=9)
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    return fig


def figures(result: CheckResult) -> dict[str, Figure]:
    if not result.series.get("tensors"):
        return {}
    return {"census": census_curves(dict(result.series), int(result.plot_data.get("warmup", 0)),
                                    "leaks: live tensors, storages, bytes and graph nodes "
                                    "per iteration")}


