"""Reporters: they read CheckResults and never compute. See ``REPORTERS`` for the formats."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from diag import __version__
from diag.result import CheckResult

SCHEMA = "diag-report/1"


def environment() -> dict[str, Any]:
    """What the numbers were measured on. Reads torch's version only if already imported."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpu_count": os.cpu_count(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        env["torch"] = str(torch.__version__)
        env["torch_threads"] = int(torch.get_num_threads())
        env["cuda"] = bool(torch.cuda.is_available())
    return env


@dataclass(frozen=True)
class Report:
    """All results of one diag run."""

    checks: Sequence[CheckResult]
    environment: dict[str, Any] = field(default_factory=environment)
    interrupted: str | None = None
    """Name of the check that was running when the run was interrupted, or ``plots`` when
    every check had finished and their plots were being drawn."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "diag_version": __version__,
            "environment": self.environment,
            "checks": [c.to_dict() for c in self.checks],
        }
        if self.interrupted:
            out["interrupted"] = self.interrupted
        return out
