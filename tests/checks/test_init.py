"""init: each planted step-0 bug is found and named, next to its correct twin, which
passes; the browser nets pass on the defaults; the user's model is untouched."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from diag import checks
from diag.model import expression_net, landmark_net, tiny_classifier
from diag.result import Severity, Status

import init_nets

init = checks.init
DATA = init_nets.table()


def _bad(result: object) -> list[str]:
    return [f.message for f in result.findings  # type: ignore[attr-defined]
            if f.severity in (Severity.WARN, Severity.FAIL)]


@pytest.mark.parametrize("task", ["landmarks", "classify"])
def test_the_default_browser_nets_pass(task: str) -> None:
    r = init(task=task)
    assert r.status == Status.PASS, r.summary
    assert r.metrics["layers"] == 18
    assert r.metrics["skip_connections"] == 9  # the dense blocks' sums, credited
    # their forward signal really shrinks through the Glorot depthwise convs: said, as info
    assert any("vanishing signal" in f.message and f.severity == Severity.INFO
               for f in r.findings)


@pytest.mark.parametrize("make", [landmark_net, expression_net,
                                  lambda: tiny_classifier(7)],
                         ids=["landmark", "expression", "classifier-7"])
def test_the_full_browser_nets_pass(make: object) -> None:
    data = (torch.rand(8, 3, 48, 48), torch.rand(8, 136)) if make is landmark_net else (
        torch.rand(8, 3, 48, 48), torch.arange(8) % 7)
    r = init(model=make, data=data, batch_size=8)
    assert r.status == Status.PASS, r.summary


def test_a_deep_sigmoid_stack_has_a_vanishing_gradient_named_where_it_starts() -> None:
    r = init(model=init_nets.sigmoid_stack, data=DATA)
    assert r.status == Status.FAIL
    [finding] = [f for f in r.findings if f.severity == Severity.FAIL]
    assert finding.message.startswith("vanishing gradient")
    assert "no residual or dense connections" in finding.message
    assert finding.location.startswith("hidden.")
    assert r.metrics["grad_ratio"] < 1e-3


def test_the_same_depth_with_relu_and_skips_is_healthy_and_credited() -> None:
    r = init(model=init_nets.residual_stack, data=DATA)
    assert r.status == Status.PASS, r.summary
    assert r.metrics["skip_connections"] == init_nets.DEPTH - 2
    assert 1e-3 < r.metrics["grad_ratio"] < 1e3
    assert any("residual or dense connections keep them flat" in f.message
               for f in r.findings)


def test_a_last_layer_scaled_by_100_starts_far_above_ln_c() -> None:
    r = init(model=init_nets.big_logits, data=DATA)
    assert r.status == Status.WARN
    assert r.metrics["expected_loss"] == pytest.approx(math.log(4), rel=1e-5)
    assert r.metrics["loss_at_init"] > 3 * math.log(4)
    [msg] = _bad(r)
    assert "loss at init" in msg and "ln(4)" in msg
    assert any(f.severity == Severity.INFO and "head" in f.message and "Glorot" in f.message
               for f in r.findings)  # its weights are far from any scheme


def test_the_unscaled_twin_starts_at_ln_c() -> None:
    r = init(model=init_nets.small_logits, data=DATA)
    assert r.status == Status.PASS, r.summary
    assert abs(r.metrics["loss_at_init"] - math.log(4)) < 0.3


def test_a_relu_layer_with_bias_minus_10_is_dead() -> None:
    r = init(model=init_nets.dead_relu, data=DATA)
    assert r.status == Status.FAIL
    [finding] = [f for f in r.findings if f.severity == Severity.FAIL]
    assert finding.location == "fc2" and "100%" in finding.message
    assert "bias averages 10" in finding.message
    assert r.metrics["worst_dead_fraction"] == 1.0


def test_the_zero_bias_twin_is_alive() -> None:
    r = init(model=init_nets.live_relu, data=DATA)
    assert r.status == Status.PASS, r.summary
    assert r.metrics["worst_dead_fraction"] < 0.5


def test_saturated_sigmoids_are_named() -> None:
    class Saturated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 32)
            self.head = nn.Linear(32, 4)
            with torch.no_grad():
                self.fc.bias.fill_(20.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.sigmoid(self.fc(x)))

    r = init(model=Saturated, data=DATA)
    assert r.metrics["worst_saturated_fraction"] == 1.0
    assert any(f.location == "fc" and "saturated" in f.message for f in r.findings)


def test_mse_loss_at_init_is_compared_with_predicting_zeros() -> None:
    x = torch.randn(64, 16)
    y = torch.randn(64, 4)  # standardised targets: predicting zeros costs their variance

    def big() -> nn.Module:
        m = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
        with torch.no_grad():
            m[2].weight.mul_(100)
        return m

    r = init(model=big, data=(x, y))
    assert r.metrics["expected_loss"] == pytest.approx(float((y[:32] ** 2).mean()), rel=0.5)
    assert any("predicting zeros" in m for m in _bad(r))


def test_the_users_model_and_rng_are_untouched() -> None:
    model = init_nets.Small()
    before = copy.deepcopy(model.state_dict())
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    init(model=model, data=DATA)
    assert torch.equal(torch.rand(3), expected)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.grad is None for p in model.parameters())


def test_same_seed_same_numbers() -> None:
    a = init(model=init_nets.residual_stack, data=DATA, seed=3).to_dict()
    b = init(model=init_nets.residual_stack, data=DATA, seed=3).to_dict()
    assert a["metrics"] == b["metrics"] and a["series"] == b["series"]


def test_a_forward_that_raises_is_the_checks_error_with_its_line() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 4)

        calls = 0  # on the class: every copy diag makes shares it

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            type(self).calls += 1
            if type(self).calls > 1:  # passes the plan's fit probe, fails in the check
                raise RuntimeError("boom")
            return self.fc(x)

    r = init(model=Broken(), data=DATA)
    assert r.status == Status.ERROR
    assert "boom" in r.summary and "test_init.py:" in r.findings[0].location


def test_the_plot_has_a_title_and_log_axes() -> None:
    from diag.checks.init.figures import figures

    figs = figures(init(model=init_nets.sigmoid_stack, data=DATA))
    fig = figs["layers"]
    top, bottom = fig.axes
    assert top.get_title() and top.get_yscale() == "log"
    assert "log scale" in top.get_ylabel() and bottom.get_xlabel()


def test_attention_and_recurrent_layers_count_and_pass() -> None:
    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Linear(4, 32)
            self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(
                32, 4, 64, batch_first=True, dropout=0.0), 2)
            self.rnn = nn.LSTM(32, 32, batch_first=True)
            self.head = nn.Linear(32, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.enc(self.emb(x.view(x.shape[0], 4, 4)))
            return self.head(self.rnn(h)[0][:, -1])

    r = init(model=Encoder, data=DATA)
    assert r.status == Status.PASS, r.summary
    names = str(r.metrics["layer_names"]).split(",")
    assert "enc.layers.0.self_attn" in names and "rnn" in names  # in_proj_weight, weight_ih
    assert r.metrics["skip_connections"] == 4  # two residual sums per encoder layer


def test_a_relu6_written_as_hardtanh_0_6_is_judged_by_its_own_bounds() -> None:
    class Clamped(nn.Module):
        def __init__(self, bias: float) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 32)
            self.head = nn.Linear(32, 4)
            with torch.no_grad():
                self.fc.bias.fill_(bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.nn.functional.hardtanh(self.fc(x), 0.0, 6.0))

    healthy = init(model=lambda: Clamped(2.0), data=DATA)  # mostly in 1..6: fine for 0..6
    assert healthy.metrics["worst_saturated_fraction"] == 0.0, healthy.summary
    stuck = init(model=lambda: Clamped(20.0), data=DATA)  # every unit at the top, 6
    assert stuck.metrics["worst_saturated_fraction"] == 1.0
