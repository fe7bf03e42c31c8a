"""One rank of `diag ddp`: build (or take the user's) DDP training, run a few steps, and
record what this rank saw. The verdict is ``judge.py``'s, over every rank's record.

Run as ``python -m diag.checks.ddp.worker JOB.json`` under torchrun (launch mode: each
rank writes its record to ``rank<N>.json`` beside the job file at every phase, so a rank
that dies or hangs still leaves what it saw), or called in process when diag itself runs
under torchrun (attach mode: the records are gathered on a gloo group).

Never hang: the process group has a timeout, and a watchdog thread per rank writes where
the main thread is stuck (its innermost frame in the user's code) and ends the rank before
the deadline the parent enforces.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import hashlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

MARGIN_S = 3.0
"""The watchdog fires this long before the parent's deadline: time to write the record."""

MAX_INDICES = 200_000
"""Sample indices kept per epoch for the overlap test (more: the first ones)."""


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


_INTS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
CHUNK = 1 << 24
"""Elements per slice of a device tensor's checksum (128 MB of int64 temporaries)."""


def tensor_digest(t: torch.Tensor) -> str:
    """Fingerprint of a tensor's values, sensitive to every bit. On the host: blake2b over
    its bytes. On a device: two sums of its bit patterns as integers, plain and weighted by
    position, computed there (no copy of the weights to the host; 1 B parameters of fp32
    took 15 s through the host on an H200 machine); a collision needs differences that
    cancel in both sums."""
    t = t.detach().contiguous().reshape(-1)
    head = f"{t.dtype}{t.numel()}".encode()
    ints = t.view(_INTS.get(t.element_size(), torch.int64)) if t.numel() else t
    if t.device.type == "cpu":
        h = hashlib.blake2b(head, digest_size=8)
        if t.numel():
            h.update(ints.numpy().data)
        return h.hexdigest()
    return digest(head + moments(ints))


def moments(ints: torch.Tensor) -> bytes:
    """``sum(x)`` and ``sum(i * x)`` of integer values (wrapping int64), where they live."""
    total = weighted = 0
    for start in range(0, ints.numel(), CHUNK):
        part = ints[start:start + CHUNK].to(torch.int64)
        pos = torch.arange(start, start + part.numel(), dtype=torch.int64, device=part.device)
        total += int(part.sum())
        weighted += int((part * pos).sum())
    return f":{total}:{weighted}".encode()


def rng_digest() -> str:
    """The torch generators' state (CPU, and this device's CUDA generator)."""
    parts = [torch.get_rng_state().numpy().tobytes()]
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        parts.append(torch.cuda.get_rng_state().numpy().tobytes())
    return digest(b"".join(parts))


class Recorder:
    """This rank's record; ``flush()`` writes it whole (launch mode) with an atomic rename."""

    def __init__(self, path: str | None, rank: int, world: int) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.data: dict[str, Any] = {
            "rank": rank, "world_size": world, "phase": "setup", "step": 0,
            "steps_done": 0, "error": None, "stuck": None, "digests": {},
            "unused": [], "rng": [], "dropout": [], "epochs": [], "census": [],
            "pid": os.getpid(), "host": os.uname().nodename if hasattr(os, "uname") else "",
        }
        self.used_now: set[str] = set()

    def set(self, **values: Any) -> None:
        with self.lock:
            self.data.update(values)

    def mark(self, phase: str, step: int) -> None:
        """Where this rank is now, in a small file beside the record (cheap enough for every
        step): a rank that dies mid-step is placed at that step."""
        self.set(phase=phase, step=step)
        if self.path is not None:
            with open(f"{self.path}.now", "w", encoding="utf-8") as fh:
                fh.write(json.dumps({"phase": phase, "step": step}))

    def flush(self) -> None:
        if self.path is None:
            return
        with self.lock:
            text = json.dumps(self.data)
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, self.path)


# --- where a thread is stuck, or an exception came from ----------------------------------
def _user_frame(frames: list[traceback.FrameSummary]) -> str:
    from diag.errors import is_library_file

    for frame in reversed(frames):
        if not is_library_file(frame.filename):
            return f"{os.path.basename(frame.filename)}:{frame.lineno}"
    return ""


