"""CSV logs: Keras' CSVLogger (any separator), Lightning's ``metrics.csv`` (one row per
``log_metrics`` call, so a column is empty on the other rows), Ultralytics' ``results.csv``,
a W&B UI export (``Step``, ``run - loss``, ``run - loss__MIN``) and hand-written ones.

Only the columns a run needs are converted, a chunk of rows at a time (numpy), so a file of
millions of rows never becomes millions of dicts. NaN/Inf are data (divergence); an empty
cell is a value that row did not log.
"""

from __future__ import annotations

import csv
import re
from typing import Any

import numpy as np

from diag.errors import DataError
from diag.inputs.history.core import (
    INDEX_COLUMNS,
    MIN_POINTS,
    Log,
    lr_name,
    number,
    one_run_log,
    others_note,
    resolve_metric,
    validation_of,
)

_CHUNK = 65536
_WANDB = re.compile(r"^(?P<run>.+?) - (?P<metric>.+?)(?P<agg>__MIN|__MAX)?$")


def sniff_delimiter(header: str) -> str:
    """The separator of a header line: the most frequent of , ; tab (Keras' CSVLogger takes
    any ``separator``)."""
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def header_of(path: str, run: str | None = None
              ) -> tuple[list[str], list[str], str, list[str], str]:
    """(display names, raw header cells, delimiter, notes, the x axis of a W&B export or
    ""). A W&B UI export (columns
    ``run - metric`` with their ``__MIN``/``__MAX`` bands, the first column the x axis:
    ``Step`` or a custom one such as ``epoch``) holds one run or several side by side: one
    run is read (``run``, else the first, which is the top of W&B's runs table, newest
    first by default), its columns shown as ``metric``, the others' left out and named in
    the notes."""
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        line = fh.readline()
    delimiter = sniff_delimiter(line)
    raw = [c.strip() for c in next(csv.reader([line], delimiter=delimiter), [])]
    matches = [_WANDB.match(c) for c in raw]
    is_export = any(m and m.group("agg") for m in matches) or (
        "Step" in raw and any(matches))
    if not is_export:
        if run is not None:
            raise one_run_log(run, path)
        return list(raw), raw, delimiter, [], ""
    # W&B lets two runs share a display name: a column key seen again starts another run
    labels: list[str | None] = []
    seen: dict[tuple[str, str, str], int] = {}
    for m in matches:
        if m is None:
            labels.append(None)
            continue
        key = (m.group("run"), m.group("metric"), m.group("agg") or "")
        seen[key] = seen.get(key, 0) + 1
        labels.append(m.group("run") if seen[key] == 1 else f"{m.group('run')} ({seen[key]})")
    runs = list(dict.fromkeys(label for label in labels if label is not None))
    if run is None:
        chosen = runs[0]
    elif run in runs:
        chosen = run
    else:
        raise DataError(f"--run {run!r}: no such run in the W&B export {path}",
                        hint="runs: " + ", ".join(runs[:20]))
    names = []
    for cell, m, label in zip(raw, matches, labels, strict=True):
        if m is None:
            names.append(cell)
        elif m.group("agg") or label != chosen:
            names.append("")  # a min/max band, or another run: not a series read here
        else:
            names.append(m.group("metric"))
    others = [r for r in runs if r != chosen]
    notes = others_note(others, "this W&B export", repr(chosen),
                        "first, the top of the runs table", run is not None)
    x_axis = next((cell for cell, m in zip(raw, matches, strict=True) if m is None), "")
    return names, raw, delimiter, notes, x_axis


