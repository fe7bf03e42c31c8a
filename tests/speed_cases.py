"""Planted throughput problems for `diag speed`, each next to its correct twin."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

FEATURES, CLASSES = 16, 4


def table(n: int = 64) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, FEATURES, generator=g)
    return x, x[:, :CLASSES].argmax(1)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, 32), nn.ReLU(), nn.Linear(32, CLASSES))


class Rows(Dataset):  # type: ignore[type-arg]
    """The table as a Dataset; ``sleep`` seconds per item stand for decoding a file."""

    def __init__(self, sleep: float = 0.0) -> None:
        self.x, self.y = table()
        self.sleep = sleep

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        if self.sleep:
            time.sleep(self.sleep)
        return self.x[i], self.y[i]


def sleepy_loader() -> DataLoader:
    """2.5 ms per sample, 8 per batch: 20 ms of loading per batch, num_workers=0."""
    return DataLoader(Rows(sleep=0.0025), batch_size=8, shuffle=True)


def cached_batches() -> list[tuple[Tensor, Tensor]]:
    """The same batches, decoded once and kept in memory (tip 16)."""
    return list(DataLoader(Rows(), batch_size=8, shuffle=True))


def _step_factory(reads: bool) -> Callable[[], Callable[[], object]]:
    def factory() -> Callable[[], object]:
        model = mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = table()
        log: list[float] = []

        def step() -> None:
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            if reads:
                log.append(loss.item())  # sync 1
                if loss.item() > 100:  # sync 2
                    raise RuntimeError("diverged")
                log.append(loss.detach().item())  # sync 3

        return step

    return factory


syncing_step = _step_factory(True)
quiet_step = _step_factory(False)


class ShrinksInside(nn.Module):
    """Takes 512x512 images and resizes them to 32x32 on the device, first thing."""

    def __init__(self, size: int | None = 32) -> None:
        super().__init__()
        self.size = size
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        if self.size is not None:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear")
        out: Tensor = self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))
        return out


def big_images() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(8, 3, 512, 512, generator=g), torch.arange(8) % CLASSES


def small_images() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(8, 3, 32, 32, generator=g), torch.arange(8) % CLASSES


def shrinks_inside() -> nn.Module:
    return ShrinksInside(32)


def takes_32() -> nn.Module:
    return ShrinksInside(None)


class OomAbove64(nn.Module):
    """Runs out of memory (simulated) on batches above 64, as a GPU would."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] > 64:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB "
                                         "(simulated)")
        out: Tensor = self.net(x)
        return out


def oom_above_64() -> nn.Module:
    return OomAbove64()


SHARED_MODEL = mlp()
SHARED_OPT = torch.optim.Adam(SHARED_MODEL.parameters(), lr=0.1)


def shared_state_step() -> Callable[[], object]:
    """A step over a model and optimizer the caller owns (module globals)."""
    x, y = table()

    def step() -> None:
        SHARED_OPT.zero_grad()
        F.cross_entropy(SHARED_MODEL(x), y).backward()
        SHARED_OPT.step()

    return step


class WithTransform(Dataset):  # type: ignore[type-arg]
    """Fast decode, slow transform (2.5 ms per sample), torchvision style."""

    def __init__(self) -> None:
        self.x, self.y = table()
        self.transform: Callable[[Tensor], Tensor] | None = slow_transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        x = self.x[i]
        return (self.transform(x) if self.transform is not None else x), self.y[i]


def slow_transform(x: Tensor) -> Tensor:
    time.sleep(0.0025)
    return x


SHARED_TRANSFORM_LOADER = DataLoader(WithTransform(), batch_size=8, shuffle=True)


def slow_transform_loader() -> DataLoader:
    """The caller's own loader: diag switches its transform off to time the decode, and
    must put it back."""
    return SHARED_TRANSFORM_LOADER


def _all_cores(worker_id: int) -> None:
    """The planted bug: a worker_init_fn that gives each worker every core's threads
    (torch sets 1 before it runs; this undoes that)."""
    import os

    torch.set_num_threads(len(os.sched_getaffinity(0)))


def _one_thread(worker_id: int) -> None:
    """The twin: each worker keeps to one intra-op thread."""
    torch.set_num_threads(1)


def oversubscribed_loader() -> DataLoader:
    """4 workers, each running torch on every core."""
    return DataLoader(Rows(), batch_size=8, num_workers=4, worker_init_fn=_all_cores)


def one_thread_workers_loader() -> DataLoader:
    return DataLoader(Rows(), batch_size=8, num_workers=4, worker_init_fn=_one_thread)
