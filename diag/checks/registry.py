"""The one list of checks. `diag check`'s order, ``--select``/``--skip`` validation,
``[tool.diag]`` keys, the console table, figures and the JUnit cases all derive from it.

Adding a check: a folder ``diag/checks/<name>/`` whose ``__init__.py`` defines its options
and its ``CHECK`` record, and one line here. Torch-free.
"""

from __future__ import annotations

from diag.checks.base import Check
from diag.checks.data import CHECK as DATA
from diag.checks.ddp import CHECK as DDP
from diag.checks.init import CHECK as INIT
from diag.checks.leaks import CHECK as LEAKS
from diag.checks.lossgrad import CHECK as LOSS_GRAD
from diag.checks.lr import CHECK as LR_SCHEDULE
from diag.checks.overfit import CHECK as OVERFIT
from diag.checks.preprocess import CHECK as PREPROCESS
from diag.checks.size import CHECK as SIZE
from diag.checks.speed import CHECK as SPEED

CHECKS: tuple[Check, ...] = (DATA, INIT, OVERFIT, LEAKS, LR_SCHEDULE, LOSS_GRAD, PREPROCESS,
                             SIZE, SPEED, DDP)
"""Every check, in the order `diag check` runs them."""

NAMES: tuple[str, ...] = tuple(c.name for c in CHECKS)

BY_NAME: dict[str, Check] = {c.name: c for c in CHECKS}

BY_TABLE: dict[str, Check] = {c.config_table: c for c in CHECKS}
"""Config sub-table name -> check (``data-check`` -> the data check)."""


def get(name: str) -> Check:
    """The check called ``name`` (KeyError if there is none)."""
    return BY_NAME[name]
