"""`diag loss-grad`: is a custom loss's gradient right, finite, and batch-correct?

``check.py`` holds every property and the driver. This module is torch-free: the registry
reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from diag.checks.base import Check, always, lazy, option

TARGET_KINDS = ("index", "like", "binary")
MAX_ELEMENTS = 1_000_000
"""The largest prediction the properties run on: finite differences in float64 touch
every element, and a loss's behaviour shows on a small batch."""


def small_shape(shape: tuple[int, ...]) -> None:
    """ValueError("why; the fix") for a shape over ``MAX_ELEMENTS`` elements, found before
    anything is allocated."""
    count = 1
    for d in shape:
        count *= d
    if count > MAX_ELEMENTS:
        raise ValueError(f"has {count:,} elements, over the {MAX_ELEMENTS:,} loss-grad runs "
                         "on; a loss's gradient shows on a small batch: try 8,10")


@dataclass(frozen=True)
class LossGradOptions:
    """Options of `diag loss-grad` (``[tool.diag.loss-grad]``)."""

    pred_shape: tuple[int, ...] = option((8, 10), "Shape of the prediction.", min=1,
                                         parse=small_shape)
    target: str | Callable[..., Any] | None = option(
        None, "index, like, binary or a SPEC (pred_shape) -> target; default: index for "
        "class-index data, else like.", choices=TARGET_KINDS)
    reference: str | Callable[..., Any] | None = option(
        None, "A trusted loss (SPEC) the value and gradient must agree with.")
    rtol: float = option(1e-4, internal=True)
    """Gradient check tolerance, relative to the gradient's scale."""
    seed: int = 0



CHECK = Check(
    name="loss-grad",
    title="Is a custom loss's gradient right, finite at edge inputs, batch-correct?",
    options=LossGradOptions,
    needs=always("loss"),
    run=lazy("diag.checks.lossgrad.check:run"),
    prepare=lazy("diag.checks.lossgrad.check:prepare"),
    key_metrics=("gradient_correct", "grad_reaches_pred", "finite_at_edges",
                 "batch_independent", "reduction", "reference_match"),
)
