"""TensorBoard event files (``events.out.tfevents.*``): scalars by tag, the step as the x
axis. Lightning writes them by default when tensorboard is installed, and so do PyTorch's
``SummaryWriter``, Keras' TensorBoard callback and Hugging Face's Trainer.

Records are decoded by the ``tensorboard`` package's own ``Event`` protobuf (an optional
extra: ``pip install 'diag[tensorboard]'``); only the record framing (length, CRC, data,
CRC) is walked here. A truncated or corrupt record ends the read: what came before it is
used, with a note in the report.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from diag.errors import UsageError
from diag.inputs.history.core import Log

PREFIX = "events.out.tfevents"


def is_event_file(path: str | Path) -> bool:
    return Path(path).name.startswith(PREFIX)


def _event_class() -> Any:
    try:
        from tensorboard.compat.proto import event_pb2
    except ImportError:
        raise UsageError("reading TensorBoard event files needs the extra diag[tensorboard]",
                         hint="pip install 'diag[tensorboard]' (the tensorboard package)"
                         ) from None
    return event_pb2.Event


def _scalar(value: Any) -> float | None:
    """A Summary.Value's number: ``simple_value`` (SummaryWriter.add_scalar, Keras) or a
    scalar tensor (TF2's tf.summary.scalar, newer writers)."""
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if value.HasField("tensor"):
        t = value.tensor
        if t.float_val:
            return float(t.float_val[0])
        if t.double_val:
            return float(t.double_val[0])
        if t.int64_val:
            return float(t.int64_val[0])
        content = t.tensor_content
        if len(content) == 4:
            return float(struct.unpack("<f", content)[0])
        if len(content) == 8:
            return float(struct.unpack("<d", content)[0])
    return None


def read_file(path: Path, columns: dict[str, tuple[list[float], list[float]]],
              problems: list[str]) -> None:
    """Append the scalars of one event file to ``columns`` (tag -> steps, values)."""
    from_string = _event_class().FromString
    data = memoryview(path.read_bytes())
    offset, n, size = 0, 0, len(data)
    unpack = struct.Struct("<Q").unpack_from
    while offset < size:
        if offset + 12 > size:
            problems.append(f"{path.name}: truncated after record {n} ({size - offset} bytes "
                         "of a record header unread); read up to there")
            break
        (length,) = unpack(data, offset)
        start = offset + 12
        end = start + length + 4
        if end > size:
            problems.append(f"{path.name}: truncated in record {n + 1} ({size - offset} of "
                         f"{12 + length + 4} bytes); read up to record {n}")
            break
        try:
            event = from_string(data[start: start + length])
        except Exception:  # noqa: BLE001 - protobuf's DecodeError and friends
            problems.append(f"{path.name}: record {n + 1} is corrupt; read up to record {n}")
            break
        offset = end
        n += 1
        values = event.summary.value
        if not values:
            continue
        step = float(event.step)
        for value in values:
            if value.WhichOneof("value") == "simple_value":
                number: float | None = value.simple_value
            else:
                number = _scalar(value)
            if number is not None:
                xs, ys = columns.setdefault(value.tag, ([], []))
                xs.append(step)
                ys.append(number)


def read(paths: list[Path], source: str) -> Log:
    """Every scalar tag of the event files of one run (several files: a run restarted)."""
    columns: dict[str, tuple[list[float], list[float]]] = {}
    problems: list[str] = []
    for path in sorted(paths):
        read_file(path, columns, problems)
    log = Log("tensorboard", source, "step", problems=problems)
    for tag, (xs, ys) in columns.items():
        log.series[tag] = (np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64))
    return log
