"""The right cause on the bug classes of issue 26, each planted next to its healthy twin, each
modelled on a real report (cited at the case)."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diag import checks
from diag.result import Severity, Status

import architectures as a
import init_nets


def _messages(r: object) -> str:
    return " | ".join(f.message for f in r.findings)  # type: ignore[attr-defined]


# --- overfit ---------------------------------------------------------------------------------
# discuss.pytorch.org/t/convolution-layers-no-bias-with-batchnorm/144863 and
# ai.stackexchange.com/questions/26525 ("bias gradient of layer before batch normalization
# always zero"): the zero gradient is by construction, not a vanishing gradient.
@pytest.mark.parametrize("bias", [True, False])
def test_a_conv_bias_before_batchnorm_is_redundant_not_vanishing(bias: bool) -> None:
    r = checks.overfit(model=a.conv_bn_net(bias), data=a.image_class_data(48), max_steps=300,
                       lr=0.01)
    assert r.status == Status.PASS, r.summary
    text = _messages(r)
    assert ": vanishing" not in text  # the gradient-norm line calls nothing vanishing
    assert not any(f.severity == Severity.WARN for f in r.findings), text
    redundant = [f for f in r.findings if f.message.startswith("redundant bias")]
    if bias:
        assert redundant and redundant[0].severity == Severity.INFO
        assert redundant[0].location  # which biases
    else:
        assert not redundant


# The fine-tuning recipe (a frozen backbone, a new head): the head memorising the subset is
# a pass, and the frozen parameters are information, not a warning.
def _frozen_backbone(frozen: bool) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(10, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                              nn.Linear(256, 3))
        if frozen:
            for p in list(model.parameters())[:4]:
                p.requires_grad_(False)
        return model
    return make


def _table(n: int = 64) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 10, generator=g)
    return x, (x @ torch.randn(10, 3, generator=g)).argmax(1)


@pytest.mark.parametrize("frozen", [True, False])
def test_parameters_frozen_on_purpose_are_info_when_the_run_passes(frozen: bool) -> None:
    r = checks.overfit(model=_frozen_backbone(frozen), data=_table(), max_steps=800, lr=0.02)
    assert r.status == Status.PASS, r.summary
    f = [f for f in r.findings if "frozen" in f.message]
    assert bool(f) is frozen
    assert all(x.severity == Severity.INFO for x in f)


# stackoverflow 55469311 ("MNIST trained with Sigmoid fails while Softmax works fine") and
# the "sigmoid into CrossEntropyLoss" mistake; binary: a sigmoid before BCEWithLogitsLoss.
def _classifier(out: int, last: nn.Module | None) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        torch.manual_seed(0)
        layers: list[nn.Module] = [nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, out)]
        return nn.Sequential(*layers, *([last] if last is not None else []))
    return make


@pytest.mark.parametrize(("out", "loss", "planted"), [
    (3, None, nn.Sigmoid()),  # multi-class, sigmoid into cross_entropy
    (1, nn.BCEWithLogitsLoss(), nn.Sigmoid()),  # binary, sigmoid into a logits loss
])
def test_probabilities_into_a_logits_loss_are_confirmed(out: int, loss: nn.Module | None,
                                                        planted: nn.Module) -> None:
    x, y = _table()
    data = (x, y) if out > 1 else (x, (x[:, 0] > 0).float().unsqueeze(1))
    r = checks.overfit(model=_classifier(out, planted), data=data, loss=loss, max_steps=300)
    assert r.status == Status.FAIL
    confirmed = next(f for f in r.findings if f.message.startswith("confirmed:"))
    assert "probabilities" in confirmed.message and "logits" in confirmed.message
    assert "remove the sigmoid/softmax" in confirmed.hint
    # the twin, without the sigmoid, is never told about probabilities
    twin = checks.overfit(model=_classifier(out, None), data=data, loss=loss, max_steps=300)
    assert "probabilities" not in _messages(twin)


# discuss.pytorch.org/t/neural-network-could-not-learn-on-this-type-of-data-why/96648 and
# stats.stackexchange.com/questions/409000 (house prices around 250,000 "still working the
# outputs slowly up from zero" after 2,000 epochs): raw regression targets.
def _regressor() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))


def test_raw_regression_targets_are_confirmed_by_standardising_them() -> None:
    x, _ = _table()
    y = (x @ torch.randn(10, 1, generator=torch.Generator().manual_seed(1))) * 1e5 + 3e5
    r = checks.overfit(model=_regressor, data=(x, y), max_steps=300)
    assert r.status == Status.FAIL
    confirmed = next(f for f in r.findings if f.message.startswith("confirmed:"))
    assert "raw scale" in confirmed.message and "standardise the targets" in confirmed.hint
    twin = checks.overfit(model=_regressor, data=(x, (y - y.mean()) / y.std()), max_steps=300)
    assert twin.status == Status.PASS and "raw scale" not in _messages(twin)


# --- init --------------------------------------------------------------------------------------
# Glorot & Bengio's saturated tanh stacks; the reports of "tanh network does not learn, all
# activations at +-1". A pre-activation std around 31 flips sign from sample to sample but
# sits at +-1 every time.
@pytest.mark.parametrize(("std", "saturated"), [(31 / 128 ** 0.5, True),  # pre-act std ~31
                                                (1 / 128 ** 0.5, False)])  # Glorot-like
def test_saturation_is_judged_by_the_derivative_at_the_first_layer(std: float,
                                                                   saturated: bool) -> None:
    r = checks.init(model=init_nets.stack(nn.Tanh, std, 4, width=128),
                    data=init_nets.random_labels())
    f = [f for f in r.findings if "saturated" in f.message]
    assert bool(f) is saturated, _messages(r)
    if saturated:
        assert f[0].location == "0"  # where it starts, not the last tanh
        assert "derivative" in f[0].message and "Glorot" in f[0].hint
        assert r.status in (Status.WARN, Status.FAIL)


@pytest.mark.parametrize("std", [1.0, (2 / 64) ** 0.5])
def test_a_deep_net_at_a_bad_init_fails_with_init_advice(std: float) -> None:
    r = checks.init(model=init_nets.stack(nn.ReLU, std, 30), data=init_nets.random_labels())
    if std == 1.0:
        assert r.status == Status.FAIL, r.summary
        top = next(f for f in r.findings if f.severity == Severity.FAIL)
        assert "He" in top.hint and "last layer" not in top.hint
        assert top.location in ("0", "")  # where it starts, not the output layer
    else:
        assert r.status == Status.PASS, r.summary


# --- data --------------------------------------------------------------------------------------
def test_a_shuffled_regression_loader_passes_and_its_unshuffled_twin_fails() -> None:
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + 0.1 * torch.randn(512, 1, generator=g)
    order = torch.argsort(y[:, 0])  # a CSV sorted by its target
    ds = TensorDataset(x[order], y[order])
    ok = checks.data(data=(x[order], y[order]),
                     loader=lambda: DataLoader(ds, batch_size=32, shuffle=True))
    assert ok.status == Status.PASS, ok.summary
    assert "landmark" not in _messages(ok) and "outside the image" not in _messages(ok)
    bad = checks.data(data=(x[order], y[order]),
                      loader=lambda: DataLoader(ds, batch_size=32, shuffle=False))
    assert bad.status == Status.FAIL and "not shuffled" in bad.summary


# --- leaks -------------------------------------------------------------------------------------
# PyTorch's hook API returns a handle "that can be used to remove the added hook by calling
# handle.remove()"; hooks registered per step pile up even when they keep nothing.
def _hook_steps() -> types.ModuleType:
    mod = types.ModuleType("hook_steps")

    def setup() -> tuple[nn.Module, torch.optim.Optimizer, Tensor, Tensor]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
        return model, torch.optim.SGD(model.parameters(), lr=0.01), torch.randn(32, 8), \
            torch.randn(32, 1)

    def train(model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor) -> None:
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()

    def module_hook_every_step() -> Callable[[], None]:
        model, opt, x, y = setup()

        def step() -> None:
            model[0].register_forward_hook(lambda m, i, o: None)  # LEAK: holds nothing
            train(model, opt, x, y)
        return step

    def tensor_hook_every_step() -> Callable[[], None]:
        model, opt, x, y = setup()

        def step() -> None:
            model[0].weight.register_hook(lambda g: g)  # LEAK: stays on the parameter
            train(model, opt, x, y)
        return step

    def hooks_once() -> Callable[[], None]:
        model, opt, x, y = setup()
        model[0].register_forward_hook(lambda m, i, o: None)
        model[0].weight.register_hook(lambda g: g)

        def step() -> None:
            train(model, opt, x, y)
        return step

    mod.module_hook_every_step = module_hook_every_step  # type: ignore[attr-defined]
    mod.tensor_hook_every_step = tensor_hook_every_step  # type: ignore[attr-defined]
    mod.hooks_once = hooks_once  # type: ignore[attr-defined]
    return mod


@pytest.mark.parametrize(("name", "leaks"), [("module_hook_every_step", True),
                                             ("tensor_hook_every_step", True),
                                             ("hooks_once", False)])
def test_hooks_that_pile_up_are_a_leak_even_when_they_hold_nothing(
        monkeypatch: pytest.MonkeyPatch, name: str, leaks: bool) -> None:
    monkeypatch.setitem(sys.modules, "hook_steps", _hook_steps())
    r = checks.leaks(step=f"hook_steps:{name}")
    if leaks:
        assert r.status == Status.FAIL and "hooks pile up" in r.summary, r.summary
        assert "test_right_causes.py:" in r.summary  # the line that registers them
    else:
        assert r.status == Status.PASS, r.summary


# --- loss-grad ---------------------------------------------------------------------------------
# RMSE (sqrt of the batch mean), a common custom loss in regression threads: one shared
# factor couples the samples, each sample's gradient keeps its direction: info, not fail.
def rmse(pred: Tensor, target: Tensor) -> Tensor:
    return torch.sqrt(((pred - target) ** 2).mean() + 1e-8)


def batch_norm_in_loss(pred: Tensor, target: Tensor) -> Tensor:
    p = (pred - pred.mean(0)) / (pred.std(0) + 1e-6)  # real mixing: statistics over dim 0
    return ((p - target) ** 2).mean()


def test_a_loss_with_one_shared_scalar_is_info_and_real_mixing_still_fails() -> None:
    r = checks.loss_grad(rmse, pred_shape=(8, 3))
    assert r.status == Status.PASS, r.summary
    assert r.metrics["batch_coupling"] == "shared_scalar"
    f = next(f for f in r.findings if "share one scalar factor" in f.message)
    assert f.severity == Severity.INFO
    mixed = checks.loss_grad(batch_norm_in_loss, pred_shape=(8, 3))
    assert mixed.status == Status.FAIL and "samples are mixed" in _messages(mixed)
