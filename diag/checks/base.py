"""The Check record every check registers, its options' validation, and ``run_check``: the
one guard (timing, RNG isolation, time limit, error -> result) around every check.

Pure standard library plus numpy: the registry built from these records is read by
``--help``, config validation and ``--select`` without importing torch.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import signal
import sys
import threading
import time
import traceback
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from typing import Any

from diag.errors import DiagError, UsageError, user_location
from diag.result import CheckResult, Finding, Severity, Status

Progress = Callable[[int, int], None]


def lazy(target: str) -> Callable[..., Any]:
    """``'pkg.mod:attr'`` as a callable that imports ``pkg.mod`` on first call, so the
    registry can name a check's torch-heavy code without importing it."""
    module_name, _, attr = target.partition(":")

    def call(*args: Any, **kwargs: Any) -> Any:
        fn = getattr(importlib.import_module(module_name), attr)
        return fn(*args, **kwargs)

    call.__qualname__ = call.__name__ = attr
    call.__doc__ = f"Lazily imported {target}."
    call.lazy_module = module_name  # type: ignore[attr-defined]
    return call


def preload(fn: Callable[..., Any] | None) -> None:
    """Import the module behind a ``lazy`` callable now: a time limit started later must
    never interrupt an import (a half-imported torch breaks every later import)."""
    module_name = getattr(fn, "lazy_module", None)
    if module_name is not None:
        importlib.import_module(module_name)


def always(*inputs: str) -> Callable[[Mapping[str, Any]], frozenset[str]]:
    """``needs`` for a check whose inputs do not depend on what the user set."""
    needed = frozenset(inputs)

    def needs(_sources: Mapping[str, Any]) -> frozenset[str]:
        return needed

    return needs


@dataclass(frozen=True)
class Check:
    """One check, as everything else sees it: the CLI, ``diag check``, the config file, the
    Python API, the reporters and the JUnit file all derive from these records."""

    name: str
    """The command and report name, e.g. ``lr-schedule``."""
    title: str
    """What the check answers, in one line."""
    options: type[Any]
    """Its options dataclass: the fields (except ``seed``) are the ``[tool.diag.<name>]``
    keys, with their defaults; field metadata holds the validation rules."""
    needs: Callable[[Mapping[str, Any]], frozenset[str]]
    """The inputs it needs (``target``, ``step``, ``pipeline``, ``history``, ``loss``), given
    which sources the user set: leaks needs a target only when no step is given."""
    run: Callable[..., CheckResult]
    """``run(inputs, options, progress) -> CheckResult``; raises DiagError on bad input."""
    figures: Callable[[CheckResult], dict[str, Any]] | None = None
    """``figures(result) -> {short name: matplotlib Figure}``, from the result's numbers."""
    key_metrics: tuple[str, ...] = ()
    """The few metrics the console table shows; the JSON report has them all."""
    console: Callable[[CheckResult], tuple[list[Any], set[str]]] | None = None
    """Extra rich renderables for the terminal (e.g. the leak attribution table), and the
    locations of the findings they already show."""
    prepare: Callable[..., Any] | None = None
    """``prepare(inputs, options, resolve) -> options``: resolve the check's own SPEC
    options before any check runs, so a bad one is a usage error (exit 2)."""
    torch_needed: Callable[[Mapping[str, Any]], bool] = lambda sources: True
    """Whether running it imports torch (lr-schedule on a history file does not)."""
    table: str = ""
    """Its ``[tool.diag.<table>]`` in a config file when that differs from ``name`` (the
    data check's options live in ``[tool.diag.data-check]``: ``data`` is the data set)."""
    check_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Option defaults `diag check` uses in place of the command's (a shorter run); the
    config file still wins."""
    timed: bool = False
    """Its findings are timings: the CLI lets nothing of its own (the plot worker) run
    beside it."""

    @property
    def config_table(self) -> str:
        """The name of its ``[tool.diag.<table>]``."""
        return self.table or self.name

    def option_keys(self) -> dict[str, dataclasses.Field[Any]]:
        """Config keys of this check: its options' fields except ``seed``."""
        return {f.name: f for f in dataclasses.fields(self.options)
                if f.name != "seed" and not f.name.startswith("_") and f.init
                and not f.metadata.get("internal")}


# --- option validation: one set of rules for command-line values, config values and the API
def option(default: Any, help: str = "", *, min: float | None = None,
           max: float | None = None, gt: float | None = None,
           choices: tuple[str, ...] | None = None, internal: bool = False,
           parse: Callable[[Any], object] | None = None) -> Any:
    """A dataclass field with its validation rules and help text. Numbers must be finite;
    ``parse(value)`` raises ValueError("why; the fix") for a value the type alone admits
    (a size string that is not a size)."""
    meta = {"help": help, "min": min, "max": max, "gt": gt, "choices": choices,
            "internal": internal, "parse": parse}
    return dataclasses.field(default=default, metadata=meta)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(parts)
    if origin is tuple or tp is tuple:
        return "a list of integers"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"
            }.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, value converted to ``tp``). Booleans are never numbers; ints are numbers."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return True, None
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            ok, out = _coerce(value, arg)
            if ok:
                return True, out
        return False, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    if origin is tuple:
        if not isinstance(value, list | tuple) or not value:
            return False, value
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        return ok, tuple(value) if ok else value
    if callable(value) and tp is not None:  # a resolved object in place of its SPEC
        return True, value
    return False, value


