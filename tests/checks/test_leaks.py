"""leaks: every planted leak fails with its creation site; every fixed twin passes."""

from __future__ import annotations

import gc

import pytest
import torch

from diag import checks
from diag.checks.leaks.census import TensorCensus, naive_tensor_count
from diag.result import Status

import leaky

TRAIN_LOSS = "loss = F.mse_loss(model(x), y)"  # where _train() creates each loss
LEAKS = {  # quantity that grows, a word of the hint, the line that creates what leaks
    "accumulate_tensor": ("graph_nodes", "loss.item()", 'state["total"] += loss'),
    "list_of_losses": ("tensors", ".detach()", TRAIN_LOSS),
    "running_average_tensor": ("graph_nodes", ".detach()", 'state["avg"] = 0.9'),
    "hook_every_iteration": ("tensors", "handle.remove()", TRAIN_LOSS),
    "validation_without_no_grad": ("bytes", "torch.no_grad()", 'state["val"] += F.mse_loss'),
    "unbounded_prediction_cache": ("tensors", "deque", "cache[counter[0]] = model(x)"),
}
TWINS = ["clean", "numpy_latest", "accumulate_item", "list_of_floats", "running_average_detached", "hook_once",
         "validation_with_no_grad", "bounded_ring_buffer", "unfreeze_mid_run"]


def leaky_line(snippet: str) -> str:
    """``leaky.py:N`` of the first line of tests/leaky.py containing ``snippet``."""
    with open(leaky.__file__) as fh:
        number = next(i for i, line in enumerate(fh, 1) if snippet in line)
    return f"leaky.py:{number}"


@pytest.mark.parametrize("name", list(LEAKS))
def test_planted_leak_fails_with_site_and_hint(name: str) -> None:
    quantity, hint, created = LEAKS[name]
    r = checks.leaks(getattr(leaky, name))
    assert r.status == Status.FAIL, r.summary
    assert quantity in r.metrics["growing"].split(",")
    assert r.metrics[f"{quantity}_per_iter"] > 0
    all_hints = " ".join(f.hint for f in r.findings)
    assert hint in all_hints
    locations = {f.location for f in r.findings}
    assert leaky_line(created) in locations, (locations, leaky_line(created))
    assert r.summary.startswith("leak: ")


@pytest.mark.parametrize("name", TWINS)
def test_fixed_twin_passes(name: str) -> None:
    r = checks.leaks(getattr(leaky, name))
    assert r.status == Status.PASS, (r.summary, r.findings)
    assert r.metrics["leak"] is False


def test_tensors_made_out_of_sight_are_still_counted() -> None:
    r = checks.leaks(leaky.numpy_cache)
    assert r.status == Status.FAIL, r.summary
    assert r.metrics["untracked_tensors_per_iter"] == pytest.approx(1.0)
    f = next(f for f in r.findings if "cannot see" in f.message)
    assert "float64[4]" in f.message and "held in a list" in f.message


@pytest.mark.parametrize("order", ["as is", "reversed"])
def test_the_example_out_of_sight_is_the_leak_not_this_steps_gradients(
        monkeypatch: pytest.MonkeyPatch, order: str) -> None:
    """Gradients are made where the mode cannot see too, and are new every iteration: the
    example must be a tensor that outlived one, whatever order the gc lists objects in."""
    listed = gc.get_objects
    if order == "reversed":
        monkeypatch.setattr(gc, "get_objects", lambda *a: list(reversed(listed(*a))))
    r = checks.leaks(leaky.numpy_cache)
    f = next(f for f in r.findings if "cannot see" in f.message)
    assert "float64[4]" in f.message and "held in a list" in f.message


def test_a_leak_inside_optimizer_step_is_counted() -> None:
    """The census steps out of optimizer.step() for speed; the gc scans still see it."""
    r = checks.leaks(leaky.optimizer_history)
    assert r.status == Status.FAIL, r.summary
    assert r.metrics["untracked_tensors_per_iter"] == pytest.approx(4.0)  # 4 parameters


