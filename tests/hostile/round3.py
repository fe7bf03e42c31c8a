"""Round 3 of the hostile user: loaders that go wrong after their first batch, factories that
return the wrong thing, models with surprising attributes, verdicts that NaN could pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor]


def _good(i: int) -> Batch:
    g = torch.Generator().manual_seed(i)
    return torch.randn(4, 4, generator=g), torch.randn(4, 2, generator=g)


def ragged_loader() -> Iterator[Batch]:
    """The third batch has 5 features instead of 4."""
    yield _good(0)
    yield _good(1)
    yield torch.randn(4, 5), torch.randn(4, 2)
    yield _good(3)


def string_loader() -> Iterator[object]:
    yield _good(0)
    yield ["a", "b"], ["c", "d"]


def keyless_loader() -> Iterator[object]:
    yield _good(0)
    yield {"inputs": torch.randn(4, 4), "wanted": torch.randn(4, 2)}


def _generator() -> Iterator[Batch]:
    yield from (_good(i) for i in range(4))


generator_object = _generator()  # a generator object where a factory belongs


def huge_loader() -> Iterator[Batch]:
    """A stride-0 batch: 12.9 GB if it were materialised (one float32, broadcast)."""
    yield _good(0)
    big = torch.zeros(1, 1).expand(3_200_000_000, 4)
    yield big, torch.zeros(1, 1).expand(3_200_000_000, 2)


def two_batch_loader() -> Iterator[Batch]:
    yield _good(0)
    yield _good(1)


def step_factory_returns_none() -> None:
    return None


def step_factory_returns_int() -> int:
    return 3


def linear() -> nn.Module:
    return nn.Linear(4, 2)


class NoWeightMatrix(nn.Module):
    """Only a bias-like vector: nothing for init to call a layer."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.scale)[:, :2]


class ShadowsTo(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.to = 16  # shadows Module.to

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class ListAndModules(nn.Module):
    """Layers kept in a plain list (invisible to .parameters()) beside a registered
    sub-module: overfit fails and confirms the plain-list cause by rerunning with a
    ModuleList, which must leave nn.Module's own ``_modules`` alone."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 16)
        self.layers = [nn.Linear(16, 16), nn.Linear(16, 2)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[1](torch.relu(self.layers[0](torch.relu(self.embed(x)))))


def nan_output() -> nn.Module:
    class NanOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) * float("nan")

    return NanOut()


def frozen() -> nn.Module:
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def huge_weights() -> nn.Module:
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(1e20)
    return m


def deep_std1() -> nn.Module:
    """A 30-layer MLP at weight std 1: the signal overflows float32."""
    layers: list[nn.Module] = [nn.Linear(4, 64), nn.ReLU()]
    for _ in range(28):
        layers += [nn.Linear(64, 64), nn.ReLU()]
    layers.append(nn.Linear(64, 2))
    m = nn.Sequential(*layers)
    with torch.no_grad():
        for mod in m:
            if isinstance(mod, nn.Linear):
                mod.weight.normal_(0, 1.0)
                mod.bias.zero_()
    return m


def make_step_factory() -> Callable[[], object]:
    return step_factory_returns_none
