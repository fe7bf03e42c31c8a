"""Custom losses with planted bugs, next to correct twins (kinked ones included)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


# --- correct, smooth or kinked ---------------------------------------------------------------
def mse(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred - target) ** 2).mean()


def l1(pred: Tensor, target: Tensor) -> Tensor:  # kink at pred == target
    return (pred - target).abs().mean()


def smooth_l1(pred: Tensor, target: Tensor) -> Tensor:
    return F.smooth_l1_loss(pred, target)


def hinge(pred: Tensor, target: Tensor) -> Tensor:  # binary targets 0/1 -> -1/+1; kink at 1
    return torch.clamp(1 - pred * (2 * target - 1), min=0).mean()


def cross_entropy(pred: Tensor, target: Tensor) -> Tensor:
    return -F.log_softmax(pred, dim=1).gather(1, target.unsqueeze(1)).mean()


def euclidean_safe(pred: Tensor, target: Tensor) -> Tensor:
    return torch.sqrt(((pred - target) ** 2).sum(dim=1) + 1e-12).mean()


def where_safe(pred: Tensor, target: Tensor) -> Tensor:
    safe = torch.where(pred > 0, pred, torch.ones_like(pred))
    return (torch.where(pred > 0, torch.log(safe), pred) - target).pow(2).mean()


def focal_safe(pred: Tensor, target: Tensor, gamma: float = 0.5) -> Tensor:
    logp = F.log_softmax(pred, dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
    p = logp.exp()
    return (-((1 - p).clamp_min(1e-6) ** gamma) * logp).mean()


def noisy_mse(pred: Tensor, target: Tensor) -> Tensor:  # random, yet correct
    return ((pred - target) ** 2 * (1 + 0.1 * torch.rand_like(pred))).mean()


def sum_mse(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred - target) ** 2).sum()


# --- planted bugs ------------------------------------------------------------------------
class _DoubledGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pred: Tensor, target: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(pred, target)
        return ((pred - target) ** 2).mean()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        pred, target = ctx.saved_tensors
        return grad * 4 * (pred - target) / pred.numel(), None  # BUG: 4 instead of 2


def wrong_backward(pred: Tensor, target: Tensor) -> Tensor:
    return _DoubledGrad.apply(pred, target)


def item_inside(pred: Tensor, target: Tensor) -> Tensor:
    return torch.tensor(((pred - target) ** 2).mean().item())  # BUG: cuts the graph


def detach_inside(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred.detach() - target) ** 2).mean()  # BUG


def numpy_inside(pred: Tensor, target: Tensor) -> Tensor:
    return torch.as_tensor(np.mean((pred.numpy() - target.numpy()) ** 2))  # BUG


def log_softmax_naive(pred: Tensor, target: Tensor) -> Tensor:
    return -torch.log(torch.softmax(pred, dim=1)).gather(1, target.unsqueeze(1)).mean()  # BUG


def euclidean_sqrt(pred: Tensor, target: Tensor) -> Tensor:
    return torch.sqrt(((pred - target) ** 2).sum(dim=1)).mean()  # BUG: sqrt'(0) = inf


def where_unsafe(pred: Tensor, target: Tensor) -> Tensor:
    return (torch.where(pred > 0, torch.log(pred), pred) - target).pow(2).mean()  # BUG


def focal_unsafe(pred: Tensor, target: Tensor, gamma: float = 0.5) -> Tensor:
    logp = F.log_softmax(pred, dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
    p = logp.exp()
    return (-((1 - p) ** gamma) * logp).mean()  # BUG: pow(0, gamma < 1)


def softmax_over_batch(pred: Tensor, target: Tensor) -> Tensor:
    return -F.log_softmax(pred, dim=0).gather(1, target.unsqueeze(1)).mean()  # BUG: dim=0


def raises(pred: Tensor, target: Tensor) -> Tensor:
    raise ValueError("planted failure in the loss")


def not_scalar(pred: Tensor, target: Tensor) -> Tensor:
    return (pred - target) ** 2


def returns_float(pred: Tensor, target: Tensor) -> float:
    return float(((pred - target) ** 2).mean())
