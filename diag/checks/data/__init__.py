"""`diag data`: is the data what the training loop thinks it is (the article's tips 7, 8)?

What the loop really sees, batch by batch: the order (shuffled? the same every epoch?),
whether inputs and targets are aligned, and the values (NaN/Inf, 0-255 pixels, double
normalisation, constant channels, duplicates with conflicting labels, class imbalance,
targets the output layer cannot produce). ``check.py`` reads and judges, ``probe.py`` holds
the alignment probe. This module is torch-free: the registry reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from diag.checks.base import Check, lazy, option


@dataclass(frozen=True)
class DataOptions:
    """Options of `diag data` (``[tool.diag.data-check]``: ``data`` is the data set)."""

    loader: str | Callable[..., Any] | None = option(
        None, "A zero-argument factory (SPEC) returning an iterable of (inputs, targets) "
        "batches, e.g. your DataLoader; default: diag's own trainer batches --data.")
    max_batches: int = option(64, "Batches read per epoch (two epochs are read).", min=2)
    batch_size: int = option(12, "Batch size diag's trainer uses when there is no loader.",
                             min=1)
    probe: bool = option(True, "Run the alignment probe (a tiny model fit on real against "
                         "shuffled labels).")
    seed: int = 0


def _needs(sources: Mapping[str, Any]) -> frozenset[str]:
    """The data alone when only --data is given; the model too when there is one (the
    range its output layer can produce), or the default browser net and faces."""
    if sources.get("data") is not None and sources.get("model") is None:
        return frozenset({"data"})
    return frozenset({"target"})


CHECK = Check(
    name="data",
    title="Is the data what the loop thinks: shuffled, aligned, clean values?",
    options=DataOptions,
    table="data-check",
    needs=_needs,
    run=lazy("diag.checks.data.check:run"),
    prepare=lazy("diag.checks.data.check:prepare"),
    key_metrics=("samples_seen", "classes", "order_z", "same_order_each_epoch",
                 "alignment_ratio", "nonfinite_samples", "conflicting_duplicates"),
)
