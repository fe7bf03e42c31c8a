"""diag in a pytest suite (registered through the ``pytest11`` entry point; imports nothing
heavy until asked):

- ``pytest --diag`` runs the checks configured in ``[tool.diag]`` (``--diag-config FILE``)
  as test items, one per check; a failed check's findings are its failure message;
- the ``diag_check`` fixture: ``diag_check("overfit", model=MyNet, data=(x, y))`` returns
  the CheckResult (``.assert_passed()``);
- the ``diag`` marker: ``@pytest.mark.diag("overfit", max_steps=300)`` runs that check after
  the test body, on the marker's ``model``/``data``/``loss`` or the test's ``diag_model``,
  ``diag_data``, ``diag_loss`` fixtures; the test fails when the check fails.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest

_SOURCES = ("model", "data", "loss")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("diag", "diag training checks")
    group.addoption("--diag", action="store_true",
                    help="run the checks configured in [tool.diag] as test items")
    group.addoption("--diag-config", default=None, metavar="FILE",
                    help="the TOML file with [tool.diag] (default: the rootdir's "
                         "pyproject.toml)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "diag(check, **options): run diag's check (on the marker's or the test's "
        "diag_model/diag_data/diag_loss) after the test body; fail when the check fails")


def run_check(name: str, **kwargs: Any) -> Any:
    """``checks.<name>(**kwargs)``: the Python API, by check name."""
    from diag import checks
    from diag.checks.registry import NAMES

    if name not in NAMES:
        raise pytest.UsageError(f"diag: unknown check {name!r}; checks: {', '.join(NAMES)}")
    fn: Callable[..., Any] = getattr(checks, name.replace("-", "_"))
    return fn(**kwargs)


@pytest.fixture
def diag_check() -> Callable[..., Any]:
    """``diag_check(name, **options)`` -> CheckResult, through diag's Python API."""
    return run_check


class DiagCheckFailed(Exception):
    """A diag check item that failed or could not run."""

    def __init__(self, result: Any) -> None:
        super().__init__(result.summary)
        self.result = result


def _describe(result: Any) -> str:
    lines = [f"diag {result.name}: {result.status.value}: {result.summary}"]
    for f in result.findings:
        if f.severity.value in ("warn", "fail", "error"):
            where = f" [{f.location}]" if f.location else ""
            lines.append(f"  {f.severity.value.upper()}{where}: {f.message}")
            if f.hint:
                lines.append(f"      hint: {f.hint}")
    return "\n".join(lines)


class DiagItem(pytest.Item):
    """One configured check, as a test."""

    def __init__(self, *, job: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job = job

    def runtest(self) -> None:
        from diag.result import Status

        result = self.job.run()
        if result.status in (Status.FAIL, Status.ERROR):
            raise DiagCheckFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, DiagCheckFailed):
            return _describe(excinfo.value.result)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"diag {self.name}"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if not config.getoption("--diag"):
        return
    from diag.errors import DiagError
    from diag.inputs.config import load_config
    from diag.run.plan import Overrides, plan_check

    path = config.getoption("--diag-config") or str(config.rootpath / "pyproject.toml")
    try:
        jobs = plan_check(load_config(path), Overrides())
    except DiagError as exc:
        raise pytest.UsageError(f"diag: {exc.one_line()}") from None
    items.extend(DiagItem.from_parent(session, name=f"diag[{job.name}]", job=job)
                 for job in jobs)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    outcome = yield  # the test body ran (and passed: a failure raised through the yield)
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    for mark in item.iter_markers("diag"):
        if not mark.args:
            raise pytest.UsageError("@pytest.mark.diag needs the check's name")
        options = dict(mark.kwargs)
        for key in _SOURCES:
            if key not in options and f"diag_{key}" in funcargs:
                options[key] = funcargs[f"diag_{key}"]
        result = run_check(mark.args[0], **options)
        from diag.result import Status

        if result.status in (Status.FAIL, Status.ERROR):
            raise AssertionError(_describe(result))
    return outcome
