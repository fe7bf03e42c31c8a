"""The console script as a user runs it, for tests: exit code, stdout and stderr, and the
one error line a bad input must give."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def diag(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    """The console script's ``main()`` in this process (a subprocess per case would import
    torch a hundred times): exit code, stdout and stderr as a user sees them."""
    import contextlib
    import io
    from unittest import mock

    from diag.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: object = 0
    old_cwd = os.getcwd()
    with mock.patch.object(sys, "argv", ["diag", *args]), \
            mock.patch.dict(os.environ, env or {}), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if cwd is not None:
                os.chdir(cwd)
            main()
        except SystemExit as exc:
            code = exc.code
        finally:
            os.chdir(old_cwd)
    return subprocess.CompletedProcess(args, code if isinstance(code, int) else 1,
                                       out.getvalue(), err.getvalue())


def diag_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The console script in a subprocess, for what only a real process shows."""
    return subprocess.run([sys.executable, "-c", "from diag.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=600)


def one_line(err: str) -> str:
    """The one error line: ``diag: error: ...`` (bad input) or ``diag: <check>: error: ...``
    (user code that raised inside a check)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("diag: ")
             and ("diag: error: " in line or ": error: " in line)]
    assert len(lines) == 1, err
    return lines[0]


def write(path: Path, text: str | bytes) -> str:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)
