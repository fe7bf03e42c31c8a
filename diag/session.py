"""Running checks for the CLI: progress on stderr, error isolation, files, rendering, exit code.

The CLI builds a list of jobs (name, callable) and hands it here; nothing in this module is
imported by ``diag --help``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from diag.errors import DiagError, UsageError, user_location
from diag.report import Report
from diag.report.console import ConsoleReporter
from diag.report.files import write_check, write_summary
from diag.report.formats import REPORTERS
from diag.result import CheckResult, ExitCode, Finding, Severity, Status, exit_code_for

Progress = Callable[[int, int], None]
Job = tuple[str, Callable[[Progress | None], CheckResult]]


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


class CheckTimeout(BaseException):
    """Raised inside a check by the timer. A BaseException, so a user's ``except
    Exception`` does not swallow it."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """SIGALRM-based limit for the main thread (POSIX); elsewhere no limit is applied."""
    usable = (seconds is not None and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def expire(_signum: int, _frame: Any) -> None:
        raise CheckTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))  # type: ignore[arg-type]
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def error_result(name: str, exc: BaseException) -> CheckResult:
    """A check that could not run, as a result: never a traceback that stops the others."""
    if isinstance(exc, DiagError):
        return exc.as_result(name)
    location = user_location(exc.__traceback__)
    detail = str(exc).splitlines()[0] if str(exc) else ""
    message = f"internal error: {type(exc).__name__}" + (f": {detail}" if detail else "")
    return CheckResult(name, Status.ERROR, message, findings=(Finding(
        Severity.ERROR, message, "please report this with the JSON report attached",
        location),))


def run_job(name: str, fn: Callable[[Progress | None], CheckResult],
            progress: Progress | None, timeout: float | None = None) -> CheckResult:
    started = time.perf_counter()
    try:
        with time_limit(timeout):
            result = fn(progress)
    except CheckTimeout:
        message = f"timed out after {timeout:g} s"
        result = CheckResult(name, Status.ERROR, message, findings=(Finding(
            Severity.ERROR, message, "raise --timeout, or make the check cheaper (fewer "
            "steps, iterations or epochs)"),))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        result = error_result(name, exc)
        if os.environ.get("DIAG_DEBUG"):
            traceback.print_exc()
    if not result.duration_s:
        result = result.replace(duration_s=time.perf_counter() - started)
    return result


def ensure_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create the folder ({exc.strerror})",
                         hint="pick a writable folder") from None


def execute(jobs: Sequence[Job], opts: RunOptions) -> int:
    """Run the jobs in order, write reports, render, and return the exit code."""
    ensure_out(opts.out)
    err = stderr_console()
    live = err.is_terminal and not opts.quiet and not os.environ.get("NO_COLOR")
    results: list[CheckResult] = []
    interrupted: str | None = None
    current = ""
    try:
        for name, fn in jobs:
            current = name
            if live:
                result = _run_with_bar(name, fn, err, opts.timeout)
            else:
                if not opts.quiet:
                    err.print(f"diag: running {name} ...", soft_wrap=True)
                result = run_job(name, fn, None, opts.timeout)
            try:
                result = write_check(result, opts.out, plots=opts.plots)
            except OSError as exc:
                result = result.replace(findings=tuple(result.findings) + (Finding(
                    Severity.WARN, f"could not write report files: {exc}",
                    "check --out"),))
            results.append(result)
            if not opts.quiet:
                err.print(f"diag: {name}: {result.status.value} ({result.duration_s:.1f}s)",
                          soft_wrap=True)
    except KeyboardInterrupt:
        interrupted = current
        err.print(f"diag: interrupted while running {current}; "
                  f"reports of the {len(results)} finished checks are written", soft_wrap=True)
    write_summary(results, opts.out, interrupted)
    report = Report(results, interrupted=interrupted)
    if opts.junit is not None:
        from diag.report.files import atomic_write
        from diag.report.junit import JUnitReporter

        try:
            atomic_write(opts.junit, JUnitReporter().render(report))
        except OSError as exc:
            err.print(f"diag: cannot write --junit {opts.junit}: {exc}", soft_wrap=True)
    if opts.fmt != "text":
        sys.stdout.write(REPORTERS[opts.fmt]().render(report))
        sys.stdout.flush()
    else:
        # CI logs are not terminals: give the table room instead of rich's 80 columns.
        wide = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
        out = Console(highlight=False, width=wide)
        reporter = ConsoleReporter(verbose=opts.verbose)
        if opts.quiet:
            for r in results:
                out.print(f"{r.name}: {r.status.value}: {r.summary}", soft_wrap=True)
        else:
            reporter.print(report, out)
    if interrupted is not None:
        return int(ExitCode.INTERRUPTED)
    return int(exit_code_for(results))


def _run_with_bar(name: str, fn: Callable[[Progress | None], CheckResult],
                  console: Console, timeout: float | None) -> CheckResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(name, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return run_job(name, fn, update, timeout)
