"""Steps that block until they are interrupted: for --timeout and Ctrl-C tests, which must
never race against real work (a loaded machine would lose the race)."""

from __future__ import annotations

import time
from collections.abc import Callable


def blocking_step() -> Callable[[], None]:
    def step() -> None:
        while True:  # until the timer's signal or Ctrl-C interrupts it
            time.sleep(0.05)

    return step
