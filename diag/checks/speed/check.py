"""`diag speed`: a batch-size sweep, the data-loading wait, host syncs and oversized inputs.

Timing is honest: warm-up steps are excluded, each figure is the median of at least five
timed steps, CUDA steps are timed with ``torch.cuda.synchronize()``, and the thread count
in use is recorded (diag does not change it). Steps run on a fresh copy of the model with
its own Adam, so the user's model and optimizer state are never touched. Timings are
measurements: unlike the other checks' numbers they vary from run to run.
"""

from __future__ import annotations

import math
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from diag.checks.calls import CallWatch
from diag.checks.speed import SpeedOptions
from diag.checks.speed.syncs import SyncCounter
from diag.checks.speed.threads import (
    Load,
    measure_load,
    oversubscription,
    thread_sweep,
    worker_threads,
)
from diag.errors import USER_ERRORS, UsageError, make_step, user_code_error
from diag.inputs import Inputs
from diag.report.units import human_bytes
from diag.result import CheckResult, Finding, Severity, Status
from diag.run.threads import available_cores
from diag.train import adam

NAME = "speed"
KNEE = 0.9
"""The knee: the smallest batch size within 10% of the best throughput."""
IMPROVES = 1.03
"""A size "improves" throughput when it beats the best so far by 3%."""
WAIT_WARN, SYNC_WARN, BATCH_WARN = 0.30, 0.10, 0.5
LOADER_BATCHES = 12
RESIZE_OPS = {"interpolate", "upsample", "adaptive_avg_pool2d", "adaptive_max_pool2d",
              "avg_pool2d", "max_pool2d", "resize"}


def _needs_two(exc: BaseException) -> bool:
    """BatchNorm's refusal of a batch with one value per channel (in user code's wrapper)."""
    cause = exc.__cause__ or exc.__context__ or exc
    return any("more than 1 value per channel" in str(e) for e in (exc, cause))


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text
                                              or "can't allocate memory" in text)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class _Stepper:
    """One training step (zero_grad, forward, loss, backward, Adam) on a copy."""

    def __init__(self, target: Any, device: str) -> None:
        self.model: nn.Module = target.make_model().to(device)
        self.model.train()
        self.opt = adam(self.model.parameters(), 1e-3)
        self.loss_fn = target.loss_fn
        self.device = device

    def __call__(self, xb: Tensor, yb: Tensor, read: bool = False) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(xb), yb)
        loss.backward()
        self.opt.step()
        if read:
            float(loss.detach())

    def guarded(self, xb: Tensor, yb: Tensor, read: bool = False) -> None:
        try:
            self(xb, yb, read)
        except USER_ERRORS as exc:
            if _is_oom(exc):
                raise
            raise user_code_error(exc, "the training step (model or loss)") from None


def _median_step(step: Callable[[], None], warmup: int, timed: int, device: str) -> float:
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(timed):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _saved_bytes(step: Callable[[], None]) -> int:
    """Bytes of the tensors autograd saves for backward in one step: the activation
    memory that grows with the batch (deterministic, unlike RSS)."""
    total = 0

    def pack(t: Tensor) -> Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return total


def _rss() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _bound(stepper: _Stepper, xb: Tensor, yb: Tensor) -> Callable[[], None]:
    def one() -> None:
        stepper.guarded(xb, yb)

    return one


