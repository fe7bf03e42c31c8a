"""The range-test benchmark's tasks: nine model/data pairs, each built the same way for the
grid search that gives its truth (benchmarks/lr_grid.py) and for the sweeps
(benchmarks/bench_lr.py). Everything is generated in code or ships inside scikit-learn.

A task is its data (x, y), a model factory (seed -> fresh model), a loss and a batch size.
Batches come from a seeded DataLoader, so diag's sweep and torch-lr-finder's see the same
batches in the same order for a seed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


@dataclass(frozen=True)
class Task:
    name: str
    x: Tensor
    y: Tensor
    make: Callable[[int], nn.Module]
    loss: Callable[[Tensor, Tensor], Tensor]
    batch_size: int = 32

    def loader(self, seed: int) -> torch.utils.data.DataLoader[Any]:
        g = torch.Generator().manual_seed(seed)
        data = torch.utils.data.TensorDataset(self.x, self.y)
        return torch.utils.data.DataLoader(data, batch_size=self.batch_size, shuffle=True,
                                           drop_last=True, generator=g)

    def batches(self, seed: int) -> Iterator[tuple[Tensor, Tensor]]:
        loader = self.loader(seed)
        while True:
            yield from loader

    @property
    def batches_per_epoch(self) -> int:
        return max(len(self.x) // self.batch_size, 1)


def _mlp(inputs: int, outputs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(inputs, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                         nn.Linear(64, outputs))


def _table(name: str, loader: Any, regression: bool, standardise_y: bool = True) -> Task:
    d = loader()
    x = torch.tensor(d.data, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)
    if regression:
        y = torch.tensor(d.target, dtype=torch.float32).reshape(len(x), -1)
        if standardise_y:
            y = (y - y.mean(0)) / y.std(0)
        return Task(name, x, y, lambda s, i=x.shape[1], o=y.shape[1]: _mlp(i, o, s), F.mse_loss)
    y = torch.tensor(d.target).long()
    classes = int(y.max()) + 1
    return Task(name, x, y, lambda s, i=x.shape[1]: _mlp(i, classes, s), F.cross_entropy)


def _gpt(seed: int) -> nn.Module:
    from architectures import TinyGPT

    torch.manual_seed(seed)
    return TinyGPT(dim=64, layers=2, heads=4)


def _lm_loss(logits: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))


def _resnet(seed: int) -> nn.Module:
    from architectures import ResNet

    torch.manual_seed(seed)
    return ResNet(classes=4, width=8)


def _digits_cnn() -> Task:
    """scikit-learn's 8x8 digit images (pixels 0-16, scaled to 0-1) through a small CNN:
    two 3x3 convolutions (16, 32 channels), a 2x2 max-pool and two linear layers. Added
    after the rule was chosen on the other eight (a ninth task, scored, not tuned on)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target).long()

    def make(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(),
                             nn.Linear(64, 10))

    return Task("digits_cnn", x, y, make, F.cross_entropy)


def tasks(only: list[str] | None = None) -> list[Task]:
    """The nine tasks, in a fixed order (``only``: those named)."""
    from sklearn.datasets import (
        load_breast_cancer,
        load_diabetes,
        load_digits,
        load_iris,
        load_wine,
    )

    from diag.inputs.target import build_target

    from architectures import image_class_data, sequence_data

    face = build_target(input_size=48, samples=48)
    ids, nxt = sequence_data(n=256)
    images, labels = image_class_data(n=192)
    every = [
        _table("wine", load_wine, regression=False),
        _table("breast_cancer", load_breast_cancer, regression=False),
        _table("iris", load_iris, regression=False),
        _table("digits_mlp", load_digits, regression=False),
        _table("diabetes_raw_targets", load_diabetes, regression=True, standardise_y=False),
        Task("browser_net_faces", face.data.x, face.data.y, lambda s: face.make_model(),
             face.loss_fn, batch_size=12),
        Task("tiny_gpt_sequences", ids, nxt, _gpt, _lm_loss),
        Task("resnet_images", images, labels, _resnet, F.cross_entropy),
        _digits_cnn(),
    ]
    return [t for t in every if only is None or t.name in only]


