"""Torch function calls seen through a TorchFunctionMode, by name: how `diag init` sees the
activations (``torch.relu(x)`` as much as ``nn.ReLU``), `diag data` the function a model
ends in, and `diag speed` a resize of the model's input. (The leak census and the
host-sync counter need more than a callback, and have their own modes.)"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from torch.overrides import TorchFunctionMode

OnCall = Callable[[str, tuple[Any, ...], dict[str, Any], Any], None]


class CallWatch(TorchFunctionMode):
    """Calls ``on_call(name, args, kwargs, result)`` after every torch function whose
    ``__name__`` is in ``names``. The mode is off while its handler runs, so what
    ``on_call`` computes with torch is not watched."""

    def __init__(self, names: Collection[str], on_call: OnCall) -> None:
        super().__init__()
        self.names = frozenset(names)
        self.on_call = on_call

    def __torch_function__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name in self.names:
            self.on_call(name, tuple(args), kwargs, out)
        return out
