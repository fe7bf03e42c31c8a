"""Figures of `diag lr-schedule`: the curve with what diag sees, the range test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from diag.report.figures import new_figure
from diag.result import CheckResult


def curve_diagnosis(values: Sequence[float], index: Sequence[float], index_name: str,
                    spans: Mapping[str, Any], point: int | None, recommended: float | None,
                    title: str, *, metric: str = "loss", stall: Sequence[int] | None = None,
                    warmup_end: int | None = None,
                    lr_steps: Sequence[tuple[int, float]] = (),
                    val: Sequence[float] | None = None, val_index: Sequence[float] | None = None,
                    val_metric: str = "", best_val: int | None = None) -> Figure:
    """The curve with each stretch diag sees labelled: warm-up, stall, plateau /
    oscillation / divergence from where they start, the LR at each step drop, the
    validation curve and where it bottomed out, and the recommended LR drop."""
    fig = new_figure(8.0, 4.5)
    ax = fig.add_subplot()
    y = np.asarray([v if isinstance(v, int | float) else np.nan for v in values], float)
    x = np.asarray(index, float)
    ax.plot(x, y, lw=1.3, color="tab:blue", label=metric)
    if val is not None and val_index is not None and len(val):
        vy = np.asarray([v if isinstance(v, int | float) else np.nan for v in val], float)
        ax.plot(np.asarray(val_index, float), vy, lw=1.3, color="tab:green",
                label=val_metric or "validation")
        if best_val is not None:
            ax.axvline(best_val, color="tab:green", ls=":", lw=1.2,
                       label=f"best {val_metric or 'validation'}: stop at {best_val}")
    if warmup_end:
        ax.axvspan(x[0], warmup_end, color="0.85", alpha=0.6, label=f"warm-up to {warmup_end}")
    if stall:
        ax.axvspan(stall[0], stall[1], color="tab:gray", alpha=0.25,
                   label=f"stall {stall[0]}-{stall[1]} (a slow start)")
    colors = {"plateau": "tab:orange", "converged": "tab:green", "oscillation": "tab:purple",
              "divergence": "tab:red"}
    for name, start in spans.items():
        if start is not None:
            ax.axvspan(start, x[-1], color=colors[name], alpha=0.15, label=f"{name} from {start}")
    for at, lr in lr_steps:
        ax.axvline(at, color="0.4", ls="-.", lw=0.8)
        ax.annotate(f"lr {lr:.2g}", (at, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -10), textcoords="offset points", fontsize=7, color="0.3")
    if point is not None:
        text = f"lower LR to {recommended:.2g} here" if recommended else "act here"
        ax.axvline(point, color="black", ls="--", lw=1)
        finite = y[np.isfinite(y)]
        ax.annotate(text, (point, float(np.nanmax(finite)) if finite.size else 0.0),
                    xytext=(5, -12), textcoords="offset points", fontsize=8)
    finite = y[np.isfinite(y)]
    if finite.size and (finite > 0).all() and finite.max() / finite.min() > 20:
        ax.set_yscale("log")
        ax.set_ylabel(f"{metric} (unitless, log scale)")
    else:
        ax.set_ylabel(f"{metric} (unitless)")
    ax.set_xlabel(f"{index_name} (count)" if index_name != "index" else "point in the history "
                  "(count)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=7)
    return fig


def range_test_curve(lrs: Sequence[float], losses: Sequence[float],
                     smoothed: Sequence[float], suggestion: float | None, title: str) -> Figure:
    """Loss against learning rate (log scale) with the suggested LR."""
    fig = new_figure()
    ax = fig.add_subplot()
    ax.plot(lrs, losses, lw=1, alpha=0.5, label="loss per batch (the sweeps' mean)")
    if len(smoothed) == len(lrs):
        ax.plot(lrs, smoothed, lw=1.5, label="smoothed (centred median, as the suggestion)")
    if suggestion:
        ax.axvline(suggestion, color="tab:green", ls="--", label=f"suggested {suggestion:.2g}")
    ax.set_xscale("log")
    seen = np.asarray(smoothed, float)
    seen = seen[np.isfinite(seen)]
    if seen.size >= 10:  # the last points blow up by orders of magnitude: keep the valley
        start = float(np.median(seen[: max(3, seen.size // 10)]))
        ax.set_ylim(float(seen.min()) - 0.05 * abs(start), 1.5 * start)
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
        spans = {"converged" if m.get("converged") else "plateau": m.get("plateau_start"),
                 "oscillation": m.get("oscillation_start"),
                 "divergence": m.get("divergence_start")}
        figs["curve"] = curve_diagnosis(
            result.series["loss"], data.get("index") or list(range(len(result.series["loss"]))),
            str(data.get("index_name", "index")), spans, data.get("point"),
            data.get("recommended_lr"), "lr-schedule: loss curve and what diag sees",
            metric=str(m.get("metric", "loss")), stall=m.get("stall"),  # type: ignore[arg-type]
            warmup_end=data.get("warmup_end"), lr_steps=data.get("lr_steps", ()),
            val=result.series.get("val"), val_index=data.get("val_index"),
            val_metric=str(data.get("val_metric", "")), best_val=data.get("best_epoch_val"))
    if data.get("range_lrs"):
        figs["range_test"] = range_test_curve(data["range_lrs"], data["range_losses"],
                                              data.get("range_smoothed", []),
                                              data.get("range_suggestion"),
                                              "lr-schedule: LR range test")
    return figs