def _innermost(frames: list[traceback.FrameSummary]) -> str:
    if not frames:
        return ""
    last = frames[-1]
    return f"{os.path.basename(last.filename)}:{last.lineno} in {last.name}"


COLLECTIVE_WORDS = ("gloo", "nccl", "c10d", "connection reset", "connection closed",
                    "broken pipe", "timed out", "timeout", "peer")
"""Words of the errors a collective raises when another rank is gone or late."""


def error_record(exc: BaseException, phase: str, step: int) -> dict[str, Any]:
    frames = traceback.extract_tb(exc.__traceback__)
    text = str(exc).strip().splitlines()
    message = text[0][:500] if text else ""
    return {"type": type(exc).__name__, "message": message,
            "where": _user_frame(frames), "innermost": _innermost(frames),
            "phase": phase, "step": step,
            "collective": isinstance(exc, RuntimeError | TimeoutError) and any(
                w in message.lower() for w in COLLECTIVE_WORDS)}


class Watchdog:
    """At ``deadline`` (wall-clock seconds), record where the main thread is and end the
    process: a rank stuck in user code or in a collective never outlives the run."""

    def __init__(self, rec: Recorder, deadline: float, exit_code: int = 124) -> None:
        self.rec = rec
        self.deadline = deadline
        self.exit_code = exit_code
        self.done = threading.Event()
        self.main = threading.main_thread().ident
        self.thread = threading.Thread(target=self._run, name="diag-ddp-watchdog", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()

    def _run(self) -> None:
        while not self.done.is_set():
            left = self.deadline - time.time()
            if left <= 0:
                break
            self.done.wait(min(left, 0.25))
        if self.done.is_set():
            return
        frame = sys._current_frames().get(self.main or 0)
        frames = traceback.extract_stack(frame) if frame is not None else []
        data = self.rec.data
        from diag.errors import is_library_file

        stuck = {"phase": data.get("phase"), "step": data.get("step"),
                 "where": _user_frame(frames), "innermost": _innermost(frames),
                 "in_user_code": bool(frames) and not is_library_file(frames[-1].filename),
                 "used_so_far": sorted(self.rec.used_now)}
        self.rec.set(stuck=stuck)
        # the main thread is stuck, but may be stuck mid-update of the record: never let
        # that stop the report of where it is
        with contextlib.suppress(Exception):
            self.rec.flush()
        print(f"diag ddp: rank {data.get('rank')} stuck in {stuck['phase']} at step "
              f"{stuck['step']}" + (f" ({stuck['where']})" if stuck["where"] else ""),
              file=sys.stderr, flush=True)
        os._exit(self.exit_code)


# --- finding the user's parts --------------------------------------------------------------
@contextlib.contextmanager
def capturing(rec: Recorder) -> Iterator[dict[str, Any]]:
    """While the user's step factory runs: every DDP wrap (its module's digests before the
    broadcast from rank 0) and every DataLoader made (with epoch recording installed)."""
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader

    seen: dict[str, Any] = {"ddp": [], "loaders": []}
    ddp_init = DDP.__init__
    loader_init = DataLoader.__init__

    def ddp_init_spy(self: Any, module: nn.Module, *args: Any, **kwargs: Any) -> None:
        if not seen["ddp"]:
            rec.data["digests"]["built"] = state_digests(module)
        ddp_init(self, module, *args, **kwargs)
        seen["ddp"].append(self)

    def loader_init_spy(self: Any, *args: Any, **kwargs: Any) -> None:
        loader_init(self, *args, **kwargs)
        seen["loaders"].append(self)

    DDP.__init__ = ddp_init_spy  # type: ignore[method-assign]
    DataLoader.__init__ = loader_init_spy  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        DDP.__init__ = ddp_init  # type: ignore[method-assign]
        DataLoader.__init__ = loader_init  # type: ignore[method-assign]


def _reachable(step: Any, kind: type) -> list[Any]:
    """Objects of ``kind`` that ``step`` holds: its attributes, closure cells, and one level
    inside those (a dict, a list, an object's attributes)."""
    found: list[Any] = []
    roots: list[Any] = [getattr(step, name) for name in ("model", "loader", "ddp", "module")
                        if hasattr(step, name)]
    roots.extend(c.cell_contents for c in (getattr(step, "__closure__", None) or ())
                 if _filled(c))
    roots.extend(getattr(step, "__self__", None) and [step.__self__] or [])
    for obj in roots:
        for item in [obj, *_children(obj)]:
            if isinstance(item, kind) and not any(item is f for f in found):
                found.append(item)
    return found


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def _children(obj: Any) -> list[Any]:
    if isinstance(obj, nn.Module):
        return []
    if isinstance(obj, dict):
        return list(obj.values())
    if isinstance(obj, list | tuple):
        return list(obj)
    return list(getattr(obj, "__dict__", {}).values())


def record_epochs(loader: Any, rec: Recorder) -> bool:
    """Record each epoch's sample order as the loader draws it: its batch sampler (or
    sampler) becomes a subclass whose ``__iter__`` lists the epoch first. False when the
    loader has no sampler to record (an iterable dataset)."""
    attr = "batch_sampler" if getattr(loader, "batch_sampler", None) is not None else "sampler"
    target = getattr(loader, attr, None)
    sampler = getattr(loader, "sampler", None)
    if target is None or getattr(type(target), "_diag_recording", False):
        return target is not None
    cls = type(target)

    def __iter__(self: Any) -> Iterator[Any]:
        items = list(cls.__iter__(self))
        flat: list[int] = []
        for item in items:
            if isinstance(item, int):
                flat.append(item)
            elif isinstance(item, torch.Tensor):
                flat.extend(int(i) for i in item.reshape(-1).tolist())
            else:
                with contextlib.suppress(TypeError, ValueError):
                    flat.extend(int(i) for i in item)
        rec.data["epochs"].append({
            "batches": len(items), "samples": len(flat), "order": digest(repr(flat).encode()),
            "indices": flat[:MAX_INDICES], "sampler_epoch": getattr(sampler, "epoch", None),
            "shuffle": getattr(sampler, "shuffle", None)})
        return iter(items)

    try:
        target.__class__ = type(f"Recording{cls.__name__}", (cls,),
                                {"__iter__": __iter__, "_diag_recording": True})
    except TypeError:
        return False
    rec.set(sampler=type(sampler).__name__ if sampler is not None else None,
            sampler_module=type(sampler).__module__ if sampler is not None else None,
            batch_sampler=type(target).__mro__[1].__name__ if attr == "batch_sampler" else None,
            num_workers=int(getattr(loader, "num_workers", 0) or 0))
    with contextlib.suppress(TypeError):
        rec.set(batches_per_epoch=len(loader))
    return True


# --- per-step probes -------------------------------------------------------------------------
def state_digests(module: nn.Module) -> list[str]:
    """One digest per parameter, then per buffer, in ``named_parameters`` order."""
    return ([tensor_digest(p) for _, p in module.named_parameters()]
            + [tensor_digest(b) for _, b in module.named_buffers()])


def describe(module: nn.Module) -> dict[str, Any]:
    """Names of the parameters and buffers (the digests' order), and the buffers that are
    BatchNorm running statistics outside a SyncBatchNorm."""
    bn = [f"{m_name}.{b_name}" if m_name else b_name
          for m_name, m in module.named_modules()
          if isinstance(m, nn.modules.batchnorm._BatchNorm)
          and not isinstance(m, nn.SyncBatchNorm)
          for b_name, _ in m.named_buffers(recurse=False)]
    return {"names": [n for n, _ in module.named_parameters()],
            "buffer_names": [n for n, _ in module.named_buffers()], "bn_buffers": bn,
            "syncbn": any(isinstance(m, nn.SyncBatchNorm) for m in module.modules())}


def watch_used(module: nn.Module, rec: Recorder) -> list[Any]:
    """Hooks that note each parameter autograd accumulates a gradient into on this rank."""
    handles = []
    for name, p in module.named_parameters():
        if p.requires_grad and hasattr(p, "register_post_accumulate_grad_hook"):
            def used(_p: torch.Tensor, name: str = name) -> None:
                rec.used_now.add(name)

            handles.append(p.register_post_accumulate_grad_hook(used))  # type: ignore[no-untyped-call]
    return handles


DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
           nn.FeatureAlphaDropout)


