"""diag.watch inside a plain training loop: each planted bug next to its clean twin, and the
promise that the watch never changes training."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import diag
from diag.errors import UsageError
from diag.result import Severity, Status


def _problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    x = torch.randn(256, 8)
    return model, x, x @ torch.randn(8, 1)


def _loop(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
          w: Any, steps: int = 120, keep: list[Any] | None = None,
          sched: Any = None) -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (32,), generator=g)
        loss = F.mse_loss(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        opt.zero_grad()
        if sched is not None:
            sched.step()
        if keep is not None:
            keep.append(loss)  # LEAK: each loss keeps its graph alive
        if w is not None:
            w.step(loss)


def _watched(tmp_path: Path, **kw: Any) -> tuple[Any, list[warnings.WarningMessage]]:
    model, x, y = _problem()
    opt = kw.pop("opt", None) or torch.optim.Adam(model.parameters(), lr=1e-2)
    loop_kw = {k: kw.pop(k) for k in ("keep", "sched", "steps") if k in kw}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with diag.watch(model, opt, out=tmp_path / "r", **kw) as w:
            _loop(model, opt, x, y, w, **loop_kw)
    return w, caught


def test_a_clean_loop_passes_and_writes_the_report_files(tmp_path: Path) -> None:
    w, caught = _watched(tmp_path)
    assert w.result.status == Status.PASS, w.result.summary
    assert not [c for c in caught if issubclass(c.category, diag.DiagWarning)]
    assert w.result.metrics["steps"] == w.result.metrics["optimizer_steps"] == 120
    for name in ("watch.json", "summary.md", "report.json", "watch_curve.png"):
        assert (tmp_path / "r" / name).exists(), name
    doc = json.loads((tmp_path / "r" / "watch.json").read_text())
    assert doc["checks"][0]["name"] == "watch"
    # its own time is accounted (step(), the optimizer hook), within the loop's time
    assert 0 < w.own_seconds < w.loop_seconds
    assert "own" not in json.dumps(doc["checks"][0]["metrics"])  # timings stay out


def test_a_leak_in_the_loop_is_named_with_its_line_once(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    kept: list[Any] = []
    with caplog.at_level(logging.WARNING, logger="diag.watch"):
        w, caught = _watched(tmp_path, keep=kept)
    assert w.result.status == Status.FAIL
    leak = next(f for f in w.findings if f.message.startswith("leak"))
    assert leak.location.startswith("test_watch.py:")
    ours = [c for c in caught if issubclass(c.category, diag.DiagWarning)]
    assert sum("leak" in str(c.message) for c in ours) == 1  # once, when first seen
    assert any("leak" in r.getMessage() for r in caplog.records)


def test_a_running_total_of_losses_is_a_leak_and_the_plain_loop_is_not() -> None:
    """`total = total + loss` keeps every step's graph alive through one tensor: the tensor
    count stays flat, the graph grows. The watch does not walk the current loss's own graph
    (the same size every step): the growth is reached from the running total."""
    for leak in (True, False):
        model, x, y = _problem()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        g = torch.Generator().manual_seed(1)
        total = torch.zeros(())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with diag.watch(model, opt, out=None) as w:
                for _ in range(120):
                    idx = torch.randint(0, len(x), (32,), generator=g)
                    loss = F.mse_loss(model(x[idx]), y[idx])
                    loss.backward()
                    opt.step()
                    opt.zero_grad()
                    total = total + loss if leak else total + loss.item()
                    w.step(loss)
        assert w.result is not None
        assert w.result.metrics["leak"] is leak, (leak, w.result.summary)


def test_a_flat_loss_is_no_learning_on_a_fresh_run_and_a_plateau_on_a_resumed_one() -> None:
    """The same flat curve (an LR of 1e-12): from a fresh optimizer it is a model that does
    not learn (fail, "run diag overfit"); from an optimizer that already has state, training
    was resumed where it had stopped, and "find the bug" would be wrong advice."""
    for resumed in (False, True):
        model, x, y = _problem()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        if resumed:
            _loop(model, opt, x, y, None, steps=30)  # training before the watch
        for group in opt.param_groups:
            group["lr"] = 1e-12
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with diag.watch(model, opt, out=None) as w:
                for _ in range(60):  # the whole set each step: a loss that does not move
                    loss = F.mse_loss(model(x), y)
                    loss.backward()
                    opt.step()
                    opt.zero_grad()
                    w.step(loss)
        assert w.result is not None
        messages = [f.message for f in w.findings]
        assert any(m.startswith("no learning") for m in messages) is not resumed, messages
        if resumed:
            plateau = next(f for f in w.findings if "resumed run" in f.message)
            assert plateau.severity == Severity.WARN and "overfit" not in plateau.hint


def test_an_lr_of_zero_is_named_not_a_plateau_or_a_model_bug() -> None:
    """LR 0 (a warm-up that never starts, a decay to 0): the weights never move; "lower the
    LR" or "run diag overfit" would be wrong. Its twin at 1e-2 learns and passes."""
    for lr in (0.0, 1e-2):
        model, x, y = _problem()
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with diag.watch(model, opt, out=None) as w:
                _loop(model, opt, x, y, w, steps=60)
        assert w.result is not None
        zero = [f for f in w.findings if f.message.startswith("the learning rate is 0")]
        assert bool(zero) is (lr == 0.0), [f.message for f in w.findings]
        if lr == 0.0:
            assert w.result.status == Status.FAIL
            assert not [f for f in w.findings if f.severity in (Severity.FAIL, Severity.WARN)
                        and f not in zero and "lower the LR" in f.hint]


