"""Figures of `diag size`: bytes per layer at each precision, and the largest layer's
weights with the uint8 levels over them."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from diag.report.figures import landmark_predictions, new_figure
from diag.result import CheckResult


def bytes_per_layer(rows: list[dict[str, object]], title: str) -> Figure:
    names = [str(r["layer"]) for r in rows]
    fig = new_figure(8.0, max(3.0, 0.22 * len(names) + 1.4))
    ax = fig.add_subplot()
    y = np.arange(len(names))
    for k, (key, label) in enumerate((("fp32_bytes", "fp32"), ("uint16_bytes", "uint16"),
                                      ("uint8_bytes", "uint8"))):
        ax.barh(y + (k - 1) * 0.27, [float(r[key]) / 1000 for r in rows],  # type: ignore[arg-type]
                height=0.27, label=label)
    ax.set_yticks(y, labels=names, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("size (kilobytes, 1 KB = 1000 bytes)")
    ax.set_ylabel("layer")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=7)
    return fig


def weight_histogram(layer: str, weights: np.ndarray, levels: np.ndarray, title: str
                     ) -> Figure:
    fig = new_figure()
    ax = fig.add_subplot()
    ax.hist(weights, bins=200, color="tab:blue", alpha=0.8, label="weights")
    lo, hi = float(weights.min()), float(weights.max())
    shown = levels[(levels >= lo) & (levels <= hi)]
    for v in shown[:: max(1, len(shown) // 64)]:
        ax.axvline(float(v), color="tab:red", lw=0.3, alpha=0.5)
    ax.plot([], [], color="tab:red", lw=1, label="uint8 levels (every few)")
    ax.set_xlabel(f"weight value in {layer} (unitless)")
    ax.set_ylabel("count (weights)")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=7)
    return fig


def figures(result: CheckResult) -> dict[str, Figure]:
    data = result.plot_data
    figs: dict[str, Figure] = {}
    if data.get("rows"):
        figs["bytes"] = bytes_per_layer(data["rows"], "size: bytes per layer at each "
                                        "precision")
    hist = data.get("largest")
    if hist:
        figs["weights"] = weight_histogram(hist["layer"], hist["weights"], hist["levels"],
                                           f"size: weights of the largest layer "
                                           f"({hist['layer']}) and the uint8 grid")
    faces = data.get("faces")
    if faces:
        figs["landmarks"] = landmark_predictions(
            faces["images"], faces["points_fp32"], faces["points_uint8"],
            "size: landmarks from fp32 (green o) and uint8 (red x) weights")
    return figs
