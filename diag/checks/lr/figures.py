"""Figures of `diag lr-schedule`: the curve with what diag sees, the range test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from diag.report.figures import new_figure
from diag.result import CheckResult


def curve_diagnosis(values: Sequence[float], index: Sequence[int], index_name: str,
                    spans: Mapping[str, Any], point: int | None, recommended: float | None,
                    title: str) -> Figure:
    """The loss curve with plateau / oscillation / divergence shaded from where they start,
    and the recommended LR drop marked."""
    fig = new_figure(8.0, 4.5)
    ax = fig.add_subplot()
    y = np.asarray([v if isinstance(v, int | float) else np.nan for v in values], float)
    x = np.asarray(index, float)
    ax.plot(x, y, lw=1.3, color="tab:blue", label="loss")
    colors = {"plateau": "tab:orange", "oscillation": "tab:purple", "divergence": "tab:red"}
    for name, start in spans.items():
        if start is not None:
            ax.axvspan(start, x[-1], color=colors[name], alpha=0.15, label=f"{name} from {start}")
    if point is not None:
        text = f"lower LR to {recommended:.2g} here" if recommended else "act here"
        ax.axvline(point, color="black", ls="--", lw=1)
        finite = y[np.isfinite(y)]
        ax.annotate(text, (point, float(np.nanmax(finite)) if finite.size else 0.0),
                    xytext=(5, -12), textcoords="offset points", fontsize=8)
    finite = y[np.isfinite(y)]
    if finite.size and (finite > 0).all() and finite.max() / finite.min() > 20:
        ax.set_yscale("log")
        ax.set_ylabel("loss (unitless, log scale)")
    else:
        ax.set_ylabel("loss (unitless)")
    ax.set_xlabel(f"{index_name} (count)" if index_name != "index" else "point in the history "
                  "(count)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return fig


def range_test_curve(lrs: Sequence[float], losses: Sequence[float],
                     smoothed: Sequence[float], suggestion: float | None, title: str) -> Figure:
    """Loss against learning rate (log scale) with the suggested LR."""
    fig = new_figure()
    ax = fig.add_subplot()
    ax.plot(lrs, losses, lw=1, alpha=0.5, label="loss per batch")
    if len(smoothed) == len(lrs):
        ax.plot(lrs, smoothed, lw=1.5, label="smoothed (centred median, as the suggestion)")
    if suggestion:
        ax.axvline(suggestion, color="tab:green", ls="--", label=f"suggested {suggestion:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss (unitless)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def figures(result: CheckResult) -> dict[str, Figure]:
    data = result.plot_data
    figs: dict[str, Figure] = {}
    if result.series.get("loss"):
        m = result.metrics
        spans = {"plateau": m.get("plateau_start"), "oscillation": m.get("oscillation_start"),
                 "divergence": m.get("divergence_start")}
        figs["curve"] = curve_diagnosis(
            result.series["loss"], data.get("index") or list(range(len(result.series["loss"]))),
            str(data.get("index_name", "index")), spans, data.get("point"),
            data.get("recommended_lr"), "lr-schedule: loss curve and what diag sees")
    if data.get("range_lrs"):
        figs["range_test"] = range_test_curve(data["range_lrs"], data["range_losses"],
                                              data.get("range_smoothed", []),
                                              data.get("range_suggestion"),
                                              "lr-schedule: LR range test")
    return figs


