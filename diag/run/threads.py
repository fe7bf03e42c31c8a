"""How many intra-op threads diag's own training runs use (overfit and its confirmation
reruns, the range test, init, the quantization error, speed's probes, the leak census).

Every small op of a step is a parallel region; its threads spin-wait for a sibling that a
busy machine has not scheduled, so a tiny net that gains almost nothing from a second
thread on a quiet machine loses 6 to 13x beside other jobs (see benchmarks/bench_threads.py
and the README's table). The rule, in order:

1. ``--threads N`` / ``threads`` in ``[tool.diag]``;
2. what the user set: ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS``, or a
   ``torch.set_num_threads`` call before diag ran (torch's count differs from its default,
   the cores it may run on);
3. else by the work per op of one training step of the target: under ``SMALL_OP_WORK``
   (FLOPs plus output elements, per aten op), 1 thread; else torch's default.

The rule depends on the model and the data alone, never on the machine's load at that
moment, so the same seed gives the same thread count, and the same numbers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

SMALL_OP_WORK = 1_000_000
"""Work per op (FLOPs plus output elements) under which one thread is used: below it, a
second thread saved at most a few percent on a quiet 2-core machine and cost 2x or more
beside two busy processes (README, "Threads")."""

ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Threads:
    """The intra-op thread count diag's runs use, and why."""

    count: int | None
    """None: leave torch's setting alone (the user's own)."""
    source: str
    """``--threads``, ``OMP_NUM_THREADS=4``, ``torch.set_num_threads``, or ``rule: ...``."""


def available_cores() -> int:
    """CPUs this process may run on: its affinity, capped by a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            cores = max(1, min(cores, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def user_choice() -> Threads | None:
    """The thread count the user chose outside diag, if any."""
    import torch

    for var in ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return Threads(None, f"{var}={value}")
    try:
        default = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        default = os.cpu_count() or 1
    if torch.get_num_threads() != default:
        return Threads(None, f"torch.set_num_threads({torch.get_num_threads()})")
    return None


def step_work(model: Any, x: Any, y: Any) -> tuple[float, int, int]:
    """(work per op, total work, ops) of one forward, MSE-or-CE loss and backward of a
    copy of ``model`` on ``x``: work is matmul/conv FLOPs plus every op's output elements."""
    import copy

    import torch
    import torch.nn.functional as F
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.ops = 0
            self.elements = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                               kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            self.ops += 1
            for t in out if isinstance(out, tuple | list) else (out,):
                if isinstance(t, torch.Tensor):
                    self.elements += t.numel()
            return out

    net = copy.deepcopy(model)
    net.train()
    counter, flops = Count(), FlopCounterMode(display=False)
    with flops, counter:
        pred = net(x)
        loss = (F.cross_entropy(pred, y) if not torch.is_floating_point(y)
                else F.mse_loss(pred, y.reshape(pred.shape).to(pred.dtype)))
        loss.backward()  # type: ignore[no-untyped-call]
    work = int(flops.get_total_flops()) + counter.elements
    return work / max(counter.ops, 1), work, counter.ops


def choose(target: Any, threads: int | None = None) -> Threads:
    """The thread count for runs on ``target`` (a ``diag.inputs.target.Target``)."""
    if threads is not None:
        return Threads(threads, "--threads")
    user = user_choice()
    if user is not None:
        return user
    cores = available_cores()
    if cores == 1:
        return Threads(1, "rule: 1 core available")
    data = target.data
    n = min(16, len(data))
    try:
        per_op, _work, ops = step_work(target.make_model(), data.x[:n], data.y[:n])
    except Exception:  # noqa: BLE001 - the check reports a model that fails; keep torch's
        return Threads(None, "rule: the step could not be measured; torch's default")
    if per_op < SMALL_OP_WORK:
        return Threads(1, f"rule: {per_op / 1e3:.0f} kFLOP per op over {ops} ops < "
                          f"{SMALL_OP_WORK / 1e3:.0f} k: 1 thread")
    return Threads(cores, f"rule: {per_op / 1e3:.0f} kFLOP per op >= "
                          f"{SMALL_OP_WORK / 1e3:.0f} k: {cores} threads")


@contextmanager
def using(choice: Threads | None) -> Iterator[None]:
    """Run with ``choice``'s thread count, then give torch back the caller's."""
    if choice is None or choice.count is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(choice.count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
