"""`diag ddp`: the checks for DistributedDataParallel training, on torch.distributed.

Each rank runs a few training steps and records what it saw; the verdict compares the ranks.
Replicas in sync (a digest of every parameter and buffer as built, after wrapping, after the
first and the last step), unused parameters by name and by rank (found before DDP hangs on
them), the sample indices each rank drew (overlap: no DistributedSampler; the same order in
two epochs: no ``set_epoch``; uneven batch counts: a hang at the last collective), the RNG
draws of dropout (identical on every rank), and the leak census per rank.

``launch.py`` relaunches diag under torchrun (or joins the group it already runs in),
``worker.py`` is one rank, ``judge.py`` the pure verdict over the ranks' records. This
module is torch-free: the registry reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from diag.checks.base import Check, always, lazy, option


@dataclass(frozen=True)
class DdpOptions:
    """Options of `diag ddp` (``[tool.diag.ddp]``; `diag check` skips ddp without it)."""

    nproc: int = option(2, "Processes to launch under torchrun (one per GPU with NCCL). "
                        "Ignored when diag already runs under torchrun.", min=1, max=4096)
    steps: int = option(10, "Training steps per rank.", min=2, max=100000)
    find_unused: bool = option(False, "Wrap the model with find_unused_parameters=True "
                               "(diag's loop; your --step wraps its own).")
    backend: str = option("auto", "Process group backend: auto (nccl with GPUs, else gloo).",
                          choices=("auto", "gloo", "nccl"))
    timeout: float = option(120.0, "Seconds for the whole run: a rank that hangs is reported "
                            "where it hangs, and every rank is stopped.", gt=0)
    batch_size: int = option(8, "Batch size per rank in diag's loop.", min=1)
    step: str | Callable[..., Any] | None = option(
        None, "A zero-argument factory (SPEC) returning step(), run on every rank after the "
        "process group is up: your model wrapped your way, your loader, your epochs. diag "
        "finds the model and loader as step.model / step.loader or in its closure.")
    loader: str | Callable[..., Any] | None = option(
        None, "A zero-argument factory (SPEC) returning your DataLoader, called on every rank "
        "(diag's loop calls set_epoch on its sampler each epoch).")
    seed: int = 0


CHECK = Check(
    name="ddp",
    title="Does DistributedDataParallel training stay in sync across ranks, without hangs?",
    options=DdpOptions,
    needs=always(),
    run=lazy("diag.checks.ddp.check:run"),
    prepare=lazy("diag.checks.ddp.check:prepare"),
    torch_needed=lambda sources: False,  # the ranks import torch; the launcher does not
    key_metrics=("world_size", "backend", "steps_run", "first_differing", "unused_params",
                 "overlap_samples", "batches_per_rank"),
)
