"""`diag speed`: where a training step's time goes: batch size, input size, data loading
and host syncs (the article's tips 14 to 17).

``check.py`` sweeps and judges, ``syncs.py`` counts the calls that make the host wait for
the device, ``figures.py`` draws. This module is torch-free: the registry reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from diag.checks.base import Check, lazy, option


@dataclass(frozen=True)
class SpeedOptions:
    """Options of `diag speed` (``[tool.diag.speed]``)."""

    loader: str | Callable[..., Any] | None = option(
        None, "A zero-argument factory (SPEC) returning an iterable of (inputs, targets) "
        "batches: its data-loading wait is measured against the same batches in memory.")
    device: str = option("cpu", "Where to time the steps.", choices=("cpu", "cuda"))
    max_batch: int = option(256, "Largest batch size the sweep tries (1, 2, 4 ... up to "
                            "this).", min=1)
    batch_size: int | None = option(None, "The batch size you train with: warned about "
                                    "when its throughput is under half the knee's.", min=1)
    timed_steps: int = option(5, "Timed steps per batch size (the median is used).", min=5)
    warmup: int = option(2, "Untimed steps before timing each batch size.", min=1)
    stop_early: bool = option(True, "Stop the sweep when throughput has not improved for "
                              "two sizes.")
    budget_s: float = option(40.0, "Seconds the timing may take: the sweep stops before a "
                             "batch size whose predicted time would pass it, and the thread "
                             "sweep and loss-read probe are skipped when they would (each "
                             "says so).", gt=0)
    seed: int = 0


def _needs(sources: Mapping[str, Any]) -> frozenset[str]:
    return frozenset({"target", "step"} if sources.get("step") is not None else {"target"})


CHECK = Check(
    name="speed",
    title="Where does a training step's time go: batch size, input size, loading, syncs?",
    options=SpeedOptions,
    needs=_needs,
    run=lazy("diag.checks.speed.check:run"),
    prepare=lazy("diag.checks.speed.check:prepare"),
    figures=lazy("diag.checks.speed.figures:figures"),
    key_metrics=("best_batch", "knee_batch", "largest_fits", "best_samples_per_s",
                 "data_wait_fraction", "sync_sites", "sync_cost_fraction"),
    check_defaults={"max_batch": 32},
    timed=True,
)
