"""Resolve a SPEC, ``package.module:attr`` or ``path/to/file.py:attr``, to a Python object."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

from diag.errors import USER_ERRORS, UsageError, user_code_error

_FILE_MODULES: dict[str, ModuleType] = {}

SPEC_HINT = "a SPEC is 'package.module:attr' or 'path/to/file.py:attr'"


def split_spec(spec: str, option: str) -> tuple[str, str]:
    """``'a/b.py:model'`` -> ``('a/b.py', 'model')``; a Windows drive letter is not a colon."""
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr or (len(where) == 1 and where.isalpha()):
        raise UsageError(f"{option} {spec!r} is not a SPEC", hint=SPEC_HINT)
    return where, attr


def _load_file(path: str, option: str) -> ModuleType:
    full = os.path.abspath(path)
    if full in _FILE_MODULES:
        return _FILE_MODULES[full]
    if not os.path.isfile(full):
        raise UsageError(f"{option}: file not found: {path}", hint="check the path in the SPEC")
    digest = hashlib.sha1(full.encode()).hexdigest()[:8]
    name = f"_diag_user_{os.path.splitext(os.path.basename(full))[0]}_{digest}"
    loader_spec = importlib.util.spec_from_file_location(name, full)
    if loader_spec is None or loader_spec.loader is None:
        raise UsageError(f"{option}: cannot import {path}", hint="point the SPEC at a .py file")
    module = importlib.util.module_from_spec(loader_spec)
    folder = os.path.dirname(full)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # so the file can import its siblings, as `python file.py`
    sys.modules[name] = module
    try:
        loader_spec.loader.exec_module(module)
    except USER_ERRORS as exc:
        sys.modules.pop(name, None)
        raise user_code_error(exc, f"{option}: importing {path}") from None
    _FILE_MODULES[full] = module
    return module


def _import_module(name: str, option: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise UsageError(f"{option}: no module named {exc.name!r}",
                             hint=f"install it or use a file path; {SPEC_HINT}") from None
        raise user_code_error(exc, f"{option}: importing {name}") from None
    except USER_ERRORS as exc:
        raise user_code_error(exc, f"{option}: importing {name}") from None


def resolve(spec: str, option: str) -> Any:
    """The object a SPEC names. Bad specs raise UsageError; code that raises, UserCodeError."""
    where, attr = split_spec(spec, option)
    looks_like_file = where.endswith(".py") or os.sep in where or "/" in where
    module = _load_file(where, option) if looks_like_file else _import_module(where, option)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{option}: {where} has no attribute {part!r}",
                             hint=f"check the name after ':' in {spec!r}")
        obj = getattr(obj, part)
    return obj
