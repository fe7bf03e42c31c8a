"""``[tool.diag]`` in pyproject.toml (or ``--config FILE``) for `diag check`.

Unknown keys, wrong types and unreadable files are one clear error naming the key (exit 2).
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diag.errors import UsageError

CHECK_NAMES = ("overfit", "leaks", "lr-schedule", "loss-grad", "preprocess")

# key -> accepted Python types, per table
TOP_KEYS: dict[str, tuple[type, ...]] = {
    "model": (str,), "data": (str,), "loss": (str,), "step": (str,), "pipeline": (str,),
    "history": (str,), "seed": (int,), "task": (str,), "input_size": (int,),
    "select": (list,), "skip": (list,), "timeout": (int, float),
}
CHECK_KEYS: dict[str, dict[str, tuple[type, ...]]] = {
    "overfit": {"samples": (int,), "max_steps": (int,), "lr": (int, float),
                "batch_size": (int,), "target_loss": (int, float)},
    "leaks": {"iterations": (int,), "warmup": (int,)},
    "lr-schedule": {"epochs": (int,), "lr": (int, float), "verify": (bool,),
                    "range_test": (bool,), "metric": (str,)},
    "loss-grad": {"pred_shape": (list,), "target": (str,), "reference": (str,)},
    "preprocess": {},
}


@dataclass(frozen=True)
class Config:
    """Validated settings; ``where`` names the file for error messages."""

    values: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    where: str = ""
    base: Path = Path(".")
    """Folder the file lives in: relative paths in it are relative to this."""

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def options(self, check: str) -> dict[str, Any]:
        return dict(self.checks.get(check, {}))

    def path(self, key: str) -> str | None:
        """A spec or file value with relative file paths made relative to the config file."""
        value = self.values.get(key)
        if value is None:
            return None
        where, sep, attr = value.rpartition(":")
        candidate = where if sep else value
        if candidate and not os.path.isabs(candidate) and (
                candidate.endswith((".py", ".npz", ".csv", ".json")) or "/" in candidate):
            full = str(self.base / candidate)
            return f"{full}:{attr}" if sep else full
        return str(value)


def _toml_load(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise UsageError(f"--config {path}: cannot read it ({exc.strerror})",
                         hint="check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}", hint="fix the syntax") from None


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "a list"}
    return " or ".join(dict.fromkeys(names[t] for t in types))


def _check_type(table: str, key: str, value: Any, types: tuple[type, ...]) -> None:
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        raise UsageError(f"{table} {key}: expected {_type_name(types)}, got {value!r}",
                         hint=f"fix {key} in {table}")


def parse(table: dict[str, Any], where: str, base: Path = Path(".")) -> Config:
    """Validate a ``[tool.diag]`` table."""
    values: dict[str, Any] = {}
    checks: dict[str, dict[str, Any]] = {}
    for key, value in table.items():
        if key in CHECK_KEYS:
            if not isinstance(value, dict):
                raise UsageError(f"{where} [tool.diag] {key}: expected a table "
                                 f"[tool.diag.{key}]", hint="write it as a sub-table")
            sub = f"{where} [tool.diag.{key}]"
            for k, v in value.items():
                if k not in CHECK_KEYS[key]:
                    raise UsageError(f"{sub} unknown key {k!r}",
                                     hint=_suggest(k, list(CHECK_KEYS[key])) if CHECK_KEYS[key]
                                     else f"{key} has no options")
                _check_type(sub, k, v, CHECK_KEYS[key][k])
            checks[key] = dict(value)
        elif key in TOP_KEYS:
            _check_type(f"{where} [tool.diag]", key, value, TOP_KEYS[key])
            values[key] = value
        else:
            raise UsageError(f"{where} [tool.diag] unknown key {key!r}",
                             hint=_suggest(key, list(TOP_KEYS) + list(CHECK_KEYS)))
    for key in ("select", "skip"):
        for name in values.get(key, []):
            if name not in CHECK_NAMES:
                raise UsageError(f"{where} [tool.diag] {key}: unknown check {name!r}",
                                 hint=f"checks: {', '.join(CHECK_NAMES)}")
    shape = checks.get("loss-grad", {}).get("pred_shape")
    if shape is not None and not (shape and all(isinstance(d, int) and d > 0 for d in shape)):
        raise UsageError(f"{where} [tool.diag.loss-grad] pred_shape: expected a list of "
                         f"positive integers, got {shape!r}", hint="e.g. pred_shape = [8, 10]")
    return Config(values, checks, where, base)


def load_config(path: str | None) -> Config:
    """``--config FILE`` (its [tool.diag] table, or the whole file if it has none), else
    ./pyproject.toml's [tool.diag], else the defaults."""
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise UsageError(f"--config file not found: {path}", hint="check the path")
        data = _toml_load(p)
        table = data.get("tool", {}).get("diag", data if "tool" not in data else {})
        return parse(table, p.name, p.resolve().parent)
    p = Path("pyproject.toml")
    if p.exists():
        table = _toml_load(p).get("tool", {}).get("diag")
        if table is not None:
            return parse(table, "pyproject.toml", p.resolve().parent)
    return Config()
