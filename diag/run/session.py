"""Running the plan's jobs for the CLI: progress on stderr, report files, the reporter on
stdout, the exit code. Each job runs through the one guard (``diag.checks.base.run_check``),
so a check that raises or times out becomes an error result and the others go on.
Nothing in this module is imported by ``diag --help``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from diag.errors import UsageError
from diag.report import Report
from diag.report.files import write_check, write_summary
from diag.report.formats import reporter_for
from diag.report.worker import PlotWorker
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
    sarif: Path | None = None
    """Also write SARIF 2.1.0 here."""
    baseline: Path | None = None
    """Compare with this baseline: only new findings and worse metrics fail."""
    update_baseline: bool = False
    """Write the baseline file from this run instead of comparing."""


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


def execute(jobs: Sequence[Job], opts: RunOptions, worker: PlotWorker | None = None) -> int:
    """Run the jobs in order, write reports, render, and return the exit code. ``worker``:
    draws the plots in a child process while the next check runs (closed here)."""
    files = _ReportFiles(opts, worker)
    try:
        return _execute(jobs, opts, files)
    finally:
        files.close()


def _execute(jobs: Sequence[Job], opts: RunOptions, files: _ReportFiles) -> int:
    ensure_out(opts.out)
    for path, option in ((opts.junit, "--junit"), (opts.sarif, "--sarif")):
        if path is not None:
            ensure_file_writable(path, option)
    baseline = None
    if opts.baseline is not None and not opts.update_baseline:
        from diag.report.baseline import load_baseline

        baseline = load_baseline(opts.baseline)
    err = stderr_console()
    live = err.is_terminal and not opts.quiet and not os.environ.get("NO_COLOR")
    results = files.results
    interrupted: str | None = None
    current = ""
    try:
        for job in jobs:
            name = current = job.name
            if job.timed:  # nothing of ours may share the CPU with its timings
                files.settle()
            if live:
                result = _run_with_bar(job, err, opts)
            else:
                if not opts.quiet:
                    err.print(f"diag: running {name} ...", soft_wrap=True)
                result = job.run(None, opts.timeout, quiet_stdout=opts.fmt != "text")
            files.add(result)
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
    try:
        files.collect(wait=True)
    except KeyboardInterrupt:  # while the finished checks' plots were drawn
        interrupted = interrupted or "plots"
        files.abandon()
        err.print(f"diag: interrupted while drawing plots; reports of the {len(results)} "
                  "finished checks are written (without the plots still being drawn)",
                  soft_wrap=True)
    for warning in write_summary(results, opts.out, interrupted):
        err.print(f"diag: warning: {warning}", soft_wrap=True)
    report = Report(results, interrupted=interrupted)
    from diag.report.files import atomic_write

    if opts.junit is not None:
        from diag.report.junit import JUnitReporter

        try:
            atomic_write(opts.junit, JUnitReporter().render(report))
        except OSError as exc:
            err.print(f"diag: cannot write --junit {opts.junit}: {exc}", soft_wrap=True)
    if opts.sarif is not None:
        from diag.report.sarif import SarifReporter

        try:
            atomic_write(opts.sarif, SarifReporter().render(report))
        except OSError as exc:
            err.print(f"diag: cannot write --sarif {opts.sarif}: {exc}", soft_wrap=True)
    reporter_for(opts.fmt, verbose=opts.verbose, quiet=opts.quiet).write(report, sys.stdout)
    if interrupted is not None:
        return int(ExitCode.INTERRUPTED)
    code = exit_code_for(results)
    if opts.update_baseline and opts.baseline is not None:
        from diag.report.baseline import write_baseline

        write_baseline(opts.baseline, results)
        err.print(f"diag: baseline written to {opts.baseline} ({len(results)} checks)",
                  soft_wrap=True)
        return int(ExitCode.OK if code == ExitCode.CHECK_FAILED else code)
    if baseline is not None:
        from diag.report.baseline import compare

        delta = compare(baseline, results)
        for line in delta.lines():
            err.print(f"diag: baseline: {line}", soft_wrap=True, markup=False)
        with contextlib.suppress(OSError):
            atomic_write(opts.out / "baseline-delta.json", delta.to_json())
            with open(opts.out / "summary.md", "a", encoding="utf-8") as fh:
                fh.write("\n" + delta.markdown())
        if code == ExitCode.CHECK_FAILED:  # failures already in the baseline do not fail
            code = ExitCode.CHECK_FAILED if delta.worse_or_new else ExitCode.OK
        elif code == ExitCode.OK and delta.worse_or_new:
            code = ExitCode.CHECK_FAILED
    return int(code)


class _ReportFiles:
    """Each result's plots, then its ``<check>.json`` (which lists the plots). With a
    worker, the plots are drawn in the child and the JSON is written when they are back;
    ``results`` holds each result in order, with its artifacts once they are written."""

    def __init__(self, opts: RunOptions, worker: PlotWorker | None) -> None:
        self._opts = opts
        self._worker = worker if opts.plots else None
        if worker is not None and self._worker is None:
            worker.close()
        self.results: list[CheckResult] = []
        self._indices: deque[int] = deque()

    def add(self, result: CheckResult) -> None:
        """Write its files now, or send its plots to the worker (and collect what is back)."""
        if self._worker is None or not self._worker.submit(result, self._opts.out):
            self.results.append(result)  # listed even if Ctrl-C comes while it is drawn
            self.results[-1] = self._write(result, plots=self._opts.plots)
            return
        self._indices.append(len(self.results))
        self.results.append(result)
        self.collect()

    def collect(self, wait: bool = False) -> None:
        """Write the JSON of the results whose plots are back; ``wait``: of all of them."""
        worker = self._worker
        while worker is not None and worker.pending and (wait or worker.ready()):
            result, (kind, payload) = worker.next_reply()
            if kind == "ok":
                written = self._write(result.replace(artifacts=tuple(payload)), plots=False)
            elif kind == "oserror":
                written = self._failed(result, payload)
            else:  # the child could not draw it: draw it here, as without a worker
                written = self._write(result, plots=True)
            self.results[self._indices.popleft()] = written

    def abandon(self) -> None:
        """Ctrl-C while plots were pending: stop the worker, remove the temporary PNGs it
        was writing, and write each pending result's JSON without its plots."""
        pending = [self.results[i] for i in self._indices]
        if self._worker is not None:
            self._worker.discard()
        for result in pending:
            for tmp in self._opts.out.glob(f".{result.name}_*.png.*.png"):
                tmp.unlink(missing_ok=True)
        while self._indices:
            i = self._indices.popleft()
            self.results[i] = self._write(self.results[i], plots=False)

    def settle(self) -> None:
        """Every plot so far drawn and written, and the worker idle (matplotlib loaded)."""
        self.collect(wait=True)
        if self._worker is not None:
            self._worker.wait_warm()

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()

    def _write(self, result: CheckResult, plots: bool) -> CheckResult:
        try:
            return write_check(result, self._opts.out, plots=plots)
        except OSError as exc:
            return self._failed(result, str(exc))
        except KeyboardInterrupt:  # while its plots were drawn here: its JSON all the same
            if plots:
                self._write(result, plots=False)
            raise

    @staticmethod
    def _failed(result: CheckResult, message: str) -> CheckResult:
        return result.replace(findings=tuple(result.findings) + (Finding(
            Severity.WARN, f"could not write report files: {message}", "check --out"),))


def _run_with_bar(job: Job, console: Console, opts: RunOptions) -> CheckResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(job.name, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return job.run(update, opts.timeout, quiet_stdout=opts.fmt != "text")
