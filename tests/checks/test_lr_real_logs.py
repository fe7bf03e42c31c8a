"""lr-schedule on published training logs, against labels written by hand before diag ran
on them (tests/data/curves/LABELS.md has the sources and the reasoning). The tuning part of
the split must match case by case (known misses are strict xfails); the held-out part, never
tuned on, and each later round (PARTS) must score 90 %; the logs that diverge (part "added",
scored apart) case by case."""

from __future__ import annotations

import pytest
from curve_labels import keys, problems, run

KNOWN_MISSES = {  # wrong answers on tuning cases, kept visible rather than dropped
    "tomato_leaf_cnn_keras.csv+valalone": "alone, its 27 % rise is within its zigzag noise: "
    "diag says 'too early to call it overfitting' (paired with training it is overfitting)",
}


@pytest.mark.parametrize("key", [pytest.param(k, marks=pytest.mark.xfail(
    reason=KNOWN_MISSES[k], strict=True)) if k in KNOWN_MISSES else k for k in keys("tune")])
def test_tuning_log_matches_its_label(key: str) -> None:
    result = run(key)
    assert not problems(key, result), (key, result.status.value, result.summary,
                                       problems(key, result))


PARTS = {  # a part of the split scored as a whole -> (its least size, what it is)
    "heldout": (10, "the held-out third of the first 24 files, never tuned on"),
    "round5": (15, "ten more logs (17 cases): 15 right at first; the two misses (a last epoch "
                   "that jumps above the start) led to the 'ends at its worst' warning"),
    "round6": (10, "seven more (11 cases), held out: 10 right at first; the miss (a flat noisy "
                   "run read as divergence) led to the divergence noise test"),
    "round7": (5, "four Hugging Face logs (5 cases), read held out after both rules: 5 of 5"),
}


@pytest.mark.parametrize("part", list(PARTS))
def test_a_part_of_the_labelled_logs_scores_at_least_90_percent(part: str) -> None:
    cases = keys(part)
    wrong = {k: v for k in cases if (v := problems(k, run(k)))}
    assert len(cases) >= PARTS[part][0]
    assert 1 - len(wrong) / len(cases) >= 0.9, (PARTS[part][1], wrong)


@pytest.mark.parametrize("key", keys("added"))
def test_a_published_log_that_diverges_is_a_failure_where_it_diverges(key: str) -> None:
    """The real divergences (a fit at float precision that jumps back to chance, a loss that
    climbs to thousands, a perplexity that turns NaN): fail, placed where the label says."""
    result = run(key)
    assert not problems(key, result), (key, result.status.value, result.summary,
                                       problems(key, result))
