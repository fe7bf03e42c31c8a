"""Figure rendering shared by the checks: functions take numbers and return a matplotlib
Figure (Agg, no pyplot state). Every plot has a title and labelled axes with units.

Each check's own figures live in ``diag/checks/<name>/figures.py``; ``figures_for`` finds
them through the registry. Figure functions never compute: they draw a result's numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from diag.result import CheckResult


def new_figure(width: float = 7.0, height: float = 4.0, *, grid: bool = False) -> Figure:
    """An Agg figure. ``grid``: many small panels, laid out with fixed margins (the
    constrained layout engine costs about 0.3 s on a grid of 8 images)."""
    fig = Figure(figsize=(width, height), dpi=100, layout=None if grid else "constrained")
    FigureCanvasAgg(fig)
    if grid:
        fig.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=0.88, wspace=0.45,
                            hspace=0.45)
    return fig


def loss_curve(losses: Sequence[float], title: str, goal: float | None = None,
               log: bool = True, xlabel: str = "training step (iterations)") -> Figure:
    """A loss curve, log scale when every value is positive."""
    fig = new_figure()
    ax = fig.add_subplot()
    values = np.asarray([v if isinstance(v, int | float) else np.nan for v in losses], float)
    ax.plot(np.arange(1, len(values) + 1), values, lw=1.5, label="loss")
    if goal is not None and goal > 0:
        ax.axhline(goal, color="tab:green", ls="--", lw=1, label=f"target {goal:.3g}")
    finite = values[np.isfinite(values)]
    if log and finite.size and (finite > 0).all():
        ax.set_yscale("log")
        ax.set_ylabel("loss (unitless, log scale)")
    else:
        ax.set_ylabel("loss (unitless)")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right")
    return fig


def landmark_predictions(images: np.ndarray, points_true: np.ndarray,
                         points_pred: np.ndarray, title: str) -> Figure:
    """Predicted (red x) vs true (green o) points drawn on the images the model saw."""
    k = len(images)
    cols = min(4, k)
    rows = int(np.ceil(k / cols))
    fig = new_figure(3.0 * cols, 3.1 * rows + 0.4, grid=True)
    for i in range(k):
        ax = fig.add_subplot(rows, cols, i + 1)
        img = images[i]
        ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img,
                  extent=(0, img.shape[1], img.shape[0], 0))
        ax.scatter(points_true[i][:, 0], points_true[i][:, 1], s=8, facecolors="none",
                   edgecolors="lime", linewidths=0.8, label="true")
        ax.scatter(points_pred[i][:, 0], points_pred[i][:, 1], s=8, c="red", marker="x",
                   linewidths=0.8, label="predicted")
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
        ax.set_title(f"sample {i}", fontsize=9)
        if i == 0:
            ax.legend(loc="lower left", fontsize=7)
    fig.suptitle(title)
    return fig


def figures_for(result: CheckResult) -> dict[str, Figure]:
    """The plots of a check's result, by short name (``loss``, ``predictions``...)."""
    from diag.checks.registry import BY_NAME

    check = BY_NAME.get(result.name)
    if check is None or check.figures is None:
        return {}
    figs: dict[str, Figure] = check.figures(result)
    return figs


__all__ = ["figures_for", "landmark_predictions", "loss_curve", "new_figure"]
