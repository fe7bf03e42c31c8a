"""A step that takes its time: for --timeout and Ctrl-C tests."""

from __future__ import annotations

import time


def slow_step():
    def step() -> None:
        time.sleep(0.5)

    return step
