"""`diag leaks`: do live tensors, bytes or autograd graphs grow per iteration? Where from?

``census.py`` is the tf.memory() for PyTorch, ``detect.py`` the pure growth detector,
``check.py`` runs the step and judges, ``figures.py`` and ``console.py`` show the result.
This module is torch-free: the registry reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from diag.checks.base import Check, lazy, option


@dataclass(frozen=True)
class LeaksOptions:
    """Options of `diag leaks` (``[tool.diag.leaks]``)."""

    iterations: int = option(30, "Calls to step(), warm-up included.", min=5)
    """Calls to step(), warm-up included."""
    warmup: int = option(5, "Iterations whose growth is expected (lazy optimizer state, "
                         "caches).", min=0)
    """Iterations whose growth is expected (lazy state: optimizer moments, caches)."""
    seed: int = 0

    def __post_init__(self) -> None:
        from diag.errors import UsageError

        if self.iterations < self.warmup + 4:
            raise UsageError(f"iterations {self.iterations} leaves fewer than 4 iterations "
                             f"after warmup {self.warmup}",
                             hint="raise iterations (--iterations) or lower warmup (--warmup)")


def _needs(sources: Mapping[str, Any]) -> frozenset[str]:
    return frozenset({"step"} if sources.get("step") is not None else {"target"})


CHECK = Check(
    name="leaks",
    title="Do live tensors, bytes or autograd graphs grow per iteration? Where were they "
    "created?",
    options=LeaksOptions,
    needs=_needs,
    run=lazy("diag.checks.leaks.check:run"),
    figures=lazy("diag.checks.leaks.figures:figures"),
    key_metrics=("tensors_per_iter", "bytes_per_iter", "graph_nodes_per_iter",
                 "tensors_final"),
    console=lazy("diag.checks.leaks.console:rows"),
)