def train_loss_after(task: Task, lr: float, seed: int, epochs: int) -> float:
    """The grid search's measure: Adam at ``lr`` for ``epochs`` epochs from the seed's
    initial weights, then the loss on the whole training set (inf when it blew up)."""
    import math

    model = task.make(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    batches = task.batches(seed)
    model.train()
    for _ in range(epochs * task.batches_per_epoch):
        xb, yb = next(batches)
        opt.zero_grad(set_to_none=True)
        task.loss(model(xb), yb).backward()
        opt.step()
    with torch.no_grad():  # train mode: BatchNorm's running statistics after a few steps
        value = float(task.loss(model(task.x), task.y))  # are no measure of the weights
    return value if math.isfinite(value) else math.inf


def fresh_tasks() -> list[Task]:
    """Two tasks added on 2026-12-01 after the candidates were fixed, labelled by their grid
    (benchmarks/lr_grid_seeds.py --fresh) before any range test ran on them, and only scored
    (never used to choose): a GRU on generated sequences (is the product of two channels'
    sums positive? it learned at no LR: no truth), an MLP with BatchNorm on scikit-learn's
    make_classification, and the GRU on the sign of one channel's sum."""
    from sklearn.datasets import make_classification

    from architectures import GRUClassifier, sign_sequences

    seq, sign, label = sign_sequences(512)

    def gru(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return GRUClassifier()

    xs, ys = make_classification(n_samples=1000, n_features=20, n_informative=10,
                                 n_classes=4, random_state=0)
    x = torch.tensor(xs, dtype=torch.float32)
    y = torch.tensor(ys).long()

    def bn_mlp(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(20, 64), nn.BatchNorm1d(64), nn.ReLU(),
                             nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(),
                             nn.Linear(64, 4))

    # The first GRU task did not learn at any LR in 3 epochs (every grid loss within 10 % of
    # ln 2: no best LR to recover); the same GRU on a rule it can learn, labelled the same way
    # before any range test ran on it:
    return [Task("gru_sequences", seq, label, gru, F.cross_entropy),
            Task("bn_mlp_make_classification", x, y, bn_mlp, F.cross_entropy),
            Task("gru_sign_of_sum", seq, sign, gru, F.cross_entropy)]


def _waveforms(n: int = 600, length: int = 64) -> tuple[Tensor, Tensor]:
    """``n`` generated 1-channel signals of ``length`` samples, three classes: a sine, a
    square and a sawtooth wave, each of 1-4 cycles, a random phase and amplitude 0.5-1.5,
    plus Gaussian noise (sd 0.3); a fixed generator."""
    import math

    g = torch.Generator().manual_seed(2)
    y = torch.randint(0, 3, (n,), generator=g)
    cycles = 1 + 3 * torch.rand(n, 1, generator=g)
    phase = torch.rand(n, 1, generator=g)
    amp = 0.5 + torch.rand(n, 1, generator=g)
    t = torch.arange(length).float() / length
    u = (cycles * t + phase) % 1.0  # position within the cycle, 0-1
    sine = torch.sin(2 * math.pi * u)
    square = torch.where(u < 0.5, 1.0, -1.0)
    saw = 2 * u - 1
    wave = torch.where(y[:, None] == 0, sine, torch.where(y[:, None] == 1, square, saw))
    x = amp * wave + 0.3 * torch.randn(n, length, generator=g)
    return x.unsqueeze(1), y


def fresh_tasks_2() -> list[Task]:
    """Five more tasks added in a later session (2026-12-01, second batch), after the two
    candidates left in contention had been scored on every task before: defined and
    committed, then labelled by their grid (benchmarks/lr_grid_seeds.py --fresh2), before
    any range test ran on them. They decide between diag's rule and the median of the valley
    entry and a tenth of the minimum's LR by the criterion registered in
    benchmarks/lr_readings.py (DECISION), and are never used to tune anything.

    - friedman1_raw_targets: scikit-learn's make_friedman1 regression (800 samples, noise
      1), inputs standardised, targets raw (about 1-29), the MLP of the tables, MSE;
    - waveforms_cnn1d: a 1-D CNN (two 5-tap convolutions, 16 and 32 channels, max-pool,
      global average pool) on generated sine, square and sawtooth waves (``_waveforms``);
    - encoder_tokens: a 2-layer Transformer encoder classifier on token ids (the tests'
      EncoderClassifier: the class is the first token mod 4), 512 sequences;
    - digits_linear: multinomial logistic regression (one linear layer) on scikit-learn's
      digits, standardised; a convex problem;
    - digits_autoencoder: an MLP autoencoder (64-32-8-32-64, ReLU) reconstructing the
      digits (pixels scaled to 0-1), MSE."""
    from sklearn.datasets import load_digits, make_friedman1

    from architectures import EncoderClassifier, token_class_data

    xf, yf = make_friedman1(n_samples=800, noise=1.0, random_state=0)
    x1 = torch.tensor(xf, dtype=torch.float32)
    x1 = (x1 - x1.mean(0)) / x1.std(0)
    y1 = torch.tensor(yf, dtype=torch.float32).reshape(-1, 1)

    waves, kinds = _waveforms()

    def cnn1d(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv1d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
                             nn.Conv1d(16, 32, 5, padding=2), nn.ReLU(),
                             nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(32, 3))

    ids, cls = token_class_data(512)

    def encoder(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return EncoderClassifier()

    d = load_digits()
    xd = torch.tensor(d.data, dtype=torch.float32)
    xs = (xd - xd.mean(0)) / xd.std(0).clamp_min(1e-6)
    yd = torch.tensor(d.target).long()

    def linear(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Linear(64, 10)

    pixels = xd / 16.0

    def autoencoder(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 8), nn.ReLU(),
                             nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 64))

    return [Task("friedman1_raw_targets", x1, y1, lambda s: _mlp(10, 1, s), F.mse_loss),
            Task("waveforms_cnn1d", waves, kinds, cnn1d, F.cross_entropy),
            Task("encoder_tokens", ids, cls, encoder, F.cross_entropy),
            Task("digits_linear", xs, yd, linear, F.cross_entropy),
            Task("digits_autoencoder", pixels, pixels, autoencoder, F.mse_loss)]


def _bag_of_tokens(n: int = 800, length: int = 24, vocab: int = 128
                   ) -> tuple[Tensor, Tensor]:
    """``n`` generated documents of ``length`` token ids and four classes: each token is
    drawn from the class's own 8 ids (class c: 8c to 8c + 7) with probability 0.3, else
    uniformly from the whole vocabulary; a fixed generator."""
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 4, (n,), generator=g)
    uniform = torch.randint(0, vocab, (n, length), generator=g)
    own = 8 * y[:, None] + torch.randint(0, 8, (n, length), generator=g)
    pick = torch.rand(n, length, generator=g) < 0.3
    return torch.where(pick, own, uniform), y


class _BagClassifier(nn.Module):
    def __init__(self, vocab: int = 128) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab, 32, mode="mean")
        self.head = nn.Linear(32, 4)

    def forward(self, ids: Tensor) -> Tensor:
        return self.head(self.bag(ids))


