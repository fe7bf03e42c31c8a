"""The reference nets of BROWSER_MODEL.md, with exactly face-api.js's parameter counts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from diag.model.layers import Conv, DenseBlock, SeparableConv

TINY_CHANNELS = (3, 32, 64, 128)
FULL_CHANNELS = (3, 32, 64, 128, 256)


class FeatureExtractor(nn.Module):
    """A stack of dense blocks: 3-conv blocks for the tiny nets, 4-conv for the full ones."""

    def __init__(self, channels: tuple[int, ...], convs: int) -> None:
        super().__init__()
        self.channels = channels
        for i, (cin, cout) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
            self.add_module(f"dense{i}", DenseBlock(cin, cout, convs, first=i == 0))

    @property
    def out_channels(self) -> int:
        return self.channels[-1]

    def forward(self, x: Tensor) -> Tensor:
        for block in self.children():
            x = block(x)
        return x


class BrowserNet(nn.Module):
    """Feature extractor, global average pool, one Linear layer (no activation).

    ``input_size`` is what the net is meant to be fed (112 in the browser); the weights do
    not depend on it, so the checks may use a smaller input for speed.
    """

    def __init__(
        self, channels: tuple[int, ...], convs: int, outputs: int, input_size: int = 112
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.features = FeatureExtractor(channels, convs)
        self.fc = nn.Linear(self.features.out_channels, outputs)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc(self.features(x).mean(dim=(2, 3)))
        return out


def glorot_init_(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Glorot (Xavier) normal weights and zero biases, as tfjs layers default to.

    PyTorch's fan computation for a depthwise kernel (C, 1, 3, 3) gives fan_in + fan_out =
    9 + 9C, the same sum tfjs gets from [3, 3, C, 1], so the std matches.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.xavier_normal_(module.weight, generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def _seeded(build: Callable[[], nn.Module], seed: int | None) -> nn.Module:
    """Build and Glorot-init; with a seed, the global RNG is neither used nor changed
    (PyTorch's own default init, which we overwrite, would otherwise consume it)."""
    if seed is None:
        return _fast_layout(glorot_init_(build()))
    with torch.random.fork_rng(devices=[]):
        model = build()
    return _fast_layout(glorot_init_(model, torch.Generator().manual_seed(seed)))


def _fast_layout(model: nn.Module) -> nn.Module:
    """Conv kernels in channels-last memory format: the same values, and on CPU a training
    step of the tiny net at 48 px, batch 16, takes 14 ms instead of 21 (the depthwise
    convolutions' backward). Inputs stay as they are; outputs follow the kernels."""
    for p in model.parameters():
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
    return model


def tiny_landmark_net(input_size: int = 112, seed: int | None = 0) -> BrowserNet:
    """face-api.js FaceLandmark68TinyNet: 77,224 params, 68 (x, y) points interleaved."""
    return _seeded(lambda: BrowserNet(TINY_CHANNELS, 3, 136, input_size), seed)  # type: ignore[return-value]


def landmark_net(input_size: int = 112, seed: int | None = 0) -> BrowserNet:
    """face-api.js FaceLandmark68Net: 356,840 params."""
    return _seeded(lambda: BrowserNet(FULL_CHANNELS, 4, 136, input_size), seed)  # type: ignore[return-value]


def expression_net(input_size: int = 112, seed: int | None = 0) -> BrowserNet:
    """face-api.js FaceExpressionNet: 7 expressions on the full extractor, 323,687 params."""
    return _seeded(lambda: BrowserNet(FULL_CHANNELS, 4, 7, input_size), seed)  # type: ignore[return-value]


def tiny_classifier(classes: int, input_size: int = 112, seed: int | None = 0) -> BrowserNet:
    """A K-class classifier on the tiny extractor: 59,680 + 129*K params."""
    return _seeded(lambda: BrowserNet(TINY_CHANNELS, 3, classes, input_size), seed)  # type: ignore[return-value]


def tiny_extractor(input_size: int = 112, seed: int | None = 0) -> FeatureExtractor:
    """The tiny feature extractor alone, no head: 59,680 params."""
    del input_size
    return _seeded(lambda: FeatureExtractor(TINY_CHANNELS, 3), seed)  # type: ignore[return-value]


@dataclass(frozen=True)
class NetInfo:
    """A reference net, as `diag model` lists it."""

    name: str
    description: str
    build: Callable[..., nn.Module]
    params: int


REFERENCE_NETS: dict[str, NetInfo] = {
    info.name: info
    for info in (
        NetInfo("tiny-landmark", "68-point landmarks, tiny 3-conv dense blocks",
                tiny_landmark_net, 77_224),
        NetInfo("landmark", "68-point landmarks, 4-conv dense blocks", landmark_net, 356_840),
        NetInfo("expression", "7 expressions on the landmark net's extractor",
                expression_net, 323_687),
        NetInfo("tiny-extractor", "the tiny feature extractor alone, no head",
                tiny_extractor, 59_680),
        NetInfo("tiny-classifier", "4-class classifier on the tiny extractor (generated data)",
                lambda input_size=112, seed=0: tiny_classifier(4, input_size, seed), 60_196),
    )
}

__all__ = [
    "BrowserNet",
    "Conv",
    "DenseBlock",
    "FeatureExtractor",
    "REFERENCE_NETS",
    "SeparableConv",
    "expression_net",
    "glorot_init_",
    "landmark_net",
    "tiny_classifier",
    "tiny_extractor",
    "tiny_landmark_net",
]
