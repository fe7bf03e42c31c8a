"""lr-schedule on published training logs, against labels written by hand before diag ran
on them (tests/data/curves/LABELS.md has the sources and the reasoning)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from diag import checks

CURVES = Path(__file__).resolve().parents[1] / "data" / "curves"
LABELS: dict[str, dict[str, Any]] = json.loads((CURVES / "labels.json").read_text())

FORBIDDEN = {  # a label's "forbid" word -> the metric that must then be empty / false
    "stall": lambda m: m["stall"] is None,
    "oscillation": lambda m: m["oscillation_start"] is None,
    "divergence": lambda m: m["divergence_start"] is None,
    "no_learning": lambda m: m["no_learning"] is False,
    "plateau": lambda m: m["plateau_start"] is None,
    "overfitting": lambda m: m["overfitting"] is False,
}


@pytest.mark.parametrize("key", list(LABELS))
def test_real_log_matches_its_label(key: str) -> None:
    label = LABELS[key]
    path = CURVES / label.get("file", key)
    validation = "train_metric" in label
    metric = label["train_metric"] if validation else label["metric"]
    r = checks.lr_schedule(str(path), metric=metric, lr_column=label.get("lr_column"))
    m = r.metrics
    where = f"{key}: {r.status.value}: {r.summary}"
    assert r.status.value in label["status"], where
    for word in label.get("forbid", []):
        assert FORBIDDEN[word](m), (word, where, m)
    if "plateau_not_before" in label and m["plateau_start"] is not None:
        assert m["plateau_start"] >= label["plateau_not_before"], where
    if "problem_between" in label:
        lo, hi = label["problem_between"]
        starts = [m[k] for k in ("plateau_start", "oscillation_start", "divergence_start")
                  if m[k] is not None]
        assert any(lo <= s <= hi for s in starts), (where, starts)
    if "recommended_lr" in label:
        assert m["recommended_lr"] == pytest.approx(label["recommended_lr"]), where
    if "still_improving" in label:
        assert m["still_improving"] is label["still_improving"], where
    if validation:
        assert m["val_metric"] == label["metric"], where
        assert m["overfitting"] is label.get("overfitting", False), where
    if "best_epoch_val_between" in label:
        lo, hi = label["best_epoch_val_between"]
        assert lo <= m["best_epoch_val"] <= hi, where
