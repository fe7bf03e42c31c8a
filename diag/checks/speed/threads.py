"""Threads in the user's setup, for `diag speed`: the machine's load before timing, the step
at every intra-op thread count, and DataLoader workers that oversubscribe the cores.

The trap: every op of a step is a parallel region whose threads spin-wait for a sibling;
when more threads want the cores than there are cores (other jobs, or DataLoader workers
that each run torch with every core's threads), the siblings are not scheduled and a small
net runs 6 to 13x slower.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BUSY_SHARE = 0.85
"""A probe thread that gets under this share of a core was sharing it: the machine is
busy, and its timings are marked so."""
PROBE_S = 0.15


@dataclass(frozen=True)
class Load:
    """How busy the machine was just before timing."""

    cpu_share: float
    """CPU time over wall time of a single-threaded busy loop (1.0: a core of its own)."""
    load_average: float | None
    """The 1-minute load average (None where the platform has none)."""
    cores: int

    others: int | None = None
    """Runnable tasks of other processes (/proc/loadavg), the median of a few reads."""

    @property
    def busy(self) -> bool:
        """Another process wants a core diag's threads would use (a quarter of the cores,
        at least one), or the probe thread did not get a core of its own."""
        return self.cpu_share < BUSY_SHARE or (
            self.others is not None and self.others >= max(1, self.cores // 4))

    def describe(self) -> str:
        la = (f", 1-minute load average {self.load_average:.2f}"
              if self.load_average is not None else "")
        if self.others:
            la += f", {self.others} runnable task{'s' if self.others > 1 else ''} of other " \
                  "processes"
        return (f"a probe thread got {self.cpu_share:.0%} of a core{la} on {self.cores} "
                f"core{'s' if self.cores > 1 else ''}")


def measure_load(cores: int, seconds: float = PROBE_S) -> Load:
    """Spin one thread for ``seconds`` and see how much CPU it got."""
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    x = 0
    while time.perf_counter() - wall0 < seconds:
        for _ in range(2000):
            x += 1
    wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    try:
        load: float | None = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - not POSIX
        load = None
    from diag.run.threads import others_running

    return Load(min(1.0, cpu / wall) if wall > 0 else 1.0, load, cores, others_running())


def thread_sweep(step: Callable[[], None], cores: int, warmup: int, timed: int
                 ) -> dict[int, float]:
    """Median seconds per step at 1, 2, ... ``cores`` intra-op threads, interleaved."""
    from diag.run.threads import interleaved

    return interleaved(step, list(range(1, cores + 1)), warmup, timed)


# --- DataLoader workers ----------------------------------------------------------------------
class _Report:
    """A worker_init_fn that runs the user's own, then reports the worker's torch thread
    count through a queue (picklable for spawn: a plain object)."""

    def __init__(self, inner: Any, queue: Any) -> None:
        self.inner, self.queue = inner, queue

    def __call__(self, worker_id: int) -> None:
        import torch

        if self.inner is not None:
            self.inner(worker_id)
        self.queue.put((worker_id, torch.get_num_threads()))


def worker_threads(loader: Any, batches: int = 2, timeout: float = 60.0) -> list[int] | None:
    """The intra-op thread count each DataLoader worker runs with, after its
    ``worker_init_fn``, read from a copy of the loader (same dataset and settings); None
    when ``loader`` is no DataLoader with workers."""
    import multiprocessing
    import queue as queue_mod

    from torch.utils.data import DataLoader

    if not isinstance(loader, DataLoader) or loader.num_workers == 0:
        return None
    context = loader.multiprocessing_context
    if isinstance(context, str):
        context = multiprocessing.get_context(context)
    q = (context or multiprocessing).Queue()
    probe = DataLoader(loader.dataset, batch_size=loader.batch_size,
                       num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                       worker_init_fn=_Report(loader.worker_init_fn, q),
                       multiprocessing_context=loader.multiprocessing_context,
                       generator=loader.generator, prefetch_factor=loader.prefetch_factor,
                       drop_last=loader.drop_last)
    it = iter(probe)
    try:
        for _ in range(batches):
            next(it)
    except StopIteration:
        pass
    found: dict[int, int] = {}
    deadline = time.perf_counter() + timeout
    while len(found) < loader.num_workers and time.perf_counter() < deadline:
        try:
            wid, n = q.get(timeout=max(0.01, deadline - time.perf_counter()))
        except queue_mod.Empty:
            break
        found[int(wid)] = int(n)
    del it
    return [found[k] for k in sorted(found)]


def oversubscription(workers: list[int], main: int, cores: int) -> str | None:
    """The finding's text when DataLoader workers that run several threads each, with the
    main process's threads, want more cores than there are; None otherwise."""
    total = sum(workers) + main
    if not workers or max(workers) <= 1 or total <= cores:
        return None
    per = sorted(set(workers))
    each = f"{per[0]}" if len(per) == 1 else f"{per[0]} to {per[-1]}"
    return (f"thread oversubscription: {len(workers)} DataLoader workers run {each} intra-op "
            f"threads each, plus {main} in the main process: {total} threads on {cores} "
            f"core{'s' if cores > 1 else ''}, and every op's threads spin-wait for siblings "
            "that are not scheduled")
