"""Real architectures built in the tests (no downloads; the registry's torchvision build does
not load against the CPU torch here, so the ResNet is written out as torchvision's), with
their data, and the planted bugs of each family next to the healthy twin."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VOCAB, CONTEXT = 128, 16


# --- a small GPT: causal self-attention, tied embedding and head ----------------------------
class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[1]
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool, device=x.device), diagonal=1)
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """GPT-2's shape at 1.3 M parameters: token and position embeddings, pre-LN blocks, a
    head tied to the token embedding; the positions are a persistent buffer."""

    def __init__(self, dim: int = 128, layers: int = 4, heads: int = 4, tied: bool = True
                 ) -> None:
        super().__init__()
        self.tok = nn.Embedding(VOCAB, dim)
        self.pos = nn.Parameter(torch.zeros(CONTEXT, dim))
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, VOCAB, bias=False)
        if tied:
            self.head.weight = self.tok.weight
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, ids: Tensor) -> Tensor:
        x = self.tok(ids) + self.pos[: ids.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))  # (B, T, V)


def untied_gpt() -> nn.Module:
    """The planted "untied head that should be tied": the same net with a head of its own."""
    return TinyGPT(tied=False)


def sequence_data(n: int = 64, pad: bool = False) -> tuple[Tensor, Tensor]:
    """Token ids and next-token targets of a learnable sequence task (each sequence counts
    up from a random start, mod VOCAB); with ``pad``, the last quarter of every sequence is
    padding whose targets are -100 (cross-entropy's ignore_index)."""
    g = torch.Generator().manual_seed(0)
    start = torch.randint(0, VOCAB, (n, 1), generator=g)
    seq = (start + torch.arange(CONTEXT + 1)) % VOCAB
    x, y = seq[:, :-1].clone(), seq[:, 1:].clone()
    if pad:
        x[:, -CONTEXT // 4:] = 0
        y[:, -CONTEXT // 4:] = -100
    return x, y


def padded_sequence_data() -> tuple[Tensor, Tensor]:
    return sequence_data(pad=True)


def loss_ignoring_padding(pred: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1),
                           ignore_index=-100)


def loss_counting_padding(pred: Tensor, target: Tensor) -> Tensor:
    """The planted bug: padding's targets (0 here) are trained on like real tokens."""
    return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.clamp_min(0).reshape(-1))


# --- an LSTM language model that carries its hidden state across batches ---------------------
class LSTMLM(nn.Module):
    def __init__(self, detach: bool = True) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 64)
        self.lstm = nn.LSTM(64, 64, batch_first=True)
        self.head = nn.Linear(64, VOCAB)
        self.detach = detach
        self.state: tuple[Tensor, Tensor] | None = None

    def forward(self, ids: Tensor) -> Tensor:
        state = self.state
        if state is not None and state[0].shape[1] != ids.shape[0]:
            state = None
        out, state = self.lstm(self.emb(ids), state)
        # truncated BPTT: the carried state must be detached, or every batch's graph stays
        self.state = (state[0].detach(), state[1].detach()) if self.detach else state
        return self.head(out)


def lstm_step_factory(detach: bool) -> object:
    """Streaming evaluation of an LSTM LM over consecutive chunks, the state carried from
    chunk to chunk (as truncated BPTT and streaming inference do). Without .detach() the
    state keeps every earlier chunk's graph alive: the graph grows every step."""

    def factory() -> object:
        torch.manual_seed(0)
        model = LSTMLM(detach=detach)
        x, y = sequence_data(8)
        log: list[float] = []

        def step() -> None:
            loss = loss_ignoring_padding(model(x), y)
            log.append(loss.item())

        return step

    return factory


lstm_carries_graph = lstm_step_factory(detach=False)
lstm_detached = lstm_step_factory(detach=True)


# --- a Transformer encoder classifier ---------------------------------------------------------
class EncoderClassifier(nn.Module):
    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.tok = nn.Embedding(VOCAB, 64)
        layer = nn.TransformerEncoderLayer(64, 4, 128, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(64, classes)

    def forward(self, ids: Tensor) -> Tensor:
        return self.head(self.encoder(self.tok(ids)).mean(1))


def token_class_data(n: int = 64) -> tuple[Tensor, Tensor]:
    """The class is the first token's residue mod 4."""
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, VOCAB, (n, CONTEXT), generator=g)
    return x, x[:, 0] % 4


