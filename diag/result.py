"""Results every check returns, and the exit codes the CLI maps them to.

Pure standard library: importing this module must never import torch.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MetricValue = float | int | str | bool | list[int] | None


class ExitCode(enum.IntEnum):
    """Process exit codes. Numbers are never reused for another meaning."""

    OK = 0
    """Every check passed (warnings allowed)."""
    CHECK_FAILED = 1
    """At least one check failed."""
    USAGE_ERROR = 2
    """Bad option, unresolvable spec, unreadable or malformed file."""
    CHECK_ERROR = 3
    """A check could not run: user code raised, or an internal error."""
    INTERRUPTED = 130
    """Interrupted (Ctrl-C); reports of finished checks are still written."""


class Status(str, enum.Enum):
    """Outcome of one check."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"


class Severity(str, enum.Enum):
    """How much a finding matters."""

    INFO = "info"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"


@dataclass(frozen=True)
class Finding:
    """One thing a check noticed, with what to do about it."""

    severity: Severity
    """How much it matters."""
    message: str
    """What was seen, with numbers."""
    hint: str = ""
    """What a person can do about it."""
    location: str = ""
    """Where: ``file.py:42`` or a layer name; empty when not applicable."""
    rule: str = ""
    """The kind of finding, stable across runs and seeds (``tensor-growth``,
    ``cause/double-softmax``); empty: derived from the message (``diag.report.rules``)."""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "severity": self.severity.value,
            "message": self.message,
            "hint": self.hint,
            "location": self.location,
        }
        if self.rule:
            out["rule"] = self.rule
        return out


@dataclass(frozen=True)
class CheckResult:
    """Everything one check produced. Holds plain numbers and strings, never tensors."""

    name: str
    """The check's name, e.g. ``overfit``."""
    status: Status
    """pass / warn / fail / error / skip."""
    summary: str
    """One line a person can act on."""
    metrics: Mapping[str, MetricValue] = field(default_factory=dict)
    """Name -> number / string / bool. Deterministic for a given seed."""
    findings: tuple[Finding, ...] = ()
    """What the check noticed, most important first."""
    series: Mapping[str, list[float]] = field(default_factory=dict)
    """Name -> list of numbers, for plots (e.g. the loss per step)."""
    artifacts: tuple[str, ...] = ()
    """Files written for this check (plots, JSON)."""
    duration_s: float = 0.0
    """Wall time of the check, in seconds."""
    plot_data: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Arrays the plot functions need beyond ``series`` (numpy only). Not serialised."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "summary": self.summary,
            "metrics": {k: _json_number(v) for k, v in self.metrics.items()},
            "findings": [f.to_dict() for f in self.findings],
            "series": {k: [_json_number(v) for v in vs] for k, vs in self.series.items()},
            "artifacts": list(self.artifacts),
            "duration_s": round(self.duration_s, 3),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        """The inverse of ``to_dict`` (plot data is not serialised, so it comes back empty)."""
        return cls(
            name=str(data["name"]), status=Status(data["status"]), summary=str(data["summary"]),
            metrics=dict(data.get("metrics", {})),
            findings=tuple(Finding(Severity(f["severity"]), f["message"], f.get("hint", ""),
                                   f.get("location", ""), f.get("rule", ""))
                           for f in data.get("findings", [])),
            series={k: list(v) for k, v in data.get("series", {}).items()},
            artifacts=tuple(data.get("artifacts", ())),
            duration_s=float(data.get("duration_s", 0.0)))

    def replace(self, **changes: Any) -> CheckResult:
        return dataclasses.replace(self, **changes)

    def assert_passed(self) -> None:
        """Raise AssertionError with the findings unless the check passed (warnings allowed)."""
        if self.status not in (Status.PASS, Status.WARN, Status.SKIP):
            lines = [f"diag {self.name}: {self.status.value}: {self.summary}"]
            lines += [
                f"  [{f.severity.value}] {f.message}" + (f" -- {f.hint}" if f.hint else "")
                for f in self.findings
                if f.severity in (Severity.FAIL, Severity.ERROR, Severity.WARN)
            ]
            raise AssertionError("\n".join(lines))


def _json_number(value: Any) -> Any:
    """JSON has no NaN/Inf: write them as strings so the file stays standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def exit_code_for(results: Iterable[CheckResult]) -> ExitCode:
    """Aggregate: bad input found inside a check (2, its ``error_type`` metric is
    ``usage``) wins over a check that could not run (3), which wins over a failed one (1)."""
    results = list(results)
    statuses = {r.status for r in results}
    if Status.ERROR in statuses:
        if any(r.status == Status.ERROR and r.metrics.get("error_type") == "usage"
               for r in results):
            return ExitCode.USAGE_ERROR
        return ExitCode.CHECK_ERROR
    if Status.FAIL in statuses:
        return ExitCode.CHECK_FAILED
    return ExitCode.OK
