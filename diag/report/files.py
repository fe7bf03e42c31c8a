"""Report files under ``--out``: ``<check>.json``, PNG plots, ``summary.md``; atomic writes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from diag.report import Report
from diag.report.json import JsonReporter
from diag.report.markdown import MarkdownReporter
from diag.result import CheckResult


def _mode() -> int:
    """The permissions a plain open() would give (mkstemp's are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write to a temporary file in the same folder, then rename: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, _mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_plots(result: CheckResult, out: Path) -> CheckResult:
    """Render and save the check's plots; the result comes back with their paths."""
    from diag.report.figures import figures_for

    paths = []
    for short, fig in figures_for(result).items():
        path = out / f"{result.name}_{short}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{path.name}.", suffix=".png")
        os.close(fd)
        try:
            fig.savefig(tmp, format="png")
            os.chmod(tmp, _mode())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        paths.append(str(path))
    return result.replace(artifacts=tuple(result.artifacts) + tuple(paths))


def write_check(result: CheckResult, out: Path, plots: bool = True) -> CheckResult:
    """Plots (optional) then ``<check>.json``; returns the result with its artifacts."""
    if plots:
        result = write_plots(result, out)
    path = out / f"{result.name}.json"
    result = result.replace(artifacts=tuple(result.artifacts) + (str(path),))
    atomic_write(path, JsonReporter().render(Report([result])))
    return result


def write_summary(results: Sequence[CheckResult], out: Path,
                  interrupted: str | None = None) -> list[str]:
    """``report.json`` and ``summary.md`` for the whole run, and the summary appended to
    ``$GITHUB_STEP_SUMMARY`` when set. Returns warnings: a summary that cannot be written
    never costs the other report files."""
    report = Report(list(results), interrupted=interrupted)
    warnings = []
    atomic_write(out / "report.json", JsonReporter().render(report))
    md = MarkdownReporter().render(report)
    try:
        atomic_write(out / "summary.md", md)
    except OSError as exc:
        warnings.append(f"cannot write {out / 'summary.md'}: {exc.strerror or exc}")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        try:
            with open(step_summary, "a", encoding="utf-8") as fh:
                fh.write(md)
        except OSError as exc:
            warnings.append(f"cannot append to $GITHUB_STEP_SUMMARY ({step_summary}): "
                            f"{exc.strerror or exc}")
    return warnings
