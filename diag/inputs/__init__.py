"""What the user hands in: SPECs, the config file, the model/data/loss target, data sets,
loss histories. ``Inputs`` is what the plan resolved for one run; checks read it.

This module is torch-free; its submodules that build models or data import torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Inputs:
    """Everything a check may read, resolved once by the plan (``diag.run.plan``)."""

    target: Any = None
    """A ``diag.inputs.target.Target``: model factory, data and loss."""
    data: Any = None
    """A ``diag.inputs.data.TensorData`` when a check needs the data without a model."""
    step: Callable[[], Callable[[], object]] | None = None
    """A zero-argument factory returning ``step()`` (leaks)."""
    step_source: str = ""
    step_is_users: bool = False
    """True when ``step`` is the user's (--step), not diag's training loop."""
    pipeline: Any = None
    """An object with ``preprocess`` and ``postprocess`` (preprocess)."""
    pipeline_source: str = ""
    history: Any = None
    """A ``diag.inputs.history.History`` (lr-schedule without training)."""
    history_val: Any = None
    """The validation curve from the same file, when there is one."""
    loss: Callable[..., Any] | None = None
    """The user's loss, or None for the browser model's own (loss-grad)."""
    loss_name: str = ""
    classify: bool | None = None
    """Whether the data holds class indices; None when no data was given."""
    threads: Any = None
    """The ``diag.run.threads.Threads`` for runs on ``target`` (None without a target)."""
    specs: Any = None
    """What the user set for model, data and loss as given (SPECs, paths or objects), with
    the task and input size: for checks that build them elsewhere (ddp's ranks)."""
