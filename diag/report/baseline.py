"""A baseline that ratchets, for teams that adopt diag on a codebase that already has
findings: `diag check --baseline .diag-baseline.json` fails only on a finding that is not in
the baseline (by rule and location) or on a key metric that got worse beyond its tolerance.
Findings that are gone are reported as fixed, so the file only shrinks when it is rewritten
(``--update-baseline``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diag.errors import DataError
from diag.report.rules import rule_id
from diag.result import CheckResult, Severity

SCHEMA = "diag-baseline/1"


@dataclass(frozen=True)
class KeyMetric:
    """A metric the baseline keeps, which way is better, and how much worse is tolerated."""

    check: str
    name: str
    lower_is_better: bool
    relative: float = 0.0
    """Worse by more than this fraction of the baseline's value fails."""
    absolute: float = 0.0
    """... and by more than this much (0.5 decades for an LR, 0.05 tensors per step)."""
    log10: bool = False
    """Compare in decades (an LR)."""


KEY_METRICS = (
    KeyMetric("leaks", "tensors_per_iter", True, absolute=0.05),
    KeyMetric("leaks", "bytes_per_iter", True, relative=0.10, absolute=64),
    KeyMetric("leaks", "graph_nodes_per_iter", True, absolute=0.05),
    KeyMetric("overfit", "steps", True, relative=0.25, absolute=5),
    KeyMetric("size", "fp32_bytes", True),
    KeyMetric("speed", "knee_samples_per_s", False, relative=0.5),  # a timing: wide
    KeyMetric("lr-schedule", "range_test_suggested_lr", False, absolute=0.5, log10=True),
)


def _key(check: str, rule: str, location: str) -> str:
    return f"{rule} @ {location}" if location else rule


def snapshot(results: Sequence[CheckResult]) -> dict[str, Any]:
    """The baseline document of a run: its findings (warn and worse) and key metrics."""
    findings = [{"check": r.name, "rule": rule_id(r.name, f), "location": f.location,
                 "message": f.message}
                for r in results for f in r.findings
                if f.severity in (Severity.WARN, Severity.FAIL, Severity.ERROR)]
    metrics: dict[str, Any] = {}
    by_name = {r.name: r for r in results}
    for km in KEY_METRICS:
        found = by_name.get(km.check)
        value = found.metrics.get(km.name) if found is not None else None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
                value):
            metrics[f"{km.check}.{km.name}"] = value
    return {"schema": SCHEMA, "findings": findings, "metrics": metrics}


def write_baseline(path: Path, results: Sequence[CheckResult]) -> None:
    from diag.report.files import atomic_write

    try:
        atomic_write(path, json.dumps(snapshot(results), indent=2) + "\n")
    except OSError as exc:
        raise DataError(f"--baseline {path}: cannot write it ({exc.strerror})",
                        hint="pick a writable path") from None


def load_baseline(path: Path) -> dict[str, Any]:
    """The baseline file, checked: a missing or malformed one is exit 2, one line."""
    if not path.is_file():
        raise DataError(f"--baseline {path}: no such file",
                        hint="write one first with --update-baseline")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise DataError(f"--baseline {path} is not a readable baseline ({exc})",
                        hint="write it again with --update-baseline") from None
    if (not isinstance(doc, dict) or doc.get("schema") != SCHEMA
            or not isinstance(doc.get("findings"), list)
            or not isinstance(doc.get("metrics"), dict)
            or not all(isinstance(f, dict) and isinstance(f.get("rule"), str)
                       for f in doc["findings"])):
        raise DataError(f"--baseline {path} is not a {SCHEMA} file",
                        hint="write it again with --update-baseline")
    return doc


@dataclass
class Delta:
    """What changed against the baseline."""

    new: list[dict[str, Any]] = field(default_factory=list)
    fixed: list[dict[str, Any]] = field(default_factory=list)
    worse: list[str] = field(default_factory=list)
    better: list[str] = field(default_factory=list)

    @property
    def worse_or_new(self) -> bool:
        return bool(self.new or self.worse)

    def lines(self) -> list[str]:
        out = [f"{len(self.new)} new, {len(self.fixed)} fixed, {len(self.worse)} worse, "
               f"{len(self.better)} better"]
        out += [f"new: {f['rule']}" + (f" at {f['location']}" if f["location"] else "")
                + f": {f['message']}" for f in self.new]
        out += [f"fixed: {f['rule']}" + (f" at {f['location']}" if f.get("location") else "")
                for f in self.fixed]
        out += [f"worse: {w}" for w in self.worse]
        out += [f"better: {b}" for b in self.better]
        if self.fixed or self.better:
            out.append("rewrite the baseline with --update-baseline to lock these gains in")
        return out

    def markdown(self) -> str:
        return "## Against the baseline\n\n" + "\n".join(f"- {ln}" for ln in self.lines()) + "\n"

    def to_json(self) -> str:
        return json.dumps({"new": self.new, "fixed": self.fixed, "worse": self.worse,
                           "better": self.better}, indent=2) + "\n"


def compare(baseline: dict[str, Any], results: Sequence[CheckResult]) -> Delta:
    now = snapshot(results)
    ran = {r.name for r in results}
    before = {_key(f.get("check", ""), f["rule"], f.get("location", "")): f
              for f in baseline["findings"]}
    after = {_key(f["check"], f["rule"], f["location"]): f for f in now["findings"]}
    delta = Delta()
    delta.new = [f for k, f in after.items() if k not in before]
    delta.fixed = [f for k, f in before.items() if k not in after and f.get("check") in ran]
    for km in KEY_METRICS:
        key = f"{km.check}.{km.name}"
        old, new = baseline["metrics"].get(key), now["metrics"].get(key)
        if not isinstance(old, int | float) or not isinstance(new, int | float):
            continue
        if km.log10:
            if old <= 0 or new <= 0:
                continue
            change = math.log10(new) - math.log10(old)
            limit = km.absolute
            worse_by = abs(change)  # an LR that moves either way by half a decade
            text = f"{key} {old:.3g} -> {new:.3g} ({change:+.2f} decades, tolerance {limit:g})"
            if worse_by > limit:
                delta.worse.append(text)
            continue
        diff = (new - old) if km.lower_is_better else (old - new)
        limit = max(km.absolute, km.relative * abs(old))
        text = f"{key} {old:.6g} -> {new:.6g} (tolerance {limit:.3g})"
        if diff > limit:
            delta.worse.append(text)
        elif diff < -limit or (diff < 0 and limit == 0):
            delta.better.append(text)
    return delta
