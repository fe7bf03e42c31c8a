"""Host syncs (the article's tip 17): the calls in the user's own code that make the host
wait for the device: ``.item()``, ``float(t)``, ``int(t)``, ``bool(t)`` (``if t > 0:``),
``.tolist()``, ``.numpy()``, ``.cpu()``, ``print(t)`` / ``f"{t}"``.

Counted through a TorchFunctionMode (the census's approach), on CPU and CUDA alike: on CPU
nothing waits, so the sites are the ones that *will* stall a GPU. Only calls made directly
by user code count; torch's own internals (an optimizer reading its step counter) do not.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from typing import Any

from torch import Tensor
from torch.overrides import TorchFunctionMode

from diag.errors import is_library_file

SYNC_METHODS = {"item": ".item()", "__float__": "float(tensor)", "__int__": "int(tensor)",
                "__bool__": "bool(tensor)", "__index__": "int(tensor)",
                "tolist": ".tolist()", "numpy": ".numpy()", "cpu": ".cpu()",
                "__repr__": "print(tensor)", "__str__": "str(tensor)",
                "__format__": "f-string of a tensor"}
_DISPATCH = (os.path.join("torch", "overrides.py"), os.path.join("torch", "_tensor.py"))


class SyncCounter(TorchFunctionMode):
    """Counts sync calls per ``file:line`` of the user's code that made them."""

    def __init__(self) -> None:
        super().__init__()
        self.sites: Counter[tuple[str, str]] = Counter()

    def __torch_function__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in SYNC_METHODS and args and isinstance(args[0], Tensor):
            frame: Any = sys._getframe(1)
            while frame is not None and (frame.f_code.co_filename.endswith(_DISPATCH)
                                         or frame.f_code.co_filename == __file__):
                frame = frame.f_back
            if frame is not None and not is_library_file(frame.f_code.co_filename):
                site = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
                self.sites[(site, SYNC_METHODS[name])] += 1
        return func(*args, **(kwargs or {}))
