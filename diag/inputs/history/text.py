"""Plain stdout logs. ``--pattern REGEX`` with named groups ``step`` or ``epoch``, ``loss``,
and optional ``lr`` and ``val_loss``; without it, the common line shapes below. A line that
matches no shape is skipped (banners, warnings, progress bars).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable

import numpy as np

from diag.errors import DataError, UsageError
from diag.inputs.history.core import Log

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf|-inf"

SHAPES: dict[str, re.Pattern[str]] = {
    # Keras' fit() progress: "Epoch 3/50" on one line, "... loss: 0.41 - val_loss: 0.5" after
    "keras": re.compile(rf"^\s*\d+/\d+ .*?\bloss: (?P<loss>{_NUM})"
                        rf"(?:.*?\bval_loss: (?P<val_loss>{_NUM}))?"
                        rf"(?:.*?\b(?:lr|learning_rate): (?P<lr>{_NUM}))?", re.I),
    # PyTorch's MNIST example: "Train Epoch: 2 [640/60000 (1%)]\tLoss: 0.31"
    "pytorch-example": re.compile(rf"Train Epoch: (?P<epoch>\d+) \[(?P<seen>\d+)/(?P<total>\d+)"
                                  rf".*?Loss: (?P<loss>{_NUM})", re.I),
    # llm.c / nanoGPT: "step 12/5000 | train loss 3.21 | lr 6e-4", "iter 12: loss 3.21",
    # Karpathy's lecture GPT: "step 500: train loss 2.04, val loss 2.05"
    "llm.c": re.compile(rf"\b(?:step|iter)\s+(?P<step>\d+)(?:/\d+)?\s*[|:]\s*(?:train )?"
                        rf"loss[:= ]\s*(?P<loss>{_NUM})"
                        rf"(?:.*?\b(?:val|valid|eval)[ _]loss[:= ]\s*(?P<val_loss>{_NUM}))?"
                        rf"(?:.*?\blr[:= ]\s*(?P<lr>{_NUM}))?", re.I),
    # "Epoch 3/50 ... loss: 0.41", "Epoch [3/50] Train Loss: 0.41, Valid Loss: 0.5"
    "epoch-line": re.compile(rf"\bEpoch\s*\[?\s*(?P<epoch>\d+)\s*(?:/\s*\d+)?\s*\]?[^\n]*?"
                             rf"\b(?:train(?:ing)?[ _])?loss\s*[:=]\s*(?P<loss>{_NUM})"
                             rf"(?:[^\n]*?\b(?:val(?:id(?:ation)?)?|test)[ _]loss\s*[:=]\s*"
                             rf"(?P<val_loss>{_NUM}))?"
                             rf"(?:[^\n]*?\b(?:lr|learning[ _]rate)\s*[:=]\s*\[?(?P<lr>{_NUM}))?",
                             re.I),
}
_HF_DICT = re.compile(r"^\s*\{.*'(?:loss|eval_loss)':.*\}\s*$")


def compile_pattern(pattern: str) -> re.Pattern[str]:
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"--pattern {pattern!r} is not a regular expression ({exc})",
                         hint="write a Python regex with named groups, e.g. "
                              r"'step (?P<step>\d+) loss (?P<loss>\S+)'") from None
    groups = set(rx.groupindex)
    if "loss" not in groups or not ({"step", "epoch"} & groups):
        raise UsageError(f"--pattern needs the named groups loss and step or epoch (it has "
                         f"{', '.join(sorted(groups)) or 'none'})",
                         hint=r"e.g. 'Epoch (?P<epoch>\d+).*loss: (?P<loss>\S+)'")
    return rx


def read(path: str, pattern: str | None = None, lines: Iterable[str] | None = None) -> Log:
    if lines is None:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    lines = list(lines)
    if pattern is not None:
        return _with(compile_pattern(pattern), lines, path, "text (--pattern)")
    hf = [ln for ln in lines if _HF_DICT.match(ln)]
    if hf:
        return _hf_prints(hf, path)
    best: Log | None = None
    for name, rx in SHAPES.items():
        log = _with(rx, lines, path, f"text ({name})", strict=False)
        if log.series and (best is None or len(log.series["loss"][1]) > len(
                best.series["loss"][1])):
            best = log
    if best is None:
        raise DataError(f"--history {path}: no line looks like a training log (tried: "
                        f"{', '.join(SHAPES)}, Hugging Face's printed dicts)",
                        hint="pass --pattern with named groups step or epoch, and loss")
    return best


def _with(rx: re.Pattern[str], lines: list[str], path: str, fmt: str, strict: bool = True
          ) -> Log:
    cols: dict[str, tuple[list[float], list[float]]] = {}
    x_name = ""
    keras_epoch = 0
    for line in lines:
        if fmt == "text (keras)":
            m_epoch = re.match(r"^\s*Epoch (\d+)/\d+\s*$", line)
            if m_epoch:
                keras_epoch = int(m_epoch.group(1))
                continue
        m = rx.search(line)
        if not m:
            continue
        d = m.groupdict()
        if fmt == "text (keras)":
            if not keras_epoch:
                continue
            x, x_name = float(keras_epoch), "epoch"
        elif "seen" in d and d.get("seen") is not None:  # epoch + fraction through it
            x, x_name = (float(d["epoch"]) + float(d["seen"]) / float(d["total"]), "epoch")
        elif d.get("step") is not None:
            x, x_name = float(d["step"]), "step"
        elif d.get("epoch") is not None:
            x, x_name = float(d["epoch"]), "epoch"
        else:
            continue
        for key in ("loss", "val_loss", "lr"):
            if d.get(key) is not None:
                xs, ys = cols.setdefault(key, ([], []))
                xs.append(x)
                ys.append(float(d[key]))
    if strict and "loss" not in cols:
        raise DataError(f"--history {path}: --pattern matched no line",
                        hint="check the pattern against a line of the log")
    log = Log(fmt, path, x_name or "index")
    if "loss" in cols:
        log.series = {k: (np.asarray(v[0]), np.asarray(v[1])) for k, v in cols.items()}
    return log


def _hf_prints(lines: list[str], path: str) -> Log:
    """Hugging Face's Trainer prints its logs as Python dicts: {'loss': 0.69, 'epoch': 0.16}.
    Their x axis is the epoch (the printed dicts carry no step)."""
    from diag.inputs.history.core import from_records

    records = []
    for line in lines:
        try:
            record = ast.literal_eval(line.strip())
        except (ValueError, SyntaxError):
            continue
        if isinstance(record, dict):
            records.append({k: (float(v) if isinstance(v, str) and _is_float(v) else v)
                            for k, v in record.items()})
    return from_records(records, ("step", "epoch"), path, "text (huggingface prints)")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
