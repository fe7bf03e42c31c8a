"""diag: a command-line doctor for neural-network training.

Importing ``diag`` is cheap: torch is imported only by the modules that train or
inspect a model, so ``diag --help`` answers without it.
"""

from typing import Any

from diag.errors import DiagWarning, WatchFailure

__version__ = "0.1.0"

__all__ = ["DiagWarning", "WatchFailure", "__version__", "watch"]


def watch(model: Any, optimizer: Any = None, **options: Any) -> Any:
    """Watch the user's own training loop: ``with diag.watch(model, optimizer) as w: ...
    w.step(loss)`` (see ``diag.watching``). Options: ``out`` (report folder, None for no
    files), ``loader`` (time data waits), ``every`` (steps between curve checks, 50),
    ``raise_on`` (None, "fail" or "warn"), ``warmup`` (5), ``plots``, ``census``."""
    from diag.watching import Watch

    return Watch(model, optimizer, **options)
