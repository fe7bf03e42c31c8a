"""What every check's ``run`` does around its work."""

from __future__ import annotations

import time
from collections.abc import Callable

from diag.errors import DiagError
from diag.result import CheckResult
from diag.state import isolated_rng


def guarded(name: str, work: Callable[[], CheckResult], seed: int | None = None
            ) -> CheckResult:
    """Run ``work`` timed, with the global RNGs seeded and restored when ``seed`` is given;
    a DiagError (bad input, user code that raised) becomes the check's error result."""
    started = time.perf_counter()
    try:
        if seed is None:
            result = work()
        else:
            with isolated_rng(seed):
                result = work()
    except DiagError as exc:
        result = exc.as_result(name)
    return result.replace(duration_s=time.perf_counter() - started)
