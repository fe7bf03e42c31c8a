"""The LR range test (Smith 2015; the fastai / pytorch-lr-finder sweep), restoring state.

An exponential sweep of the learning rate, one batch per value, stopping when the smoothed
loss diverges. Model and optimizer state are snapshotted before and restored after.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from torch import Tensor, nn
from torch.optim import Optimizer


@dataclass(frozen=True)
class RangeTest:
    lrs: list[float]
    losses: list[float]
    stopped_early: bool


def range_test(model: nn.Module, optimizer: Optimizer,
               batches: Iterator[tuple[Tensor, Tensor]],
               loss_fn: Callable[[Tensor, Tensor], Tensor], *, start_lr: float = 1e-7,
               end_lr: float = 10.0, num_iter: int = 100, diverge: float = 4.0,
               beta: float = 0.98) -> RangeTest:
    """Sweep the LR exponentially; the model and optimizer come back as they were."""
    if not 0 < start_lr < end_lr:
        raise ValueError("need 0 < start_lr < end_lr")
    model_state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    ratio = (end_lr / start_lr) ** (1 / max(num_iter - 1, 1))
    lrs: list[float] = []
    losses: list[float] = []
    best = math.inf
    avg = 0.0
    stopped = False
    try:
        model.train()
        for i in range(num_iter):
            lr = start_lr * ratio**i
            for group in optimizer.param_groups:
                group["lr"] = lr
            xb, yb = next(batches)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            value = loss.item()
            lrs.append(lr)
            losses.append(value)
            avg = beta * avg + (1 - beta) * value
            smoothed = avg / (1 - beta ** (i + 1))
            if not math.isfinite(smoothed) or (i > 0 and smoothed > diverge * best):
                stopped = True
                break
            best = min(best, smoothed)
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(opt_state)
        model.train(was_training)
    return RangeTest(lrs, losses, stopped)