class _LSTMClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, 32, batch_first=True)
        self.head = nn.Linear(32, 3)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(x.transpose(1, 2))  # (batch, 1, steps) -> (batch, steps, 1)
        return self.head(out[:, -1])


def fresh_tasks_3() -> list[Task]:
    """Five more tasks (2026-12-01, third batch), defined and committed, then labelled by
    their grid (benchmarks/lr_grid_seeds.py --fresh3), before any range test ran on them.
    They decide between diag's rule and the valley entry alone by the criterion registered
    in benchmarks/lr_readings.py (DECISION_3), and tune nothing.

    - moons_tanh_mlp: scikit-learn's make_moons (600 samples, noise 0.2), an MLP with tanh
      (2-32-32-2);
    - mobilenet_v3_small_images: the tests' MobileNetV3Small (torchvision's layout and init:
      BatchNorm, hardswish, squeeze-excitation, dropout) on the tests' generated 32x32
      images (the class is the brightest quadrant), 192 images;
    - bag_of_tokens: an EmbeddingBag (mean) and a linear layer on generated documents of
      token ids (``_bag_of_tokens``);
    - digits_bn_cnn: scikit-learn's digits through two 3x3 convolutions with BatchNorm, a
      max-pool and a linear layer;
    - lstm_waveforms: an LSTM (32 units) over the 64 samples of the second batch's generated
      waves, classified from its last state."""
    from sklearn.datasets import load_digits, make_moons

    from architectures import MobileNetV3Small, image_class_data

    xm, ym = make_moons(n_samples=600, noise=0.2, random_state=0)
    x1 = torch.tensor(xm, dtype=torch.float32)
    y1 = torch.tensor(ym).long()

    def tanh_mlp(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                             nn.Linear(32, 2))

    images, labels = image_class_data(n=192)

    def mobilenet(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return MobileNetV3Small(classes=4)

    docs, topics = _bag_of_tokens()

    def bag(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return _BagClassifier()

    d = load_digits()
    xd = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    yd = torch.tensor(d.target).long()

    def bn_cnn(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                             nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 10))

    waves, kinds = _waveforms()

    def lstm(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return _LSTMClassifier()

    return [Task("moons_tanh_mlp", x1, y1, tanh_mlp, F.cross_entropy),
            Task("mobilenet_v3_small_images", images, labels, mobilenet, F.cross_entropy),
            Task("bag_of_tokens", docs, topics, bag, F.cross_entropy),
            Task("digits_bn_cnn", xd, yd, bn_cnn, F.cross_entropy),
            Task("lstm_waveforms", waves, kinds, lstm, F.cross_entropy)]


GROUPS = {"": tasks, "_fresh": fresh_tasks, "_fresh2": fresh_tasks_2, "_fresh3": fresh_tasks_3}
"""The task groups by their files' suffix: the nine, then the fresh batches."""


def group_suffix(argv: list[str]) -> str:
    """The group a benchmark's command line names: ``--fresh``, ``--fresh2``, ``--fresh3``
    or none (the nine)."""
    for flag in ("--fresh3", "--fresh2", "--fresh"):
        if flag in argv:
            return "_" + flag[2:]
    return ""
