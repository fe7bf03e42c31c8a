"""`diag ddp`'s run: relaunch under torchrun (or join the group diag already runs in), then
judge the ranks' records.

Launch mode: ``python -m torch.distributed.run --standalone --nproc-per-node N -m
diag.checks.ddp.worker JOB`` in its own process group. Each rank writes its record to a
file beside the job at every phase; the parent reads them when torchrun ends, or at
``--timeout``, when it stops every process it started. Attach mode (``RANK`` and
``WORLD_SIZE`` set: ``torchrun ... -m diag ddp``): every rank runs the worker in process and
the records are gathered on a gloo group with a timeout; every rank returns the verdict,
rank 0 writes the report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from diag.checks.ddp import DdpOptions
from diag.errors import UsageError
from diag.inputs import Inputs
from diag.result import CheckResult

Progress = Callable[[int, int], None]


def attached() -> bool:
    """Whether this process is one rank of a torchrun job (diag joins that group)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def _as_spec(value: Any, option: str, locate: Callable[[str], str]) -> Any:
    """A value the ranks can rebuild: a SPEC string (relative files made absolute), or a
    module-level function or class named by its import path. Objects stay objects when the
    ranks run in this process (attach mode)."""
    if value is None:
        return None
    if isinstance(value, str):
        located = locate(value)
        where, sep, attr = located.rpartition(":")
        path = where if sep else located
        if path and (path.endswith((".py", ".npz")) or "/" in path) and os.path.exists(path):
            located = os.path.abspath(path) + (f":{attr}" if sep else "")
        return located
    if attached():
        return value
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", "")
    if module and module != "__main__" and "<" not in qualname and callable(value):
        return f"{module}:{qualname}"
    raise UsageError(f"{option}: a {type(value).__name__} object cannot reach the new "
                     "processes diag ddp starts",
                     hint="give a SPEC (package.module:factory or file.py:factory), or run "
                     "diag under torchrun yourself")


def prepare(inputs: Inputs, options: DdpOptions,
            resolve: Callable[[str, str], Any]) -> DdpOptions:
    """Resolve the SPECs now (a bad one is exit 2 before any process starts), and keep them
    as strings the ranks resolve again."""
    locate = getattr(resolve, "locate", lambda v: v)
    for key in ("step", "loader"):
        value = getattr(options, key)
        if isinstance(value, str):
            obj = resolve(value, f"--{key}")
            if not callable(obj):
                raise UsageError(f"--{key} {value} is a {type(obj).__name__}",
                                 hint="give a zero-argument factory")
    specs = dict(inputs.specs or {})
    if options.step is not None and any(specs.get(k) is not None for k in ("model", "data",
                                                                           "loss")):
        raise UsageError("--step runs your own loop on each rank; it cannot be combined with "
                         "--model/--data/--loss", hint="pass either --step or those")
    for key in ("model", "loss"):
        value = specs.get(key)
        if isinstance(value, str) and not os.path.isdir(value):
            resolve(value, f"--{key}")
    data = specs.get("data")
    if isinstance(data, str) and ":" not in os.path.basename(data) and not os.path.exists(data):
        raise UsageError(f"--data file not found: {data}", hint="check the path")
    for key in ("model", "data", "loss"):
        _as_spec(specs.get(key), f"--{key}", lambda v: v)  # objects: refused here, not later
    return dataclasses.replace(
        options, step=_as_spec(options.step, "--step", locate),
        loader=_as_spec(options.loader, "--loader", locate))


def job_for(inputs: Inputs, options: DdpOptions) -> dict[str, Any]:
    specs = dict(inputs.specs or {})
    job = {
        "model": _as_spec(specs.get("model"), "--model", lambda v: v),
        "data": _as_spec(specs.get("data"), "--data", lambda v: v),
        "loss": _as_spec(specs.get("loss"), "--loss", lambda v: v),
        "task": specs.get("task", "landmarks"), "input_size": specs.get("input_size", 48),
        "step": options.step, "loader": options.loader, "seed": options.seed,
        "steps": options.steps, "find_unused": options.find_unused,
        "backend": options.backend, "batch_size": options.batch_size,
        "timeout": options.timeout, "deadline": time.time() + options.timeout,
    }
    return job


def run(inputs: Inputs, options: DdpOptions, progress: Progress | None = None
        ) -> CheckResult:
    from diag.checks.ddp.judge import judge

    job = job_for(inputs, options)
    if attached():
        return attach(job, options.find_unused)
    records, log_tail = launch(job, options.nproc)
    return judge(records, options.nproc, log_tail, find_unused=options.find_unused)


