"""Loss histories from files: CSV with a header, or JSON (a list of numbers or of objects).

NaN/Inf are data (they mean divergence), not parse errors.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from typing import Any

from diag.errors import DataError

MIN_POINTS = 10
INDEX_COLUMNS = ("epoch", "step", "iteration")


@dataclass(frozen=True)
class History:
    """A metric per epoch or step, with the file's own index and learning rates if given."""

    values: list[float]
    index: list[float]
    """Epoch or step numbers as the file counts them (0, 1, 2... when absent); whole numbers
    are ints, fractional epochs (Hugging Face logs 0.5, 1.0, 1.5) stay floats."""
    index_name: str
    lr: list[float] | None
    metric: str
    source: str

    def label(self, position: int | None) -> float | None:
        return None if position is None else self.index[position]


def _number(value: Any, where: str) -> float:
    if value is None:  # JSON null: a missing value
        return math.nan
    if isinstance(value, bool):
        raise DataError(f"{where}: {value!r} is not a number", hint="write plain numbers")
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:
            raise DataError(f"{where}: a {len(str(value))}-digit integer is too large for a "
                            "float", hint="write plain numbers") from None
    text = str(value).strip()
    if text == "":
        raise DataError(f"{where}: empty value", hint="fill it in, or write nan")
    try:
        return float(text)  # accepts nan, inf, -inf, 1e-3
    except ValueError:
        raise DataError(f"{where}: {text!r} is not a number",
                        hint="the metric column must hold numbers (nan/inf allowed)") from None


def _index(value: float, where: str, name: str) -> float:
    """An epoch or step number: finite and below 2**53; an int when whole, else the float
    (Hugging Face's Trainer logs fractional epochs)."""
    if math.isnan(value):
        raise DataError(f"{where}: {name} is missing", hint=f"number every row's {name}")
    if not math.isfinite(value) or abs(value) > 2**53:
        raise DataError(f"{where}: {name} {value:g} is not a usable {name} number",
                        hint="number epochs/steps with finite numbers (below 2**53)")
    return int(value) if value == int(value) else value


def load_history(path: str, metric: str = "loss", lr_column: str | None = None) -> History:
    """Read ``path`` (.csv or .json). Malformed files raise DataError (exit 2)."""
    if not os.path.exists(path):
        raise DataError(f"--history file not found: {path}", hint="check the path")
    if os.path.isdir(path):
        raise DataError(f"--history {path} is a folder", hint="pass the CSV or JSON file")
    try:
        with open(path, encoding="utf-8-sig") as fh:  # -sig: Excel writes a BOM
            head = fh.read(4096)
            fh.seek(0)
            if path.lower().endswith(".json") or head.lstrip().startswith(("[", "{")):
                history = _from_json(fh.read(), path, metric, lr_column)
            else:
                history = _from_csv(fh, path, metric, lr_column)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"--history {path} cannot be read: {exc}",
                        hint="pass a UTF-8 CSV or JSON file") from None
    if len(history.values) < MIN_POINTS:
        raise DataError(f"--history {path} has {len(history.values)} points; the detectors "
                        f"need at least {MIN_POINTS}", hint="log more epochs or steps")
    return history


_CHUNK = 65536


def lr_column_of(fields: list[str], metric: str, asked: str | None, path: str) -> str:
    """The LR column: the one asked for, else ``lr`` / ``learning_rate`` / the first
    ``lr-*``, ``lr/*`` or ``lr_*`` (Lightning's LearningRateMonitor, Ultralytics); '' for
    none."""
    if asked is not None:
        if asked not in fields:
            raise DataError(f"--history {path} has no column {asked!r} for the LR (columns: "
                            f"{', '.join(fields)})", hint="pass --lr-column NAME")
        return asked
    for name in ("lr", "learning_rate"):
        if name in fields and name != metric:
            return name
    return next((f for f in fields if f.startswith(("lr-", "lr/", "lr_")) and f != metric), "")


def paired_validation(path: str, metric: str) -> str | None:
    """The validation column that goes with ``metric`` in the file, if any: ``val_loss``
    for ``loss``, ``val/box_loss`` for ``train/box_loss``, ``val_loss`` for
    ``train_loss``."""
    fields = columns(path)
    base = metric
    for prefix in ("train/", "train_"):
        if metric.startswith(prefix):
            base = metric[len(prefix):]
    candidates = [f"val_{base}", f"val/{base}", f"valid_{base}", f"validation_{base}",
                  f"val_{metric}"]
    return next((c for c in candidates if c in fields and c != metric), None)


