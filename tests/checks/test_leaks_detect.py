"""Growth detector: literal sequences and hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from diag.checks.leaks.detect import persistent_growth, slope


@pytest.mark.parametrize(("values", "growing"), [
    ([10] * 30, False),
    (list(range(30)), True),
    ([5, 6, 7, 8, 9] + [9] * 25, False),                  # lazy state during warm-up
    ([5] * 15 + [9] * 15, False),                         # state created once mid-run
    ([0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4], False),  # ring buffer fills, stays full
    ([10, 11, 10, 11, 10, 11, 10, 11, 10, 11] * 3, False),   # noise around a level
    ([i // 2 for i in range(30)], True),                  # one tensor every other iteration
    ([i * 100 for i in range(20)] + [1900] * 10, False),  # growth that stopped
    ([0] * 5 + [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], True),    # reported within 10 after warm-up
], ids=["flat", "linear", "warmup-only", "mid-run-step", "ring-buffer", "noise",
        "every-other", "stopped", "ten-after-warmup"])
def test_literal_sequences(values: list[int], growing: bool) -> None:
    assert persistent_growth(values, warmup=5).growing is growing


def test_slope_is_per_iteration() -> None:
    assert slope([3, 5, 7, 9]) == pytest.approx(2.0)
    assert persistent_growth(list(range(0, 60, 2)), warmup=5).per_iter == pytest.approx(2.0)


@given(st.integers(0, 10**6), st.integers(10, 60), st.integers(0, 8))
def test_constant_is_never_growth(level: int, n: int, warmup: int) -> None:
    assert not persistent_growth([level] * n, warmup).growing


@given(st.lists(st.integers(0, 3), min_size=10, max_size=50), st.integers(1, 5))
def test_strictly_increasing_is_growth(steps: list[int], start: int) -> None:
    values = [start]
    for s in steps:
        values.append(values[-1] + s + 1)
    assert persistent_growth(values, warmup=0).growing


@given(st.lists(st.integers(0, 1000), min_size=6, max_size=40), st.integers(0, 5))
def test_non_increasing_is_never_growth(values: list[int], warmup: int) -> None:
    assert not persistent_growth(sorted(values, reverse=True), warmup).growing