def watch_dropout(module: nn.Module, draws: list[str]) -> list[Any]:
    """Pre-hooks on dropout layers: the generator state and input shape each mask is drawn
    from. Equal on two ranks means the same mask on both (draws are deterministic)."""
    handles = []
    for _name, m in module.named_modules():
        if isinstance(m, DROPOUT) and m.p > 0:
            def pre(mod: nn.Module, args: tuple[Any, ...]) -> None:
                if mod.training and args and isinstance(args[0], torch.Tensor):
                    draws.append(rng_digest() + str(tuple(args[0].shape)))

            handles.append(m.register_forward_pre_hook(pre))
    return handles


# --- the rank -----------------------------------------------------------------------------
def init_group(backend: str, timeout_s: float) -> tuple[str, Any]:
    """Join (or start) the process group; diag's own gathers use a gloo group with the same
    timeout, so they work beside NCCL."""
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
    timeout = datetime.timedelta(seconds=max(timeout_s, 5.0))
    if backend == "nccl" and not (torch.cuda.is_available() and dist.is_nccl_available()):
        raise RuntimeError("backend nccl needs CUDA GPUs and a torch built with NCCL; this "
                           "rank has none (use --backend gloo)")
    if not dist.is_initialized():
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend, timeout=timeout)
    backend = str(dist.get_backend())
    group = None if backend == "gloo" else dist.new_group(backend="gloo", timeout=timeout)
    return backend, group