# --- launch mode -----------------------------------------------------------------------------
GRACE_S = 3.0
"""After the deadline (or SIGTERM), how long the processes get before SIGKILL."""


def launch(job: dict[str, Any], nproc: int) -> tuple[list[dict[str, Any] | None], str]:
    """Run ``job`` on ``nproc`` ranks under torchrun; each rank's record (None: it left
    none) and the tail of torchrun's log."""
    [records], tail = launch_many([job], nproc, single=True)
    return records, tail


def launch_many(jobs: list[dict[str, Any]], nproc: int, single: bool = False
                ) -> tuple[list[list[dict[str, Any] | None]], str]:
    """Several jobs one after the other in one torchrun launch (the worker's batch mode);
    the last job's deadline bounds the whole run."""
    folder = tempfile.mkdtemp(prefix="diag-ddp-")
    job = jobs[-1]
    try:
        path = os.path.join(folder, "job.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(jobs[0] if single else {"jobs": jobs}, fh)
        log_path = os.path.join(folder, "torchrun.log")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
               f"--nproc-per-node={nproc}", "--max-restarts=0", "--monitor-interval=0.2",
               "-m", "diag.checks.ddp.worker", path]
        env = dict(os.environ)
        env.pop("RANK", None)
        # ranks share the cores: more threads than cores spin-wait against each other
        share = max(1, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                        else os.cpu_count() or 1) // nproc)
        try:
            asked = int(env.get("OMP_NUM_THREADS", "") or share)
        except ValueError:
            asked = share
        env["OMP_NUM_THREADS"] = str(max(1, min(asked, share)))
        env["PYTHONPATH"] = os.pathsep.join(
            [os.getcwd()] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
            try:
                left = float(job["deadline"]) - time.time()
                proc.wait(timeout=max(left, 1.0))
            except subprocess.TimeoutExpired:
                pass
            finally:
                _stop(proc)
        subdirs = [""] if single else [str(k) for k in range(len(jobs))]
        records = [[_read(os.path.join(folder, sub, f"rank{r}.json")) for r in range(nproc)]
                   for sub in subdirs]
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            tail = "\n".join(fh.read().splitlines()[-20:])
        if os.environ.get("DIAG_DEBUG"):
            print(tail, file=sys.stderr)
        return records, tail
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End torchrun and every rank it started (they share its session)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # ranks orphaned by a dead torchrun, too
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=GRACE_S)


def _read(path: str) -> dict[str, Any] | None:
    """A rank's record, placed at the step it last started (``Recorder.mark``)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if os.path.exists(f"{path}.term"):  # stopped by a signal (worker._note_termination)
        data["terminated"] = True
    try:
        with open(f"{path}.now", encoding="utf-8") as fh:
            now = json.load(fh)
    except (OSError, ValueError):
        return data
    if data.get("phase") not in ("done",) and not data.get("error") and not data.get("stuck") \
            and isinstance(now, dict) and int(now.get("step", 0)) > int(data.get("step", 0)):
        data.update(phase=now.get("phase"), step=now.get("step"))
    return data


# --- attach mode -----------------------------------------------------------------------------
def attach(job: dict[str, Any], find_unused: bool) -> CheckResult:
    """Run this rank in process; rank 0 gathers every record (on a gloo group), judges,
    and sends the verdict back, so every rank returns the same result."""
    import torch.distributed as dist

    from diag.checks.ddp.judge import judge
    from diag.checks.ddp.worker import rank_main

    ours = not dist.is_initialized()
    # collectives give up well before the watchdog, so every rank reaches the gather
    job = {**job, "timeout": float(job["timeout"]) * 0.4}
    rec, group = rank_main(job, None, exit_on_error=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(rec.data["rank"])
    records: list[Any] = [None] * world
    try:
        dist.gather_object(rec.data, records if rank == 0 else None, dst=0, group=group)
    except Exception:  # a rank gone: judge what this rank has
        records = [rec.data if r == rank else None for r in range(world)]
    result = judge(records, world, find_unused=find_unused) if rank == 0 else None
    box: list[Any] = [result.to_dict() if result is not None else None]
    with contextlib.suppress(Exception):
        dist.broadcast_object_list(box, src=0, group=group)
    if ours:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
    if result is not None:
        return result
    if box[0] is None:
        return judge(records, world, find_unused=find_unused)
    return CheckResult.from_dict(box[0])


def is_reporting_rank() -> bool:
    """Rank 0 writes the report; other ranks of a torchrun job stay quiet."""
    return not attached() or os.environ.get("RANK") == "0"
