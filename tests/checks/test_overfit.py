"""overfit: every failure cause planted in a model that fails with that finding, next to a
clean twin that passes."""

from __future__ import annotations

import math

import pytest
import torch

from diag import checks
from diag.result import CheckResult, Severity, Status

import planted

FAST = {"lr": 1e-2, "max_steps": 300}


def run(model: object, data: tuple[torch.Tensor, torch.Tensor] | None = None,
        **options: object) -> CheckResult:
    return checks.overfit(model, data or planted.regression_data(), **{**FAST, **options})  # type: ignore[arg-type]


def messages(result: object, severity: Severity = Severity.FAIL) -> str:
    return " | ".join(f.message for f in result.findings if f.severity == severity)  # type: ignore[attr-defined]


def test_clean_regressor_passes() -> None:
    r = run(planted.clean_mlp)
    assert r.status == Status.PASS, r
    assert r.metrics["passed"] is True
    assert r.metrics["final_loss"] <= r.metrics["target_loss"]
    assert r.metrics["steps"] < FAST["max_steps"]  # stopped as soon as it passed
    assert r.series["loss"][0] == pytest.approx(r.metrics["initial_loss"], rel=0.5)
    assert not messages(r)


def test_clean_classifier_passes_with_full_accuracy_and_ln_c_info() -> None:
    r = run(planted.clean_classifier, planted.classification_data())
    assert r.status == Status.PASS, r
    assert r.metrics["accuracy"] == 1.0
    assert r.metrics["expected_initial_loss"] == pytest.approx(math.log(5), rel=1e-4)
    info = messages(r, Severity.INFO)
    assert "ln(5)" in info and "as expected" in info


def test_detached_branch_is_found() -> None:
    r = run(planted.DetachedBranch)
    assert r.status == Status.FAIL
    f = next(f for f in r.findings if "never receive a gradient" in f.message)
    assert f.severity == Severity.FAIL and "body" in f.location and "detach" in f.hint


def test_frozen_layer_is_found() -> None:
    r = run(planted.FrozenHead)
    assert r.status == Status.FAIL
    f = next(f for f in r.findings if "frozen" in f.message)
    assert f.severity == Severity.FAIL and f.location == "head"


def test_layers_in_a_plain_list_are_found() -> None:
    r = run(planted.PlainListLayers)
    assert r.status == Status.FAIL
    f = next(f for f in r.findings if "not in model.parameters()" in f.message)
    assert "ModuleList" in f.hint and "layers" in f.location


def test_layer_created_in_forward_is_found() -> None:
    r = run(planted.LayerInForward)
    assert r.status == Status.FAIL
    f = next(f for f in r.findings if "inside forward()" in f.message)
    assert "__init__" in f.hint


def test_loss_that_does_not_move_is_found() -> None:
    r = run(planted.ConstantOutput)
    assert r.status == Status.FAIL
    assert "did not move" in messages(r)


def test_nan_is_found_and_stops_training() -> None:
    r = run(planted.NaNModel)
    assert r.status == Status.FAIL
    assert "NaN/Inf" in messages(r)


def test_relu_on_regressor_with_negative_targets_is_found() -> None:
    r = run(planted.ReluOutput)
    assert r.status == Status.FAIL
    f = next(f for f in r.findings if "cannot reach" in f.message)
    assert "below the lowest" in f.message and "ReLU or clamp" in f.message


def test_sigmoid_on_regressor_with_targets_beyond_one_is_found() -> None:
    r = run(planted.SigmoidOutput, planted.wide_data())
    assert r.status == Status.FAIL
    f = next(f for f in r.findings if "cannot reach" in f.message)
    assert "sigmoid or tanh" in f.message


def test_an_undertrained_model_is_not_blamed_on_its_output_layer() -> None:
    r = run(planted.clean_mlp, planted.wide_data(), max_steps=3, lr=1e-3)
    assert r.status == Status.FAIL
    assert r.metrics["steps"] == 3
    assert not any("cannot reach" in f.message for f in r.findings)
    f = next(f for f in r.findings if f.severity == Severity.FAIL)
    assert "but not to" in f.message and "ReLU" not in f.message


def test_relu_output_is_fine_when_targets_are_nonnegative() -> None:
    r = run(planted.ReluOutput, planted.nonneg_data())
    assert not any("cannot reach" in f.message for f in r.findings)


def test_init_loss_far_from_ln_c_is_reported() -> None:
    r = run(planted.OverconfidentInit, planted.classification_data())
    f = next(f for f in r.findings if "ln(5)" in f.message)
    assert f.severity == Severity.WARN and "far off" in f.message
    assert r.metrics["initial_loss"] > 3 * math.log(5)


def test_dead_relus_are_found() -> None:
    r = run(planted.DeadRelu)
    assert r.status == Status.FAIL
    assert r.metrics["dead_relu_fraction"] == 1.0
    f = next(f for f in r.findings if "ReLU units are dead" in f.message)
    assert f.location == "relu after body"


def test_gradient_norms_per_layer_are_reported() -> None:
    r = run(planted.clean_mlp)
    assert r.metrics["grad_norm_max"] > r.metrics["grad_norm_min"] > 0
    assert r.metrics["grad_norm_max_param"] in {"body.weight", "body.bias", "head.weight",
                                                "head.bias"}
    assert r.plot_data["grad_norm_names"] == ["body.weight", "body.bias", "head.weight",
                                              "head.bias"]


