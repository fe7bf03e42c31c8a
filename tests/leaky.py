"""Training steps with planted leaks, each next to its fixed twin (DESIGN.md `--step`:
zero-argument factories returning ``step()``)."""

from __future__ import annotations

import collections

import torch
import torch.nn.functional as F
from torch import nn


def _setup() -> tuple[nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, opt, torch.randn(12, 8, generator=g), torch.randn(12, 2, generator=g)


def _train(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
           ) -> torch.Tensor:
    opt.zero_grad(set_to_none=True)
    loss = F.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    return loss


def clean():
    model, opt, x, y = _setup()

    def step() -> None:
        _train(model, opt, x, y)

    return step


def accumulate_tensor():
    """The PyTorch FAQ's leak: the running total keeps every graph alive."""
    model, opt, x, y = _setup()
    state = {"total": 0.0}

    def step() -> None:
        loss = _train(model, opt, x, y)
        state["total"] += loss  # LEAK: graph kept through total.grad_fn

    return step


def accumulate_item():
    model, opt, x, y = _setup()
    state = {"total": 0.0}

    def step() -> None:
        loss = _train(model, opt, x, y)
        state["total"] += loss.item()

    return step


def list_of_losses():
    model, opt, x, y = _setup()
    history: list[torch.Tensor] = []

    def step() -> None:
        history.append(_train(model, opt, x, y))  # LEAK: undetached losses

    return step


def list_of_floats():
    model, opt, x, y = _setup()
    history: list[float] = []

    def step() -> None:
        history.append(_train(model, opt, x, y).item())

    return step


def running_average_tensor():
    model, opt, x, y = _setup()
    state: dict[str, object] = {"avg": torch.zeros(())}

    def step() -> None:
        loss = _train(model, opt, x, y)
        state["avg"] = 0.9 * state["avg"] + 0.1 * loss  # LEAK: a chain of graphs

    return step


def running_average_detached():
    model, opt, x, y = _setup()
    state: dict[str, object] = {"avg": torch.zeros(())}

    def step() -> None:
        loss = _train(model, opt, x, y)
        state["avg"] = 0.9 * state["avg"] + 0.1 * loss.detach()

    return step


def hook_every_iteration():
    model, opt, x, y = _setup()
    activations: list[torch.Tensor] = []

    def step() -> None:
        model[0].register_forward_hook(lambda m, i, o: activations.append(o))  # LEAK
        _train(model, opt, x, y)

    return step


def hook_once():
    model, opt, x, y = _setup()
    latest: dict[str, torch.Tensor] = {}
    model[0].register_forward_hook(lambda m, i, o: latest.__setitem__("act", o.detach()))

    def step() -> None:
        _train(model, opt, x, y)

    return step


def validation_without_no_grad():
    model, opt, x, y = _setup()
    g = torch.Generator().manual_seed(1)
    xv, yv = torch.randn(32, 8, generator=g), torch.randn(32, 2, generator=g)
    state = {"val": 0.0}

    def step() -> None:
        _train(model, opt, x, y)
        state["val"] += F.mse_loss(model(xv), yv)  # LEAK: graph with activations, no backward

    return step


def validation_with_no_grad():
    model, opt, x, y = _setup()
    g = torch.Generator().manual_seed(1)
    xv, yv = torch.randn(32, 8, generator=g), torch.randn(32, 2, generator=g)
    state = {"val": 0.0}

    def step() -> None:
        _train(model, opt, x, y)
        with torch.no_grad():
            state["val"] += F.mse_loss(model(xv), yv).item()

    return step


def unbounded_prediction_cache():
    model, opt, x, y = _setup()
    cache: dict[int, torch.Tensor] = {}
    counter = [0]

    def step() -> None:
        _train(model, opt, x, y)
        with torch.no_grad():
            cache[counter[0]] = model(x).detach()  # LEAK: grows forever
        counter[0] += 1

    return step


def numpy_cache():
    """Tensors made by torch.from_numpy, which a TorchFunctionMode does not see."""
    import numpy as np

    model, opt, x, y = _setup()
    cache: list[torch.Tensor] = []

    def step() -> None:
        _train(model, opt, x, y)
        cache.append(torch.from_numpy(np.ones(4)))  # LEAK, made out of the mode's sight

    return step


def numpy_latest():
    import numpy as np

    model, opt, x, y = _setup()
    latest: dict[str, torch.Tensor] = {}

    def step() -> None:
        _train(model, opt, x, y)
        latest["batch"] = torch.from_numpy(np.ones(4))

    return step


class _HistoryAdam(torch.optim.Adam):
    """A custom optimizer that keeps every gradient it saw (a leak inside step())."""

    def __init__(self, params, lr: float = 1e-3) -> None:  # type: ignore[no-untyped-def]
        super().__init__(params, lr=lr)
        self.seen: list[torch.Tensor] = []

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def, override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.seen.append(p.grad.clone())  # LEAK inside the optimizer
        return super().step(closure)


def optimizer_history():
    model, _, x, y = _setup()
    opt = _HistoryAdam(model.parameters())

    def step() -> None:
        _train(model, opt, x, y)

    return step


def bounded_ring_buffer():
    model, opt, x, y = _setup()
    ring: collections.deque[torch.Tensor] = collections.deque(maxlen=4)

    def step() -> None:
        _train(model, opt, x, y)
        with torch.no_grad():
            ring.append(model(x).detach())

    return step


def unfreeze_mid_run():
    """Adam state for the second layer appears once, at iteration 15: not a leak."""
    model, opt, x, y = _setup()
    model[2].requires_grad_(False)
    counter = [0]

    def step() -> None:
        counter[0] += 1
        if counter[0] == 15:
            model[2].requires_grad_(True)
        _train(model, opt, x, y)

    return step


def raises():
    model, opt, x, y = _setup()
    counter = [0]

    def step() -> None:
        counter[0] += 1
        if counter[0] == 3:
            raise RuntimeError("planted failure in step")
        _train(model, opt, x, y)

    return step


def keep_tensors():
    """Keeps ``DIAG_TEST_LEAK_PER_ITER`` (default 1) detached tensors per iteration, all made
    at one line: the same leak, worse or not, for the baseline tests."""
    import os

    per_iter = int(os.environ.get("DIAG_TEST_LEAK_PER_ITER", "1"))
    model, opt, x, y = _setup()
    kept: list[torch.Tensor] = []

    def step() -> None:
        loss = _train(model, opt, x, y)
        kept.extend(loss.detach().clone() for _ in range(per_iter))

    return step
