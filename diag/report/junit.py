"""JUnit XML: one testcase per check, failures carry the findings as text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from diag.report import Report
from diag.result import CheckResult, Severity, Status


def _details(c: CheckResult) -> str:
    lines = [c.summary, ""]
    for f in c.findings:
        where = f" [{f.location}]" if f.location else ""
        lines.append(f"{f.severity.value.upper()}{where}: {f.message}")
        if f.hint:
            lines.append(f"    hint: {f.hint}")
    lines += [f"artifact: {a}" for a in c.artifacts]
    return "\n".join(lines)


class JUnitReporter:
    def render(self, report: Report) -> str:
        checks = list(report.checks)
        suite = ET.Element("testsuite", {
            "name": "diag",
            "tests": str(len(checks) + (1 if report.interrupted else 0)),
            "failures": str(sum(c.status == Status.FAIL for c in checks)),
            "errors": str(sum(c.status == Status.ERROR for c in checks)
                          + (1 if report.interrupted else 0)),
            "skipped": str(sum(c.status == Status.SKIP for c in checks)),
            "time": f"{sum(c.duration_s for c in checks):.3f}",
        })
        for c in checks:
            case = ET.SubElement(suite, "testcase", {"classname": "diag", "name": c.name,
                                                     "time": f"{c.duration_s:.3f}"})
            if c.status == Status.FAIL:
                ET.SubElement(case, "failure", {"message": c.summary,
                                                "type": "diag.fail"}).text = _details(c)
            elif c.status == Status.ERROR:
                ET.SubElement(case, "error", {"message": c.summary,
                                              "type": "diag.error"}).text = _details(c)
            elif c.status == Status.SKIP:
                ET.SubElement(case, "skipped", {"message": c.summary})
            elif any(f.severity != Severity.INFO for f in c.findings):
                ET.SubElement(case, "system-out").text = _details(c)
        if report.interrupted:
            case = ET.SubElement(suite, "testcase", {"classname": "diag",
                                                     "name": report.interrupted, "time": "0"})
            ET.SubElement(case, "error", {"message": "interrupted", "type": "diag.interrupted"})
        root = ET.Element("testsuites")
        root.append(suite)
        ET.indent(root)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(
            root, encoding="unicode") + "\n"