def device_for(backend: str) -> torch.device:
    if backend == "nccl":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _resolve(spec: Any, option: str) -> Any:
    if not isinstance(spec, str):
        return spec
    from diag.inputs.spec import resolve

    return resolve(spec, option)


def run_rank(job: dict[str, Any], rec: Recorder, group: Any, backend: str) -> None:
    """Build, probe and step; every observation goes into ``rec`` as it is made."""
    rec.set(backend=backend, mode="step" if job.get("step") else "loop",
            steps_asked=int(job["steps"]))
    if job.get("step"):
        _user_step(job, rec)
    else:
        _diag_loop(job, rec, group, backend)


def _step_loop(step: Callable[[], object], model: nn.Module, rec: Recorder,
               steps: int) -> None:
    """``steps`` calls, each with its used parameters, RNG draws and a census."""
    from diag.checks.leaks.census import TensorCensus

    draws: list[str] = []
    handles = watch_used(model, rec) + watch_dropout(model, draws)
    census = TensorCensus(attribute=False, scan=True)
    census.begin()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    try:
        for i in range(1, steps + 1):
            rec.mark("step", i)
            rec.used_now = set()
            draws.clear()
            rec.data["rng"].append(rng_digest())
            with census:
                step()
            snap = census.take()
            rec.data["unused"].append([n for n in trainable if n not in rec.used_now])
            rec.data["dropout"].append(digest("".join(draws).encode()) if draws else None)
            rec.data["census"].append([snap.tensors, snap.storages, snap.bytes,
                                       snap.graph_nodes])
            if i == 1 or i == steps:
                rec.data["digests"][str(i)] = state_digests(model)
            rec.set(steps_done=i)
            rec.flush()
    finally:
        census.end()
        for h in handles:
            h.remove()


