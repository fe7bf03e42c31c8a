"""Planted step-0 bugs for `diag init`, each next to its correct twin, and a small table
of class data they all fit (16 features, 4 classes)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

FEATURES, CLASSES, DEPTH, WIDTH = 16, 4, 20, 64


def table(n: int = 64, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=g)
    y = (x[:, :CLASSES].argmax(1)).long()  # learnable labels
    return x, y


class PlainStack(nn.Module):
    """DEPTH Linear layers with sigmoid between them, no skip: the gradient vanishes."""

    def __init__(self, act: type[nn.Module] = nn.Sigmoid) -> None:
        super().__init__()
        self.inp = nn.Linear(FEATURES, WIDTH)
        self.hidden = nn.ModuleList(nn.Linear(WIDTH, WIDTH) for _ in range(DEPTH - 2))
        self.act = act()
        self.head = nn.Linear(WIDTH, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.inp(x))
        for layer in self.hidden:
            h = self.act(layer(h))
        out: Tensor = self.head(h)
        return out


class ResidualStack(nn.Module):
    """The same depth with ReLU and a skip around every hidden layer (pre-activation
    residual blocks, h + W relu(h), each branch scaled by 1/sqrt(depth) at init): healthy."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(FEATURES, WIDTH)
        self.hidden = nn.ModuleList(nn.Linear(WIDTH, WIDTH) for _ in range(DEPTH - 2))
        self.head = nn.Linear(WIDTH, CLASSES)
        with torch.no_grad():
            for layer in self.hidden:
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                layer.weight.mul_((DEPTH - 2) ** -0.5)
                layer.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(x)
        for layer in self.hidden:
            h = h + layer(torch.relu(h))
        out: Tensor = self.head(torch.relu(h))
        return out


class Small(nn.Module):
    """Two hidden ReLU layers; ``head_scale`` multiplies the last layer's weights and
    ``bias`` sets the second layer's bias."""

    def __init__(self, head_scale: float = 1.0, bias: float | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(FEATURES, WIDTH)
        self.fc2 = nn.Linear(WIDTH, WIDTH)
        self.head = nn.Linear(WIDTH, CLASSES)
        with torch.no_grad():
            self.head.weight.mul_(head_scale)
            if bias is not None:
                self.fc2.bias.fill_(bias)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))
        return out


def sigmoid_stack() -> nn.Module:
    return PlainStack()


def residual_stack() -> nn.Module:
    return ResidualStack()


def big_logits() -> nn.Module:
    return Small(head_scale=100.0)


def small_logits() -> nn.Module:
    return Small()


def dead_relu() -> nn.Module:
    return Small(bias=-10.0)


def live_relu() -> nn.Module:
    return Small(bias=0.0)


def stack(act: type[nn.Module], std: float, depth: int, width: int = WIDTH,
          bias: float = 0.0) -> Callable[[], nn.Module]:
    """A factory of ``depth`` Linear+``act`` pairs (FEATURES in, CLASSES out) with weights
    N(0, std) and a constant bias: the saturated, overflowing or dead stacks of the init
    cases, and their healthy twins at Glorot / He std."""
    def make() -> nn.Module:
        torch.manual_seed(0)
        layers: list[nn.Module] = []
        for i in range(depth):
            lin = nn.Linear(FEATURES if i == 0 else width, width)
            nn.init.normal_(lin.weight, std=std)
            nn.init.constant_(lin.bias, bias)
            layers += [lin, act()]
        return nn.Sequential(*layers, nn.Linear(width, CLASSES))
    return make


def random_labels(n: int = 64, seed: int = 3) -> tuple[Tensor, Tensor]:
    """FEATURES standard-normal columns and CLASSES labels drawn at random."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, FEATURES, generator=g), torch.randint(0, CLASSES, (n,), generator=g)
