"""Plots: functions take numbers and return a matplotlib Figure (Agg, no pyplot state).

Every plot has a title and labelled axes with units. ``figures_for`` picks the plots of a
check from its ``series`` and ``plot_data``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from diag.result import CheckResult


def _figure(width: float = 7.0, height: float = 4.0) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def loss_curve(losses: Sequence[float], title: str, goal: float | None = None,
               log: bool = True, xlabel: str = "training step (iterations)") -> Figure:
    """A loss curve, log scale when every value is positive."""
    fig = _figure()
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
    fig = _figure(3.0 * cols, 3.1 * rows + 0.4)
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


def class_predictions(images: np.ndarray, true: Sequence[int], pred: Sequence[int],
                      title: str, names: Sequence[str] | None = None) -> Figure:
    """Each image with its true and predicted class."""
    k = len(images)
    cols = min(4, k)
    rows = int(np.ceil(k / cols))
    fig = _figure(3.0 * cols, 3.1 * rows + 0.4)

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
    fig = _figure(8.0, max(3.0, 0.22 * len(names) + 1.2))
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


def _overfit_figures(result: CheckResult) -> dict[str, Figure]:
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


def census_curves(series: dict[str, list[float]], warmup: int, title: str) -> Figure:
    """tf.memory()-style curves per iteration, warm-up shaded."""
    panels = [("tensors", "live tensors (count)"), ("storages", "storages (count)"),
              ("bytes", "live tensor bytes (MiB)"), ("graph_nodes", "autograd nodes (count)")]
    fig = _figure(9.0, 6.0)
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


def _leaks_figures(result: CheckResult) -> dict[str, Figure]:
    if not result.series.get("tensors"):
        return {}
    return {"census": census_curves(dict(result.series), int(result.plot_data.get("warmup", 0)),
                                    "leaks: live tensors, storages, bytes and graph nodes "
                                    "per iteration")}


def curve_diagnosis(values: Sequence[float], index: Sequence[int], index_name: str,
                    spans: Mapping[str, Any], point: int | None, recommended: float | None,
                    title: str) -> Figure:
    """The loss curve with plateau / oscillation / divergence shaded from where they start,
    and the recommended LR drop marked."""
    fig = _figure(8.0, 4.5)
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


def range_test_curve(lrs: Sequence[float], losses: Sequence[float], suggestion: float | None,
                     title: str) -> Figure:
    """Loss against learning rate (log scale) with the suggested LR."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(lrs, losses, lw=1, alpha=0.5, label="loss per batch")
    from diag.lrdetect import ema

    if len(losses) > 1:
        ax.plot(lrs, ema(losses, 0.98), lw=1.5, label="smoothed (EMA 0.98)")
    if suggestion:
        ax.axvline(suggestion, color="tab:green", ls="--", label=f"suggested {suggestion:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss (unitless)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def _lr_figures(result: CheckResult) -> dict[str, Figure]:
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
                                              data.get("range_suggestion"),
                                              "lr-schedule: LR range test")
    return figs


def tensor_to_image(tensor: np.ndarray, channel_order: str = "RGB") -> np.ndarray:
    """What the network sees, for the eye: each channel stretched to 0..255, shown as RGB."""
    t = np.asarray(tensor, dtype=np.float64)
    if t.ndim == 3 and t.shape[0] in (1, 3):
        t = np.moveaxis(t, 0, -1)
    lo = t.min(axis=(0, 1), keepdims=True)
    hi = t.max(axis=(0, 1), keepdims=True)
    img = ((t - lo) / np.maximum(hi - lo, 1e-12) * 255).round().astype(np.uint8)
    if img.shape[-1] == 3 and channel_order.upper() == "BGR":
        img = img[..., ::-1]
    return np.ascontiguousarray(img, dtype=np.uint8)


def pipeline_probe(image: np.ndarray, points: np.ndarray, tensor: np.ndarray,
                   model_points: np.ndarray, channel_order: str, title: str) -> Figure:
    """The probe image with its points, next to the tensor decoded with model_points."""
    fig = _figure(8.0, 4.2)
    ax = fig.add_subplot(1, 2, 1)
    ax.imshow(image, extent=(0, image.shape[1], image.shape[0], 0))
    ax.scatter(points[:, 0], points[:, 1], s=40, facecolors="none", edgecolors="red")
    ax.set_title(f"input {image.shape[0]}x{image.shape[1]} with its points", fontsize=9)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    ax = fig.add_subplot(1, 2, 2)
    seen = tensor_to_image(tensor, channel_order)
    ax.imshow(seen.squeeze(-1) if seen.shape[-1] == 1 else seen,
              extent=(0, seen.shape[1], seen.shape[0], 0))
    ax.scatter(model_points[:, 0], model_points[:, 1], s=40, facecolors="none",
               edgecolors="lime")
    ax.set_title("what the network sees, with model_points", fontsize=9)
    ax.set_xlabel("x (tensor pixels)")
    ax.set_ylabel("y (tensor pixels)")
    fig.suptitle(title)
    return fig


def _preprocess_figures(result: CheckResult) -> dict[str, Figure]:
    order = str(result.plot_data.get("channel_order", "RGB"))
    figs = {}
    for panel in result.plot_data.get("panels", []):
        h, w = panel["size"]
        figs[f"probe_{h}x{w}"] = pipeline_probe(
            panel["image"], panel["points"], panel["tensor"], panel["model_points"], order,
            f"preprocess: probe {h}x{w}")
    return figs


PLOTTERS: dict[str, Callable[[CheckResult], dict[str, Figure]]] = {
    "preprocess": _preprocess_figures,
    "lr-schedule": _lr_figures,
    "overfit": _overfit_figures,
    "leaks": _leaks_figures,
}


def figures_for(result: CheckResult) -> dict[str, Figure]:
    """The plots of a check's result, by short name (``loss``, ``predictions``...)."""
    plotter = PLOTTERS.get(result.name)
    return plotter(result) if plotter else {}


__all__ = ["class_predictions", "figures_for", "grad_norms", "landmark_predictions",
           "loss_curve"]