class Budget:
    """The check's time budget (``--budget``): what is left, and whether ``steps`` more steps
    of ``step_s`` each would still fit."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds
        self.skipped: list[str] = []

    def left(self) -> float:
        return self.end - time.perf_counter()

    def fits(self, steps: int, step_s: float) -> bool:
        return steps * step_s <= self.left()


def sweep(stepper: _Stepper, x: Tensor, y: Tensor, options: SpeedOptions,
          budget: Budget | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """Rows per batch size, and the size that ran out of memory (None: none did). With a
    ``budget``, a size is tried only when its predicted time fits: twice the last size's
    step (a step grows at most linearly with the batch on a saturated device) times the
    steps a size takes; ``budget.skipped`` then names the first size left out."""
    n, device = int(x.shape[0]), options.device
    rows: list[dict[str, Any]] = []
    best, stale, b, oom = 0.0, 0, 1, None
    rss0 = _rss()
    per_size = options.warmup + options.timed_steps + 1  # + the saved-bytes step
    while b <= options.max_batch:
        if budget is not None and rows and not budget.fits(per_size, 2 * rows[-1]["step_s"]):
            budget.skipped.append(f"batch {b} and up")
            break
        idx = torch.arange(b) % n
        xb, yb = x[idx].to(device), y[idx].to(device)
        try:
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            one = _bound(stepper, xb, yb)
            saved = _saved_bytes(one)
            secs = _median_step(one, options.warmup, options.timed_steps, device)
        except USER_ERRORS as exc:
            if b == 1 and not rows and _needs_two(exc):
                # BatchNorm over a 1x1 map (or a batch of one) cannot train on one sample:
                # the sweep starts at 2 (run() says so: the first row is batch 2)
                b = 2
                continue
            if not _is_oom(exc):
                raise
            oom = b
            del xb, yb
            if device == "cuda":
                torch.cuda.empty_cache()
            break
        rows.append({"batch": b, "step_s": secs, "samples_per_s": b / secs,
                     "saved_bytes": saved,
                     "peak_bytes": (torch.cuda.max_memory_allocated() if device == "cuda"
                                    else max(_rss() - rss0, 0))})
        tput = b / secs
        if tput > best * IMPROVES:
            best, stale = max(best, tput), 0
        else:
            best, stale = max(best, tput), stale + 1
            if options.stop_early and stale >= 2:
                break
        b *= 2
    return rows, oom


def _resize_in_model(model: nn.Module, x: Tensor) -> tuple[tuple[int, ...], tuple[int, ...],
                                                            str] | None:
    """(input shape, shape the model resized it to, op) when the model's first act on its
    input is to shrink it."""
    found: list[tuple[tuple[int, ...], tuple[int, ...], str]] = []

    def on_call(name: str, args: tuple[Any, ...], _kwargs: dict[str, Any], out: Any) -> None:
        if (args and args[0] is x and isinstance(out, Tensor) and out.dim() == x.dim()
                and not found):
            found.append((tuple(x.shape), tuple(out.shape), name))

    model.eval()
    try:
        with torch.no_grad(), CallWatch(RESIZE_OPS, on_call):
            model(x)
    except USER_ERRORS as exc:
        raise user_code_error(exc, "the model's forward") from None
    return found[0] if found else None


def _owned_state(step: Callable[[], object]) -> list[Any]:
    """Modules and optimizers the step can reach: its closure cells, the globals it names,
    and the object a bound method belongs to (with that object's attributes)."""
    import torch.optim

    seen: list[Any] = []
    fn = getattr(step, "__func__", step)
    candidates: list[Any] = [c.cell_contents for c in (getattr(fn, "__closure__", None) or ())
                             if c.cell_contents is not None]
    code = getattr(fn, "__code__", None)
    glb = getattr(fn, "__globals__", {})
    if code is not None:
        candidates += [glb[n] for n in code.co_names if n in glb]
    owner = getattr(step, "__self__", None)
    if owner is not None:
        candidates += [owner, *vars(owner).values()] if hasattr(owner, "__dict__") else [owner]
    for obj in candidates:
        if isinstance(obj, nn.Module | torch.optim.Optimizer) and not any(
                obj is o for o in seen):
            seen.append(obj)
    return seen


def _user_syncs(factory: Callable[[], Callable[[], object]], source: str
                ) -> tuple[dict[tuple[str, str], float], float | None]:
    """Sync sites per step in the user's step, and, where CUDA is present, the syncs per
    step torch's own sync debug mode saw (None without CUDA)."""
    import warnings

    calls = 3
    cuda = torch.cuda.is_available()
    previous = torch.cuda.get_sync_debug_mode() if cuda else 0
    counter = SyncCounter()
    saved: list[tuple[Any, Any]] = []
    step = make_step(factory, f"--step {source}")
    try:
        import copy

        # a step that trains a model or optimizer it shares with the caller (a global, a
        # closure over the user's objects) gets them back as they were
        saved = [(o, copy.deepcopy(o.state_dict())) for o in _owned_state(step)]
        step()  # warm-up: lazy state, first-call work
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")
            with counter:
                for _ in range(calls):
                    step()
    except USER_ERRORS as exc:
        raise user_code_error(exc, f"--step {source}") from None
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode(previous)
        for obj, state in saved:
            obj.load_state_dict(state)
    torch_seen = (sum(1 for w in caught if "synchroniz" in str(w.message).lower()) / calls
                  if cuda else None)
    return {k: v / calls for k, v in counter.sites.items()}, torch_seen


def _loader_wait(loader: Any, stepper: _Stepper, device: str, source: str
                 ) -> dict[str, Any]:
    from diag.checks.data.check import _Loader, split_batch

    reader = _Loader(loader, source)
    it = reader.epoch()
    batches: list[tuple[Tensor, Tensor]] = []
    wait = compute = 0.0
    for i in range(LOADER_BATCHES + 2):
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            break
        except USER_ERRORS as exc:
            raise user_code_error(exc, source) from None
        t1 = time.perf_counter()
        xb, yb = split_batch(batch, source)
        xb, yb = xb.to(device), yb.to(device)
        stepper.guarded(xb, yb)
        _sync(device)
        t2 = time.perf_counter()
        if i >= 2:  # the first two batches start workers and warm caches
            wait += t1 - t0
            compute += t2 - t1
            batches.append((xb, yb))
    if not batches:
        raise UsageError(f"{source} yields fewer than 3 batches",
                         hint="diag speed times at least one batch after two warm-up ones")
    t0 = time.perf_counter()
    for xb, yb in batches:
        stepper.guarded(xb, yb)
    _sync(device)
    in_memory = time.perf_counter() - t0
    fed = wait + compute
    import os

    workers = max(2, min(4, os.cpu_count() or 2))
    overlapped = max(compute, wait / workers)
    out: dict[str, Any] = {"wait_fraction": wait / fed if fed > 0 else 0.0,
                           "workers": workers,
                           "workers_speedup": fed / overlapped if overlapped > 0 else 1.0,
                           "wait_ms_per_batch": 1000 * wait / len(batches),
                           "step_ms_fed": 1000 * fed / len(batches),
                           "step_ms_in_memory": 1000 * in_memory / len(batches),
                           "cache_speedup": fed / in_memory if in_memory > 0 else 1.0,
                           "batches": len(batches), "cause": ""}
    if out["wait_fraction"] > WAIT_WARN:
        out["cause"] = _loader_cause(reader.iterable, out, device)
    return out


def _loader_cause(dl: Any, timing: dict[str, Any], device: str) -> str:
    """Why the wait: the per-sample __getitem__ split into decode and transform, workers,
    pin_memory. Reads the DataLoader; sets a dataset's ``transform`` to None only while
    timing the decode, and puts it back."""
    from torch.utils.data import DataLoader

    if not isinstance(dl, DataLoader):
        return f"the loader's own iteration ({timing['wait_ms_per_batch']:.1f} ms per batch)"
    parts = []
    ds = dl.dataset
    try:
        k = min(8, len(ds))  # type: ignore[arg-type]
    except TypeError:
        k = 0
    if k:
        try:
            parts.append(_item_cost(ds, k))
        except USER_ERRORS as exc:
            raise user_code_error(exc, "the loader's dataset __getitem__") from None
    if dl.num_workers == 0:
        parts.append("num_workers=0: every batch is loaded in the training process while "
                     "the step waits")
    if device == "cuda" and not dl.pin_memory:
        parts.append("pin_memory=False: host-to-device copies are not asynchronous")
    return "; ".join(parts)


def _item_cost(ds: Any, k: int) -> str:
    """__getitem__ time per sample over the first ``k`` items, split into decode and
    transform when the dataset has a ``transform`` (set to None while timing the decode,
    then put back)."""
    t0 = time.perf_counter()
    for i in range(k):
        ds[i]
    item = (time.perf_counter() - t0) / k
    transform = getattr(ds, "transform", None)
    if transform is None:
        return (f"__getitem__ ({1000 * item:.2f} ms per sample, decode and transform "
                "together)")
    try:
        ds.transform = None
        t0 = time.perf_counter()
        for i in range(k):
            ds[i]
        decode = (time.perf_counter() - t0) / k
    finally:
        ds.transform = transform
    share = "the transform" if item - decode > decode else "decode"
    return (f"{share} ({1000 * (item - decode):.2f} ms transform, {1000 * decode:.2f} ms "
            "decode per sample)")


def _read_cost(stepper: _Stepper, x: Tensor, y: Tensor, device: str, pairs: int = 10
               ) -> tuple[float, int]:
    """(cost of reading the loss every step as a fraction of the step, how many of the
    interleaved pairs the reading step was slower in)."""
    for _ in range(2):
        stepper.guarded(x, y, read=True)
    with_read, without, slower = [], [], 0
    for _ in range(pairs):
        _sync(device)
        t0 = time.perf_counter()
        stepper.guarded(x, y, read=True)
        _sync(device)
        t1 = time.perf_counter()
        stepper.guarded(x, y, read=False)
        _sync(device)
        t2 = time.perf_counter()
        with_read.append(t1 - t0)
        without.append(t2 - t1)
        slower += (t1 - t0) > (t2 - t1)
    a, b = statistics.median(with_read), statistics.median(without)
    return max(a - b, 0.0) / a if a > 0 else 0.0, slower


def prepare(inputs: Inputs, options: SpeedOptions,
            resolve: Callable[[str, str], Any]) -> SpeedOptions:
    """Resolve ``loader`` now (bad SPEC or wrong structure: exit 2), like `diag data`."""
    from diag.checks.data import DataOptions
    from diag.checks.data.check import prepare as prepare_loader

    if options.loader is None:
        return options
    import dataclasses

    resolved = prepare_loader(inputs, DataOptions(loader=options.loader), resolve)
    return dataclasses.replace(options, loader=resolved.loader)


SLOW_DEFAULT = 1.25
"""torch's default thread count is reported as a problem when a step at the best count is
this much faster."""


def _threads_at_knee(stepper: _Stepper, x: Tensor, y: Tensor, batch: int, cores: int,
                     main: int, options: SpeedOptions, load: Load, metrics: dict[str, Any],
                     series: dict[str, list[float]], findings: list[Finding]) -> None:
    """The step at the knee batch at 1 ... ``cores`` intra-op threads: the best count, and
    what torch's current setting (``main``) loses against it."""
    idx = torch.arange(batch) % int(x.shape[0])
    secs = thread_sweep(_bound(stepper, x[idx], y[idx]), cores, options.warmup,
                        options.timed_steps)
    best = min(secs, key=secs.__getitem__)
    at_main = secs.get(main)
    slowdown = at_main / secs[best] if at_main else None
    metrics.update(threads_best=best, threads_best_samples_per_s=round(batch / secs[best], 1),
                   threads_default_slowdown=round(slowdown, 3) if slowdown else None)
    series["threads"] = [float(t) for t in secs]
    series["threads_samples_per_s"] = [round(batch / v, 2) for v in secs.values()]
    listed = ", ".join(f"{t}: {batch / v:.0f}/s" for t, v in secs.items())
    text = (f"intra-op threads at the knee batch {batch} (samples/s: {listed}): best {best}"
            + (f"; your setting, {main}, is {slowdown:.2f}x slower" if slowdown and best != main
               else f"; your setting, {main}, is the best" if best == main else ""))
    # on a busy machine the slowdown is the load's (advice for a quiet one would be wrong)
    worse = slowdown is not None and best != main and slowdown >= SLOW_DEFAULT
    findings.append(Finding(
        Severity.WARN if worse and not load.busy else Severity.INFO,
        text + (" (measured on a busy machine: the other processes' load, not a setting to "
                "change for a quiet one)" if worse and load.busy else ""),
        f"call torch.set_num_threads({best}) (or set OMP_NUM_THREADS={best}) before training"
        if worse else "more threads help only when each op has enough work and the cores "
        "are free"))


def _over_budget(findings: list[Finding], what: str, options: SpeedOptions) -> None:
    findings.append(Finding(
        Severity.INFO, f"{what} was not measured: it would run past the time budget "
        f"({options.budget_s:g} s)", "raise --budget (or [tool.diag.speed] budget_s) to "
        "measure it", rule="speed-over-budget"))


def _worker_oversubscription(loader: Any, main: int, cores: int, metrics: dict[str, Any],
                             findings: list[Finding]) -> None:
    """DataLoader workers whose torch runs several threads each, beside the main process."""
    try:
        made = loader() if callable(loader) else loader
        counts = worker_threads(made)
    except USER_ERRORS as exc:
        raise user_code_error(exc, "--loader (its workers)") from None
    metrics["worker_threads"] = counts
    if counts is None:
        return
    text = oversubscription(counts, main, cores)
    if text is not None:
        findings.append(Finding(
            Severity.WARN, text, "call torch.set_num_threads(1) in the DataLoader's "
            "worker_init_fn (torch does it before, so something in yours or your dataset "
            f"raised it), or use fewer workers: {max(1, cores - main)} fit beside the "
            "main process"))


def run(inputs: Inputs, options: SpeedOptions, progress: Any = None) -> CheckResult:
    device = options.device
    if device == "cuda" and not torch.cuda.is_available():
        message = "--device cuda: no CUDA device on this machine; nothing was timed"
        return CheckResult(NAME, Status.SKIP, message, findings=(Finding(
            Severity.INFO, message, "run it where a GPU is visible, or use --device cpu"),))
    target = inputs.target
    user_step = inputs.step if inputs.step_is_users else None
    findings: list[Finding] = []
    main_threads = torch.get_num_threads()
    cores = available_cores()
    load = measure_load(cores)  # before any timing: is the machine busy?
    metrics: dict[str, Any] = {"device": device, "torch_threads": main_threads,
                               "cores": cores, "cpu_share": round(load.cpu_share, 3),
                               "load_average": (round(load.load_average, 2)
                                                if load.load_average is not None else None),
                               "busy_machine": load.busy}
    series: dict[str, list[float]] = {}
    plot: dict[str, Any] = {}

    budget = Budget(options.budget_s)
    sweep_it = target is not None and not (user_step is not None and target.default_model)
    stepper = None
    if sweep_it:
        stepper = _Stepper(target, device)
        x, y = target.data.x, target.data.y
        rows, oom = sweep(stepper, x, y, options, budget)
        if not rows:
            raise UsageError(f"batch size 1 already runs out of memory on {device}",
                             hint="shrink the model or the input")
        tps = [r["samples_per_s"] for r in rows]
        best = rows[max(range(len(rows)), key=tps.__getitem__)]
        knee = next(r for r in rows if r["samples_per_s"] >= KNEE * best["samples_per_s"])
        metrics.update(best_batch=best["batch"], knee_batch=knee["batch"],
                       best_samples_per_s=round(best["samples_per_s"], 1),
                       knee_samples_per_s=round(knee["samples_per_s"], 1),
                       largest_fits=rows[-1]["batch"] if oom else None, oom_at=oom,
                       largest_tried=rows[-1]["batch"])
        if not torch.is_floating_point(x) and x.dim() >= 2:  # token ids: tokens per second
            per_sample = math.prod(x.shape[1:])
            metrics.update(tokens_per_sample=per_sample,
                           best_tokens_per_s=round(best["samples_per_s"] * per_sample, 1),
                           knee_tokens_per_s=round(knee["samples_per_s"] * per_sample, 1))
        series = {"batch": [float(r["batch"]) for r in rows],
                  "samples_per_s": [round(r["samples_per_s"], 2) for r in rows],
                  "step_ms": [round(1000 * r["step_s"], 3) for r in rows],
                  "saved_bytes": [float(r["saved_bytes"]) for r in rows]}
        plot["rows"] = rows
        plot["oom"] = oom
        table = ", ".join(f"{r['batch']}: {r['samples_per_s']:.0f}/s" for r in rows)
        stop = (f"batch {oom} ran out of memory" if oom else
                f"the time budget ({options.budget_s:g} s, --budget): {budget.skipped[0]} "
                "not tried" if budget.skipped else
                f"--max-batch {options.max_batch}" if rows[-1]["batch"] * 2 > options.max_batch
                else "throughput stopped improving for two sizes")
        metrics["sweep_stopped_by_budget"] = bool(budget.skipped)
        if rows[0]["batch"] > 1:
            findings.append(Finding(
                Severity.INFO, "batch 1 cannot train this model (BatchNorm needs more than one "
                "value per channel): the sweep starts at 2", "train with batches of two or "
                "more; or evaluate one sample in eval mode", rule="speed-batch-1"))
        findings.append(Finding(
            Severity.INFO, f"batch-size sweep on {device} (samples/s: {table}; stopped: "
            f"{stop}): best {best['batch']} ({best['samples_per_s']:.0f} samples/s), knee "
            f"{knee['batch']} (the smallest within 10% of the best)"
            + (f", largest that fits {rows[-1]['batch']}" if oom else ""),
            "a bigger batch is not always faster (the article's tip 15): the knee is the "
            "cheapest size that is nearly as fast"))
        if oom:
            findings.append(Finding(
                Severity.INFO, f"batch {oom} ran out of memory on {device}: the largest that "
                f"fits is {rows[-1]['batch']} ({human_bytes(rows[-1]['saved_bytes'])} of "
                "activations saved for backward)", "caught and reported; nothing crashed"))
        if options.batch_size is not None:
            in_sweep = next((r for r in rows if r["batch"] == options.batch_size), None)
            if in_sweep is not None:
                tput = in_sweep["samples_per_s"]
            else:
                idx = torch.arange(options.batch_size) % int(x.shape[0])
                xb, yb = x[idx].to(device), y[idx].to(device)
                tput = options.batch_size / _median_step(
                    lambda: stepper.guarded(xb, yb), options.warmup, options.timed_steps,
                    device)
            metrics["batch_size_samples_per_s"] = round(tput, 1)
            if tput < BATCH_WARN * knee["samples_per_s"]:
                findings.append(Finding(
                    Severity.WARN, f"your batch size {options.batch_size} runs at "
                    f"{tput:.0f} samples/s, under half the knee's {knee['samples_per_s']:.0f}"
                    f" (batch {knee['batch']})", f"try batch {knee['batch']} (and scale the "
                    "learning rate with it)"))
        if device == "cpu" and cores > 1:
            # t threads: at most main/t times the knee's step at `main` threads
            slowest = sum(max(main_threads, 1) / t for t in range(1, cores + 1))
            if budget.fits(math.ceil(slowest * (options.warmup + options.timed_steps)),
                           knee["step_s"]):
                _threads_at_knee(stepper, x, y, knee["batch"], cores, main_threads, options,
                                 load, metrics, series, findings)
            else:
                _over_budget(findings, "the thread sweep", options)
        # reading the loss every step, A/B interleaved, on diag's own loop
        read_batch = min(knee["batch"], 12)
        near = max((r for r in rows if r["batch"] <= read_batch), key=lambda r: r["batch"])
        if budget.fits(2 * 12, near["step_s"] * read_batch / near["batch"]):
            idx = torch.arange(read_batch) % int(x.shape[0])
            cost, slower = _read_cost(stepper, x[idx].to(device), y[idx].to(device), device)
            metrics.update(loss_read_cost_fraction=round(cost, 4),
                           loss_read_slower_pairs=slower)
        else:
            _over_budget(findings, "the cost of reading the loss every step", options)
        # the input size the model really consumes (tip 14)
        resized = _resize_in_model(target.make_model().to(device), x[:2].to(device))
        if resized is not None:
            (shape_in, shape_out, op) = resized
            per_in = math.prod(shape_in[1:]) * x.element_size()
            per_out = math.prod(shape_out[1:]) * x.element_size()
            ratio = per_in / per_out
            metrics.update(input_bytes_per_sample=per_in, consumed_bytes_per_sample=per_out)
            if ratio >= 4:
                findings.append(Finding(
                    Severity.WARN if ratio >= 16 else Severity.INFO,
                    f"inputs of {'x'.join(map(str, shape_in[1:]))} ({human_bytes(per_in)} per "
                    f"sample) are shrunk to {'x'.join(map(str, shape_out[1:]))} "
                    f"({human_bytes(per_out)}) by {op} inside the model: {ratio:.0f}x the "
                    f"memory, {human_bytes((per_in - per_out) * knee['batch'])} per batch of "
                    f"{knee['batch']} to save", "resize before the tensor is made (in the "
                    "data pipeline, on the image), the article's tip 14"))
    else:
        findings.append(Finding(Severity.INFO, "no --model: the batch-size sweep needs a "
                                "model; only your step's syncs were counted", ""))

    if user_step is not None:
        sites, torch_seen = _user_syncs(user_step, inputs.step_source)
        per_step = sum(sites.values())
        metrics.update(sync_sites=len(sites), syncs_per_step=round(per_step, 3),
                       sync_cost_fraction=None, cuda_syncs_per_step=torch_seen)
        if sites:
            listed = "; ".join(f"{site} {what} ({n:g} per step)"
                               for (site, what), n in sorted(sites.items()))
            findings.append(Finding(
                Severity.INFO, f"{len(sites)} host-sync sites in your step, {per_step:g} "
                f"syncs per step: {listed}" + (
                    "; on CPU nothing waits, so their cost shows on a GPU only"
                    if device == "cpu" else ""),
                "read the loss every 50 steps, or sum it on the device and read once per "
                "epoch (the article's tip 17)", location=sorted(sites)[0][0]))
    else:
        read_cost = metrics.get("loss_read_cost_fraction")
        metrics.update(sync_sites=0, sync_cost_fraction=read_cost if device == "cuda" else None)
        slower = metrics.get("loss_read_slower_pairs", 0)
        # on CPU nothing waits: the difference is Python overhead, not a sync
        if device == "cuda" and read_cost is not None and read_cost > SYNC_WARN and (
                slower >= 8):
            findings.append(Finding(
                Severity.WARN, f"reading the loss every step costs {read_cost:.0%} of the "
                "step",
                "read it every 50 steps, or accumulate it on the device (tip 17)"))

    if options.loader is not None:
        _worker_oversubscription(options.loader, main_threads, cores, metrics, findings)
    if options.loader is not None and stepper is not None:
        source = f"--loader {getattr(options.loader, '__qualname__', '')}".strip()
        timing = _loader_wait(options.loader, stepper, device, source)
        metrics.update(data_wait_fraction=round(timing["wait_fraction"], 4),
                       data_wait_ms_per_batch=round(timing["wait_ms_per_batch"], 3),
                       cache_speedup=round(timing["cache_speedup"], 3),
                       workers_speedup=round(timing["workers_speedup"], 3))
        text = (f"the step waits for data {timing['wait_fraction']:.0%} of the time "
                f"({timing['wait_ms_per_batch']:.1f} ms per batch; the same batches in "
                f"memory run x{timing['cache_speedup']:.2f} faster; loading in "
                f"{timing['workers']} workers, overlapped with the step, would give about "
                f"x{timing['workers_speedup']:.2f})"
                + (f"; cause: {timing['cause']}" if timing["cause"] else ""))
        findings.append(Finding(
            Severity.WARN if timing["wait_fraction"] > WAIT_WARN else Severity.INFO, text,
            "cache the decoded data in memory or on local disk (tip 16), or raise "
            "num_workers so loading overlaps the step", location=source))
    else:
        metrics["data_wait_fraction"] = None

    if load.busy:
        findings.append(Finding(
            Severity.INFO, f"timed on a busy machine: {load.describe()} just before timing; "
            "every figure here is slower and noisier than on a quiet one",
            "rerun on an idle machine for figures to compare across runs"))
    bad = [f for f in findings if f.severity in (Severity.WARN, Severity.FAIL)]
    status = Status.WARN if bad else Status.PASS
    if bad:
        summary = bad[0].message
    elif "best_batch" in metrics:
        tokens = (f", {metrics['best_tokens_per_s']:g} tokens/s" if "best_tokens_per_s" in
                  metrics else "")
        summary = (f"best batch {metrics['best_batch']} ({metrics['best_samples_per_s']:g} "
                   f"samples/s{tokens} on {device}), knee {metrics['knee_batch']}; no loading "
                   "or sync bottleneck found")
    else:
        summary = findings[-1].message if findings else "nothing to time"
    if load.busy:
        summary += " (timed on a busy machine)"
    return CheckResult(NAME, status, summary, metrics=metrics, findings=tuple(findings),
                       series=series, plot_data=plot)
