"""The browser model's preprocessing and postprocessing (BROWSER_MODEL.md), and their inverse.

Follows DESIGN.md's ``--pipeline`` contract: ``preprocess(image, points) -> (tensor,
model_points)`` and ``postprocess(model_points, image_size) -> points``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MEAN_RGB = (122.782, 117.001, 104.298)


def square_padding(height: int, width: int) -> tuple[int, int, int]:
    """(side, pad_top, pad_left) to centre an image in a square.

    As face-api.js's ``padToSquare(img, isCenterImage=true)``: it appends
    ``Math.round(diff / 2)`` rows or columns (JavaScript rounds .5 up) and prepends the rest,
    so an odd remainder goes to the trailing side (bottom or right): a 100x95 image gets 2
    columns on the left and 3 on the right.
    """
    side = max(height, width)
    dh, dw = side - height, side - width
    return side, dh // 2, dw // 2


@dataclass(frozen=True)
class BrowserPipeline:
    """Pad to a centred square with zeros, bilinear resize to ``size``, subtract the mean
    RGB and divide by 255, NCHW float32. Points go to [0, 1] of the padded square."""

    size: int = 112
    mean: tuple[float, float, float] = MEAN_RGB
    channel_order: str = "RGB"

    def pad_square(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        side, top, left = square_padding(h, w)
        out = np.zeros((side, side, image.shape[2]), dtype=image.dtype)
        out[top : top + h, left : left + w] = image
        return out

    def preprocess_image(self, image: np.ndarray) -> torch.Tensor:
        """RGB uint8 (H, W, 3) -> float32 (3, size, size)."""
        image = _check_image(image)
        square = torch.from_numpy(self.pad_square(image)).permute(2, 0, 1).float()
        resized = F.interpolate(square[None], size=(self.size, self.size), mode="bilinear",
                                align_corners=False)[0]
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        return ((resized - mean) / 255.0).contiguous()

    def points_to_model(self, points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        """Pixel (x, y) of the original image -> [0, 1] of the padded square."""
        h, w = image_size
        side, top, left = square_padding(h, w)
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return (pts + np.array([left, top], dtype=np.float64)) / side

    def preprocess(self, image: np.ndarray, points: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        image = _check_image(image)
        return self.preprocess_image(image), self.points_to_model(points, image.shape[:2])

    def postprocess(self, model_points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        """[0, 1] of the padded square -> pixel (x, y) of the original image (exact inverse)."""
        h, w = int(image_size[0]), int(image_size[1])
        side, top, left = square_padding(h, w)
        pts = np.asarray(model_points, dtype=np.float64).reshape(-1, 2)
        return pts * side - np.array([left, top], dtype=np.float64)

    def to_image(self, tensor: torch.Tensor) -> np.ndarray:
        """Undo the normalisation: float32 (3, S, S) -> uint8 (S, S, 3), what the net sees."""
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        img = (tensor.detach().cpu().float() * 255.0 + mean).clamp(0, 255).round()
        return img.to(torch.uint8).permute(1, 2, 0).numpy()


def _check_image(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {arr.dtype}")
    return arr


def default_pipeline(size: int = 112) -> BrowserPipeline:
    """The browser model's own pipeline (what ``--pipeline`` defaults to)."""
    return BrowserPipeline(size=size)


def display_images(x: torch.Tensor, browser: bool) -> np.ndarray | None:
    """Input tensors (N, C, H, W) as uint8 pictures (N, H, W, C) for plots: undoing the
    browser pipeline's normalisation for its own data, else each image stretched to
    0..255. None when the channels are not 1 or 3."""
    x = x.detach().float()
    if browser and x.shape[1] == 3:
        pipe = BrowserPipeline(size=int(x.shape[-1]))
        return np.stack([pipe.to_image(img) for img in x])
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    scaled = ((x - lo) / (hi - lo).clamp_min(1e-12) * 255).round().to(torch.uint8)
    images: np.ndarray = scaled.permute(0, 2, 3, 1).numpy()
    return images if images.shape[-1] in (1, 3) else None
