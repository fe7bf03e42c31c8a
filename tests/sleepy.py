"""Steps that block until they are interrupted: for --timeout and Ctrl-C tests, which must
never race against real work (a loaded machine would lose the race)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import torch
from torch import nn


def blocking_step() -> Callable[[], None]:
    def step() -> None:
        while True:  # until the timer's signal or Ctrl-C interrupts it
            time.sleep(0.05)

    return step


def _block() -> None:
    while True:  # until the timer's signal or Ctrl-C interrupts it
        time.sleep(0.05)


class BlockingForward(nn.Module):
    """A model whose forward never returns: the plan's trial forward must be bounded too."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 48 * 48, 136)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _block()
        return self.fc(x.flatten(1))  # pragma: no cover


def blocking_loader() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """A loader that blocks before its first batch (a worker waiting on a lock)."""
    _block()
    yield torch.zeros(2, 3), torch.zeros(2)  # pragma: no cover
