"""diag's checks on planted bugs modelled on real reports, each next to its fixed twin.

The expected verdicts and the split (pairs, not cases, are split; a third of the pairs held
out with random.Random(26)) were committed with this file before it ran. A case is right
when its status is among the expected ones and its findings say (or, for a twin, do not
say) the expected words. First run: tune 23/26, held-out 10/12. Three cases were then
repaired as cases, not as verdicts: the two log_softmax losses had no target="index" (they
raised on float targets), and the conv-BN pair was too small to memorise anything.
A third round of 19 pairs (every check, ddp and speed included; each cites the report it is
modelled on) was committed with its expected verdicts and its split before its first run.
A usage error (exit 2, e.g. labels outside the model's classes) scores as status "usage".
Its first run: tune 50/52, held-out 28/28. One case was then repaired as a case: the frozen
pair's twin ran 200 steps at lr 1e-3 and diag rightly said (and confirmed) that the LR was
too low to memorise in that budget; it now runs 300 steps at 0.01 like the other overfit
pairs. The other miss stands: the slow-loader twin passes, but an info finding of it says
"waits for data", the words its label forbids.

    python benchmarks/score_cases.py [--verbose]
"""

from __future__ import annotations

import random
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


@dataclass(frozen=True)
class Pair:
    name: str
    check: str
    source: str
    bug: Callable[[], Any]
    twin: Callable[[], Any]
    bug_status: tuple[str, ...]
    bug_says: str
    twin_status: tuple[str, ...]
    twin_not_says: str


def _table(n: int = 64, classes: int = 3) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 10, generator=g)
    return x, (x @ torch.randn(10, classes, generator=g)).argmax(1)


def _mlp(out: int = 3, last: nn.Module | None = None, bias: float = 0.0) -> Callable[[], Any]:
    def make() -> nn.Module:
        torch.manual_seed(0)
        first = nn.Linear(10, 32)
        if bias:
            nn.init.constant_(first.bias, bias)
        return nn.Sequential(first, nn.ReLU(), nn.Linear(32, out),
                             *([last] if last is not None else []))
    return make


