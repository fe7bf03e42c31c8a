"""Figures of `diag preprocess`: each probe next to what the network sees."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from diag.report.figures import new_figure
from diag.result import CheckResult


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
    fig = new_figure(8.0, 4.2)
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


def figures(result: CheckResult) -> dict[str, Figure]:
    order = str(result.plot_data.get("channel_order", "RGB"))
    figs = {}
    for panel in result.plot_data.get("panels", []):
        h, w = panel["size"]
        figs[f"probe_{h}x{w}"] = pipeline_probe(
            panel["image"], panel["points"], panel["tensor"], panel["model_points"], order,
            f"preprocess: probe {h}x{w}")
    return figs