def validate_options(check: Check, values: Mapping[str, Any], where: str,
                     key_name: Callable[[str], str] = lambda k: k) -> Any:
    """``values`` as ``check.options``, or a UsageError naming the key, the rule and the fix.

    ``where`` names the source ("--" options or a config table); ``key_name`` spells a key as
    the user wrote it (``max_steps`` in a config file, ``--max-steps`` on the command line).
    """
    import difflib

    fields = check.option_keys()
    hints = typing.get_type_hints(check.options)
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "seed":
            out[key] = value
            continue
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            raise UsageError(f"{where} unknown key {key!r}".strip(),
                             hint=(f"did you mean {close[0]!r}?" if close else
                                   f"known keys: {', '.join(fields)}" if fields else
                                   f"{check.name} has no options"))
        f = fields[key]
        name = key_name(key)
        label = f"{where} {name}".strip()
        ok, converted = _coerce(value, hints[key])
        if not ok:
            raise UsageError(f"{label}: expected {_describe(hints[key])}, got {value!r}",
                             hint=f"fix {name}")
        _check_bounds(f, converted, label)
        out[key] = converted
    try:
        return check.options(**out)
    except UsageError as exc:  # a rule across keys (__post_init__)
        raise UsageError(f"{where} {exc.message}".strip(), exc.hint) from None


def _check_bounds(f: dataclasses.Field[Any], value: Any, label: str) -> None:
    meta = f.metadata
    if value is None or isinstance(value, bool) or callable(value):
        return
    items = value if isinstance(value, tuple) else (value,)
    if meta.get("parse") is not None:
        try:
            meta["parse"](value)
        except ValueError as exc:
            why, _, fix = str(exc).partition("; ")
            raise UsageError(f"{label}: {value!r} {why}", hint=fix or f"fix {label}") from None
    for v in items:
        if isinstance(v, str):
            if meta.get("choices") and v not in meta["choices"] and ":" not in v:
                raise UsageError(f"{label}: {v!r} is not one of {', '.join(meta['choices'])}",
                                 hint="pick one of those (or a SPEC)")
            continue
        if isinstance(v, float) and not math.isfinite(v):
            raise UsageError(f"{label}: {v!r} is not a finite number",
                             hint="give a finite value (NaN and infinity are refused)")
        if meta.get("min") is not None and v < meta["min"]:
            raise UsageError(f"{label}: {v!r} is below the minimum {meta['min']:g}",
                             hint=f"use a value >= {meta['min']:g}")
        if meta.get("max") is not None and v > meta["max"]:
            raise UsageError(f"{label}: {v!r} is above the maximum {meta['max']:g}",
                             hint=f"use a value <= {meta['max']:g}")
        if meta.get("gt") is not None and not v > meta["gt"]:
            raise UsageError(f"{label}: {v!r} must be greater than {meta['gt']:g}",
                             hint=f"use a value > {meta['gt']:g}")


# --- the guard ------------------------------------------------------------------------------
class CheckTimeout(BaseException):
    """Raised inside a check by the timer. A BaseException, so a user's ``except
    Exception`` does not swallow it."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """SIGALRM-based limit for the main thread (POSIX); elsewhere no limit is applied."""
    usable = (seconds is not None and hasattr(signal, "setitimer")
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


def timeout_result(name: str, timeout: float | None, tb: types.TracebackType | None = None,
                   during: str = "") -> CheckResult:
    """A check over its time limit: the error names what it was doing and, when the timer
    stopped it inside user code, that file:line."""
    where = user_location(tb, fallback=False)
    message = f"timed out after {timeout or 0:g} s" + (f" while {during}" if during else "")
    if where:
        message += f" (stuck at {where})"
    return CheckResult(name, Status.ERROR, message, metrics={"error_type": "timeout"},
                       findings=(Finding(Severity.ERROR, message, "raise --timeout, or make "
                                         "the check cheaper (fewer steps, iterations or "
                                         "epochs)", where),))


def error_result(name: str, exc: BaseException) -> CheckResult:
    """A check that could not run, as a result: never a traceback that stops the others."""
    if isinstance(exc, DiagError):
        return exc.as_result(name)
    location = user_location(exc.__traceback__)
    detail = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, SystemExit):
        message = f"user code called sys.exit({exc.code!r})"
        hint = "a check calls your model, loss, step or pipeline: do not exit from them"
    else:
        message = f"internal error: {type(exc).__name__}" + (f": {detail}" if detail else "")
        hint = "please report this with the JSON report attached"
    kind = "user_code" if isinstance(exc, SystemExit) else "internal"
    return CheckResult(name, Status.ERROR, message, metrics={"error_type": kind},
                       findings=(Finding(Severity.ERROR, message, hint, location),))


def run_check(name: str, work: Callable[[], CheckResult], *, seed: int | None,
              torch_needed: bool = True, timeout: float | None = None,
              quiet_stdout: bool = False) -> CheckResult:
    """Run ``work`` timed, under ``timeout``, with the global RNGs seeded and restored; a
    DiagError (bad input, user code that raised), a timeout or any other exception becomes
    the check's error result. Only KeyboardInterrupt goes through.

    ``quiet_stdout`` sends what user code prints to stderr, so ``--format json`` keeps
    stdout for the report alone.
    """
    from diag.rng import isolated_rng

    started = time.perf_counter()
    try:
        with time_limit(timeout), isolated_rng(seed, torch_needed=torch_needed), (
                redirect_stdout(sys.stderr) if quiet_stdout else _nothing()):
            result = work()
    except KeyboardInterrupt:
        raise
    except CheckTimeout as exc:
        result = timeout_result(name, timeout, exc.__traceback__)
    except BaseException as exc:
        result = error_result(name, exc)
        if os.environ.get("DIAG_DEBUG"):
            traceback.print_exc()
    return result.replace(duration_s=time.perf_counter() - started)


@contextmanager
def _nothing() -> Iterator[None]:
    yield