# --- a ResNet as torchvision writes it (BasicBlock), small ----------------------------------
class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                   nn.BatchNorm2d(cout)) if stride != 1 or cin != cout
                     else nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.down(x))


class ResNet(nn.Module):
    """torchvision's resnet18 layout (stem, four stages of BasicBlocks, pooled head), at a
    width and depth that train on CPU in a test: widths 16-128, one block per stage."""

    def __init__(self, classes: int = 4, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        stages, cin = [], width
        for i in range(4):
            cout = width * 2**i
            stages.append(BasicBlock(cin, cout, 1 if i == 0 else 2))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(self.stem(x)).mean((2, 3)))


class FrozenBNResNet(ResNet):
    """Fine-tuning with the BatchNorm layers frozen. ``frozen_right``: requires_grad=False
    and bn.eval(), so their running statistics are used (torchvision's FrozenBatchNorm2d
    does the same). The planted bug: frozen by requires_grad only, and train() keeps them in
    train mode even under model.eval(), so inference normalises each batch by its own
    statistics, and a batch of 1 by one image's (or fails where the map is 1x1)."""

    def __init__(self, frozen_right: bool = True) -> None:
        super().__init__()
        self.frozen_right = frozen_right
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> FrozenBNResNet:
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.train(not getattr(self, "frozen_right", True))
        return self


def frozen_bn_resnet_bug() -> nn.Module:
    return FrozenBNResNet(frozen_right=False)


