"""Planted DDP bugs and their clean twins, for tests/checks/test_ddp.py.

Each factory runs on every rank after the process group is up (diag ddp calls it there).
Data: 32 samples of 8 features, 3 classes; small nets, so a case costs its start-up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Sampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler


def data(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


# --- replicas in sync ----------------------------------------------------------------------
def bn_net() -> nn.Module:
    """BatchNorm without SyncBatchNorm: running statistics per rank."""
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """What SyncBatchNorm does, on CPU (torch's SyncBatchNorm refuses CPU modules under
    DDP): batch statistics all-reduced over every rank, differentiably."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        count = torch.tensor([float(x.shape[0])])
        stats = all_reduce(torch.cat([x.sum(0), (x * x).sum(0)]))
        total = all_reduce(count)
        mean = stats[: x.shape[1]] / total
        var = stats[x.shape[1]:] / total - mean * mean
        with torch.no_grad():
            m = self.momentum
            n = float(total)
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / max(n - 1, 1))
            self.num_batches_tracked += 1
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def synced_bn_net() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), GlobalBatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def syncbn_net() -> nn.Module:
    """torch's own SyncBatchNorm (GPU modules only under DDP)."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(bn_net())


def rank_seeded_net() -> nn.Module:
    """An init that depends on the rank: torch.manual_seed(rank) before building."""
    torch.manual_seed(dist.get_rank())
    return mlp()


# --- unused parameters ---------------------------------------------------------------------
class UnusedHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        self.aux_head = nn.Linear(16, 5)  # never called in forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class RankBranch(nn.Module):
    """Rank 0 runs branch a, the others branch b: each rank skips different parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(8, 16)
        self.a = nn.Linear(16, 3)
        self.b = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        return self.a(h) if dist.get_rank() == 0 else self.b(h)


# --- data ----------------------------------------------------------------------------------
def _dataset() -> TensorDataset:
    return TensorDataset(*data())


def random_loader() -> DataLoader[Any]:
    """shuffle=True under DDP: a RandomSampler over the whole data set on every rank."""
    return DataLoader(_dataset(), batch_size=4, shuffle=True)


def distributed_loader() -> DataLoader[Any]:
    ds = _dataset()
    return DataLoader(ds, batch_size=4, sampler=DistributedSampler(ds, shuffle=True, seed=0))


class Strided(Sampler[int]):
    """Every world-th sample from the rank's offset: uneven shares when N % world != 0."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Any:
        return iter(range(dist.get_rank(), self.n, dist.get_world_size()))

    def __len__(self) -> int:
        return len(range(dist.get_rank(), self.n, dist.get_world_size()))


def uneven_loader() -> DataLoader[Any]:
    ds = TensorDataset(*data(17))  # rank 0: 9 samples (3 batches), rank 1: 8 (2 batches)
    return DataLoader(ds, batch_size=4, sampler=Strided(17))


def even_loader() -> DataLoader[Any]:
    ds = TensorDataset(*data(17))  # padded to 9 samples (3 batches) on both ranks
    return DataLoader(ds, batch_size=4, sampler=DistributedSampler(ds, shuffle=False))


# --- the user's own loop (--step) --------------------------------------------------------
def _loop(model: nn.Module, *, set_epoch: bool = True, seed_after: Callable[[], None] | None =
          None, ddp_kwargs: dict[str, Any] | None = None, n: int = 16,
          fail_at: int | None = None, hang_at: int | None = None,
          die_at: int | None = None, device: str = "cpu",
          keep_graph: bool = False) -> Callable[[], None]:
    """A plain DDP training loop, one batch per call, epochs by StopIteration."""
    if device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        model = model.to(f"cuda:{local}")
        ddp = DDP(model, device_ids=[local], **(ddp_kwargs or {}))
    else:
        ddp = DDP(model, **(ddp_kwargs or {}))
    dev = next(model.parameters()).device
    if seed_after is not None:
        seed_after()
    ds = TensorDataset(*data(n))
    sampler = DistributedSampler(ds, shuffle=True, seed=0)
    loader = DataLoader(ds, batch_size=4, sampler=sampler)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    state: dict[str, Any] = {"epoch": 0, "it": None, "calls": 0, "total": 0.0}

    def next_batch() -> Any:
        if state["it"] is not None:
            try:
                return next(state["it"])
            except StopIteration:
                state["epoch"] += 1
        if set_epoch:
            sampler.set_epoch(state["epoch"])
        state["it"] = iter(loader)
        return next(state["it"])

    def step() -> None:
        state["calls"] += 1
        rank = dist.get_rank()
        if fail_at == state["calls"] and rank == 1:
            raise ValueError("planted failure on rank 1")
        if hang_at == state["calls"] and rank == 1:
            time.sleep(3600)
        if die_at == state["calls"] and rank == 1:
            os._exit(7)  # no Python error: as when the kernel kills a rank
        x, y = next_batch()
        x, y = x.to(dev), y.to(dev)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(ddp(x), y)
        loss.backward()
        opt.step()
        if keep_graph and rank == 1:
            state["total"] = state["total"] + loss  # keeps every step's graph alive

    step.model = ddp  # type: ignore[attr-defined]
    return step


def _dropout_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))


def step_without_set_epoch() -> Callable[[], None]:
    torch.manual_seed(0)
    return _loop(mlp(), set_epoch=False)


def step_with_set_epoch() -> Callable[[], None]:
    torch.manual_seed(0)
    return _loop(mlp())


def step_same_seed_dropout() -> Callable[[], None]:
    """torch.manual_seed(0) on every rank after wrapping: identical dropout masks."""
    return _loop(_dropout_net(), seed_after=lambda: torch.manual_seed(0))


def step_rank_seed_dropout() -> Callable[[], None]:
    return _loop(_dropout_net(), seed_after=lambda: torch.manual_seed(dist.get_rank()))


def step_no_broadcast() -> Callable[[], None]:
    """A rank-dependent init, and DDP told not to broadcast rank 0's weights."""
    torch.manual_seed(dist.get_rank())
    return _loop(mlp(), ddp_kwargs={"init_sync": False})


def step_raises_at_3() -> Callable[[], None]:
    torch.manual_seed(0)
    return _loop(mlp(), fail_at=3)


def step_hangs_at_3() -> Callable[[], None]:
    torch.manual_seed(0)
    return _loop(mlp(), hang_at=3)


def step_dies_at_3() -> Callable[[], None]:
    torch.manual_seed(0)
    return _loop(mlp(), die_at=3)


def step_leaks_on_rank_1() -> Callable[[], None]:
    torch.manual_seed(0)
    return _loop(mlp(), keep_graph=True)


def step_gpu_dropout() -> Callable[[], None]:
    """On the GPU (NCCL), dropout seeded the same on every rank after wrapping."""
    return _loop(_dropout_net(), seed_after=lambda: torch.manual_seed(0), device="cuda")


def step_clean() -> Callable[[], None]:
    torch.manual_seed(0)
    return _loop(mlp())