def _user_step(job: dict[str, Any], rec: Recorder) -> None:
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader

    rec.set(phase="build")
    factory = _resolve(job["step"], "--step")
    with capturing(rec) as seen:
        step = factory()
    if not callable(step):
        raise TypeError(f"the step factory returned a {type(step).__name__}, not step()")
    wrappers = seen["ddp"] or _reachable(step, DDP)
    if wrappers:
        ddp = wrappers[0]
        model = ddp.module
        rec.set(ddp=True, find_unused=bool(getattr(ddp, "find_unused_parameters", False)))
    else:
        modules = _reachable(step, nn.Module)
        if not modules:
            raise LookupError("no model found: give step a .model attribute (the DDP-wrapped "
                              "module) or keep it in step's closure")
        model = modules[0]
        rec.set(ddp=False, find_unused=None)
    loaders = seen["loaders"] or _reachable(step, DataLoader)
    for loader in loaders[:1]:
        record_epochs(loader, rec)
    rec.set(recorded=bool(loaders), **describe(model))
    rec.data["digests"]["0"] = state_digests(model)
    rec.flush()
    _step_loop(step, model, rec, int(job["steps"]))


def _first_batch_probe(model: nn.Module, batch: tuple[Any, Any], loss_fn: Any,
                       device: torch.device) -> list[str]:
    """The parameters that get no gradient from one forward/backward on a copy of the model,
    without DDP: what this rank would skip."""
    from diag.inputs.batches import prediction

    probe = copy.deepcopy(model).to(device)
    xb, yb = batch
    loss = loss_fn(prediction(probe(xb.to(device))), yb.to(device))
    loss.backward()
    return [n for n, p in probe.named_parameters() if p.requires_grad and p.grad is None]


def _diag_loop(job: dict[str, Any], rec: Recorder, group: Any, backend: str) -> None:
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    from diag.inputs.batches import prediction
    from diag.inputs.target import build_target

    rank, world = dist.get_rank(), dist.get_world_size()
    seed = int(job["seed"])
    device = device_for(backend)
    rec.set(phase="build", ddp=True, find_unused=bool(job["find_unused"]))
    samples = max(48, 2 * world * int(job["batch_size"]))
    target = build_target(model=job.get("model"), data=job.get("data"), loss=job.get("loss"),
                          task=job["task"], input_size=int(job["input_size"]),
                          samples=samples, seed=seed)
    model = target.make_model()
    rec.set(model_name=target.model_name, **describe(model))
    rec.data["digests"]["built"] = state_digests(model)
    if job.get("loader"):
        loader = _resolve(job["loader"], "--loader")()
        rec.set(loader_source=str(job["loader"]))
    else:
        ds = TensorDataset(target.data.x, target.data.y)
        loader = DataLoader(ds, batch_size=int(job["batch_size"]),
                            sampler=DistributedSampler(ds, world, rank, shuffle=True, seed=seed))
        rec.set(loader_source="diag's DataLoader with DistributedSampler")
    rec.set(recorded=record_epochs(loader, rec))
    sampler = getattr(loader, "sampler", None)
    epochs = _epochs(loader, sampler)
    first = next(epochs)
    rec.flush()

    rec.set(phase="probe")
    probe = _first_batch_probe(model, first, target.loss_fn, device)
    everyone: list[Any] = [None] * world
    dist.all_gather_object(everyone, probe, group=group)
    rec.set(probe_unused=everyone)
    differ = any(set(u) != set(everyone[0]) for u in everyone)
    if differ and not job["find_unused"]:
        rec.set(phase="done", skipped_steps="ranks skip different parameters: DDP would hang")
        rec.flush()
        return

    rec.set(phase="wrap")
    model = model.to(device)
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
              find_unused_parameters=bool(job["find_unused"]))
    rec.data["digests"]["0"] = state_digests(model)
    torch.manual_seed(seed + rank)  # after the broadcast: dropout draws differ by rank
    from diag.train import adam

    optimizer = adam(ddp.parameters(), 1e-3)
    loss_fn = target.loss_fn
    pending = [first]

    def step() -> None:
        xb, yb = pending.pop() if pending else next(epochs)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(prediction(ddp(xb.to(device))), yb.to(device))
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()

    _step_loop(step, model, rec, int(job["steps"]))