def image_class_data(n: int = 48) -> tuple[Tensor, Tensor]:
    """Standardised 32x32 images whose class is the brightest quadrant."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    for i in range(n):
        r, c = divmod(int(y[i]), 2)
        x[i, :, r * 16:(r + 1) * 16, c * 16:(c + 1) * 16] += 1.5
    return x, y


def conv_bn_net(bias: bool) -> Callable[[], nn.Module]:
    """A factory of two conv-BatchNorm-ReLU blocks and a head (4 classes); ``bias``: the
    convs keep a bias that the BatchNorm after them cancels (redundant, zero gradient)."""
    def make() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=bias), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, bias=bias), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    return make


# --- MobileNetV3-Small as torchvision writes it (inverted residuals, SE, hardswish) ----------
def _divisible(v: float, divisor: int = 8) -> int:
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * v else out


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


def _conv_bn_act(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
                 act: type[nn.Module] | None = nn.Hardswish) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups,
                                         bias=False), nn.BatchNorm2d(cout, eps=0.001,
                                                                     momentum=0.01)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, k: int, expanded: int, cout: int, se: bool, hs: bool,
                 stride: int) -> None:
        super().__init__()
        act = nn.Hardswish if hs else nn.ReLU
        layers: list[nn.Module] = []
        if expanded != cin:
            layers.append(_conv_bn_act(cin, expanded, 1, act=act))
        layers.append(_conv_bn_act(expanded, expanded, k, stride, groups=expanded, act=act))
        if se:
            layers.append(SqueezeExcitation(expanded, _divisible(expanded // 4)))
        layers.append(_conv_bn_act(expanded, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.block(x)
        return out + x if self.residual else out


MOBILENET_V3_SMALL = [  # input, kernel, expanded, output, SE, hardswish, stride
    (16, 3, 16, 16, True, False, 2), (16, 3, 72, 24, False, False, 2),
    (24, 3, 88, 24, False, False, 1), (24, 5, 96, 40, True, True, 2),
    (40, 5, 240, 40, True, True, 1), (40, 5, 240, 40, True, True, 1),
    (40, 5, 120, 48, True, True, 1), (48, 5, 144, 48, True, True, 1),
    (48, 5, 288, 96, True, True, 2), (96, 5, 576, 96, True, True, 1),
    (96, 5, 576, 96, True, True, 1)]


class MobileNetV3Small(nn.Module):
    """torchvision's mobilenet_v3_small (weights=None): the same blocks, widths and init,
    written out here because the registry's torchvision does not load against this torch."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_act(3, 16, 3, 2)]
        layers += [InvertedResidual(*cfg) for cfg in MOBILENET_V3_SMALL]
        layers.append(_conv_bn_act(96, 576, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(576, 1024), nn.Hardswish(),
                                        nn.Dropout(0.2), nn.Linear(1024, classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


# --- models with what size must count right ---------------------------------------------------
class BufferedModel(nn.Module):
    """A persistent 4.2 MB positional table (a buffer, saved) and a non-persistent cache."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 4)
        self.register_buffer("table", torch.randn(1024, 1024))  # 4.19 MB, persistent
        self.register_buffer("cache", torch.zeros(256, 256), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x) + self.table[0, :4] * 0


def table_data() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(32, 16, generator=g)
    return x, x[:, :4] * 2


def gpt_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def expected_ln_vocab() -> float:
    return math.log(VOCAB)


def zero_padded_sequence_data() -> tuple[Tensor, Tensor]:
    """The planted bug: padding's targets left as token 0 instead of -100, so the loss
    trains on them like real tokens (the twin: padded_sequence_data)."""
    x, y = sequence_data(pad=True)
    return x, y.clamp_min(0)


# --- Hugging Face style: dict samples, ModelOutput, a model that computes its own loss ---------
class DictSamples(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Token classification samples as a Hugging Face Dataset gives them."""

    def __init__(self, mask_padding: bool = True) -> None:
        self.x, self.y = token_class_data()
        self.mask_padding = mask_padding

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        mask = torch.ones(CONTEXT, dtype=torch.long)
        mask[-2:] = 0 if self.mask_padding else 1
        return {"input_ids": self.x[i], "attention_mask": mask, "labels": self.y[i]}


def tiny_bert() -> nn.Module:
    """BertForSequenceClassification from a tiny config: nothing downloaded."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=CONTEXT * 2, num_labels=4,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))


class DictOutputClassifier(nn.Module):
    """Returns a dict, as many research models do."""

    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(VOCAB, 32)
        self.head = nn.Linear(32, 4)

    def forward(self, ids: Tensor) -> dict[str, Tensor]:
        h = self.tok(ids).mean(1)
        return {"hidden": h, "logits": self.head(h)}


class TupleOutputClassifier(DictOutputClassifier):
    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        out = super().forward(ids)
        return out["logits"], out["hidden"]


class MixedSamples(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """What diag cannot pack: integer ids beside float features of another shape."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"input_ids": torch.arange(CONTEXT), "extra": torch.randn(3),
                "labels": torch.tensor(i % 2)}


class OwnLossLM(nn.Module):
    """Computes its own loss when given labels, shifting them as a causal LM does
    (Hugging Face's *ForCausalLM convention: labels = input_ids)."""

    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(VOCAB, 64)
        self.rnn = nn.GRU(64, 64, batch_first=True)
        self.head = nn.Linear(64, VOCAB)

    def forward(self, input_ids: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
        logits = self.head(self.rnn(self.tok(input_ids))[0])
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB),
                                          labels[:, 1:].reshape(-1))
        return out


class LMSamples(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self) -> None:
        self.x = sequence_data()[0]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"input_ids": self.x[i], "labels": self.x[i]}


# --- a GRU classifier on generated sequences: one rule it learns, one it cannot ----------
class GRUClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(4, 32, batch_first=True)
        self.head = nn.Linear(32, 2)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.gru(x)
        return self.head(out[:, -1])


def sign_sequences(n: int = 512) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` sequences of 20 steps x 4 channels (a fixed generator), and two labels: the sign
    of channel 0's sum (a GRU learns it in 3 epochs), and the sign of the product of
    channels 0's and 1's sums (it learns it at no LR in 3 epochs: benchmarks/lr_tasks.py)."""
    g = torch.Generator().manual_seed(0)
    seq = torch.randn(n, 20, 4, generator=g)
    sums = seq[:, :, 0].sum(1)
    return seq, (sums > 0).long(), (sums * seq[:, :, 1].sum(1) > 0).long()
