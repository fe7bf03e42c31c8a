"""`diag overfit`: can the model drive the loss to ~0 on 10-20 samples? If not, why?

``check.py`` trains and diagnoses, ``relu.py`` and ``graph.py`` gather the evidence,
``figures.py`` draws the result. This module is torch-free: the registry reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from diag.checks.base import Check, always, lazy, option


@dataclass(frozen=True)
class OverfitOptions:
    """Options of `diag overfit` (``[tool.diag.overfit]``)."""

    samples: int = option(16, "Subset size to memorise (the article: 10-20).", min=1)
    """Size of the subset to memorise (the article: 10-20)."""
    max_steps: int = option(500, "Step budget; stops as soon as the target is reached.", min=1)
    """Step budget; the check stops as soon as it passes."""
    lr: float = option(1e-3, "Adam learning rate.", gt=0)
    """Adam learning rate (the article's 1e-3)."""
    batch_size: int | None = option(None, "Minibatch size (default: the whole subset).", min=1)
    """Minibatch size; None trains on the whole subset every step."""
    target_loss: float | None = option(None, "Absolute loss to reach.", min=0)
    """Absolute loss to reach; None: 1e-3 for regression, 0.05 for classification."""
    confirm: bool = option(True, "When it fails, test each suspected cause by rerunning "
                           "with its fix on a copy (at most 3x the failed run's steps).")
    """Confirm causes by experiment; False (--no-confirm) reports evidence only."""
    relative_target: float = option(0.01, internal=True)
    """The loss must also fall to this fraction of its starting value."""
    seed: int = 0



CHECK = Check(
    name="overfit",
    title="Can the model drive the loss to ~0 on 10-20 samples? If not, why?",
    options=OverfitOptions,
    needs=always("target"),
    run=lazy("diag.checks.overfit.check:run"),
    figures=lazy("diag.checks.overfit.figures:figures"),
    key_metrics=("steps", "initial_loss", "final_loss", "target_loss", "accuracy",
                 "dead_relu_fraction"),
)