def test_a_non_finite_gradient_names_the_step_and_the_parameter(tmp_path: Path) -> None:
    model, x, y = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=1e6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with diag.watch(model, opt, out=None) as w:
            _loop(model, opt, x, y, w, steps=30)
    f = next(f for f in w.findings if "non-finite" in f.message)
    assert f.severity == Severity.FAIL and "step" in f.message
    assert f.location in ("0.weight", "0.bias", "2.weight", "2.bias") or "step" in f.location


def test_raise_on_fail_stops_training(tmp_path: Path) -> None:
    model, x, y = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=1e6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(diag.WatchFailure, match="non-finite"):
            with diag.watch(model, opt, out=None, raise_on="fail") as w:
                _loop(model, opt, x, y, w, steps=30)


def test_the_watch_never_changes_training() -> None:
    def train(watched: bool) -> dict[str, torch.Tensor]:
        model, x, y = _problem()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        torch.manual_seed(123)  # the RNG stream the loop draws from must not move either
        if watched:
            with diag.watch(model, opt, out=None, every=10) as w:
                _loop(model, opt, x, y, w, steps=60)
                after = torch.rand(3)
        else:
            _loop(model, opt, x, y, None, steps=60)
            after = torch.rand(3)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        state["rng"] = after
        state.update({f"opt.{i}.{k}": v.clone() for i, s in opt.state_dict()["state"].items()
                      for k, v in s.items() if isinstance(v, torch.Tensor)})
        return state

    a, b = train(False), train(True)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_amp_skipped_steps_are_not_findings_and_steps_count_per_optimizer_step() -> None:
    model, x, y = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu")
    with diag.watch(model, opt, out=None) as w:
        for i in range(12):
            loss = F.mse_loss(model(x[:32]), y[:32])
            scaler.scale(loss).backward()
            if i == 5:  # an overflow, as fp16 gives: GradScaler skips this step
                model[0].weight.grad[0, 0] = float("inf")
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
            w.step(loss)
    assert not any("non-finite" in f.message for f in w.findings)
    assert w.result.metrics["optimizer_steps"] == 11 and w.result.metrics["steps"] == 12


def test_gradient_accumulation_counts_optimizer_steps() -> None:
    model, x, y = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    with diag.watch(model, opt, out=None) as w:
        for i in range(40):
            F.mse_loss(model(x[i:i + 8]), y[i:i + 8]).div(4).backward()
            if (i + 1) % 4 == 0:
                opt.step()
                opt.zero_grad()
                w.step(torch.tensor(1.0))
    assert w.result.metrics["steps"] == w.result.metrics["optimizer_steps"] == 10


@pytest.mark.parametrize("per_batch", [True, False])
def test_an_lr_collapsed_by_a_per_batch_scheduler_is_found(tmp_path: Path,
                                                           per_batch: bool) -> None:
    model, x, y = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    # StepLR(step_size=10, gamma=0.5) meant per epoch, stepped per batch: 1,000x down by 100
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10 if per_batch else 10_000,
                                            gamma=0.5)
    w, _ = _watched(tmp_path, opt=opt, sched=sched, steps=300)
    found = [f for f in w.findings if f.message.startswith("LR collapse")]
    assert bool(found) is per_batch, [f.message for f in w.findings]
    if per_batch:
        assert "per batch instead of per epoch" in found[0].message


