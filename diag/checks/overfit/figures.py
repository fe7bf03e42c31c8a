"""Figures of `diag overfit`: the loss curve, predictions on the faces, gradient norms."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from diag.report.figures import landmark_predictions, loss_curve, new_figure
from diag.result import CheckResult


def class_predictions(images: np.ndarray, true: Sequence[int], pred: Sequence[int],
                      title: str, names: Sequence[str] | None = None) -> Figure:
    """Each image with its true and predicted class."""
    k = len(images)
    cols = min(4, k)
    rows = int(np.ceil(k / cols))
    fig = new_figure(3.0 * cols, 3.1 * rows + 0.4, grid=True)

    def label(c: int) -> str:
        return names[c] if names and 0 <= c < len(names) else str(c)

    for i in range(k):
        ax = fig.add_subplot(rows, cols, i + 1)
        img = images[i]
        ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img,
                  extent=(0, img.shape[1], img.shape[0], 0))
        ok = true[i] == pred[i]
        ax.set_title(f"true {label(true[i])} / pred {label(pred[i])}", fontsize=8,
                     color="green" if ok else "red")
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
    fig.suptitle(title)
    return fig


def grad_norms(names: Sequence[str], first: Sequence[float], last: Sequence[float],
               title: str) -> Figure:
    """Gradient L2 norm per parameter tensor, at the first and the last step."""
    fig = new_figure(8.0, max(3.0, 0.22 * len(names) + 1.2))
    ax = fig.add_subplot()
    y = np.arange(len(names))
    floor = 1e-12
    ax.barh(y - 0.2, np.maximum(np.asarray(first, float), floor), height=0.4, label="step 1")
    ax.barh(y + 0.2, np.maximum(np.asarray(last, float), floor), height=0.4, label="last step")
    ax.set_yticks(y, labels=list(names), fontsize=6)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("gradient L2 norm (loss units per parameter unit, log scale)")
    ax.set_ylabel("parameter tensor")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=7)
    return fig


def figures(result: CheckResult) -> dict[str, Figure]:
    data = result.plot_data
    figs: dict[str, Figure] = {}
    if result.series.get("loss"):
        figs["loss"] = loss_curve(result.series["loss"],
                                  f"overfit: training loss on {result.metrics.get('samples')} "
                                  "samples", goal=data.get("goal"))
    if "images" in data and "points_true" in data:
        figs["predictions"] = landmark_predictions(
            data["images"], data["points_true"], data["points_pred"],
            "overfit: predicted (red x) vs true (green o) landmarks")
    elif "images" in data and "labels_true" in data:
        figs["predictions"] = class_predictions(
            data["images"], data["labels_true"], data["labels_pred"],
            "overfit: true vs predicted class", data.get("class_names"))
    if data.get("grad_norm_names"):
        figs["grad_norms"] = grad_norms(data["grad_norm_names"], data["grad_norm_init"],
                                        data["grad_norm_final"],
                                        "overfit: gradient norm per parameter tensor")
    return figs


