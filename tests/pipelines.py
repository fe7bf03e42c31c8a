"""Pipelines with the classic pre/postprocessing bugs planted, next to correct twins."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from diag.model.pipeline import BrowserPipeline, square_padding


class Clean(BrowserPipeline):
    pass


@dataclass(frozen=True)
class BGRHonest(BrowserPipeline):
    """Correct: emits BGR and says so."""

    channel_order: str = "BGR"

    def preprocess_image(self, image: np.ndarray) -> torch.Tensor:
        return super().preprocess_image(np.ascontiguousarray(image[..., ::-1]))


@dataclass(frozen=True)
class BGRUndeclared(BGRHonest):
    channel_order: str = "RGB"  # BUG: the output is BGR


class ViewNotPermute(BrowserPipeline):
    """BUG: HWC -> CHW with view() instead of permute()."""

    def preprocess_image(self, image: np.ndarray) -> torch.Tensor:
        t = super().preprocess_image(image)  # (3, S, S)
        hwc = t.permute(1, 2, 0).contiguous()
        return hwc.view(3, self.size, self.size)


class DoubleNormalised(BrowserPipeline):
    def preprocess_image(self, image: np.ndarray) -> torch.Tensor:
        return super().preprocess_image(image) / 255.0  # BUG: normalised twice


class Uint8Wrap(BrowserPipeline):
    def preprocess_image(self, image: np.ndarray) -> torch.Tensor:
        return super().preprocess_image(image + np.uint8(40))  # BUG: wraps past 255


class PointsPaddedTopLeft(BrowserPipeline):
    """BUG: the image is centred in its square, the points are not shifted."""

    def points_to_model(self, points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        side = max(image_size)
        return np.asarray(points, dtype=np.float64).reshape(-1, 2) / side

    def postprocess(self, model_points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        return np.asarray(model_points).reshape(-1, 2) * max(image_size)


class PostprocessForgetsPadding(BrowserPipeline):
    def postprocess(self, model_points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        side, _, _ = square_padding(*image_size)
        return np.asarray(model_points).reshape(-1, 2) * side  # BUG: no offset


class SwappedXY(BrowserPipeline):
    def points_to_model(self, points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        return super().points_to_model(np.asarray(points)[:, ::-1], image_size)  # BUG

    def postprocess(self, model_points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        return super().postprocess(model_points, image_size)[:, ::-1]


class Flipped(BrowserPipeline):
    def preprocess_image(self, image: np.ndarray) -> torch.Tensor:
        return super().preprocess_image(np.ascontiguousarray(image[:, ::-1]))  # BUG: mirror


class Transposed(BrowserPipeline):
    """BUG: height and width swapped (permute(2, 1, 0) where permute(2, 0, 1) was meant),
    as in the reports of images that come out rotated and mirrored."""

    def preprocess_image(self, image: np.ndarray) -> torch.Tensor:
        return super().preprocess_image(image).transpose(1, 2).contiguous()


class UpsideDown(BrowserPipeline):
    def preprocess_image(self, image: np.ndarray) -> torch.Tensor:
        return super().preprocess_image(np.ascontiguousarray(image[::-1]))  # BUG: vflip


class RandomJitter(BrowserPipeline):
    def preprocess_image(self, image: np.ndarray) -> torch.Tensor:
        return super().preprocess_image(image) + 0.01 * torch.rand(1)  # BUG: augmentation


class Raises(BrowserPipeline):
    def preprocess(self, image: np.ndarray, points: np.ndarray):  # type: ignore[override]
        raise RuntimeError("planted failure in preprocess")


def clean() -> BrowserPipeline:
    return Clean(size=64)
