"""Planted data bugs for `diag data`, each next to its correct twin. Loaders are
zero-argument factories returning what a training loop iterates."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

N, FEATURES, CLASSES = 96, 16, 4


def table(seed: int = 0) -> tuple[Tensor, Tensor]:
    """Learnable class data (the label is the argmax of the first 4 features)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, FEATURES, generator=g)
    return x, x[:, :CLASSES].argmax(1)


def sorted_table() -> tuple[Tensor, Tensor]:
    x, y = table()
    order = torch.argsort(y, stable=True)
    return x[order], y[order]


def unshuffled_loader() -> DataLoader:
    """Class-sorted data, shuffle=False: the batches come one class at a time."""
    return DataLoader(TensorDataset(*sorted_table()), batch_size=8, shuffle=False)


def shuffled_loader() -> DataLoader:
    return DataLoader(TensorDataset(*sorted_table()), batch_size=8, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


def once_shuffled_loader() -> list[tuple[Tensor, Tensor]]:
    """Shuffled once, when built, then the same order every epoch."""
    x, y = sorted_table()
    order = torch.randperm(N, generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return [(x[i:i + 8], y[i:i + 8]) for i in range(0, N, 8)]


def permuted_labels() -> tuple[Tensor, Tensor]:
    """Labels shuffled apart from their inputs."""
    x, y = table()
    return x, y[torch.randperm(N, generator=torch.Generator().manual_seed(1))]


def pixels(scale: float = 1.0) -> tuple[Tensor, Tensor]:
    """64 images of whole-number pixel values / 255 (scale 1) or raw 0-255 (scale 255);
    the label says whether the image is bright."""
    g = torch.Generator().manual_seed(0)
    brightness = torch.rand(64, 1, 1, 1, generator=g) * 0.6 + 0.2
    noise = 0.1 * torch.randn(64, 3, 16, 16, generator=g)
    x = torch.round(255 * (brightness + noise).clamp(0, 1)) / 255 * scale
    return x, (brightness.flatten() > 0.5).long()


def raw_pixels() -> tuple[Tensor, Tensor]:
    return pixels(255.0)


def nan_at_17() -> tuple[Tensor, Tensor]:
    x, y = table()
    x = x.clone()
    x[17, 3] = float("nan")
    return x, y


def nan_loader() -> DataLoader:
    return DataLoader(TensorDataset(*nan_at_17()), batch_size=8, shuffle=False)


def clean_loader() -> DataLoader:
    return DataLoader(TensorDataset(*table()), batch_size=8, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


def conflicting_duplicates() -> tuple[Tensor, Tensor]:
    """Samples 40-44 repeat the inputs of samples 0-4 with another label."""
    x, y = table()
    x, y = x.clone(), y.clone()
    x[40:45] = x[0:5]
    y[40:45] = (y[0:5] + 1) % CLASSES
    return x, y


def agreeing_duplicates() -> tuple[Tensor, Tensor]:
    x, y = table()
    x, y = x.clone(), y.clone()
    x[40:45] = x[0:5]
    y[40:45] = y[0:5]
    return x, y


def raising_loader() -> DataLoader:
    class Broken(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return 10

        def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
            if i == 3:
                raise ValueError("corrupt record 3")
            return torch.zeros(4), torch.tensor(0)

    return DataLoader(Broken(), batch_size=2)


def wrong_structure_loader() -> list[Tensor]:
    return [torch.zeros(4, 3) for _ in range(3)]