def _epochs(loader: Any, sampler: Any) -> Iterator[tuple[Any, Any]]:
    """Batches forever, epoch after epoch, calling ``set_epoch`` as a correct loop does."""
    epoch = 0
    while True:
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        count = 0
        for batch in loader:
            count += 1
            if not isinstance(batch, list | tuple) or len(batch) != 2:
                raise TypeError(f"the loader yields {type(batch).__name__}; diag's loop "
                                "takes (inputs, targets) pairs (use --step for others)")
            yield batch[0], batch[1]
        if count == 0:
            raise ValueError("the loader yields no batch on this rank")
        epoch += 1


# --- the process ---------------------------------------------------------------------------
def rank_main(job: dict[str, Any], path: str | None, exit_on_error: bool
              ) -> tuple[Recorder, Any]:
    """One rank from start to end; returns its record and diag's gloo group (None: the
    default group). With ``exit_on_error`` (launch mode) a rank whose code raised exits
    at once with status 1, so torchrun stops the others, which may wait for it."""
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rec = Recorder(path, rank, world)
    dog = Watchdog(rec, float(job["deadline"]) - MARGIN_S)
    dog.start()
    before = _note_termination(path)
    group = None
    started = time.perf_counter()
    try:
        rec.flush()
        backend, group = init_group(str(job["backend"]), float(job["timeout"]))
        torch.manual_seed(int(job["seed"]))
        run_rank(job, rec, group, backend)
        rec.set(phase="done")
    except Exception as exc:  # user code that raised, a DDP error: this rank's error
        rec.set(error=error_record(exc, str(rec.data["phase"]), int(rec.data["step"])))
        if exit_on_error:
            rec.set(duration_s=round(time.perf_counter() - started, 3))
            rec.flush()
            dog.stop()
            sys.stderr.flush()
            os._exit(1)
    finally:
        rec.set(duration_s=round(time.perf_counter() - started, 3))
        rec.flush()
        if before is not None:
            signal.signal(signal.SIGTERM, before)
    dog.stop()
    return rec, group


def _note_termination(path: str | None) -> Any:
    """In launch mode (our own worker process), a SIGTERM (torchrun stopping this rank
    after another one failed) leaves ``<record>.term`` behind before the rank exits, so a
    rank that was stopped is told from one that died (a rank waiting in a collective can
    be stopped before its collective raises, and would otherwise leave no trace either).
    The mark is its own file: the handler runs between any two bytecodes of the main
    thread, maybe inside ``Recorder.set`` (its lock is not reentrant). Returns the handler
    it replaced (None: none installed, as in attach mode, the user's process)."""
    if path is None:
        return None

    def stopped(signum: int, frame: Any) -> None:
        with contextlib.suppress(OSError), open(f"{path}.term", "w", encoding="utf-8") as fh:
            fh.write(str(signum))
        os._exit(128 + signum)

    return signal.signal(signal.SIGTERM, stopped)


def main(argv: list[str]) -> int:
    """``JOB.json`` holds one job, or ``{"jobs": [...]}``: several run one after the other
    in the same process group (records in ``<k>/rank<N>.json``), for test suites that
    would otherwise pay torchrun's start-up per case. Only the single job exits at once on
    an error; in a batch an error is recorded and the next job starts after a barrier."""
    with open(argv[0], encoding="utf-8") as fh:
        spec = json.load(fh)
    rank = int(os.environ.get("RANK", "0"))
    folder = os.path.dirname(os.path.abspath(argv[0]))
    if "jobs" not in spec:
        rank_main(spec, os.path.join(folder, f"rank{rank}.json"), exit_on_error=True)
    else:
        for k, job in enumerate(spec["jobs"]):
            os.makedirs(os.path.join(folder, str(k)), exist_ok=True)
            _rec, group = rank_main(job, os.path.join(folder, str(k), f"rank{rank}.json"),
                                    exit_on_error=False)
            if dist.is_initialized():
                dist.monitored_barrier(group=group, timeout=datetime.timedelta(
                    seconds=max(float(job["deadline"]) - time.time(), 1.0)))
    with contextlib.suppress(Exception):
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
