"""loss-grad: for every property a planted buggy loss that fails it and a correct twin that
passes, kinked losses included."""

from __future__ import annotations

import pytest
import torch

from diag import checks
from diag.checks.lossgrad.check import kink_probe
from diag.result import CheckResult, Status

import losses


def check(name: str, target: str = "like", **kw: object) -> CheckResult:
    return checks.loss_grad(getattr(losses, name), target=target, **kw)  # type: ignore[arg-type]


CLEAN = [("mse", "like"), ("l1", "like"), ("smooth_l1", "like"), ("hinge", "binary"),
         ("cross_entropy", "index"), ("euclidean_safe", "like"), ("where_safe", "like"),
         ("focal_safe", "index"), ("noisy_mse", "like"), ("sum_mse", "like")]


@pytest.mark.parametrize(("name", "target"), CLEAN, ids=[c[0] for c in CLEAN])
def test_correct_losses_pass(name: str, target: str) -> None:
    r = check(name, target)
    assert r.status == Status.PASS, (r.summary, r.findings)
    m = r.metrics
    assert m["gradient_correct"] and m["finite_at_edges"] and m["batch_independent"]


@pytest.mark.parametrize(("name", "target"), [("l1", "like"), ("hinge", "binary")])
def test_kinks_are_skipped_not_failed(name: str, target: str) -> None:
    r = check(name, target)
    assert r.metrics["grad_kinks_skipped"] > 10
    assert r.status == Status.PASS


def test_torch_gradcheck_trips_on_the_same_kinks() -> None:
    """At the hinge's margin, autograd's subgradient and the central difference disagree:
    gradcheck fails a correct loss there; diag skips the kink and passes it."""
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 2, (8, 10), generator=gen).double()
    pred = torch.rand(8, 10, generator=gen, dtype=torch.float64)
    probe = kink_probe("binary", pred, target, gen).requires_grad_(True)
    ok = torch.autograd.gradcheck(lambda p: losses.hinge(p, target), (probe,),
                                  raise_exception=False)
    assert ok is False


PLANTED = [
    ("wrong_backward", "like", "wrong gradient", "gradient_correct"),
    ("item_inside", "like", "never reaches pred", "grad_reaches_pred"),
    ("detach_inside", "like", "never reaches pred", "grad_reaches_pred"),
    ("numpy_inside", "like", ".numpy()", "grad_reaches_pred"),
    ("log_softmax_naive", "index", "float32 only", "finite_at_edges"),
    ("euclidean_sqrt", "like", "pred == target", "finite_at_edges"),
    ("where_unsafe", "like", "not finite", "finite_at_edges"),
    ("focal_unsafe", "index", "target class at the top", "finite_at_edges"),
    ("softmax_over_batch", "index", "samples are mixed", "batch_independent"),
]


@pytest.mark.parametrize(("name", "target", "needle", "metric"), PLANTED,
                         ids=[p[0] for p in PLANTED])
def test_planted_bugs_fail_their_property(name: str, target: str, needle: str,
                                          metric: str) -> None:
    r = check(name, target)
    assert r.status == Status.FAIL, r.summary
    assert needle in r.summary, r.summary
    assert r.metrics[metric] is False
    assert all(f.hint for f in r.findings if f.severity.value == "fail")


def test_wrong_backward_names_the_element_and_values() -> None:
    r = check("wrong_backward")
    f = next(f for f in r.findings if "wrong gradient" in f.message)
    assert f.location.startswith("pred[") and "by autograd but" in f.message


def test_reduction_and_randomness_are_information() -> None:
    assert check("sum_mse").metrics["reduction"] == "sum"
    assert check("mse").metrics["reduction"] == "mean"
    noisy = check("noisy_mse")
    assert noisy.metrics["deterministic"] is False and noisy.status == Status.PASS


def test_reference_agreement() -> None:
    ok = check("mse", reference=torch.nn.functional.mse_loss)
    assert ok.status == Status.PASS and ok.metrics["reference_match"]
    bad = check("sum_mse", reference=torch.nn.functional.mse_loss)
    assert bad.status == Status.FAIL and "disagrees with the reference" in bad.summary


def test_a_loss_that_raises_is_an_error_with_location() -> None:
    r = check("raises")
    assert r.status == Status.ERROR and "planted failure in the loss" in r.summary
    assert r.findings[0].location.startswith("losses.py:")


@pytest.mark.parametrize(("name", "needle"), [
    ("not_scalar", "not a scalar"),
    ("returns_float", "returned a float, not a tensor"),
])
def test_a_loss_that_returns_no_scalar_tensor_is_a_usage_error(name: str, needle: str) -> None:
    from diag.errors import UsageError

    with pytest.raises(UsageError, match=needle):
        check(name)


def test_default_losses_pass_with_prefixed_metrics() -> None:
    r = checks.loss_grad()
    assert r.status == Status.PASS
    assert r.metrics["landmark_mse.gradient_correct"] and r.metrics["cross_entropy.reduction"]


def test_same_seed_same_numbers() -> None:
    a, b = check("l1"), check("l1")
    assert a.status == b.status == Status.PASS, a.summary
    assert a.metrics["grad_checked"] > 0 and a.metrics["grad_kinks_skipped"] > 0
    assert a.to_dict()["metrics"] == b.to_dict()["metrics"]


def test_target_defaults_to_class_indices_for_classification_data() -> None:
    x, y = torch.randn(8, 3), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    assert checks.loss_grad(losses.cross_entropy, data=(x, y)).metrics["target"] == "index"
    assert checks.loss_grad(losses.mse).metrics["target"] == "like"