def read(path: str, metric: str, lr_column: str | None = None, val_metric: str | None = None,
         run: str | None = None) -> Log:
    """The metric, its validation twin, the LR and the index of a CSV log, as a Log."""
    names, raw, delimiter, notes, wandb_x = header_of(path, run)
    fields = [n for n in names if n]
    if not fields:
        raise DataError(f"--history {path} is empty", hint="write a header row and values")
    name = resolve_metric(fields, metric, path, {})
    # Lightning logs a metric per step and per epoch: the epoch series when it is long enough
    epoch_twin = (name[: -len("_step")] + "_epoch" if name.endswith("_step")
                  and name[: -len("_step")] + "_epoch" in fields and metric != name else "")
    index_name = (wandb_x if wandb_x in fields else
                  next((c for c in INDEX_COLUMNS if c in fields), ""))
    lr = lr_name(fields, name, lr_column, path)
    val = val_metric if val_metric in fields else validation_of(fields, name)
    extra_x = "step" if index_name == "epoch" and "step" in fields else ""
    wanted = list(dict.fromkeys(c for c in (name, epoch_twin, index_name, extra_x, lr, val)
                                if c))
    cols = {c: names.index(c) for c in wanted}
    columns_read = _fast_columns(path, wanted, cols, delimiter)
    if columns_read is None:
        columns_read = _slow_columns(path, delimiter, name, wanted, cols)
    present = columns_read.pop("__present__", None)
    rows = len(columns_read[name])
    if epoch_twin and np.count_nonzero(_mask(present, epoch_twin, rows)) >= MIN_POINTS:
        name = epoch_twin
        twin_val = validation_of(fields, name)
        val = twin_val if twin_val in columns_read else val
    fmt = ("wandb-export" if wandb_x or notes else
           "lightning" if {"epoch", "step"} <= set(fields) and present is not None else
           "csv" if delimiter == "," else f"csv (separator {delimiter!r})")
    x_col = index_name
    if x_col == "epoch" and extra_x:
        epochs = columns_read["epoch"][_mask(present, name, rows)]
        if np.unique(epochs[~np.isnan(epochs)]).size < np.count_nonzero(~np.isnan(epochs)):
            x_col = "step"  # several rows per epoch (Lightning's *_step metrics): by step
    x = columns_read[x_col] if x_col else np.arange(rows, dtype=np.float64)
    log = Log(fmt, path, "step" if x_col in ("Step", "_step", "global_step") else
              x_col or "index", notes=notes)
    for c in (name, lr, val):
        if c:
            keep = _mask(present, c, rows)
            log.series[c] = (x[keep], columns_read[c][keep])
    return log


def _mask(present: dict[str, np.ndarray] | None, column: str, rows: int) -> np.ndarray:
    return present[column] if present is not None else np.ones(rows, dtype=bool)


def _fast_columns(path: str, wanted: list[str], cols: dict[str, int], delimiter: str = ","
                  ) -> dict[str, Any] | None:
    """The wanted columns through numpy's C reader when every row is plain numbers (about
    5x faster than the csv module); None when any row is not (an empty cell, a short row,
    text), and the careful reader below takes over and names the line."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": reported below
            arr = np.loadtxt(path, delimiter=delimiter, skiprows=1,
                             usecols=[cols[c] for c in wanted], dtype=np.float64, ndmin=2,
                             encoding="utf-8-sig", comments=None, quotechar='"')
    except (ValueError, TypeError, IndexError, UnicodeDecodeError):
        return None
    return {c: np.ascontiguousarray(arr[:, i]) for i, c in enumerate(wanted)}


def _slow_columns(path: str, delimiter: str, metric: str, wanted: list[str],
                  cols: dict[str, int]) -> dict[str, Any]:
    """Every wanted column with NaN where a cell is empty, and ``__present__``: per column,
    which rows logged it. A row with no value for the metric is a row of other metrics
    (Lightning writes one row per log call); a row too short to hold the metric is an
    error naming its line."""
    done: dict[str, list[np.ndarray]] = {c: [] for c in wanted}
    seen: dict[str, list[np.ndarray]] = {c: [] for c in wanted}
    chunk: dict[str, list[str]] = {c: [] for c in wanted}
    lines: list[int] = []

    def flush() -> None:
        for c in wanted:
            texts = np.array(chunk[c], dtype=object)
            have = texts != ""
            arr = np.full(len(texts), np.nan)
            try:
                arr[have] = np.array(texts[have].tolist(), dtype=np.float64)
            except ValueError:  # find the bad cell, name its line
                for j in np.flatnonzero(have):
                    arr[j] = number(texts[j], f"{path} line {lines[j]}, column {c!r}")
            done[c].append(arr)
            seen[c].append(have)
            chunk[c].clear()
        lines.clear()

    m = cols[metric]
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        next(reader, None)
        for row_no, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue  # blank line
            if len(row) <= m:
                raise DataError(f"{path} line {row_no}, column {metric!r}: the row has no "
                                "value in this column",
                                hint="fill it in (write nan for a missing loss)")
            for c in wanted:
                j = cols[c]
                chunk[c].append(row[j].strip() if j < len(row) else "")
            lines.append(row_no)
            if len(lines) >= _CHUNK:
                flush()
    if lines:
        flush()
    out: dict[str, Any] = {c: (np.concatenate(done[c]) if done[c] else np.zeros(0))
                           for c in wanted}
    out["__present__"] = {c: (np.concatenate(seen[c]) if seen[c] else np.zeros(0, bool))
                          for c in wanted}
    return out
