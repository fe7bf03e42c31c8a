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
3. else a short look at the machine: the runnable tasks of other processes (the median
   of nine reads of /proc/loadavg over 80 ms). With no core free for a second thread, 1
   thread: beside two busy processes on 2 cores the browser net's step takes 34.9 ms at 1
   thread and 78.9 ms at 2.
4. else three training steps of the target at 1 thread and at every free core,
   interleaved; the free cores only when they are 10 % faster (a quiet 2-core machine: 11.8
   ms against 16.1). A step of 0.25 s or more uses every free core without a probe, and so
   does a forward of a third of that (timed first: on a 25 M-parameter ResNet a step is
   seconds, a cost init and size would otherwise pay before they start).

The count changes the last digits of the numbers (float sums split across threads), and
the measurement depends on the load, so the JSON records the count and its source; pin
``--threads`` (or ``OMP_NUM_THREADS``) to compare reports across runs bit for bit.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

GAIN = 0.9
"""Every core's threads are used when a probe step at that count takes under 0.9 of its time
at 1 thread; else 1 (a second thread that saves under 10 % is not worth the risk of a
machine that gets busy later)."""
LARGE_STEP_S = 0.25
"""A first step this long has ops large enough that spin-waiting costs little (1.07x
beside two busy processes for a 0.46 s step, README): every core, no probe."""

ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Threads:
    """The intra-op thread count diag's runs use, and why."""

    count: int | None
    """None: leave torch's setting alone (the user's own)."""
    source: str
    """``--threads``, ``OMP_NUM_THREADS=4``, ``torch.set_num_threads``, or ``rule: ...``."""


def _affinity() -> int:
    """CPUs this process may be scheduled on (torch's default thread count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def available_cores() -> int:
    """CPUs this process may run on: its affinity, capped by a cgroup v2 CPU quota."""
    cores = _affinity()
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            cores = max(1, min(cores, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def others_running(samples: int = 9, interval: float = 0.01) -> int | None:
    """Runnable tasks of other processes right now: the median over ``samples`` reads of
    /proc/loadavg's running count, less this one. None where there is no /proc."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as fh:
                running = int(fh.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return None
        counts.append(running - 1)
        if i + 1 < samples:
            time.sleep(interval)
    return max(0, int(statistics.median(counts)))


def user_choice() -> Threads | None:
    """The thread count the user chose outside diag, if any."""
    import torch

    for var in ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return Threads(None, f"{var}={value}")
    if torch.get_num_threads() != _affinity():
        return Threads(None, f"torch.set_num_threads({torch.get_num_threads()})")
    return None


def interleaved(step: Any, counts: list[int], warmup: int = 1, rounds: int = 3
                ) -> dict[int, float]:
    """Median seconds of ``step()`` at each intra-op thread count, interleaved round by
    round after ``warmup`` steps at each, so that a change of load hits every count alike.
    torch's setting is restored."""
    import torch

    before = torch.get_num_threads()
    times: dict[int, list[float]] = {t: [] for t in counts}
    try:
        for t in counts:
            torch.set_num_threads(t)
            for _ in range(warmup):
                step()
        for _ in range(rounds):
            for t in counts:
                torch.set_num_threads(t)
                t0 = time.perf_counter()
                step()
                times[t].append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return {t: statistics.median(v) for t, v in times.items()}


def measure(step: Any, cores: int, rounds: int = 3) -> tuple[float, float]:
    """Median seconds of ``step()`` at 1 thread and at ``cores`` threads (``cores`` > 1)."""
    secs = interleaved(step, [1, cores], warmup=1, rounds=rounds)
    return secs[1], secs[cores]


def training_step(target: Any, seed: int) -> Any:
    """One Adam step of a fresh copy of the target's model on up to 16 samples, as the
    checks' own loops run it."""
    import torch

    model = target.make_model()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = min(16, len(target.data))
    x, y = target.data.x[:n], target.data.y[:n]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        target.loss_fn(model(x), y).backward()
        opt.step()

    def forward() -> None:
        with torch.no_grad():
            model(x)

    step.forward = forward  # type: ignore[attr-defined]
    return step


def choose(target: Any, threads: int | None = None, seed: int = 0) -> Threads:
    """The thread count for runs on ``target`` (a ``diag.inputs.target.Target``)."""
    if threads is not None:
        return Threads(threads, "--threads")
    user = user_choice()
    if user is not None:
        return user
    cores = available_cores()
    if cores == 1:
        return Threads(1, "1 core available")
    others = others_running()
    if others is not None and cores - others <= 1:
        return Threads(1, f"busy: {others} other runnable task{'s' if others != 1 else ''} on "
                          f"{cores} cores, no core free for a second thread: 1")
    free = cores if others is None else cores - others
    from diag.rng import isolated_rng

    try:
        with isolated_rng(seed):  # dropout in the probe steps draws from no stream of yours
            step = training_step(target, seed)
            t0 = time.perf_counter()
            step.forward()
            forward = time.perf_counter() - t0
            if forward >= LARGE_STEP_S / 3:  # a step is about three forwards' work
                return Threads(free, f"a forward takes {forward:.2f} s: large ops, {free} "
                                     "threads")
            t0 = time.perf_counter()
            step()
            first = time.perf_counter() - t0
            if first >= LARGE_STEP_S:
                return Threads(free, f"a step takes {first:.2f} s: large ops, {free} "
                                     "threads")
            one, many = measure(step, free)
    except Exception:  # noqa: BLE001 - the check itself reports a model that fails
        return Threads(None, "the probe step failed; torch's default")
    count = free if many < GAIN * one else 1
    return Threads(count, f"measured: {1e3 * one:.1f} ms per step at 1 thread, "
                          f"{1e3 * many:.1f} ms at {free}: {count}")


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
