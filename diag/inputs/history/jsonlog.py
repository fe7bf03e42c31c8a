"""JSON logs: a list of numbers, a list of objects (Keras' ``history.history`` dumped, hand
written), Hugging Face's ``trainer_state.json`` (its ``log_history`` mixes training and
evaluation records, with fractional epochs and ``step`` as the x axis), and JSON lines (W&B's
``wandb-history.jsonl``, one object per step with ``_step``).
"""

from __future__ import annotations

import json
from typing import Any

from diag.errors import DataError
from diag.inputs.history.core import (
    INDEX_COLUMNS,
    Log,
    as_index,
    from_records,
    index_value,
    number,
    series,
)

HF_SUMMARY = ("total_flos", "train_runtime", "train_samples_per_second",
              "train_steps_per_second")
"""Keys of the Trainer's one closing record: not curves."""


def read(path: str, metric: str, text: str | None = None) -> Log:
    if text is None:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            text = fh.read()
    try:
        data = json.loads(text)
    except ValueError as exc:
        if "Extra data" in str(exc):  # JSON lines
            return _lines(text, path)
        raise DataError(f"--history {path} is not valid JSON: {exc}",
                        hint="write a list of numbers or a list of objects") from None
    except RecursionError:
        raise DataError(f"--history {path} is nested too deeply",
                        hint="write a list of numbers or a list of objects") from None
    if isinstance(data, dict) and isinstance(data.get("log_history"), list):
        records = [r for r in data["log_history"] if isinstance(r, dict)]
        return from_records(records, ("step",), path, "huggingface", skip=HF_SUMMARY)
    if isinstance(data, dict):
        for key in ("history", "log", metric):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        raise DataError(f"--history {path}: expected a JSON list, got {type(data).__name__}",
                        hint="write a list of numbers or a list of objects (or pass a "
                             "trainer_state.json)")
    if all(not isinstance(d, dict) for d in data):
        values = [number(v, f"{path} item {i}") for i, v in enumerate(data)]
        return Log("json", path, "index", {metric: series(range(len(values)), values)})
    return _objects(data, path, metric)


def _objects(data: list[Any], path: str, metric: str) -> Log:
    """A list of objects, each holding the metric (a missing one is an error naming it)."""
    index_name = next((c for c in INDEX_COLUMNS if all(isinstance(d, dict) and c in d
                                                       for d in data)), "")
    xs: list[float] = []
    for i, d in enumerate(data):
        if not isinstance(d, dict) or metric not in d:
            raise DataError(f"--history {path} item {i} has no {metric!r}",
                            hint="pass --metric NAME, or give every object the metric")
        if index_name:
            xs.append(index_value(number(d[index_name], f"{path} item {i}, {index_name!r}"),
                                  f"{path} item {i}", index_name))
    log = from_records(data, (index_name,) if index_name else (), path, "json")
    if index_name:
        as_index(log.series[metric][0], path, index_name)
    return log


def _lines(text: str, path: str) -> Log:
    records = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DataError(f"--history {path} line {n} is not JSON: {exc}",
                            hint="one JSON object per line (wandb-history.jsonl)") from None
        if isinstance(record, dict):
            records.append(record)
    return from_records(records, ("_step", "step", "epoch"), path, "wandb-history",
                        skip=("_runtime", "_timestamp"))
