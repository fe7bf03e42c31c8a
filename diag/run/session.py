"""Running the plan's jobs for the CLI: progress on stderr, report files, the reporter on
stdout, the exit code. Each job runs through the one guard (``diag.checks.base.run_check``),
so a check that raises or times out becomes an error result and the others go on.
Nothing in this module is imported by ``diag --help``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from diag.errors import UsageError
from diag.report import Report
from diag.report.files import write_check, write_summary
from diag.report.formats import reporter_for
from diag.result import CheckResult, ExitCode, Finding, Severity, Status, exit_code_for
from diag.run.plan import Job


@dataclass(frozen=True)
class RunOptions:
    """The common options of every check command."""

    out: Path = Path("reports")
    fmt: str = "text"
    quiet: bool = False
    plots: bool = True
    verbose: bool = False
    timeout: float | None = None
    """Seconds per check; over budget is an error ("timed out"), the rest go on."""
    junit: Path | None = None
    """Also write JUnit XML here."""


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def ensure_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create the folder ({exc.strerror})",
                         hint="pick a writable folder") from None


def ensure_file_writable(path: Path, option: str) -> None:
    """A file we will write after the checks ran: its folder must exist (or be made) and be
    writable now, so a bad path is a usage error before any work, not a lost report."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot create its folder ({exc.strerror})",
                         hint="pick a writable path") from None
    if path.is_dir() or not os.access(path.parent, os.W_OK):
        raise UsageError(f"{option} {path}: cannot write there",
                         hint="pick a writable file path")


def execute(jobs: Sequence[Job], opts: RunOptions) -> int:
    """Run the jobs in order, write reports, render, and return the exit code."""
    ensure_out(opts.out)
    if opts.junit is not None:
        ensure_file_writable(opts.junit, "--junit")
    err = stderr_console()
    live = err.is_terminal and not opts.quiet and not os.environ.get("NO_COLOR")
    results: list[CheckResult] = []
    interrupted: str | None = None
    current = ""
    try:
        for job in jobs:
            name = current = job.name
            if live:
                result = _run_with_bar(job, err, opts)
            else:
                if not opts.quiet:
                    err.print(f"diag: running {name} ...", soft_wrap=True)
                result = job.run(None, opts.timeout, quiet_stdout=opts.fmt != "text")
            try:
                result = write_check(result, opts.out, plots=opts.plots)
            except OSError as exc:
                result = result.replace(findings=tuple(result.findings) + (Finding(
                    Severity.WARN, f"could not write report files: {exc}",
                    "check --out"),))
            results.append(result)
            if result.status == Status.ERROR:  # even with --quiet: say why, one line
                where = next((f.location for f in result.findings if f.location), "")
                err.print(f"diag: {name}: error: {result.summary}"
                          + (f" (at {where})" if where and where not in result.summary
                             else ""), soft_wrap=True, markup=False, highlight=False)
            elif not opts.quiet:
                err.print(f"diag: {name}: {result.status.value} ({result.duration_s:.1f}s)",
                          soft_wrap=True)
    except KeyboardInterrupt:
        interrupted = current
        err.print(f"diag: interrupted while running {current}; "
                  f"reports of the {len(results)} finished checks are written", soft_wrap=True)
    for warning in write_summary(results, opts.out, interrupted):
        err.print(f"diag: warning: {warning}", soft_wrap=True)
    report = Report(results, interrupted=interrupted)
    if opts.junit is not None:
        from diag.report.files import atomic_write
        from diag.report.junit import JUnitReporter

        try:
            atomic_write(opts.junit, JUnitReporter().render(report))
        except OSError as exc:
            err.print(f"diag: cannot write --junit {opts.junit}: {exc}", soft_wrap=True)
    reporter_for(opts.fmt, verbose=opts.verbose, quiet=opts.quiet).write(report, sys.stdout)
    if interrupted is not None:
        return int(ExitCode.INTERRUPTED)
    return int(exit_code_for(results))


def _run_with_bar(job: Job, console: Console, opts: RunOptions) -> CheckResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(job.name, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return job.run(update, opts.timeout, quiet_stdout=opts.fmt != "text")
