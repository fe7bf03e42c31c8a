"""`diag init`: is the network healthy at step 0 (the article's tips 3 and 4)?

One seeded forward and backward pass on a batch, at initialisation, on a fresh copy of the
model. ``check.py`` measures and judges, ``figures.py`` draws. This module is torch-free:
the registry reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from diag.checks.base import Check, always, lazy, option


@dataclass(frozen=True)
class InitOptions:
    """Options of `diag init` (``[tool.diag.init]``)."""

    batch_size: int = option(32, "Samples in the batch the pass runs on.", min=2)
    max_signal_change: float = option(10.0, "Largest accepted change of the signal's std "
                                      "from the first layer to the last (a factor).", gt=1)
    max_grad_ratio: float = option(1000.0, "Largest accepted ratio between the first and "
                                   "the last layer's relative gradient (a factor).", gt=1)
    seed: int = 0


CHECK = Check(
    name="init",
    title="Is the network healthy at step 0: signal, dead units, gradients, loss at init?",
    options=InitOptions,
    needs=always("target"),
    run=lazy("diag.checks.init.check:run"),
    figures=lazy("diag.checks.init.figures:figures"),
    console=lazy("diag.checks.init.console:rows"),
    key_metrics=("layers", "signal_change", "grad_ratio", "worst_dead_fraction",
                 "loss_at_init", "expected_loss", "skip_connections"),
)
