"""Threads: diag chooses the intra-op thread count of its own runs (respecting the user's),
records it in the JSON, gives torch its setting back, and `diag speed` finds DataLoader
workers that oversubscribe the cores. No test here asserts a timing."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from diag import checks
from diag.result import Severity
from diag.run.threads import Threads, available_cores, choose

import speed_cases as s
from clirun import diag

TESTS = Path(__file__).resolve().parents[1]
MULTI = pytest.mark.skipif(available_cores() < 2, reason="needs 2 cores")


@pytest.fixture
def two_cores(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process limited to 2 cores (as a CI runner), its affinity restored after; no
    OMP_NUM_THREADS (conftest sets one for the other tests), so diag chooses."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs sched_setaffinity and 2 cores")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    before = os.sched_getaffinity(0)
    threads = torch.get_num_threads()
    os.sched_setaffinity(0, sorted(before)[:2])
    torch.set_num_threads(2)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
        torch.set_num_threads(threads)


def _target(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> object:
    from diag.inputs.target import build_target

    return build_target(model=model, data=(x, y))


@pytest.mark.parametrize(("one", "many", "count"), [(0.016, 0.012, 2), (0.035, 0.079, 1),
                                                     (0.010, 0.0095, 1)],
                         ids=["quiet: every core", "busy: one thread", "under 10% gain: one"])
def test_the_measured_choice(two_cores: None, monkeypatch: pytest.MonkeyPatch,
                             one: float, many: float, count: int) -> None:
    """The probe's timings (planted: this test never times anything) decide the count."""
    import diag.run.threads as threads

    monkeypatch.setattr(threads, "others_running", lambda: 0)
    monkeypatch.setattr(threads, "measure", lambda step, cores: (one, many))
    choice = choose(_target(s.mlp(), *s.table()))
    assert choice.count == count
    assert choice.source == (f"measured: {1e3 * one:.1f} ms per step at 1 thread, "
                             f"{1e3 * many:.1f} ms at 2: {count}")


