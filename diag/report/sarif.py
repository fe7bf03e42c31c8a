"""SARIF 2.1.0 for code scanning (GitHub annotates the lines): one rule per kind of finding
(``diag/leaks/tensor-growth``), its level from the severity (fail and error: ``error``, warn:
``warning``, info: ``note``), and its location at the user's file and line, relative to the
repository root, where diag has one; a finding without one points at the config file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, TextIO

from diag import __version__
from diag.report import Report
from diag.report.rules import findings_with_rules
from diag.result import Severity

SARIF_SCHEMA = ("https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/"
                "sarif-schema-2.1.0.json")
LEVELS = {Severity.FAIL: "error", Severity.ERROR: "error", Severity.WARN: "warning",
          Severity.INFO: "note"}
_FILE_LINE = re.compile(r"^(?P<file>[^:\s]+\.py):(?P<line>\d+)$")
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache",
              ".ruff_cache", ".pytest_cache", "build", "dist", "site-packages"}


def repo_root(start: Path | None = None) -> Path:
    """The repository root: the nearest folder up from ``start`` (cwd) holding .git, else
    ``start`` itself."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return here


class _Locator:
    """``model.py:12`` (diag's findings name the file, not its folder) as a path relative
    to the repository root, found by a bounded walk; None when not found or not unique."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._index: dict[str, list[str]] | None = None

    def _files(self) -> dict[str, list[str]]:
        if self._index is None:
            index: dict[str, list[str]] = {}
            seen = 0
            for folder, dirs, files in os.walk(self.root):
                dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
                for name in files:
                    if name.endswith(".py"):
                        rel = os.path.relpath(os.path.join(folder, name), self.root)
                        index.setdefault(name, []).append(rel.replace(os.sep, "/"))
                seen += len(files)
                if seen > 50_000:
                    break
            self._index = index
        return self._index

    def find(self, location: str) -> tuple[str, int] | None:
        m = _FILE_LINE.match(location)
        if not m:
            return None
        name = m.group("file")
        if (self.root / name).is_file():
            return name.replace(os.sep, "/"), int(m.group("line"))
        hits = self._files().get(os.path.basename(name), [])
        return (hits[0], int(m.group("line"))) if len(hits) == 1 else None


class SarifReporter:
    def __init__(self, verbose: bool = False, quiet: bool = False,
                 root: Path | None = None, config: str = "pyproject.toml") -> None:
        """Every finding is a result (info ones as notes); ``config`` is where findings
        without a location of their own point."""
        self.root = root
        self.config = config

    def document(self, report: Report) -> dict[str, Any]:
        root = self.root or repo_root()
        locate = _Locator(root)
        rules: dict[str, dict[str, Any]] = {}
        results: list[dict[str, Any]] = []
        for check in report.checks:
            for rid, f in findings_with_rules(check):
                if rid not in rules:
                    rules[rid] = {
                        "id": rid,
                        "name": rid.split("/", 2)[-1].replace("/", "-"),
                        "shortDescription": {"text": f"diag {check.name}: "
                                                     + rid.split("/", 2)[-1].replace("-", " ")},
                        "fullDescription": {"text": f.message},
                        "help": {"text": f.hint or f"see `diag {check.name} --help`"},
                        "properties": {"check": check.name},
                    }
                where = locate.find(f.location) if f.location else None
                uri, line = where if where is not None else (self.config, 1)
                text = f.message + (f" [{f.location}]" if f.location and where is None
                                    else "") + (f" -- {f.hint}" if f.hint else "")
                results.append({
                    "ruleId": rid,
                    "ruleIndex": list(rules).index(rid),
                    "level": LEVELS[f.severity],
                    "message": {"text": text},
                    "locations": [{"physicalLocation": {
                        "artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"},
                        "region": {"startLine": line}}}],
                })
        return {
            "$schema": SARIF_SCHEMA,
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {"name": "diag", "version": __version__,
                                    "informationUri": "https://pypi.org/project/diag/",
                                    "rules": list(rules.values())}},
                "originalUriBaseIds": {"%SRCROOT%": {"uri": root.as_uri() + "/"}},
                "invocations": [{"executionSuccessful": report.interrupted is None}],
                "results": results,
                "properties": {"checks": [{"name": c.name, "status": c.status.value,
                                           "summary": c.summary} for c in report.checks]},
            }],
        }

    def render(self, report: Report) -> str:
        return json.dumps(self.document(report), indent=2, allow_nan=False) + "\n"

    def write(self, report: Report, stream: TextIO) -> None:
        stream.write(self.render(report))
        stream.flush()
