"""Reading files a user (or an attacker) hands in: only regular files that resolve inside the
folder the user named, never a FIFO or a device that blocks, and JSON that cannot exhaust
the stack. Every failure is a DataError (exit 2) naming the file and the fix.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from diag.errors import DataError

MAX_JSON_BYTES = 64 * 1024 * 1024
"""A manifest or model.json larger than this is not a manifest."""


def inside(path: Path, root: Path) -> bool:
    """Whether ``path``, with every symlink resolved, lies in ``root`` (resolved too)."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def plain_name(name: Any, field: str, source: Path) -> str:
    """``name`` if it is a plain file name (no folder part, not ``..``, not absolute)."""
    if not isinstance(name, str) or not name:
        raise DataError(f"{source}: {field} is {kind_of(name)}, not a file name",
                        hint="list the shard files by their plain names")
    if ("/" in name or "\\" in name or os.sep in name or name in (".", "..")
            or "\0" in name or os.path.isabs(name)):
        raise DataError(f"{source}: {field} {name!r} is not a plain file name",
                        hint="shards must sit next to the manifest, named without a folder, "
                             "'..' or an absolute path")
    return name


def open_regular(path: Path, root: Path, what: str) -> int:
    """A read-only descriptor of ``path``, which must be a regular file inside ``root``.
    Opened without blocking, so a FIFO or a device is refused instead of hanging."""
    if not inside(path, root):
        raise DataError(f"{what} {path} resolves outside {root}",
                        hint="keep every weight file inside the folder (no symlinks out)")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise DataError(f"cannot read {what} {path} ({exc.strerror})",
                        hint="check the file exists and is readable") from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError:  # pragma: no cover - fstat on a fresh descriptor
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise DataError(f"{what} {path} is not a regular file",
                        hint="replace it with the real file (a FIFO, device or folder "
                             "cannot hold weights)")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return fd


def read_regular(path: Path, root: Path, what: str, limit: int | None = None) -> bytes:
    """The bytes of a regular file inside ``root`` (see ``open_regular``); at most ``limit``
    bytes, else a DataError."""
    fd = open_regular(path, root, what)
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read() if limit is None else fh.read(limit + 1)
        except OSError as exc:
            raise DataError(f"cannot read {what} {path} ({exc.strerror})",
                            hint="check the file") from None
    if limit is not None and len(data) > limit:
        raise DataError(f"{what} {path} is over {limit // (1024 * 1024)} MB",
                        hint="this is not a manifest: export the weights again")
    return data


def read_json(path: Path, root: Path, what: str) -> Any:
    """Parsed JSON of a regular file inside ``root``; malformed or absurdly nested JSON is a
    DataError, never a RecursionError."""
    raw = read_regular(path, root, what, MAX_JSON_BYTES)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise DataError(f"cannot read {path}: {detail}",
                        hint="it is not valid JSON: export the weights again") from None


def kind_of(value: Any) -> str:
    """``value`` for an error message: missing, a short literal, or its type."""
    if value is None:
        return "missing"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
