"""Errors diag raises on purpose. The CLI turns each kind into one line and an exit code."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from types import TracebackType

from diag.result import CheckResult, ExitCode, Finding, Severity, Status

USER_ERRORS: tuple[type[BaseException], ...] = (Exception, SystemExit)
"""What user code may raise that becomes a check's error: every exception, and ``sys.exit()``
(argparse at import, an exit in forward). Never KeyboardInterrupt (Ctrl-C stops the run)."""


class DiagWarning(UserWarning):
    """What ``diag.watch`` reports while training runs (once per finding, when first seen)."""


class WatchFailure(RuntimeError):
    """``diag.watch(..., raise_on="fail")`` stops training with this on a failing finding."""


class DiagError(Exception):
    """Base class: a message naming the problem and a hint naming the fix."""

    exit_code: ExitCode = ExitCode.CHECK_ERROR

    def __init__(self, message: str, hint: str = "", location: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.location = location

    def as_finding(self) -> Finding:
        """This error as the finding of a check that could not run."""
        return Finding(Severity.ERROR, self.message, self.hint, self.location)

    def as_result(self, name: str) -> CheckResult:
        """This error as the result of check ``name`` (status error)."""
        kind = "usage" if self.exit_code == ExitCode.USAGE_ERROR else "user_code"
        return CheckResult(name, Status.ERROR, self.one_line(), metrics={"error_type": kind},
                           findings=(self.as_finding(),))

    def one_line(self) -> str:
        text = self.message
        if self.location and self.location not in text:
            text += f" (at {self.location})"
        if self.hint:
            text += f"; {self.hint}"
        return " ".join(text.split())


class UsageError(DiagError):
    """Bad option or a spec that does not resolve."""

    exit_code = ExitCode.USAGE_ERROR


class DataError(DiagError):
    """A file that is missing, unreadable or malformed; arrays with the wrong shape."""

    exit_code = ExitCode.USAGE_ERROR


class UserCodeError(DiagError):
    """The user's own code (model, loss, step, pipeline) raised."""

    exit_code = ExitCode.CHECK_ERROR


_LIB_DIRS: tuple[str, ...] | None = None


def _library_dirs() -> tuple[str, ...]:
    global _LIB_DIRS
    if _LIB_DIRS is None:
        import sysconfig

        dirs = {os.path.dirname(os.path.abspath(__file__))}
        for key in ("stdlib", "platstdlib", "purelib", "platlib"):
            path = sysconfig.get_paths().get(key)
            if path:
                dirs.add(os.path.abspath(path))
        torch_mod = sys.modules.get("torch")
        if torch_mod is not None and getattr(torch_mod, "__file__", None):
            dirs.add(os.path.dirname(os.path.abspath(str(torch_mod.__file__))))
        _LIB_DIRS = tuple(sorted(dirs))
    return _LIB_DIRS


def is_library_file(filename: str) -> bool:
    """True for files of diag, torch, the standard library and installed packages."""
    path = os.path.abspath(filename)
    if filename.startswith("<"):
        return True
    return any(path == d or path.startswith(d + os.sep) for d in _library_dirs())


def user_location(tb: TracebackType | None, fallback: bool = True) -> str:
    """``file.py:42`` of the innermost traceback frame in the user's own code; without one,
    the innermost frame (``fallback``) or nothing."""
    frames = traceback.extract_tb(tb)
    for frame in reversed(frames):
        if not is_library_file(frame.filename):
            return f"{os.path.basename(frame.filename)}:{frame.lineno}"
    if frames and fallback:
        last = frames[-1]
        return f"{os.path.basename(last.filename)}:{last.lineno}"
    return ""


def user_code_error(exc: BaseException, what: str, hint: str = "") -> UserCodeError:
    """Wrap an exception raised by user code, pointing at the user's file and line."""
    location = user_location(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        location = f"{os.path.basename(exc.filename)}:{exc.lineno}"
    if isinstance(exc, SystemExit):
        return UserCodeError(f"{what} called sys.exit({exc.code!r})",
                             hint=hint or "diag calls your code: do not exit from it (an "
                             "argparse parser at import time? parse arguments under "
                             "`if __name__ == '__main__':`)", location=location)
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    message = f"{what} raised {type(exc).__name__}" + (f": {detail}" if detail else "")
    return UserCodeError(message, hint=hint, location=location)


def defined_at(obj: object) -> str:
    """``file.py:42`` where a user's function or class is defined ("" when unknown)."""
    import inspect

    target = getattr(obj, "__func__", obj)
    try:
        code = getattr(target, "__code__", None)
        if code is not None:
            return f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"
        filename = inspect.getsourcefile(target)  # type: ignore[arg-type]
        _, line = inspect.getsourcelines(target)  # type: ignore[arg-type]
    except (TypeError, OSError):
        return ""
    return f"{os.path.basename(filename)}:{line}" if filename else ""


def a_type(value: object) -> str:
    """'an int', 'a str', 'None': a value's type for a message."""
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiouAEIOU' else 'a'} {name}"


def make_step(factory: Callable[[], object], source: str) -> Callable[[], object]:
    """``step = factory()`` for a user's step factory: what it raises is user code's error,
    and a result that is not callable is a UsageError pointing at the factory's file:line."""
    try:
        step = factory()
    except DiagError:
        raise
    except USER_ERRORS as exc:
        raise user_code_error(exc, source) from None
    if not callable(step):
        raise UsageError(f"{source} returned {a_type(step)}, not a callable",
                         hint="return a zero-argument function that runs one training "
                              "iteration (did the factory forget `return step`?)",
                         location=defined_at(factory))
    return step
