"""The labelled published logs of tests/data/curves/ and how a diag result is judged against
a label (shared by tests/checks/test_lr_real_logs.py and benchmarks/score_curves.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CURVES = Path(__file__).resolve().parent / "data" / "curves"
LABELS: dict[str, dict[str, Any]] = json.loads((CURVES / "labels.json").read_text())
SPLIT: dict[str, Any] = json.loads((CURVES / "split.json").read_text())

FORBIDDEN = {  # a label's "forbid" word -> the metric that must then be empty / false
    "stall": lambda m: m["stall"] is None,
    "oscillation": lambda m: m["oscillation_start"] is None,
    "divergence": lambda m: m["divergence_start"] is None,
    "no_learning": lambda m: m["no_learning"] is False,
    "plateau": lambda m: m["plateau_start"] is None,
    "overfitting": lambda m: m["overfitting"] is False,
}


def file_of(key: str) -> str:
    return str(LABELS[key].get("file", key))


def keys(part: str) -> list[str]:
    """The labelled cases of one part of the split: "tune" or "heldout"."""
    files = set(SPLIT[part])
    return [k for k in LABELS if file_of(k) in files]


def run(key: str) -> Any:
    """diag's verdict on the case: a training curve alone, a validation curve alone, or a
    validation curve judged with its training curve (as ``diag lr-schedule`` pairs them)."""
    from diag.checks.lr import LrOptions
    from diag.checks.lr.check import run_history
    from diag.inputs.history import load_history, load_pair

    label = LABELS[key]
    path = str(CURVES / file_of(key))
    lr_column = label.get("lr_column")
    if "train_metric" in label:
        train, val = load_pair(path, label["train_metric"], label["metric"], lr_column)
        return run_history(train, LrOptions(), val)
    return run_history(load_history(path, label["metric"], lr_column), LrOptions())


def problems(key: str, result: Any) -> list[str]:
    """What in ``result`` contradicts the label of ``key`` (empty: it matches)."""
    label = LABELS[key]
    m = result.metrics
    out: list[str] = []
    if result.status.value not in label["status"]:
        out.append(f"status {result.status.value}, expected {'/'.join(label['status'])}")
    out.extend(f"{word} reported" for word in label.get("forbid", []) if not FORBIDDEN[word](m))
    plateau = m.get("plateau_start")
    if "plateau_not_before" in label and plateau is not None and (
            plateau < label["plateau_not_before"]):
        out.append(f"plateau at {plateau}, expected none before {label['plateau_not_before']}")
    if "plateau_between" in label:
        lo, hi = label["plateau_between"]
        if plateau is None or not lo <= plateau <= hi:
            out.append(f"plateau at {plateau}, expected one from {lo} to {hi}")
    if "problem_between" in label:
        lo, hi = label["problem_between"]
        starts = [m[k] for k in ("plateau_start", "oscillation_start", "divergence_start",
                                 "ends_at_worst") if m.get(k) is not None]
        if not any(lo <= s <= hi for s in starts):
            out.append(f"problems at {starts}, expected one from {lo} to {hi}")
    if "recommended_lr" in label and m.get("recommended_lr") is not None and abs(
            m["recommended_lr"] / label["recommended_lr"] - 1) > 1e-6:
        out.append(f"recommended lr {m['recommended_lr']}, expected {label['recommended_lr']}")
    if "recommended_lr" in label and m.get("recommended_lr") is None:
        out.append(f"no recommended lr, expected {label['recommended_lr']}")
    if "still_improving" in label and m["still_improving"] is not label["still_improving"]:
        out.append(f"still_improving {m['still_improving']}")
    validation = "train_metric" in label or label.get("alone")
    if validation:
        want = label.get("overfitting", False)
        if want is not None and m.get("overfitting") is not want:
            out.append(f"overfitting {m.get('overfitting')}, expected {want}")
    if "best_epoch_val_between" in label and m.get("overfitting"):
        lo, hi = label["best_epoch_val_between"]
        best = m.get("best_epoch_val")
        if best is None or not lo <= best <= hi:
            out.append(f"best validation epoch {best}, expected {lo}-{hi}")
    return out
