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

# key -> accepted Python types, for the top-level [tool.diag] table. The per-check tables'
# keys, types and rules come from each check's options dataclass, through the registry.
TOP_KEYS: dict[str, tuple[type, ...]] = {
    "model": (str,), "data": (str,), "loss": (str,), "step": (str,), "pipeline": (str,),
    "history": (str,), "seed": (int,), "task": (str,), "input_size": (int,),
    "select": (list,), "skip": (list,), "timeout": (int, float), "threads": (int,),
}


@dataclass(frozen=True)
class Config:
    """Validated settings; ``where`` names the file for error messages."""

    values: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    """Check name -> its validated options object."""
    where: str = ""
    base: Path = Path(".")
    """Folder the file lives in: relative paths in it are relative to this."""

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def options(self, check: str) -> Any:
        """The check's options: the file's table over its ``check_defaults`` (None: neither
        is set)."""
        return self.checks.get(check)

    def path(self, key: str) -> str | None:
        """A spec or file value with relative file paths made relative to the config file."""
        value = self.values.get(key)
        return None if value is None else relative_to(str(value), self.base)


def relative_to(value: str, base: Path | None) -> str:
    """A SPEC or file path from a config file, with a relative file path made relative to
    the config file's folder (``base``); module SPECs are left alone."""
    if base is None:
        return value
    where, sep, attr = value.rpartition(":")
    candidate = where if sep else value
    if candidate and not os.path.isabs(candidate) and (
            candidate.endswith((".py", ".npz", ".csv", ".json")) or "/" in candidate):
        full = str(base / candidate)
        return f"{full}:{attr}" if sep else full
    return value


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
    """Validate a ``[tool.diag]`` table: the same rules as the command-line options."""
    from diag.checks.base import validate_options
    from diag.checks.registry import BY_TABLE, CHECKS, NAMES

    if not isinstance(table, dict):
        raise UsageError(f"{where} [tool.diag] is a {type(table).__name__}, not a table",
                         hint="write it as a [tool.diag] table")
    values: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    for key, value in table.items():
        if key in BY_TABLE:
            check = BY_TABLE[key]
            if not isinstance(value, dict):
                raise UsageError(f"{where} [tool.diag] {key}: expected a table "
                                 f"[tool.diag.{key}]", hint="write it as a sub-table")
            if "seed" in value:
                raise UsageError(f"{where} [tool.diag.{key}] unknown key 'seed'",
                                 hint="seed is set once, in [tool.diag]")
            checks[check.name] = validate_options(check, {**check.check_defaults, **value},
                                                  f"{where} [tool.diag.{key}]")
        elif key in TOP_KEYS:
            moved = next((c for c in BY_TABLE.values() if c.name == key and c.table), None)
            if moved is not None and isinstance(value, dict):
                raise UsageError(f"{where} [tool.diag.{key}] is the {key} source, not the "
                                 f"{key} check's options",
                                 hint=f"put the {key} check's options in "
                                      f"[tool.diag.{moved.config_table}]")
            _check_type(f"{where} [tool.diag]", key, value, TOP_KEYS[key])
            values[key] = value
        else:
            raise UsageError(f"{where} [tool.diag] unknown key {key!r}",
                             hint=_suggest(key, list(TOP_KEYS) + list(BY_TABLE)))
    for check in CHECKS:  # a check that runs shorter in `diag check` (speed's sweep)
        if check.name not in checks and check.check_defaults:
            checks[check.name] = validate_options(check, check.check_defaults,
                                                  f"{where} [tool.diag.{check.config_table}]")
    for key in ("select", "skip"):
        for name in values.get(key, []):
            if name not in NAMES:
                raise UsageError(f"{where} [tool.diag] {key}: unknown check {name!r}",
                                 hint=f"checks: {', '.join(NAMES)}")
    timeout = values.get("timeout")
    if timeout is not None and not 0 < timeout < float("inf"):
        raise UsageError(f"{where} [tool.diag] timeout: {timeout!r} is not a positive number",
                         hint="give seconds > 0, or leave timeout out for no limit")
    return Config(values, checks, where, base)


def load_config(path: str | None) -> Config:
    """``--config FILE`` (its [tool.diag] table, or the whole file if it has none), else
    ./pyproject.toml's [tool.diag], else the defaults."""
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise UsageError(f"--config file not found: {path}", hint="check the path")
        if p.is_dir():
            raise UsageError(f"--config {path} is a folder", hint="name the TOML file")
        data = _toml_load(p)
        tool = data.get("tool", {})
        if not isinstance(tool, dict):
            raise UsageError(f"{p.name}: tool is a {type(tool).__name__}, not a table",
                             hint="write [tool.diag] as a table")
        table = tool.get("diag", data if "tool" not in data else {})
        return parse(table, p.name, p.resolve().parent)
    p = Path("pyproject.toml")
    if p.is_file():
        tool = _toml_load(p).get("tool", {})
        table = tool.get("diag") if isinstance(tool, dict) else None
        if table is not None:
            return parse(table, "pyproject.toml", p.resolve().parent)
    return parse({}, "")