def test_user_model_raising_is_an_error_with_location() -> None:
    r = run(planted.Raises)
    assert r.status == Status.ERROR
    assert "planted failure in forward" in r.summary
    assert r.findings[0].location.startswith("planted.py:")


def test_users_model_and_rng_are_untouched() -> None:
    model = planted.MLP()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    r = run(model)
    # the check really trained a copy: the loss fell and it passed
    assert r.status == Status.PASS and r.metrics["steps"] > 1
    assert r.metrics["final_loss"] < r.metrics["initial_loss"] / 10
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.rand(3), expected_next)


def test_same_seed_same_numbers() -> None:
    a, b = run(planted.clean_mlp), run(planted.clean_mlp)
    assert a.status == b.status == Status.PASS, (a.summary, b.summary)
    assert a.metrics["steps"] > 1
    assert a.to_dict()["metrics"] == b.to_dict()["metrics"]
    assert a.to_dict()["series"] == b.to_dict()["series"]


def test_another_seed_gives_other_numbers() -> None:
    a = checks.overfit(planted.clean_mlp, planted.regression_data(), max_steps=5, seed=0)
    b = checks.overfit(planted.clean_mlp, planted.regression_data(), max_steps=5, seed=1)
    assert a.status == b.status == Status.FAIL  # 5 steps are too few, on purpose
    assert a.series["loss"] != b.series["loss"]


def test_no_tensors_in_results() -> None:
    r = run(planted.clean_mlp)
    values = list(r.metrics.values()) + [v for s in r.series.values() for v in s]
    assert not any(isinstance(v, torch.Tensor) for v in values)


@pytest.mark.slow
def test_default_browser_model_passes_on_generated_data() -> None:
    r = checks.overfit()
    assert r.status == Status.PASS, r.summary
    assert r.metrics["final_loss"] <= 1e-3
    assert "points_pred" in r.plot_data and r.plot_data["images"].shape[1:] == (48, 48, 3)


# --- confirm before you blame: each planted cause is confirmed by a rerun with its fix -----
CONFIRM = {  # name: (model, data, options, the cause diag must confirm)
    "double-softmax": (planted.DoubleSoftmax, planted.classification_data, {},
                       "double_softmax"),
    "sigmoid-on-targets-in-pm4": (planted.SigmoidHead, planted.targets_pm4, {},
                                  "bounded_output"),
    "lr-1e-6": (planted.clean_mlp, planted.regression_data, {"lr": 1e-6}, "lr_too_low"),
    "lr-10-adam": (planted.clean_mlp, planted.regression_data, {"lr": 10.0}, "lr_too_high"),
    "inputs-0-255": (planted.clean_mlp, planted.bytes_data, {}, "unnormalised_inputs"),
    "plain-list": (planted.PlainListLayers, planted.regression_data, {}, "plain_list"),
    "dropout-0.9": (planted.HeavyDropout, planted.regression_data, {}, "dropout"),
    "still-falling-at-the-limit": (planted.clean_mlp, planted.regression_data,
                                   {"max_steps": 40}, "more_steps"),
}


@pytest.mark.parametrize("name", list(CONFIRM))
def test_each_planted_cause_is_confirmed_by_experiment(name: str) -> None:
    model, data, options, cause = CONFIRM[name]
    r = run(model, data(), **options)
    assert r.status == Status.FAIL, r.summary
    assert cause in r.metrics["causes_confirmed"].split(","), (r.metrics, r.summary)
    assert "confirmed:" in r.summary
    top = next(f for f in r.findings if f.message.startswith("confirmed:"))
    assert top.severity == Severity.FAIL and top.hint


@pytest.mark.parametrize("model,data", [
    (planted.clean_classifier, planted.classification_data),
    (planted.linear_head, planted.targets_pm4),
    (planted.clean_mlp, planted.regression_data),
    (planted.clean_mlp, planted.nonneg_data),
], ids=["classifier", "linear-head-pm4", "mlp", "mlp-nonneg"])
def test_the_correct_twins_pass_with_nothing_to_confirm(model: object, data: object) -> None:
    r = run(model, data())  # type: ignore[operator]
    assert r.status == Status.PASS, r.summary
    assert r.metrics["causes_tried"] == ""


def test_two_bugs_are_confirmed_together() -> None:
    r = run(planted.PlainListLayers, planted.regression_data(), lr=1e-6)
    confirmed = r.metrics["causes_confirmed"]
    assert "plain_list" in confirmed and "lr_too_low" in confirmed, r.metrics


def test_confirmation_runs_leave_the_users_model_alone() -> None:
    model = planted.HeavyDropout()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = run(model, planted.regression_data())
    assert "dropout" in r.metrics["causes_confirmed"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.net[2].p == 0.9  # the fix was applied to a copy


def test_no_confirm_reports_evidence_only() -> None:
    r = checks.overfit(planted.DoubleSoftmax, planted.classification_data(), lr=1e-2,
                       confirm=False)
    assert r.status == Status.FAIL and r.metrics["causes_tried"] == ""
    assert not any(f.message.startswith(("confirmed:", "tried")) for f in r.findings)


def test_nothing_confirmed_is_unexplained_with_what_was_tried() -> None:
    r = run(planted.ConstantOutput, planted.regression_data(), max_steps=50)
    assert r.status == Status.FAIL and r.metrics["causes_confirmed"] == ""
    assert any("did not move" in f.message for f in r.findings)
