"""The one training loop every check drives: seeded, shuffled each epoch, Adam(1e-3).

It trains the model it is given; checks give it a copy, so a user's model is never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from diag.inputs.data import TensorData

LossFn = Callable[[Tensor, Tensor], Tensor]
OptimizerFactory = Callable[[Any, float], torch.optim.Optimizer]


def adam(params: Any, lr: float) -> torch.optim.Optimizer:
    """The article's optimizer: Adam(lr, betas=(0.9, 0.999), eps=1e-8)."""
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)


def batch_indices(n: int, batch_size: int, generator: torch.Generator, shuffle: bool = True
                  ) -> Iterator[Tensor]:
    """The sample indices of each batch of one epoch, as the trainer takes them: a fresh
    seeded permutation per epoch (``generator`` advances), or in order."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


class Trainer:
    """Minibatch training with a seeded shuffle each epoch.

    ``step()`` is deliberately plain (zero_grad, forward, loss, backward, optimizer step) so
    that a check built on it costs what a hand-written loop costs.
    """

    def __init__(
        self,
        model: nn.Module,
        data: TensorData,
        loss_fn: LossFn,
        *,
        lr: float = 1e-3,
        batch_size: int = 12,
        seed: int = 0,
        shuffle: bool = True,
        optimizer: OptimizerFactory = adam,
    ) -> None:
        if lr <= 0:
            raise ValueError("the learning rate must be positive")
        if batch_size < 1:
            raise ValueError("the batch size must be at least 1")
        self.model = model
        self.data = data
        self.loss_fn = loss_fn
        self.batch_size = min(batch_size, len(data))
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.optimizer = optimizer(model.parameters(), lr)
        self.epoch = 0
        self.steps_done = 0

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def epoch_batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """One pass over the data in a fresh seeded order."""
        n = len(self.data)
        if self.batch_size == n and not self.shuffle:
            yield self.data.x, self.data.y
        else:
            for idx in batch_indices(n, self.batch_size, self.generator, self.shuffle):
                yield self.data.x[idx], self.data.y[idx]
        self.epoch += 1

    def batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches forever, epoch after epoch."""
        while True:
            yield from self.epoch_batches()

    def forward_loss(self, xb: Tensor, yb: Tensor) -> Tensor:
        return self.loss_fn(self.model(xb), yb)

    def step(self, xb: Tensor, yb: Tensor) -> Tensor:
        """One optimisation step; returns the loss (still attached to its graph)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.forward_loss(xb, yb)
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        self.steps_done += 1
        return loss

    def train_epoch(self) -> float:
        """Train one epoch; returns the sample-weighted mean training loss."""
        self.model.train()
        total, count = 0.0, 0
        for xb, yb in self.epoch_batches():
            loss = self.step(xb, yb)
            total += float(loss.detach()) * xb.shape[0]
            count += xb.shape[0]
        return total / max(count, 1)

    @torch.no_grad()
    def evaluate(self, data: TensorData | None = None) -> float:
        """Mean loss over ``data`` (default: the training data) in eval mode."""
        data = data or self.data
        was_training = self.model.training
        self.model.eval()
        try:
            total = 0.0
            for start in range(0, len(data), 256):
                xb, yb = data.x[start : start + 256], data.y[start : start + 256]
                total += float(self.loss_fn(self.model(xb), yb)) * xb.shape[0]
            return total / len(data)
        finally:
            self.model.train(was_training)
