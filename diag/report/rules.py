"""Stable rule ids for findings, for SARIF and baselines: ``diag/<check>/<kind>``.

A finding that names its kind (``Finding.rule``: ``tensor-growth``,
``cause/double-softmax``) keeps it; any other gets a slug of the words that open its message,
numbers left out, up to the first ``:``, ``;`` or ``(`` (``plateau: no meaningful progress
from step 30 ...`` is ``plateau``). The same finding gives the same id across runs and seeds.
"""

from __future__ import annotations

import re

from diag.result import CheckResult, Finding

_WORD = re.compile(r"[a-z][a-z_\-']*")
MAX_WORDS = 6


def slug(message: str) -> str:
    head = re.split(r"[:;(]", message, maxsplit=1)[0].lower()
    words = [w.strip("-'_") for w in head.split() if not any(ch.isdigit() for ch in w)]
    words = [m.group(0).strip("-'_") for w in words if (m := _WORD.match(w))]
    return "-".join(w for w in words[:MAX_WORDS] if w) or "finding"


def rule_id(check: str, finding: Finding) -> str:
    kind = finding.rule or ("error" if finding.severity.value == "error" else
                            slug(finding.message))
    return f"diag/{check}/{kind}"


def findings_with_rules(result: CheckResult) -> list[tuple[str, Finding]]:
    return [(rule_id(result.name, f), f) for f in result.findings]