def columns(path: str) -> list[str]:
    """The metric names a history file holds (CSV header, or the first JSON object's
    keys); empty when unreadable (the loader reports that properly)."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            head = fh.read(65536)
            if head.lstrip().startswith(("[", "{")):
                data = json.loads(head + fh.read())
            else:
                return [c.strip() for c in next(csv.reader(head.splitlines()), [])]
    except (OSError, UnicodeDecodeError, ValueError):
        return []
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list)), [])
    first = next((d for d in data if isinstance(d, dict)), None) if isinstance(
        data, list) else None
    return list(first) if first else []


def _from_csv(fh: Any, path: str, metric: str, lr_column: str | None = None) -> History:
    """One pass over the file; each needed column is converted a chunk of rows at a time
    (numpy), so a file of millions of rows never becomes millions of dicts. Rows whose metric
    cell is empty are skipped: loggers such as Lightning's write train and validation
    metrics on separate rows. A row too short to have the metric is a parse error."""
    import numpy as np

    reader = csv.reader(fh)
    header = next(reader, None)
    fields = [f.strip() for f in (header or [])]
    if not fields:
        raise DataError(f"--history {path} is empty", hint="write a header row and values")
    if metric not in fields:
        raise DataError(f"--history {path} has no column {metric!r} (columns: "
                        f"{', '.join(fields)})", hint="pass --metric NAME for your column")
    index_name = next((c for c in INDEX_COLUMNS if c in fields), "")
    lr_name = lr_column_of(fields, metric, lr_column, path)
    wanted = list(dict.fromkeys(c for c in (metric, index_name, lr_name) if c))
    cols = {c: fields.index(c) for c in wanted}
    need = max(cols.values()) + 1
    column = _fast_columns(path, wanted, cols)
    if column is None:
        column = _slow_columns(reader, path, metric, wanted, cols, need)
    values = column[metric]
    index: list[float]
    if index_name:
        idx = column[index_name]
        bad = np.flatnonzero(~np.isfinite(idx) | (np.abs(idx) > 2**53))
        if bad.size:
            _index(float(idx[bad[0]]), f"{path}, data row {int(bad[0]) + 1}", index_name)
        whole = idx == np.round(idx)
        index = (idx.astype(np.int64).tolist() if bool(whole.all())
                 else [int(v) if w else float(v) for v, w in zip(idx.tolist(), whole.tolist(),
                                                                 strict=True)])
    else:
        index = list(range(len(values)))
    lrs = column[lr_name].tolist() if lr_name else None
    return History(values.tolist(), index, index_name or "index", lrs, metric, path)


def _fast_columns(path: str, wanted: list[str], cols: dict[str, int]) -> dict[str, Any] | None:
    """The wanted columns through numpy's C reader when every row is plain numbers (about
    5x faster than the csv module); None when any row is not (an empty cell, a short row,
    text), and the careful reader below takes over and names the line."""
    import warnings

    import numpy as np

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": reported below
            arr = np.loadtxt(path, delimiter=",", skiprows=1,
                             usecols=[cols[c] for c in wanted], dtype=np.float64, ndmin=2,
                             encoding="utf-8-sig", comments=None, quotechar='"')
    except (ValueError, TypeError, IndexError):
        return None
    return {c: np.ascontiguousarray(arr[:, i]) for i, c in enumerate(wanted)}


def _slow_columns(reader: Any, path: str, metric: str, wanted: list[str],
                  cols: dict[str, int], need: int) -> dict[str, Any]:
    import numpy as np

    done: dict[str, list[Any]] = {c: [] for c in wanted}
    chunk: dict[str, list[str]] = {c: [] for c in wanted}
    lines: list[int] = []

    def flush() -> None:
        for c in wanted:
            texts = chunk[c]
            try:
                arr = np.array(texts, dtype=np.float64)
            except ValueError:  # find the bad cell, name its line
                arr = np.array([_number(t, f"{path} line {line}, column {c!r}")
                                for t, line in zip(texts, lines, strict=True)], np.float64)
            done[c].append(arr)
            texts.clear()
        lines.clear()

    m = cols[metric]
    for row_no, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue  # blank line
        if len(row) < need:
            missing = next(c for c in wanted if cols[c] >= len(row))
            raise DataError(f"{path} line {row_no}, column {missing!r}: the row has no value "
                            "in this column", hint="fill it in (write nan for a missing loss)")
        if not row[m].strip():
            continue  # this row logged other metrics
        for c in wanted:
            chunk[c].append(row[cols[c]].strip())
        lines.append(row_no)
        if len(lines) >= _CHUNK:
            flush()
    if lines:
        flush()
    return {c: (np.concatenate(done[c]) if done[c] else np.zeros(0)) for c in wanted}


def _from_json(text: str, path: str, metric: str, lr_column: str | None = None
               ) -> History:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DataError(f"--history {path} is not valid JSON: {exc}",
                        hint="write a list of numbers or a list of objects") from None
    if isinstance(data, dict):
        for key in ("history", "log", metric):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        raise DataError(f"--history {path}: expected a JSON list, got {type(data).__name__}",
                        hint="write a list of numbers or a list of objects")
    if all(not isinstance(d, dict) for d in data):
        values = [_number(v, f"{path} item {i}") for i, v in enumerate(data)]
        return History(values, list(range(len(values))), "index", None, metric, path)
    values, index, lrs = [], [], []
    index_name = next((c for c in INDEX_COLUMNS if all(isinstance(d, dict) and c in d
                                                       for d in data)), "")
    lr_name = lr_column_of(list(data[0]) if data and isinstance(data[0], dict) else [],
                           metric, lr_column, path)
    has_lr = bool(lr_name) and all(isinstance(d, dict) and lr_name in d for d in data)
    for i, d in enumerate(data):
        if not isinstance(d, dict) or metric not in d:
            raise DataError(f"--history {path} item {i} has no {metric!r}",
                            hint="pass --metric NAME, or give every object the metric")
        values.append(_number(d[metric], f"{path} item {i}, {metric!r}"))
        if index_name:
            index.append(_index(_number(d[index_name], f"{path} item {i}, {index_name!r}"),
                                f"{path} item {i}", index_name))
        if has_lr:
            lrs.append(_number(d[lr_name], f"{path} item {i}, {lr_name!r}"))
    return History(values, index or list(range(len(values))), index_name or "index",
                   lrs if has_lr else None, metric, path)