class _ListNet(nn.Module):
    def __init__(self, module_list: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        layers = [nn.Linear(10, 32), nn.Linear(32, 3)]
        self.layers: Any = nn.ModuleList(layers) if module_list else layers
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers[1](F.relu(self.layers[0](x))) * self.scale


def _conv_bn_net(bias: bool) -> Callable[[], nn.Module]:
    """Two conv-BN-ReLU blocks (one, as first written here, could not memorise the subset at
    all, bias or not: a broken case, repaired after the first run)."""
    from architectures import conv_bn_net

    return conv_bn_net(bias)


def _init_check(act: type[nn.Module], std: float, depth: int, width: int = 64,
                bias: float = 0.0) -> Callable[[], Any]:
    """`diag init` on a Linear stack of tests/init_nets.py, on random 4-class labels."""
    from diag import checks

    from init_nets import random_labels, stack

    return lambda: checks.init(model=stack(act, std, depth, width, bias),
                               data=random_labels())


def _regression(raw: bool) -> tuple[Tensor, Tensor]:
    x, _ = _table()
    y = (x @ torch.randn(10, 1, generator=torch.Generator().manual_seed(1))) * 1e5 + 3e5
    return (x, y) if raw else (x, (y - y.mean()) / y.std())


def _steps(kind: str) -> Callable[[], Callable[[], None]]:
    def factory() -> Callable[[], None]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        x, y = torch.randn(32, 8), torch.randn(32, 1)
        kept: list[Any] = []
        total: list[Any] = [0.0]
        if kind == "hook_once":
            model[0].register_forward_hook(lambda m, i, o: None)
        elif kind == "hook_keeps":
            model[0].register_forward_hook(lambda m, i, o: kept.append(o))
        elif kind == "hook_keeps_items":
            model[0].register_forward_hook(
                lambda m, i, o: kept.append(o.detach().abs().mean().item()))

        def step() -> None:
            if kind == "hook_each":
                model[0].register_forward_hook(lambda m, i, o: None)
            opt.zero_grad()
            out = model(x)
            loss = F.mse_loss(out, y)
            loss.backward()
            opt.step()
            if kind == "keep_outputs":
                kept.append(out)
            elif kind == "keep_output_items":
                kept.append(out.mean().item())
            if kind == "append":
                kept.append(loss)
            elif kind == "append_item":
                kept.append(loss.item())
            elif kind == "sum":
                total[0] = total[0] + loss
            elif kind == "sum_item":
                total[0] = total[0] + loss.item()
        return step
    return factory


def log_softmax_batch(pred: Tensor, target: Tensor) -> Tensor:
    return F.nll_loss(F.log_softmax(pred, dim=0), target)


def log_softmax_classes(pred: Tensor, target: Tensor) -> Tensor:
    return F.nll_loss(F.log_softmax(pred, dim=1), target)


def argmax_accuracy_loss(pred: Tensor, target: Tensor) -> Tensor:
    return 1 - (pred.argmax(1) == target).float().mean().requires_grad_()


def rmse(pred: Tensor, target: Tensor) -> Tensor:
    return torch.sqrt(((pred - target) ** 2).mean() + 1e-8)


def batch_standardised_mse(pred: Tensor, target: Tensor) -> Tensor:
    p = (pred - pred.mean(0)) / (pred.std(0) + 1e-6)
    return ((p - target) ** 2).mean()


def _data(kind: str) -> Callable[[], Any]:
    from torch.utils.data import DataLoader, TensorDataset

    from diag import checks

    def run() -> Any:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(256, 8, generator=g)
        y = (x[:, :3].sum(1) > 0).long()
        order = torch.argsort(y)
        if kind in ("sorted", "shuffled"):
            ds = TensorDataset(x[order], y[order])
            return checks.data(data=(x[order], y[order]), loader=lambda: DataLoader(
                ds, batch_size=16, shuffle=kind == "shuffled"))
        if kind == "misaligned":
            perm = torch.randperm(256, generator=torch.Generator().manual_seed(5))
            return checks.data(data=(x, y[perm]))
        if kind == "nan":
            bad = x.clone()
            bad[17, 2] = float("nan")
            return checks.data(data=(bad, y))
        return checks.data(data=(x, y))
    return run


def pairs() -> list[Pair]:
    from diag import checks

    import pipelines

    def overfit(model: Any, data: Any = None, **kw: Any) -> Callable[[], Any]:
        return lambda: checks.overfit(model=model, data=data if data is not None
                                      else _table(), **kw)

    return [
        Pair("double_softmax", "overfit",
             "runebook.dev torch.nn.functional.sigmoid guide ('a super common mistake')",
             overfit(_mlp(3, nn.Softmax(dim=1)), max_steps=300, lr=0.01),
             overfit(_mlp(3), max_steps=300, lr=0.01),
             ("fail",), "softmax", ("pass",), "softmax"),
        Pair("plain_list_layers", "overfit",
             "engineermaxxing.com pytorch-internals lesson; runebook ModuleList page",
             overfit(lambda: _ListNet(False), max_steps=300, lr=0.01),
             overfit(lambda: _ListNet(True), max_steps=300, lr=0.01),
             ("fail",), "ModuleList", ("pass",), "ModuleList"),
        Pair("sigmoid_into_cross_entropy", "overfit",
             "stackoverflow 55469311 (MNIST trained with Sigmoid fails while Softmax works)",
             overfit(_mlp(3, nn.Sigmoid()), max_steps=300),
             overfit(_mlp(3), max_steps=300),
             ("fail",), "probabilities", ("pass", "fail"), "probabilities"),
        Pair("raw_regression_targets", "overfit",
             "discuss.pytorch.org/t/neural-network-could-not-learn-on-this-type-of-data-why/96648",
             overfit(_mlp(1), _regression(True), max_steps=300),
             overfit(_mlp(1), _regression(False), max_steps=300),
             ("fail",), "raw scale", ("pass",), "raw scale"),
        Pair("conv_bias_before_batchnorm", "overfit",
             "discuss.pytorch.org/t/convolution-layers-no-bias-with-batchnorm/144863",
             lambda: checks.overfit(model=_conv_bn_net(True), data=_images(), max_steps=300,
                                    lr=0.01),
             lambda: checks.overfit(model=_conv_bn_net(False), data=_images(), max_steps=300,
                                    lr=0.01),
             ("pass",), "redundant bias", ("pass",), "redundant bias"),
        Pair("saturated_tanh", "init",
             "community.deeplearning.ai weight-initialisation threads (tanh stuck at +-1)",
             _init_check(nn.Tanh, 31 / 64 ** 0.5, 4),
             _init_check(nn.Tanh, 1 / 64 ** 0.5, 4),
             ("warn", "fail"), "saturated", ("pass",), "saturated"),
        Pair("deep_relu_std_one", "init",
             "PyTorch FAQ / He et al.: a deep ReLU net at weight std 1 overflows",
             _init_check(nn.ReLU, 1.0, 30),
             _init_check(nn.ReLU, (2 / 64) ** 0.5, 30),
             ("fail",), "He", ("pass",), "non-finite"),
        Pair("dead_relu_bias", "init",
             "community.deeplearning.ai/t/why-dont-weights-get-adjusted-when-initialized-to-0",
             _init_check(nn.ReLU, (2 / 64) ** 0.5, 4, bias=-10.0),
             _init_check(nn.ReLU, (2 / 64) ** 0.5, 4),
             ("warn", "fail"), "dead", ("pass",), "dead"),
        Pair("unshuffled_sorted_loader", "data",
             "PyTorch DataLoader docs (shuffle=False by default) and class-sorted folders",
             _data("sorted"), _data("shuffled"), ("fail",), "not shuffled", ("pass",),
             "not shuffled"),
        Pair("labels_misaligned", "data",
             "the 'shuffled inputs and labels separately' reports (numpy shuffle twice)",
             _data("misaligned"), _data("clean"), ("fail", "warn"), "align", ("pass",),
             "misaligned"),
        Pair("nan_in_inputs", "data",
             "the 'loss becomes NaN from the first batch' reports: a NaN in the features",
             _data("nan"), _data("clean"), ("fail",), "NaN", ("pass",), "NaN"),
        Pair("losses_appended", "leaks",
             "PyTorch FAQ: 'Don't accumulate history across your training loop'",
             lambda: checks.leaks(step=_steps("append")),
             lambda: checks.leaks(step=_steps("append_item")),
             ("fail",), "leak", ("pass",), "leak"),
        Pair("running_total_tensor", "leaks",
             "PyTorch FAQ: total_loss += loss accumulates the graph",
             lambda: checks.leaks(step=_steps("sum")),
             lambda: checks.leaks(step=_steps("sum_item")),
             ("fail",), "leak", ("pass",), "leak"),
        Pair("hook_every_step", "leaks",
             "PyTorch docs: register_forward_hook returns a handle to remove()",
             lambda: checks.leaks(step=_steps("hook_each")),
             lambda: checks.leaks(step=_steps("hook_once")),
             ("fail",), "hooks pile up", ("pass",), "hooks"),
        Pair("log_softmax_over_batch", "loss-grad",
             "the 'softmax over dim=0' reports (implicit dim choice warnings)",
             lambda: checks.loss_grad(log_softmax_batch, pred_shape=(8, 5), target="index"),
             lambda: checks.loss_grad(log_softmax_classes, pred_shape=(8, 5),
                                      target="index"),
             ("fail",), "mixed", ("pass",), "mixed"),
        Pair("argmax_in_loss", "loss-grad",
             "the 'accuracy as a loss: element 0 does not require grad' reports",
             lambda: checks.loss_grad(argmax_accuracy_loss, pred_shape=(8, 5),
                                      target="index"),
             lambda: checks.loss_grad(log_softmax_classes, pred_shape=(8, 5),
                                      target="index"),
             ("fail", "error"), "", ("pass",), "does not reach"),
        Pair("batch_statistics_in_loss", "loss-grad",
             "regression threads using RMSE; the twin here is RMSE (a shared scalar: info)",
             lambda: checks.loss_grad(batch_standardised_mse, pred_shape=(8, 3)),
             lambda: checks.loss_grad(rmse, pred_shape=(8, 3)),
             ("fail",), "mixed", ("pass",), "mixed"),
        Pair("view_not_permute", "preprocess",
             "openillumi.com: (3, H, W) vs (H, W, 3), 'view() won't work'",
             lambda: checks.preprocess(pipelines.ViewNotPermute(size=64)),
             lambda: checks.preprocess(pipelines.BrowserPipeline(size=64)),
             ("fail",), "", ("pass",), "the image is"),
        Pair("mirrored_image", "preprocess",
             "the 'augmentation left on in evaluation' reports: a horizontal flip",
             lambda: checks.preprocess(pipelines.Flipped(size=64)),
             lambda: checks.preprocess(pipelines.BrowserPipeline(size=64)),
             ("fail",), "flipped horizontally", ("pass",), "flipped"),
        # added after the first run, committed before their own first run
        Pair("persistent_position_table", "size",
             "PyTorch docs: register_buffer(..., persistent=False) keeps a table out of "
             "the state_dict (positional tables saved by mistake)",
             lambda: checks.size(model=lambda: _Buffered(True), data=_pairs8()),
             lambda: checks.size(model=lambda: _Buffered(False), data=_pairs8()),
             ("fail",), "over the 2 MB budget", ("pass",), "over the"),
        Pair("plateau_at_a_high_lr", "lr-schedule",
             "the article: 0.01 -> 0.001 bought a further ~0.3 of loss",
             lambda: checks.lr_schedule(_curve(True), lr=0.01),
             lambda: checks.lr_schedule(_curve(False), lr=0.01),
             ("warn",), "plateau", ("pass",), "plateau"),
        # the third round (19 pairs), expected verdicts and split committed before their
        # first run; a third of them held out (SECOND, split())
        Pair("relu_on_the_regression_output", "overfit",
             "community.deeplearning.ai/t/can-relu-activation-be-used-in-the-last-layer-of-a-"
             "neural-network/549422; stats.stackexchange.com/questions/362588",
             overfit(_mlp(1, nn.ReLU()), _regression(False), max_steps=300),
             overfit(_mlp(1), _regression(False), max_steps=300),
             ("fail",), "bounded", ("pass",), "bounded"),
        Pair("every_parameter_frozen", "overfit",
             "taourl.com/read-1983178.html (parameters not updated: requires_grad=False); "
             "codegenes.net/blog/custom-parameter-not-updating-pytorch",
             overfit(_frozen(True), max_steps=300, lr=0.01),
             overfit(_frozen(False), max_steps=300, lr=0.01),
             ("fail", "error", "usage"), "frozen", ("pass",), "frozen"),
        Pair("labels_start_at_one", "data",
             "taourl.com/read-2964347.html (CrossEntropyLoss: Target is out of bounds)",
             lambda: checks.data(data=_shift_labels(1), model=_mlp(3)),
             lambda: checks.data(data=_shift_labels(0), model=_mlp(3)),
             ("fail", "usage"), "outside 0..2", ("pass", "warn"), "outside"),
        Pair("pixels_left_at_0_255", "data",
             "datascience.stackexchange.com/questions/39929 (85% with /255, 10% without)",
             lambda: checks.data(data=_pixels(True)),
             lambda: checks.data(data=_pixels(False)),
             ("warn", "fail"), "0-255", ("pass",), "0-255"),
        Pair("rare_positive_class", "data",
             "datascience.stackexchange.com/questions/19283 (MLP only learns the bias at "
             "88% negatives)",
             lambda: checks.data(data=_skewed(True)),
             lambda: checks.data(data=_skewed(False)),
             ("warn",), "imbalance", ("pass",), "imbalance"),
        Pair("deep_sigmoid_stack", "init",
             "oalahurikar.github.io/ai-blog/First-Principles/Learning-is-slow-for-sigmoid; "
             "thecodeforge.io/ml-ai/what-is-neural-network (15-layer sigmoid net froze)",
             _init_check(nn.Sigmoid, 1 / 64 ** 0.5, 15),
             _init_check(nn.ReLU, (2 / 64) ** 0.5, 15),
             ("warn", "fail"), "", ("pass",), "vanish"),
        Pair("outputs_kept_for_metrics", "leaks",
             "discuss.pytorch.org/t/gpu-memory-increase-while-i-wanna-to-backward-with-"
             "accumulative-loss/43284 ('I also used list to store some data')",
             lambda: checks.leaks(step=_steps("keep_outputs")),
             lambda: checks.leaks(step=_steps("keep_output_items")),
             ("fail",), "leak", ("pass",), "leak"),
        Pair("hook_keeps_activations", "leaks",
             "theneuralbase.com/pytorch/learn/intermediate/memory-leak-detection/ (logging "
             "hooks capturing activations)",
             lambda: checks.leaks(step=_steps("hook_keeps")),
             lambda: checks.leaks(step=_steps("hook_keeps_items")),
             ("fail",), "leak", ("pass",), "leak"),
        Pair("bce_written_with_log", "loss-grad",
             "e-com-net.com/article/1609698298044645376.htm (hand-written BCE gives nan/inf); "
             "runebook.dev/en/docs/pytorch/generated/torch.log",
             lambda: checks.loss_grad(bce_by_hand, pred_shape=(8, 1), target="binary"),
             lambda: checks.loss_grad(bce_with_logits, pred_shape=(8, 1), target="binary"),
             ("fail",), "NaN/Inf", ("pass",), "NaN/Inf"),
        Pair("learning_rate_diverges", "lr-schedule",
             "datascience.stackexchange.com/questions/15962 (loss from thousands to a "
             "trillion to nan at lr .001)",
             lambda: checks.lr_schedule(_curve_shape("diverge")),
             lambda: checks.lr_schedule(_curve_shape("smooth")),
             ("fail", "warn"), "divergence", ("pass",), "divergence"),
        Pair("learning_rate_oscillates", "lr-schedule",
             "forums.fast.ai/t/loss-fluctuation-over-epoches/18102; "
             "errorhandle.ai/how-to-interpret-zigzag-training-loss",
             lambda: checks.lr_schedule(_curve_shape("oscillate")),
             lambda: checks.lr_schedule(_curve_shape("smooth")),
             ("warn", "fail"), "oscillation", ("pass",), "oscillation"),
        Pair("loader_without_workers", "speed",
             "theneuralbase.com/torchvision/learn/beginner/dataloader-performance-tuning/; "
             "mljourney.com/how-to-debug-slow-pytorch-dataloaders/",
             _speed_loader(True), _speed_loader(False),
             ("warn",), "waits for data", ("pass", "warn"), "waits for data"),
        Pair("training_at_batch_1", "speed",
             "theneuralbase.com/keras/learn/beginner/slow-training-batch-size-and-gpu/",
             _speed_batch(1), _speed_batch(64),
             ("warn",), "under half the knee", ("pass", "warn"), "under half the knee"),
        Pair("random_sampler_under_ddp", "ddp",
             "discuss.pytorch.org/t/distributedsampler/90205 (how DistributedSampler splits "
             "the data set across GPUs)",
             _ddp(loader="random_loader"), _ddp(loader="distributed_loader"),
             ("fail",), "same samples", ("pass",), "same samples"),
        Pair("set_epoch_never_called", "ddp",
             "pytorch/pytorch#31771; discuss.pytorch.org/t/distributedsampler/90205 ('You "
             "should use set_epoch')",
             _ddp(step="step_without_set_epoch"), _ddp(step="step_with_set_epoch"),
             ("warn",), "set_epoch", ("pass",), "never called"),
        Pair("bgr_from_opencv", "preprocess",
             "newbedev.com/how-to-match-cv2-imread-to-the-keras-image-img-load-output; "
             "theneuralbase.com/torchvision/learn/beginner/channel-order-rgb-vs-bgr/",
             lambda: checks.preprocess(pipelines.BGRUndeclared(size=64)),
             lambda: checks.preprocess(pipelines.BGRHonest(size=64)),
             ("fail",), "wrong channels", ("pass",), "wrong channels"),
        Pair("normalised_twice", "preprocess",
             "til.andypai.me/understanding-py-torch-transforms-to-tensor-and-normalize; "
             "stackoverflow.com/questions/65676151",
             lambda: checks.preprocess(pipelines.DoubleNormalised(size=64)),
             lambda: checks.preprocess(pipelines.clean()),
             ("fail",), "twice", ("pass",), "twice"),
        Pair("uint8_brightness_wraps", "preprocess",
             "prodevsblog.com/questions/149601/numpy-uint8-pixel-wrapping-solution/ "
             "(235 + 30 = 9)",
             lambda: checks.preprocess(pipelines.Uint8Wrap(size=64)),
             lambda: checks.preprocess(pipelines.clean()),
             ("fail",), "", ("pass",), "wraps"),
        Pair("weights_all_zero", "init",
             "pages.dogdog.run/machine_learning/weight_initialization.html (equal weights: "
             "every neuron of a layer gives the same output)",
             lambda: checks.init(model=_zero_init(True), data=_table()),
             lambda: checks.init(model=_zero_init(False), data=_table()),
             ("warn", "fail"), "", ("pass",), ""),
    ]


def _frozen(frozen: bool) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        model = _mlp(3)()
        for p in model.parameters():
            p.requires_grad_(not frozen)
        return model
    return make


def _zero_init(zero: bool) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        model = _mlp(3)()
        if zero:
            with torch.no_grad():
                for p in model.parameters():
                    p.zero_()
        return model
    return make


def _shift_labels(by: int) -> tuple[Tensor, Tensor]:
    x, y = _table()
    return x, y + by


def _pixels(raw: bool) -> tuple[Tensor, Tensor]:
    import architectures

    x, y = architectures.image_class_data(48)
    if raw:
        x = ((x - x.min()) / (x.max() - x.min()) * 255).round()
    return x, y


def _skewed(skewed: bool) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(200, 10, generator=g)
    score = x @ torch.randn(10, generator=g)
    cut = score.quantile(0.95 if skewed else 0.5)
    return x, (score > cut).long()


def _curve_shape(kind: str) -> list[float]:
    g = torch.Generator().manual_seed(7)
    t = torch.arange(60, dtype=torch.float64)
    noise = 1 + 0.01 * torch.randn(60, generator=g, dtype=torch.float64)
    base = 0.3 + 1.8 * torch.exp(-t / 15)
    if kind == "diverge":  # falls for 25 epochs, then climbs away and never comes back
        base = torch.where(t < 25, base, base[25] * torch.exp((t - 25) / 4))
    elif kind == "oscillate":  # settles, then swings +-30% around the level every 2 epochs
        base = torch.where(t < 20, base, base[20] * (1 + 0.3 * torch.cos(torch.pi * t)))
    return (base * noise).tolist()


def _speed_loader(slow: bool) -> Callable[[], Any]:
    from diag import checks

    import speed_cases

    loader = speed_cases.sleepy_loader if slow else speed_cases.cached_batches
    return lambda: checks.speed(model=speed_cases.mlp, data=speed_cases.table(),
                                loader=loader, max_batch=8)


def _speed_batch(batch: int) -> Callable[[], Any]:
    from diag import checks

    import speed_cases

    return lambda: checks.speed(model=speed_cases.mlp, data=speed_cases.table(),
                                max_batch=64, batch_size=batch, stop_early=False)


def _ddp(**case: str) -> Callable[[], Any]:
    from diag import checks

    cases = str(Path(__file__).resolve().parents[1] / "tests" / "ddp_cases.py")
    specs = {k: f"{cases}:{v}" for k, v in case.items()}
    if "step" not in specs:
        specs.update(model=f"{cases}:mlp", data=f"{cases}:data")
    return lambda: checks.ddp(**specs)


def bce_by_hand(pred: Tensor, target: Tensor) -> Tensor:
    p = torch.sigmoid(pred)
    return -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()


def bce_with_logits(pred: Tensor, target: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(pred, target)


class _Buffered(nn.Module):
    def __init__(self, persistent: bool) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.register_buffer("table", torch.zeros(1024, 1024), persistent=persistent)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin(x) + self.table[0, :8]


def _pairs8() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)


def _curve(stuck: bool) -> list[float]:
    g = torch.Generator().manual_seed(4)
    t = torch.arange(60, dtype=torch.float64)
    base = 0.6 + 1.5 * torch.exp(-t / 6) if stuck else 0.3 + 1.8 * torch.exp(-t / 40)
    return (base * (1 + 0.01 * torch.randn(60, generator=g, dtype=torch.float64))).tolist()


def _images() -> tuple[Tensor, Tensor]:
    import architectures

    return architectures.image_class_data(48)


FIRST = 19
"""The pairs of the first commit; their split is drawn among them only, so pairs added later
(held out: they had never run) do not move it."""


SECOND = 21
"""Pairs before the third round. Of the third round's pairs a third is held out, drawn
with random.Random(2611); the other two thirds may be tuned on."""


def split(names: list[str]) -> tuple[list[str], list[str]]:
    """(tuning pairs, held-out pairs): a third of the first pairs held out, drawn with
    random.Random(26), the two pairs added after the first run, and a third of the third
    round's, drawn with random.Random(2611)."""
    first = names[:FIRST]
    third = names[SECOND:]
    held = (sorted(random.Random(26).sample(sorted(first), len(first) // 3))
            + names[FIRST:SECOND]
            + sorted(random.Random(2611).sample(sorted(third), len(third) // 3)))
    return [n for n in names if n not in held], held


class _Refused:
    """A usage error (exit 2) as the scorer sees it: status "usage", its line as summary."""

    def __init__(self, exc: Exception) -> None:
        self.status = type("S", (), {"value": "usage"})()
        self.summary = str(exc)
        self.findings: list[Any] = []


def _run(run: Callable[[], Any]) -> Any:
    from diag.errors import UsageError

    try:
        return run()
    except UsageError as exc:
        return _Refused(exc)


def judge(result: Any, statuses: tuple[str, ...], says: str, not_says: str) -> list[str]:
    text = " | ".join([result.summary] + [f.message + " " + f.hint for f in result.findings])
    out = []
    if result.status.value not in statuses:
        out.append(f"status {result.status.value}, expected {'/'.join(statuses)}")
    if says and says.lower() not in text.lower():
        out.append(f"does not say {says!r}")
    if not_says and not_says.lower() in text.lower():
        out.append(f"says {not_says!r}")
    return out


def main() -> None:
    verbose = "--verbose" in sys.argv
    torch.set_num_threads(min(2, torch.get_num_threads()))
    all_pairs = pairs()
    tune, held = split([p.name for p in all_pairs])
    for part, names in (("tune", tune), ("heldout", held)):
        right = total = 0
        for p in all_pairs:
            if p.name not in names:
                continue
            for role, run, statuses, says, not_says in (
                    ("bug", p.bug, p.bug_status, p.bug_says, ""),
                    ("twin", p.twin, p.twin_status, "", p.twin_not_says)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = _run(run)
                wrong = judge(result, statuses, says, not_says)
                total += 1
                right += not wrong
                if wrong or verbose:
                    print(f"  {'ok ' if not wrong else 'BAD'} {p.check:10} {p.name} ({role}): "
                          f"{result.status.value}: {result.summary[:100]}"
                          + (f"\n      {'; '.join(wrong)}" if wrong else ""))
        print(f"{part}: {right}/{total} = {right / max(total, 1):.0%}")


if __name__ == "__main__":
    main()