def test_other_runnable_tasks_mean_one_thread(two_cores: None,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import diag.run.threads as threads

    monkeypatch.setattr(threads, "others_running", lambda: 2)
    assert choose(_target(s.mlp(), *s.table())) == Threads(
        1, "busy: 2 other runnable tasks on 2 cores, no core free for a second thread: 1")


def test_the_probe_steps_leave_the_users_rng_and_threads_alone(two_cores: None) -> None:
    target = _target(nn.Sequential(nn.Linear(16, 8), nn.Dropout(0.5), nn.Linear(8, 4)),
                     *s.table())
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    choose(target)
    assert torch.equal(torch.rand(3), expected) and torch.get_num_threads() == 2


def test_threads_flag_wins_and_the_user_setting_is_respected(
        two_cores: None, monkeypatch: pytest.MonkeyPatch) -> None:
    target = _target(s.mlp(), *s.table())
    assert choose(target, threads=3) == Threads(3, "--threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert choose(target) == Threads(None, "OMP_NUM_THREADS=2")
    monkeypatch.delenv("OMP_NUM_THREADS")
    torch.set_num_threads(1)  # the user's call before diag runs
    assert choose(target) == Threads(None, "torch.set_num_threads(1)")


def test_the_json_records_the_count_and_torch_gets_its_setting_back(two_cores: None,
                                                                    tmp_path: Path) -> None:
    r = diag("init", "--model", f"{TESTS}/speed_cases.py:mlp", "--data",
             f"{TESTS}/speed_cases.py:table", "--format", "json", "--no-plots",
             "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    metrics = json.loads(r.stdout)["checks"][0]["metrics"]
    assert metrics["threads"] in (1, 2)
    assert metrics["threads_source"].startswith(("measured: ", "busy: "))
    assert torch.get_num_threads() == 2
    r = diag("init", "--model", f"{TESTS}/speed_cases.py:mlp", "--data",
             f"{TESTS}/speed_cases.py:table", "--format", "json", "--no-plots",
             "--threads", "2", "--out", str(tmp_path))
    metrics = json.loads(r.stdout)["checks"][0]["metrics"]
    assert (metrics["threads"], metrics["threads_source"]) == (2, "--threads")


def test_threads_in_the_config_and_omp_num_threads_reach_the_json(
        two_cores: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "diag.toml"
    cfg.write_text(f'[tool.diag]\nmodel = "{TESTS}/speed_cases.py:mlp"\n'
                   f'data = "{TESTS}/speed_cases.py:table"\nselect = ["init"]\nthreads = 2\n')
    r = diag("check", "--config", str(cfg), "--format", "json", "--no-plots", "--out",
             str(tmp_path / "o"))
    metrics = json.loads(r.stdout)["checks"][0]["metrics"]
    assert (metrics["threads"], metrics["threads_source"]) == (2, "--threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)  # what OMP_NUM_THREADS=1 gives a fresh process
    r = checks.init(model=s.mlp, data=s.table())
    assert (r.metrics["threads"], r.metrics["threads_source"]) == (1, "OMP_NUM_THREADS=1")


@pytest.mark.parametrize("value", ["0", "-2"])
def test_a_bad_thread_count_is_a_usage_error(value: str, tmp_path: Path) -> None:
    r = diag("overfit", "--threads", value, "--out", str(tmp_path))
    assert r.returncode == 2 and "--threads" in r.stderr
    cfg = tmp_path / "diag.toml"
    cfg.write_text(f"[tool.diag]\nthreads = {value}\n")
    r = diag("check", "--config", str(cfg), "--out", str(tmp_path))
    assert r.returncode == 2 and "threads" in r.stderr


def test_same_seed_same_numbers_with_the_chosen_threads() -> None:
    a = checks.overfit(model=s.mlp, data=s.table(), max_steps=60, confirm=False)
    b = checks.overfit(model=s.mlp, data=s.table(), max_steps=60, confirm=False)
    assert a.metrics == b.metrics and a.series == b.series


# --- speed: threads in the user's setup -------------------------------------------------------
@MULTI
def test_speed_sweeps_threads_at_the_knee(two_cores: None) -> None:
    r = checks.speed(model=s.mlp, data=s.table(), max_batch=8)
    assert r.metrics["cores"] == 2 and r.metrics["threads_best"] in (1, 2)
    assert r.series["threads"] == [1.0, 2.0] and len(r.series["threads_samples_per_s"]) == 2
    assert any(f.message.startswith("intra-op threads at the knee batch") for f in r.findings)
    assert r.metrics["busy_machine"] in (True, False)


WORKERS = pytest.mark.filterwarnings("ignore:This DataLoader will create 4 worker processes")


@WORKERS
def test_workers_that_each_run_every_core_are_oversubscription(two_cores: None) -> None:
    r = checks.speed(model=s.mlp, data=s.table(), loader=s.oversubscribed_loader, max_batch=4)
    assert r.metrics["worker_threads"] == [2, 2, 2, 2]
    warn = [f.message for f in r.findings if f.severity == Severity.WARN
            and f.message.startswith("thread oversubscription")]
    assert warn == ["thread oversubscription: 4 DataLoader workers run 2 intra-op threads "
                    "each, plus 2 in the main process: 10 threads on 2 cores, and every op's "
                    "threads spin-wait for siblings that are not scheduled"], r.findings


@WORKERS
def test_workers_on_one_thread_each_are_fine(two_cores: None) -> None:
    r = checks.speed(model=s.mlp, data=s.table(), loader=s.one_thread_workers_loader,
                     max_batch=4)
    assert r.metrics["worker_threads"] == [1, 1, 1, 1]
    assert not any("oversubscription" in f.message for f in r.findings)


def test_a_busy_machine_marks_the_timings(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from diag.checks.speed.threads import Load

    speed_check = importlib.import_module("diag.checks.speed.check")

    monkeypatch.setattr(speed_check, "measure_load", lambda cores: Load(0.4, 4.5, cores))
    r = checks.speed(model=s.mlp, data=s.table(), max_batch=4)
    assert r.metrics["busy_machine"] is True and r.metrics["cpu_share"] == 0.4
    assert r.summary.endswith("(timed on a busy machine)")
    assert any(f.message.startswith("timed on a busy machine: a probe thread got 40% of a "
                                    "core, 1-minute load average 4.50") for f in r.findings)