def test_a_users_own_mode_inside_step_still_works() -> None:
    from torch.overrides import TorchFunctionMode

    calls = []

    class Counting(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            calls.append(func)
            return func(*args, **(kwargs or {}))

    def factory():  # type: ignore[no-untyped-def]
        inner = leaky.clean()

        def step() -> None:
            with Counting():
                inner()

        return step

    r = checks.leaks(factory)
    assert r.status == Status.PASS and calls


def test_one_tensor_per_iteration_is_reported_within_ten_iterations() -> None:
    r = checks.leaks(leaky.list_of_losses, iterations=15, warmup=5)
    assert r.status == Status.FAIL
    assert r.metrics["tensors_per_iter"] == pytest.approx(1.0)
    message = r.findings[0].message
    assert message.startswith("+1 tensor/iter") and "float32[] (mse_loss)" in message
    # 15 iterations, then 6 more with creation sites on (run only because it grows)
    assert r.metrics["attribution_iterations"] == 6
    assert "held in a list of 21 items" in message


def test_naive_gc_census_misses_what_ours_sees() -> None:
    """The PyTorch FAQ leak: Python tensor objects stay flat, the graph grows."""
    step = leaky.accumulate_tensor()
    census = TensorCensus()
    naive, nodes = [], []
    for i in range(12):
        census.iteration = i
        with census:
            step()
        gc.collect()
        naive.append(naive_tensor_count())
        nodes.append(census.take().graph_nodes)
    assert naive[-1] == naive[4]  # flat
    assert nodes[-1] - nodes[4] == 7 * 7  # +7 nodes per iteration


def test_graph_held_tensors_are_counted() -> None:
    model = torch.nn.Linear(4, 4)
    census = TensorCensus()
    keep: dict[str, torch.Tensor] = {}
    with census:
        h = torch.tanh(model(torch.randn(3, 4)))  # tanh saves its result
        keep["out"] = (h * 2).sum()
        del h
    snap = census.take()
    assert snap.graph_nodes >= 4
    assert snap.tensors >= 3


def test_step_that_raises_is_an_error_with_location() -> None:
    r = checks.leaks(leaky.raises)
    assert r.status == Status.ERROR
    assert "iteration 3" in r.summary and "leaky.py:" in r.findings[0].location


def test_default_training_loop_is_clean() -> None:
    r = checks.leaks(input_size=32, iterations=12)
    assert r.status == Status.PASS, r.findings
    assert set(r.series) >= {"tensors", "storages", "bytes", "graph_nodes"}
    assert len(r.series["tensors"]) == 12


def test_too_few_iterations_is_a_usage_error() -> None:
    from diag.errors import UsageError

    with pytest.raises(UsageError, match="fewer than 4 iterations"):
        checks.leaks(leaky.clean, iterations=6, warmup=5)


def test_same_seed_same_numbers() -> None:
    ra, rb = checks.leaks(leaky.list_of_losses), checks.leaks(leaky.list_of_losses)
    assert ra.status == rb.status == Status.FAIL  # the planted leak, found both times
    a, b = ra.to_dict(), rb.to_dict()
    assert a["metrics"] == b["metrics"]
    for key in ("tensors", "storages", "bytes", "graph_nodes"):
        assert a["series"][key] == b["series"][key]


# --- phase one by gc scans (the gc's generations frozen), and its fallback -----------------
def test_a_scanning_census_counts_what_the_mode_cannot_see() -> None:
    import numpy as np

    census = TensorCensus(attribute=False, scan=True)
    kept: list[torch.Tensor] = []
    census.begin()
    try:
        assert census.scanning
        counts = []
        for i in range(3):
            census.iteration = i
            with census:  # no mode pushed in phase one: nothing is intercepted
                assert torch._C._len_torch_function_stack() == 0
                kept.append(torch.from_numpy(np.ones(4)))
            counts.append(census.take().tensors)
    finally:
        census.end()
    assert counts[1] - counts[0] == counts[2] - counts[1] == 1
    assert gc.get_freeze_count() == 0


def test_the_check_leaves_the_gc_as_it_found_it() -> None:
    r = checks.leaks(leaky.list_of_losses, iterations=12, warmup=4)
    assert r.status == Status.FAIL and gc.get_freeze_count() == 0
    r = checks.leaks(leaky.raises)
    assert r.status == Status.ERROR and gc.get_freeze_count() == 0


def test_a_caller_who_froze_the_gc_gets_the_mode_and_keeps_the_freeze() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        census = TensorCensus(attribute=False, scan=True)
        census.begin()
        assert not census.scanning  # unfreezing at the end would free the caller's objects
        census.end()
        r = checks.leaks(leaky.numpy_cache)
        assert r.status == Status.FAIL
        assert r.metrics["untracked_tensors_per_iter"] == pytest.approx(1.0)
        r = checks.leaks(leaky.list_of_losses, iterations=15, warmup=5)
        assert r.status == Status.FAIL and "float32[] (mse_loss)" in r.findings[0].message
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
