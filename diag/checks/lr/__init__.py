"""`diag lr-schedule`: plateau, oscillation and divergence in a loss curve, and which LR.

``detect.py`` holds the pure detectors (numpy only), ``rangetest.py`` the LR range test,
``check.py`` the verdict, training mode and ``--verify``, ``figures.py`` the plots. Reading a
history file and analysing it never imports torch. This module is torch-free too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from diag.checks.base import Check, lazy, option


@dataclass(frozen=True)
class LrOptions:
    """Options of `diag lr-schedule` (``[tool.diag.lr-schedule]``)."""

    epochs: int = option(30, "Training mode: epochs to train.", min=10)
    """Training mode: epochs to train and analyse."""
    lr: float | None = option(None, "The current learning rate (training default 1e-3).", gt=0)
    """The current learning rate (training mode: the one used; default 1e-3)."""
    verify: bool = option(False, "Resume from the detected point with the recommended LR.")
    range_test: bool = option(False, "Also run the LR range test.")
    range_steps: int = option(100, "Steps of each range-test sweep (1e-7 to 10; two sweeps "
                              "averaged): more for a model whose loss moves slowly.",
                              min=20, max=100000)
    metric: str = option("loss", "Column or key of the history to analyse (the training "
                         "curve).")
    val_metric: str | None = option(None, "The validation column to judge with it "
                                    "(default: val_<metric> when the file has it).")
    lr_column: str | None = option(None, "The LR column (default: lr, learning_rate, or "
                                   "the first lr-*, lr/* column).")
    run: str | None = option(None, "With a run folder holding several runs: the run to read "
                             "(its folder name; default: the newest).")
    pattern: str | None = option(None, "A text log's line shape: a regex with named groups "
                                 "step or epoch, loss, and optional lr and val_loss.")
    kind: str = option("auto", "What the metric is: a training curve, a validation curve "
                       "(a rise is overfitting, not a reason to lower the LR), or auto (val*, "
                       "valid*, eval*, test* names are validation).",
                       choices=("auto", "train", "val"))
    batch_size: int = option(12, internal=True)
    seed: int = 0


def _needs(sources: Mapping[str, Any]) -> frozenset[str]:
    return frozenset({"history"} if sources.get("history") is not None else {"target"})


def _torch_needed(sources: Mapping[str, Any]) -> bool:
    return sources.get("history") is None


CHECK = Check(
    name="lr-schedule",
    title="Plateau, oscillation, divergence in a loss curve, and which LR to use.",
    options=LrOptions,
    needs=_needs,
    run=lazy("diag.checks.lr.check:run"),
    figures=lazy("diag.checks.lr.figures:figures"),
    key_metrics=("plateau_start", "oscillation_start", "divergence_start", "recommended_lr",
                 "verify_gain", "range_test_suggested_lr"),
    torch_needed=_torch_needed,
)