def test_a_dead_layer_is_found_and_its_live_twin_is_not() -> None:
    for dead in (True, False):
        model, x, y = _problem()
        if dead:
            with torch.no_grad():
                model[0].bias.fill_(-100.0)  # every ReLU off for every sample
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with diag.watch(model, opt, out=None) as w:
                _loop(model, opt, x, y, w, steps=40)
        assert any(f.message.startswith("dead layer") for f in w.findings) is dead


def test_validation_points_rising_are_overfitting_at_exit() -> None:
    model, x, y = _problem()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with diag.watch(model, opt, out=None) as w:
            _loop(model, opt, x, y, w, steps=30)
            for epoch, v in enumerate([1.0, 0.7, 0.5, 0.45, 0.47, 0.6, 0.8, 1.0, 1.2, 1.4]):
                w.val(v, step=epoch)
    assert any("overfitting" in f.message for f in w.findings)


def test_data_waits_are_measured_and_the_loader_is_given_back() -> None:
    model, x, y = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    cls = type(loader)
    with diag.watch(model, opt, out=None, loader=loader) as w:
        for xb, yb in loader:
            loss = F.mse_loss(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
            w.step(loss)
    assert type(loader) is cls
    assert 0.0 <= w.result.metrics["data_wait_fraction"] <= 1.0
    assert w.result.metrics["steps"] == 8


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    (("not a model",), {}, "nn.Module"),
    ((nn.Linear(2, 2), "adam"), {}, "optimizer"),
    ((nn.Linear(2, 2),), {"every": 0}, "every"),
    ((nn.Linear(2, 2),), {"raise_on": "sometimes"}, "raise_on"),
])
def test_bad_arguments_are_one_line_usage_errors(args: tuple[Any, ...],
                                                 kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        diag.watch(*args, **kwargs)


def test_importing_diag_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, diag; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


Factory = Callable[[], Any]


def test_a_nan_from_log_of_zero_at_step_37_is_named_at_that_step() -> None:
    for planted in (True, False):
        model, x, y = _problem()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with diag.watch(model, opt, out=None) as w:
                for i in range(1, 51):
                    p = torch.sigmoid(model(x[:32]))
                    if planted and i == 37:
                        p = p * 0  # a probability of exactly 0 reaches the log
                    loss = -torch.log(p).mean() + F.mse_loss(p, torch.sigmoid(y[:32]))
                    loss.backward()
                    opt.step()
                    opt.zero_grad()
                    w.step(loss)
        found = [f for f in w.findings if f.message.startswith("non-finite loss at step 37")]
        assert bool(found) is planted, [f.message for f in w.findings]


@pytest.mark.parametrize("stuck", [True, False])
def test_a_plateau_is_reported_and_a_falling_loss_is_not(stuck: bool) -> None:
    model, x, y = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with diag.watch(model, opt, out=None, every=50) as w:
            for i in range(200):
                loss = F.mse_loss(model(x[:32]), y[:32])
                loss.backward()
                opt.step()
                opt.zero_grad()
                # the loop's logged value: what a stuck model logs, or a steady fall
                shown = (1.0 if stuck and i > 40 else 2.0 - i / 100) + 0.01 * float(
                    torch.randn(1, generator=g))
                w.step(torch.tensor(shown))
    assert any(f.message.startswith("plateau") for f in w.findings) is stuck


@pytest.mark.parametrize("slow", [True, False])
def test_a_slow_loader_is_found(slow: bool) -> None:
    """Sleep-dominated on both sides, so no machine is fast or slow enough to flip it: the
    slow loader sleeps 20 ms per batch, the twin's step does."""
    import time

    class Batches:
        def __init__(self, n: int) -> None:
            self.n = n

        def __iter__(self) -> Any:
            for _ in range(self.n):
                if slow:
                    time.sleep(0.02)
                yield torch.randn(4, 8), torch.randn(4, 1)

    model, _, _ = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    loader = Batches(15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with diag.watch(model, opt, out=None, loader=loader) as w:
            for xb, yb in loader:
                loss = F.mse_loss(model(xb), yb)
                loss.backward()
                opt.step()
                opt.zero_grad()
                if not slow:
                    time.sleep(0.02)  # the work of the step
                w.step(loss)
    assert any("waits for data" in f.message for f in w.findings) is slow
    assert type(loader) is Batches


def test_a_compiled_model_is_watched_from_outside() -> None:
    model, x, y = _problem()
    compiled = torch.compile(model, backend="eager")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    kept: list[Any] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with diag.watch(compiled, opt, out=None) as w:
            for i in range(60):
                loss = F.mse_loss(compiled(x[i:i + 32]), y[i:i + 32])
                loss.backward()
                opt.step()
                opt.zero_grad()
                kept.append(loss)  # LEAK, found through the compiled module too
                w.step(loss)
    assert w.result.metrics["optimizer_steps"] == 60
    assert any(f.message.startswith("leak") for f in w.findings)


def test_objects_the_loop_keeps_are_frozen_not_rescanned_and_tensors_still_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop that keeps a Python list a step (a metrics log) made every census scan longer:
    20,000 kept lists cost 1.7 ms a step. The scan now freezes what it has seen once the
    young objects pass REFREEZE_AT: the scan stays short, and the tensors kept across the
    freezes are still counted, one more each step."""
    from diag.checks.leaks.census import TensorCensus

    monkeypatch.setattr(TensorCensus, "REFREEZE_AT", 300)
    census = TensorCensus(attribute=False, scan=True)
    census.begin(baseline=False)
    if not census.scanning:
        census.end()
        pytest.skip("this interpreter cannot hide frozen objects from gc.get_objects()")
    log: list[list[int]] = []
    kept: list[torch.Tensor] = []
    counts, young = [], []
    try:
        for i in range(1500):
            log.append([i])  # a gc-tracked object a step, kept
            kept.append(torch.full((2,), float(i)))  # and a tensor a step, kept
            census.iteration = i
            counts.append(census.take(graph=False, baseline=False).tensors)
            young.append(census.young)
    finally:
        census.end()
    assert census.refreezes >= 3
    assert max(young[-500:]) < 2 * 300 + 50  # bounded, not 1,500 and growing
    steps = [b - a for a, b in zip(counts[10:], counts[11:], strict=False)]
    assert all(d == 1 for d in steps), sorted(set(steps))  # no tensor lost at a freeze


@pytest.mark.parametrize("leak", [True, False])
def test_a_leak_is_named_across_freezes_and_a_kept_log_alone_is_no_leak(
        leak: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from diag.checks.leaks.census import TensorCensus

    monkeypatch.setattr(TensorCensus, "REFREEZE_AT", 200)
    model, x, y = _problem()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    log: list[dict[str, Any]] = []
    held: list[torch.Tensor] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with diag.watch(model, opt, out=None) as w:
            for i in range(260):
                loss = F.mse_loss(model(x), y)
                loss.backward()
                opt.step()
                opt.zero_grad()
                log.append({"step": i, "loss": [loss.item()]})  # kept: gc-tracked
                if leak and i >= 150:  # the planted leak, after the first freezes
                    held.append(model(x).detach() * 2)
                w.step(loss)
                if i == 149:
                    assert w._census.refreezes >= 1
    found = [f for f in w.findings if f.message.startswith("leak")]
    if leak:
        assert found and found[0].location.startswith("test_watch.py:"), w.findings
        # a leak that began mid-run: found on the census's recent window, said so, within
        # 110 steps of its start (the whole window's slope alone waited ~150 more)
        assert "over the last" in found[0].message, found[0].message
        assert w.tensors[-1] - w.tensors[149] < 110
    else:
        assert not found, found


@pytest.mark.parametrize("leak", [True, False])
def test_a_running_total_begun_late_is_found_and_the_graph_window_stays_bounded(
        leak: bool) -> None:
    """The autograd-graph sizes are kept over the same span as the tensor counts (the
    warm-up's and the last MAX_CENSUS steps'): the whole run's list made each check cost
    more as the run went on (5 ms a check at 100,000 steps). A running `total += loss`
    begun at step 400 of 700 is still found; its twin (`loss.item()`) is not, and its list
    stays bounded."""
    from diag.watching import GRAPH_EVERY, MAX_CENSUS

    model, x, y = _problem()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    total = torch.zeros(())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with diag.watch(model, opt, out=None, every=10**6) as w:
            for i in range(700):
                loss = F.mse_loss(model(x[:32]), y[:32])
                loss.backward()
                opt.step()
                opt.zero_grad()
                total = total + loss if leak and i >= 400 else total + loss.item()
                w.step(loss)
                assert len(w._graph_nodes) <= 1 + MAX_CENSUS // GRAPH_EVERY
    assert w.result is not None
    assert w.result.metrics["leak"] is leak, (leak, w.result.summary)


def test_the_flat_window_shortcut_never_hides_growth_of_the_rate() -> None:
    """`_growth` answers "no growth" without a fit when the window's range is under the
    rate. That is sound only if no least-squares slope of such a window, whole or its
    recent part, reaches the rate: tried on random windows, ramps and steps, down to the
    shortest window a fit judges (4 points)."""
    import random

    from diag.checks.leaks.detect import persistent_growth
    from diag.watching import RECENT, _growth

    rng = random.Random(0)
    for k in range(600):
        n, rate = rng.randrange(6, 2 * RECENT + 20), rng.choice([0.5, 1024.0])
        span = rate * rng.choice([0.5, 0.9, 0.999])
        shape = k % 3
        values = [100.0 + span * (i / (n - 1) if shape == 0 else float(i >= n // 2)
                                  if shape == 1 else rng.random()) for i in range(n)]
        fast, _ = _growth(values, 2, rate)
        assert not fast.growing
        for window in (values[2:], values[-RECENT:], values[-4:]):
            assert persistent_growth(window).per_iter < rate, window
        # and a real ramp of the rate (its range well above it) is still a growth
        ramp = [100.0 + 1.1 * rate * i for i in range(n)]
        grown, _ = _growth(ramp, 2, rate)
        assert grown.growing and grown.per_iter >= rate


@pytest.mark.parametrize("resumes", [True, False])
def test_a_mid_run_plateau_the_loss_leaves_is_history_in_the_report_not_advice(
        resumes: bool) -> None:
    """Flat from step 150 to 400: two mid-run checks in a row see the plateau, and it is
    warned, live. Then the loss falls again: at exit the whole run's curve shows no
    plateau, so the report keeps it as INFO with the step it was seen at, and the run
    passes. Its twin stays flat to the end: the plateau is a WARN, in the whole run's
    words. A chance verdict of one check (the last 5 steps of 50 'flat') is not warned."""
    import math
    import random

    rng = random.Random(0)
    live: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with diag.watch(nn.Linear(2, 1), None, out=None, every=50) as w:
            for i in range(700):
                if i < 150:
                    v = 0.3 + 0.7 * math.exp(-i / 30)
                elif i < 400 or not resumes:
                    v = 0.3
                else:
                    v = 0.3 * math.exp(-(i - 400) / 80)
                w.step(v * (1 + 0.02 * rng.gauss(0, 1)))
                if i + 1 == 100:  # the check at step 50 saw the last 5 steps flat: alone
                    live = [str(c.message) for c in caught]
    assert not any("plateau" in m for m in live), live
    assert any("plateau" in str(c.message) for c in caught)  # warned live, mid-run
    plateau = [f for f in w.findings if f.message.startswith("plateau")]
    assert len(plateau) == 1 and w.result is not None
    if resumes:
        assert plateau[0].severity == Severity.INFO, plateau
        assert "no longer shows it" in plateau[0].message
        assert w.result.status == Status.PASS
    else:
        assert plateau[0].severity == Severity.WARN, plateau
        assert w.result.status == Status.WARN
        assert "seen at step" not in plateau[0].message


@pytest.mark.parametrize("leak", [True, False])
def test_a_loop_holding_weakref_proxies_is_watched_and_its_leak_twin_is_found(
        leak: bool) -> None:
    """A weakref.proxy passes isinstance(proxy, Tensor) for the tensor it points to: the
    census took it for a tensor, asked for a weak reference to it and raised TypeError out
    of w.step(), inside the user's loop. Objects are now judged by their own type. The loop
    keeps a proxy a step (clean: the tensors die), its twin keeps the tensors too (a leak)."""
    import weakref

    model, x, y = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    proxies: list[Any] = []
    held: list[torch.Tensor] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with diag.watch(model, opt, out=None) as w:
            for _ in range(80):
                loss = F.mse_loss(model(x[:32]), y[:32])
                loss.backward()
                opt.step()
                opt.zero_grad()
                t = torch.randn(3)
                proxies.append(weakref.proxy(t))
                if leak:
                    held.append(t)
                w.step(loss)
    assert w.result is not None
    assert w.result.metrics["leak"] is leak, w.result.summary


def test_the_census_never_reads_an_objects_class_attribute() -> None:
    """isinstance() falls back to ``obj.__class__``, which deprecated torch attributes answer
    with a warning (``torch.distributed.reduce_op``): the census silenced them with a
    process-wide warnings filter around every scan. It now looks at the object's own type
    only: an object whose ``__class__`` counts its reads is never read."""
    from diag.checks.leaks.census import TensorCensus, live_objects

    reads = []

    class Sneaky:
        @property
        def __class__(self) -> type:  # type: ignore[override]
            reads.append(1)
            warnings.warn("deprecated", DeprecationWarning, stacklevel=2)
            return torch.Tensor

    census = TensorCensus(attribute=False, scan=True)
    census.begin(baseline=False)
    try:
        kept = [Sneaky(), torch.zeros(2)]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning would raise here
            snap = census.take(graph=False, baseline=False)
            found = live_objects(torch.Tensor)
    finally:
        census.end()
    assert not reads
    assert snap.tensors >= 1 and any(t is kept[1] for t in found)


@pytest.mark.parametrize("where", ["_take_census", "_read_gradients"])
def test_an_error_of_the_watch_itself_never_stops_training(
        where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug of the watch raised out of w.step() (the census) or out of optimizer.step()
    (the gradient hook), in the user's loop. Now it is reported once as an ERROR finding,
    the hook and the census come down, and training goes on unwatched: the loop runs to its
    end with the same weights as without the watch, and the report covers the steps before
    it. Its twin (no error) has no error finding."""
    from diag.watching import Watch

    def trained(broken: bool) -> tuple[Any, nn.Module]:
        if broken:
            real = getattr(Watch, where)

            def fails_at_step_10(self: Watch, *args: Any) -> Any:
                if self.steps >= 10:
                    raise RuntimeError("planted")
                return real(self, *args)

            monkeypatch.setattr(Watch, where, fails_at_step_10)
        model, x, y = _problem()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with diag.watch(model, opt, out=None) as w:
                _loop(model, opt, x, y, w, steps=40)
        ours = [c for c in caught if "stopped watching" in str(c.message)]
        assert len(ours) == (1 if broken else 0), [str(c.message) for c in caught]
        monkeypatch.undo()
        return w, model

    w, model = trained(True)
    assert w.steps == 40 and w.result is not None
    assert w.result.status == Status.ERROR, w.result.summary
    err = [f for f in w.findings if f.severity == Severity.ERROR]
    assert len(err) == 1 and "RuntimeError: planted" in err[0].message
    assert "at step 10" in err[0].message or "at step 9" in err[0].message, err[0].message
    assert not w._handles  # the hook is gone
    clean, reference = trained(False)
    assert clean.result is not None and clean.result.status != Status.ERROR
    assert not any(f.severity == Severity.ERROR for f in clean.findings)
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)  # training went on, the same as without the error


@pytest.mark.parametrize("planted", [True, False])
def test_a_sparse_embedding_gradient_is_read_and_its_nan_is_named(planted: bool) -> None:
    """nn.Embedding(sparse=True) gives a sparse gradient, which the fused norm cannot take:
    the read raised NotImplementedError in the optimizer hook (since the error guard, the
    watch stopped at step 0). Sparse gradients are now read through their coalesced values.
    A NaN planted in the embedding's gradient alone (the loss stays finite) is named at its
    step; the twin passes with no error."""
    torch.manual_seed(0)
    emb, head = nn.Embedding(100, 8, sparse=True), nn.Linear(8, 1)
    model = nn.ModuleDict({"emb": emb, "head": head})
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ids, y = torch.randint(0, 100, (64,)), torch.randn(64, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with diag.watch(model, opt, out=None) as w:
            for i in range(40):
                h = emb(ids)
                if planted and i == 30:
                    h.register_hook(lambda g: g * float("nan"))
                loss = F.mse_loss(head(h), y)
                loss.backward()
                opt.step()
                opt.zero_grad()
                w.step(loss)
                if planted and i == 30:
                    break
    assert w.result is not None
    assert not any(f.severity == Severity.ERROR for f in w.findings), w.findings
    if planted:
        bad = [f for f in w.findings if f.message.startswith("non-finite gradient")]
        assert bad and bad[0].message == "non-finite gradient at step 31, first at emb.weight"
        assert not any(f.message.startswith("non-finite loss") for f in w.findings)
    else:
        assert w.result.status == Status.PASS, w.result.summary
