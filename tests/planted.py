"""Small models and data with planted bugs, next to their clean twins.

Used by the tests directly and through SPECs such as ``tests/planted.py:clean_mlp``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

IN, HIDDEN, OUT = 8, 32, 4


def regression_data(n: int = 16, negative: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, IN, generator=g)
    y = torch.randn(n, OUT, generator=g) * 0.5
    if not negative:
        y = y.abs()
    return x, y


def classification_data(n: int = 16, classes: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.randn(n, IN, generator=g), torch.randint(0, classes, (n,), generator=g)


def nonneg_data() -> tuple[torch.Tensor, torch.Tensor]:
    return regression_data(negative=False)


class MLP(nn.Module):
    """The clean twin: Linear-ReLU-Linear."""

    def __init__(self, out: int = OUT) -> None:
        super().__init__()
        self.body = nn.Linear(IN, HIDDEN)
        self.head = nn.Linear(HIDDEN, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


def clean_mlp() -> nn.Module:
    return MLP()


def clean_classifier() -> nn.Module:
    return MLP(out=5)


class DetachedBranch(MLP):
    """Bug: the hidden activations are detached, so `body` never learns."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)).detach())


class FrozenHead(MLP):
    """Bug: the output layer is frozen."""

    def __init__(self) -> None:
        super().__init__()
        self.head.requires_grad_(False)


class PlainListLayers(nn.Module):
    """Bug: layers kept in a plain Python list are invisible to .parameters()."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = [nn.Linear(IN, HIDDEN), nn.Linear(HIDDEN, OUT)]
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[1](torch.relu(self.layers[0](x))) * self.scale


class LayerInForward(nn.Module):
    """Bug: a layer is built inside forward(), fresh random weights on every call."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(IN, HIDDEN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = nn.Linear(HIDDEN, OUT)
        return head(torch.relu(self.body(x)))


class ConstantOutput(nn.Module):
    """Bug: the output ignores the layers (a forgotten return value)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(IN, OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.body(x)
        return torch.zeros(x.shape[0], OUT)


class NaNModel(MLP):
    """Bug: log of a value that goes negative."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(self.head(torch.relu(self.body(x))) - 10.0)


class ReluOutput(MLP):
    """Bug: a ReLU on the output of a regressor whose targets can be negative."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(super().forward(x))


class SigmoidOutput(MLP):
    """Bug: a sigmoid on the output of a regressor whose targets leave [0, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(super().forward(x) * 4)


def wide_data() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = regression_data()
    return x, y * 6


class OverconfidentInit(nn.Module):
    """Bug: logits scaled x50 at init, so the first loss is far above ln(C)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = MLP(out=5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * 50.0


class DeadRelu(nn.Module):
    """Bug: a huge negative bias before the ReLU kills every unit."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(IN, HIDDEN)
        self.head = nn.Linear(HIDDEN, OUT)
        with torch.no_grad():
            self.body.bias.fill_(-100.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.body(x)))


class Raises(MLP):
    """User code that raises inside forward()."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("planted failure in forward")


def wrong_width() -> nn.Module:
    """Output of 3 values for 4 targets: does not fit the MSE loss."""
    return MLP(out=3)


def raising_factory() -> nn.Module:
    raise RuntimeError("planted failure in the factory")


def not_a_module() -> int:
    return 3


instance = MLP()
expected_ln5 = math.log(5)


class DoubleSoftmax(MLP):
    """Bug: softmax in forward(), then cross_entropy applies its own: a double softmax."""

    def __init__(self) -> None:
        super().__init__(out=5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(super().forward(x), dim=1)


class HeavyDropout(nn.Module):
    """Dropout 0.9 on a tiny subset: the regulariser keeps it from memorising."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Dropout(0.9),
                                 nn.Linear(HIDDEN, OUT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SigmoidHead(nn.Module):
    """Bug: a sigmoid module at the end of a regressor whose targets lie in [-4, 4]."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, OUT),
                                 nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def linear_head() -> nn.Module:
    """The clean twin of SigmoidHead."""
    return nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, OUT))


def targets_pm4() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = regression_data()
    return x, (y / y.abs().max() * 4)


def bytes_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs still in 0..255, as if nobody divided by 255."""
    x, y = regression_data()
    return (x * 40 + 128).clamp(0, 255).round(), y


class HugeLayer(nn.Module):
    """One layer holds almost every parameter (a 3x3 conv past the first, 256 -> 256)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 256, 3, padding=1)
        self.big = nn.Conv2d(256, 256, 3, padding=1)
        self.head = nn.Linear(256, OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.big(torch.relu(self.stem(x)))).mean(dim=(2, 3)))


def outlier_layer() -> nn.Module:
    """One weight of the first layer is 1000x the others: uint8's 255 levels over [min, max]
    leave the rest of that layer a single level."""
    model = MLP()
    with torch.no_grad():
        model.body.weight[0, 0] = 200.0
    return model
