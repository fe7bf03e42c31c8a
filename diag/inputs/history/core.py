"""What every log reader returns (a ``Log``: named series over steps, with the file, the
format and the x axis they came from), and how `lr-schedule` picks its curves from one: the
training metric, its validation twin and the learning rate, the same way in every format.

Torch-free and light: `lr-schedule --history` never imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diag.errors import DataError, UsageError

MIN_POINTS = 10
"""Points a column needs to be preferred over its twin (Lightning's _epoch / _step)."""
MIN_CURVE = 5
"""Points a curve needs at all (under 20, findings carry a short-curve caveat)."""
INDEX_COLUMNS = ("epoch", "step", "iteration", "Step", "_step", "global_step")
LR_NAMES = ("lr", "learning_rate", "learning-rate", "learningrate")
LR_PREFIXES = ("lr-", "lr/", "lr_", "learning_rate/", "lr-adam", "train/lr")
VAL_PREFIXES = ("val_", "val/", "valid_", "valid/", "validation_", "validation/", "eval_",
                "eval/", "test_", "test/")
TRAIN_PREFIXES = ("train_", "train/", "training_", "training/", "Train/", "train-")


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
    format: str = ""
    """The log format it was read as: csv, lightning, tensorboard, huggingface ..."""
    used: str = ""
    """The columns or tags read, e.g. ``train_loss_epoch over step, the LR from lr-Adam``."""
    notes: tuple[str, ...] = ()
    """What the reader noticed (the other runs in the folder)."""
    problems: tuple[str, ...] = ()
    """What is wrong with the file but did not stop the read (a truncated record)."""

    def label(self, position: int | None) -> float | None:
        return None if position is None else self.index[position]


@dataclass
class Log:
    """Named series read from one file or run folder: name -> (x, values), float64."""

    format: str
    source: str
    x_name: str
    series: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """What the reader noticed (the other runs beside the one read)."""
    problems: list[str] = field(default_factory=list)
    """What is wrong with the file but did not stop the read (a truncated record)."""

    def names(self) -> list[str]:
        return list(self.series)


def others_note(others: list[str], where: str, chosen: str, default: str, asked: bool
                ) -> list[str]:
    """The note naming the runs beside the one read (none: no note); ``default`` says which
    run is read when none is asked for."""
    if not others:
        return []
    shown = ", ".join(others[:10]) + (", ..." if len(others) > 10 else "")
    return [f"{len(others)} other run{'s' if len(others) > 1 else ''} in {where}: {shown}; "
            f"read {chosen} (the {'one asked for' if asked else default}); pick another with "
            "--run NAME"]


def one_run_log(run: str, path: str) -> UsageError:
    """The error for ``--run`` on a log that holds a single run."""
    return UsageError(f"--run {run!r} picks a run in a folder, an MLflow database or a W&B "
                      f"export, and --history {path} is one run's log",
                      hint="pass the run folder, or drop --run")


def number(value: Any, where: str) -> float:
    """A metric cell as a float: NaN/Inf are data; JSON null is missing (NaN)."""
    if value is None:
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


def index_value(value: float, where: str, name: str) -> float:
    """An epoch or step number: finite and below 2**53; an int when whole, else the float
    (Hugging Face's Trainer logs fractional epochs)."""
    if math.isnan(value):
        raise DataError(f"{where}: {name} is missing", hint=f"number every row's {name}")
    if not math.isfinite(value) or abs(value) > 2**53:
        raise DataError(f"{where}: {name} {value:g} is not a usable {name} number",
                        hint="number epochs/steps with finite numbers (below 2**53)")
    return int(value) if value == int(value) else value


def as_index(xs: np.ndarray, where: str, name: str) -> list[float]:
    """Index values as a list: ints where whole, floats where fractional; a bad one is a
    DataError naming it."""
    bad = np.flatnonzero(~np.isfinite(xs) | (np.abs(xs) > 2**53))
    if bad.size:
        index_value(float(xs[bad[0]]), f"{where}, point {int(bad[0]) + 1}", name)
    whole = xs == np.round(xs)
    if bool(whole.all()):
        return xs.astype(np.int64).tolist()  # type: ignore[no-any-return]
    return [int(v) if w else float(v) for v, w in zip(xs.tolist(), whole.tolist(),
                                                      strict=True)]


def lr_name(names: list[str], metric: str, asked: str | None, source: str) -> str:
    """The LR series: the one asked for, else ``lr`` / ``learning_rate`` / the first
    ``lr-*``, ``lr/*`` or ``lr_*`` (Lightning's LearningRateMonitor, Ultralytics, TensorBoard
    tags); '' for none."""
    if asked is not None:
        if asked not in names:
            raise DataError(f"--history {source} has no column {asked!r} for the LR (columns: "
                            f"{', '.join(names)})", hint="pass --lr-column NAME")
        return asked
    for name in names:
        if name.lower() in LR_NAMES and name != metric:
            return name
    return next((n for n in names if n.lower().startswith(LR_PREFIXES) and n != metric), "")


def resolve_metric(names: list[str], metric: str, source: str, counts: Mapping[str, int]
                   ) -> str:
    """The series for ``metric``: itself, else the training series people mean by it
    (``loss`` -> ``train_loss``, ``train/loss``, ``Loss/train``, Lightning's
    ``train_loss_epoch`` when it has enough points, else ``train_loss_step``)."""
    if metric in names:
        return metric
    lowered = {n.lower(): n for n in names}
    m = metric.lower()
    candidates = [m] + [p.lower() + m for p in TRAIN_PREFIXES] + [f"{m}/train", f"{m}_train"]
    for cand in candidates:
        for suffix in ("", "_epoch", "_step"):
            name = lowered.get(cand + suffix)
            if name is not None and (suffix != "_epoch" or counts.get(name, 0) >= MIN_POINTS
                                     or lowered.get(cand + "_step") is None):
                return name
    raise DataError(f"--history {source} has no column {metric!r} (series: "
                    f"{', '.join(names[:20])}{' ...' if len(names) > 20 else ''})",
                    hint="pass --metric NAME for your series")


def validation_of(names: list[str], metric: str) -> str | None:
    """The validation twin of ``metric`` in the same log: ``val_loss`` for ``loss`` or
    ``train_loss``, ``val/box_loss`` for ``train/box_loss``, ``eval_loss`` (Hugging Face),
    ``Loss/val`` for ``Loss/train``; a Lightning ``_epoch`` / ``_step`` suffix is kept."""
    base, suffix = metric, ""
    for s in ("_epoch", "_step"):
        if base.endswith(s):
            base, suffix = base[: -len(s)], s
    for prefix in TRAIN_PREFIXES:
        if base.startswith(prefix):
            base = base[len(prefix):]
    if base.lower().startswith(VAL_PREFIXES) or metric.lower().startswith(VAL_PREFIXES):
        return None
    candidates = [f"{p}{base}{s}" for p in VAL_PREFIXES for s in (suffix, "")]
    candidates += [f"{base}/val", f"{base}/valid", f"{base}/validation", f"{base}_val",
                   f"val_{metric}"]
    lowered = {n.lower(): n for n in names}
    for cand in candidates:
        found = lowered.get(cand.lower())
        if found is not None and found != metric:
            return found
    return None


def to_history(log: Log, metric: str, lr_column: str | None = None) -> History:
    """The ``metric`` curve of ``log`` as a History, with the LR forward-filled onto its
    steps (an LR logged on its own rows, as Lightning's LearningRateMonitor does)."""
    names = log.names()
    counts = {n: int(np.count_nonzero(np.isfinite(log.series[n][0]))) for n in names}
    name = resolve_metric(names, metric, log.source, counts)
    xs, ys = log.series[name]
    keep = ~np.isnan(xs)
    xs, ys = xs[keep], ys[keep]
    order = np.argsort(xs, kind="stable")
    xs, ys = xs[order], ys[order]
    used = f"{name} over {log.x_name}"
    lrs: list[float] | None = None
    lr = lr_name(names, name, lr_column, log.source)
    if lr:
        lx, lv = log.series[lr]
        ok = ~np.isnan(lx) & ~np.isnan(lv)
        lx, lv = lx[ok], lv[ok]
        if lx.size:
            o = np.argsort(lx, kind="stable")
            lx, lv = lx[o], lv[o]
            at = np.searchsorted(lx, xs, side="right") - 1  # the last LR logged at or before
            lrs = lv[np.clip(at, 0, None)].tolist()
            used += f", the LR from {lr}"
    if len(ys) < MIN_CURVE:
        raise DataError(f"--history {log.source}: {name} has {len(ys)} points; the detectors "
                        f"need at least {MIN_CURVE}", hint="log more epochs or steps")
    index: list[float] = (as_index(xs, log.source, log.x_name) if log.x_name != "index"
                          else list(range(len(ys))))
    return History(ys.tolist(), index, log.x_name, lrs, name, log.source, log.format, used,
                   tuple(log.notes), tuple(log.problems))


def series(xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


def from_records(records: Sequence[Mapping[str, Any]], x_keys: tuple[str, ...], source: str,
                 fmt: str, skip: tuple[str, ...] = ()) -> Log:
    """A Log from dict records (JSON lines, Hugging Face's log_history): every numeric key
    becomes a series over the first of ``x_keys`` the records have (else their position)."""
    x_name = next((k for k in x_keys if any(k in r for r in records)), "index")
    cols: dict[str, tuple[list[float], list[float]]] = {}
    for i, r in enumerate(records):
        x = r.get(x_name, i) if x_name != "index" else i
        if isinstance(x, bool) or not isinstance(x, int | float):
            continue
        for key, value in r.items():
            if key in x_keys or key in skip or isinstance(value, bool) or not isinstance(
                    value, int | float | str | type(None)):
                continue
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    continue
            xs, ys = cols.setdefault(key, ([], []))
            xs.append(float(x))
            ys.append(math.nan if value is None else float(value))
    return Log(fmt, source, "step" if x_name in ("_step", "global_step") else x_name,
               {k: series(*v) for k, v in cols.items()})
