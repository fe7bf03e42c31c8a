"""Dead ReLU census: which ReLU units output zero for every sample of a batch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

_RELUS: set[Callable[..., Any]] = {F.relu, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_}
if hasattr(F, "relu_"):
    _RELUS.add(F.relu_)


@dataclass
class ReluSite:
    """One place a ReLU is applied: a module name and the call's order inside it."""

    name: str
    units: int = 0
    dead: int = 0


@dataclass
class ReluCensus(TorchFunctionMode):
    """Records, for each ReLU call, the units (channels, or features) that never fire.

    A TorchFunctionMode sees ``nn.ReLU`` modules and functional ``relu`` calls alike, so
    nets like face-api.js's, which apply relu inside forward(), are covered too.
    """

    model: nn.Module
    sites: dict[str, ReluSite] = field(default_factory=dict)
    _stack: list[str] = field(default_factory=list)
    _calls: dict[str, int] = field(default_factory=dict)
    _last_done: str = ""

    def __post_init__(self) -> None:
        super().__init__()

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None
                           ) -> Any:
        out = func(*args, **(kwargs or {}))
        if func in _RELUS and isinstance(out, Tensor) and out.dim() >= 2:
            # Name the site by the layer whose output it rectifies: "relu after body".
            where = self._last_done or (self._stack[-1] if self._stack else "model")
            count = self._calls.get(where, 0)
            self._calls[where] = count + 1
            key = f"relu after {where}" + (f" #{count + 1}" if count else "")
            with torch.no_grad():
                fired = out.detach() > 0
                dims = [0] + list(range(2, out.dim()))  # per channel (or per feature)
                alive = fired.any(dim=dims[0]) if out.dim() == 2 else fired.amax(dim=dims)
                site = self.sites.setdefault(key, ReluSite(key))
                site.units += int(alive.numel())
                site.dead += int((~alive).sum())
        return out

    @property
    def dead_fraction(self) -> float:
        units = sum(s.units for s in self.sites.values())
        return sum(s.dead for s in self.sites.values()) / units if units else 0.0


def relu_census(model: nn.Module, x: Tensor) -> ReluCensus:
    """Run one forward pass (no grad) and count dead ReLU units per call site."""
    census = ReluCensus(model)
    handles = []
    for name, module in model.named_modules():
        label = name or type(model).__name__

        def pre(_m: nn.Module, _a: Any, label: str = label) -> None:
            census._stack.append(label)

        def post(_m: nn.Module, _a: Any, _o: Any, label: str = label) -> None:
            if census._stack:
                census._stack.pop()
            census._last_done = label

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    try:
        with torch.no_grad(), census:
            model(x)
    finally:
        for h in handles:
            h.remove()
    return census
