"""What a hostile (or unlucky) user hands diag: each object here breaks one rule."""

from __future__ import annotations

import sys
import threading

import numpy as np
import torch
from torch import nn

from diag.model.pipeline import BrowserPipeline


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 4, generator=g), torch.randn(16, 2, generator=g)


def string_data() -> tuple[np.ndarray, np.ndarray]:
    return np.array([["a", "b", "c", "d"]] * 16), np.zeros((16, 2))


def negative_label_data() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(8, 4), torch.tensor([0, 1, 2, -1, 0, 1, 2, 0])


def linear() -> nn.Module:
    return nn.Linear(4, 2)


def classifier() -> nn.Module:
    return nn.Linear(4, 3)


class WithLock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.lock = threading.Lock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


locked_instance = WithLock()


class ExitsInForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sys.exit(0)


class Chatty(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("forward called")
        return self.fc(x)


def exiting_step():  # type: ignore[no-untyped-def]
    def step() -> None:
        raise SystemExit(5)

    return step


not_callable_step = 42


def loss_float(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(((pred - target) ** 2).mean())


def loss_none(pred: torch.Tensor, target: torch.Tensor) -> None:
    return None


def loss_vector(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target) ** 2


class NoPostprocess:
    def preprocess(self, image, points):  # type: ignore[no-untyped-def]
        return image, points


class XYZ:
    channel_order = "XYZ"

    def preprocess(self, image, points):  # type: ignore[no-untyped-def]
        return image, points

    def postprocess(self, points, size):  # type: ignore[no-untyped-def]
        return points


class PointsAbc(BrowserPipeline):
    def preprocess(self, image, points):  # type: ignore[no-untyped-def]
        tensor, _ = super().preprocess(image, points)
        return tensor, "abc"


class PostprocessNone(BrowserPipeline):
    def postprocess(self, model_points, image_size):  # type: ignore[no-untyped-def]
        return None


class EmptyTensor(BrowserPipeline):
    def preprocess(self, image, points):  # type: ignore[no-untyped-def]
        _, model_points = super().preprocess(image, points)
        return torch.zeros(3, 0, 0), model_points
