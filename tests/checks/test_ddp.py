"""`diag ddp` on 2 CPU processes (gloo): each planted DDP bug beside its clean twin.

The pairs run in one torchrun launch (the worker's batch mode: one job after another in the
same process group), since each launch costs a torch import per process; a rank that
raises or hangs, the command line, and a run under the user's own torchrun are launched
on their own. Cases live in tests/ddp_cases.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from diag import checks
from diag.checks.ddp import DdpOptions
from diag.checks.ddp.check import job_for, launch_many
from diag.checks.ddp.judge import judge
from diag.cli import app
from diag.errors import UsageError
from diag.inputs import Inputs
from diag.result import CheckResult, ExitCode, Severity, Status

CASES = str(Path(__file__).resolve().parents[1] / "ddp_cases.py")
C = f"{CASES}:"

# name -> (sources and options, expected status, the rule that must (planted) or must not
# (twin) appear as a warning or failure)
PAIRS: dict[str, tuple[dict[str, Any], Status, str]] = {
    "batchnorm": ({"model": C + "bn_net", "data": C + "data"}, Status.WARN,
                  "batchnorm-not-synced"),
    "batchnorm-synced": ({"model": C + "synced_bn_net", "data": C + "data"}, Status.PASS,
                         "batchnorm-not-synced"),
    "unused-head": ({"model": C + "UnusedHead", "data": C + "data"}, Status.FAIL,
                    "unused-parameters"),
    "unused-head-find-unused": ({"model": C + "UnusedHead", "data": C + "data",
                                 "find_unused": True}, Status.PASS, "unused-parameters"),
    "rank-branches": ({"model": C + "RankBranch", "data": C + "data"}, Status.FAIL,
                      "ranks-skip-different-parameters"),
    "rank-branches-find-unused": ({"model": C + "RankBranch", "data": C + "data",
                                   "find_unused": True}, Status.PASS,
                                  "ranks-skip-different-parameters"),
    "random-sampler": ({"model": C + "mlp", "data": C + "data", "loader": C + "random_loader"},
                       Status.FAIL, "ranks-overlap"),
    "distributed-sampler": ({"model": C + "mlp", "data": C + "data",
                             "loader": C + "distributed_loader"}, Status.PASS, "ranks-overlap"),
    "no-set-epoch": ({"step": C + "step_without_set_epoch"}, Status.WARN, "set-epoch-missing"),
    "set-epoch": ({"step": C + "step_with_set_epoch"}, Status.PASS, "set-epoch-missing"),
    "rank-init": ({"model": C + "rank_seeded_net", "data": C + "data"}, Status.WARN,
                  "rank-dependent-init"),
    "same-init": ({"model": C + "mlp", "data": C + "data"}, Status.PASS, "rank-dependent-init"),
    "rank-init-no-broadcast": ({"step": C + "step_no_broadcast"}, Status.FAIL,
                               "replicas-differ-at-init"),
    "same-dropout": ({"step": C + "step_same_seed_dropout"}, Status.WARN,
                     "identical-random-draws"),
    "rank-dropout": ({"step": C + "step_rank_seed_dropout"}, Status.PASS,
                     "identical-random-draws"),
    "uneven-batches": ({"model": C + "mlp", "data": C + "data", "loader": C + "uneven_loader"},
                       Status.FAIL, "uneven-batches"),
    "even-batches": ({"model": C + "mlp", "data": C + "data", "loader": C + "even_loader"},
                     Status.PASS, "uneven-batches"),
    "leak-on-rank-1": ({"step": C + "step_leaks_on_rank_1"}, Status.FAIL, "rank-leak"),
    "no-leak": ({"step": C + "step_clean"}, Status.PASS, "rank-leak"),
}


def _job(case: dict[str, Any], timeout: float = 240.0) -> dict[str, Any]:
    case = dict(case)
    specs = {k: case.pop(k, None) for k in ("model", "data", "loss")}
    specs.update(task="landmarks", input_size=48)
    return job_for(Inputs(specs=specs), DdpOptions(timeout=timeout, **case))


@pytest.fixture(scope="module")
def results() -> dict[str, CheckResult]:
    names = list(PAIRS)
    batches, tail = launch_many([_job(PAIRS[n][0]) for n in names], 2)
    assert all(all(r is not None for r in recs) for recs in batches), tail
    return {n: judge(recs, 2) for n, recs in zip(names, batches, strict=True)}


def _rules(result: CheckResult, *severities: Severity) -> set[str]:
    return {f.rule for f in result.findings if f.severity in severities}


@pytest.mark.parametrize("name", list(PAIRS))
def test_planted_bug_is_found_and_its_twin_passes(name: str,
                                                  results: dict[str, CheckResult]) -> None:
    _case, expected, rule = PAIRS[name]
    result = results[name]
    assert result.status == expected, (result.summary, result.findings)
    flagged = _rules(result, Severity.WARN, Severity.FAIL)
    if expected == Status.PASS:
        assert rule not in flagged
    else:
        assert rule in flagged


def test_findings_name_the_tensor_and_the_ranks(results: dict[str, CheckResult]) -> None:
    bn = results["batchnorm"]
    assert bn.metrics["first_differing"] == "1.running_mean"
    unused = results["unused-head"]
    [finding] = [f for f in unused.findings if f.rule == "unused-parameters"]
    assert "aux_head.weight" in finding.message and finding.location == "aux_head.weight"
    # pytorch#128949: the bucket holding the unused head was never all-reduced, so the
    # used parameters drifted apart after one step; DDP's error at step 2 is explained
    assert unused.metrics["first_differing"] == "body.0.weight"
    assert unused.metrics["steps_run"] == 1
    assert not _rules(unused, Severity.ERROR)
    branches = results["rank-branches"]
    [finding] = [f for f in branches.findings if f.rule == "ranks-skip-different-parameters"]
    assert "rank 0 skips b.bias, b.weight" in finding.message
    assert "rank 1 skips a.bias, a.weight" in finding.message
    assert branches.metrics["steps_run"] == 0  # found before DDP could hang on it
    assert results["random-sampler"].metrics["overlap_samples"] == 32
    assert results["distributed-sampler"].metrics["overlap_samples"] == 0
    assert results["uneven-batches"].metrics["batches_per_rank"] == "3/2"
    assert results["even-batches"].metrics["batches_per_rank"] == 3
    assert results["rank-init"].findings[0].location == "0.weight"
    assert results["rank-init-no-broadcast"].metrics["first_differing"] == "0.weight"
    assert results["leak-on-rank-1"].metrics["leaking_ranks"] == "1"


def test_the_same_seed_gives_the_same_report(results: dict[str, CheckResult]) -> None:
    [again] = launch_many([_job(PAIRS["batchnorm"][0])], 2)[0]
    assert judge(again, 2).to_dict() == results["batchnorm"].to_dict()


def test_digests_see_one_bit() -> None:
    import torch

    from diag.checks.ddp.worker import CHUNK, moments, tensor_digest

    for t in (torch.randn(1000), torch.randn(3, dtype=torch.bfloat16), torch.arange(4),
              torch.tensor([True, False])):
        flipped = t.clone().view(-1)
        raw = flipped.view({1: torch.uint8, 2: torch.int16, 4: torch.int32,
                            8: torch.int64}[t.element_size()])
        raw[-1] ^= 1  # the lowest bit of the last element
        assert tensor_digest(t) != tensor_digest(flipped)
        assert tensor_digest(t) == tensor_digest(t.clone())
    # the device path (position-weighted sums), run here on the host, across chunks
    ints = torch.randint(-2**31, 2**31 - 1, (CHUNK + 5,), dtype=torch.int32)
    swapped = ints.clone()
    swapped[[3, CHUNK + 1]] = swapped[[CHUNK + 1, 3]]  # same values, other places
    assert moments(ints) == moments(ints.clone()) != moments(swapped)


def _line(pattern: str) -> int:
    lines = Path(CASES).read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if pattern in text)


def test_a_rank_that_raises_is_that_ranks_error() -> None:
    result = checks.ddp(step=C + "step_raises_at_3", timeout=60)
    assert result.status == Status.ERROR
    [error] = [f for f in result.findings if f.severity == Severity.ERROR]
    assert error.message.startswith("rank 1 raised ValueError at step 3")
    assert error.location == f"ddp_cases.py:{_line('planted failure on rank 1')}"
    # rank 0 lost its peer in the all-reduce: a consequence, not a second cause
    assert result.metrics["failed_ranks"] == "1"


def test_a_rank_that_dies_is_named() -> None:
    result = checks.ddp(step=C + "step_dies_at_3", timeout=60)
    assert result.status == Status.ERROR
    [error] = [f for f in result.findings if f.severity == Severity.ERROR]
    assert error.message.startswith("rank 1 died at step 3")
    assert result.metrics["failed_ranks"] == "1"


def test_a_rank_that_hangs_is_stopped_and_named_where_it_hangs() -> None:
    result = checks.ddp(step=C + "step_hangs_at_3", timeout=20)
    assert result.status == Status.ERROR
    [error] = [f for f in result.findings if f.severity == Severity.ERROR]
    assert error.message.startswith("rank 1 hung in step at step 3")
    assert error.location == f"ddp_cases.py:{_line('time.sleep(3600)')}"
    [waiting] = [f for f in result.findings if f.rule == "rank-stopped"]
    assert waiting.message.startswith("rank 0 waited at step 3")


def test_the_command_line_relaunches_itself_and_exits_by_status(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["ddp", "--model", C + "UnusedHead", "--data", C + "data",
                                 "--out", str(tmp_path), "--format", "json", "--no-plots"])
    assert r.exit_code == ExitCode.CHECK_FAILED, r.output
    doc = json.loads(r.stdout)["checks"][0]
    assert doc["status"] == "fail" and doc["metrics"]["world_size"] == 2
    assert (tmp_path / "ddp.json").exists()


def test_bad_input_is_a_usage_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["ddp", "--step", f"{CASES}:no_such_factory", "--out",
                                 str(tmp_path)])
    assert r.exit_code == ExitCode.USAGE_ERROR and "no_such_factory" in r.stderr
    r = CliRunner().invoke(app, ["ddp", "--step", C + "step_clean", "--model", C + "mlp",
                                 "--out", str(tmp_path)])
    assert r.exit_code == ExitCode.USAGE_ERROR and "cannot be combined" in r.stderr
    r = CliRunner().invoke(app, ["ddp", "--data", str(tmp_path / "missing.npz"), "--out",
                                 str(tmp_path)])
    assert r.exit_code == ExitCode.USAGE_ERROR and "not found" in r.stderr
    from ddp_cases import mlp

    with pytest.raises(UsageError, match="cannot reach the new processes"):
        checks.ddp(model=lambda: mlp())


def test_under_the_users_torchrun_rank_0_writes_the_report(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         "--max-restarts=0", "-m", "diag", "ddp", "--steps", "4", "--model", C + "bn_net",
         "--data", C + "data", "--out", str(tmp_path), "--no-plots", "--quiet"],
        capture_output=True, text=True, env=env, timeout=300)
    # every rank ends with the verdict's exit code (warn: 0), and one report is written
    assert out.returncode == ExitCode.OK, out.stderr[-2000:]
    doc = json.loads((tmp_path / "ddp.json").read_text())
    check = doc["checks"][0] if "checks" in doc else doc
    assert check["status"] == "warn" and check["metrics"]["world_size"] == 2
    assert check["metrics"]["first_differing"].endswith("running_mean")


# --- the verdict on literal records (no processes) ----------------------------------------
def _record(rank: int, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "rank": rank, "world_size": 2, "phase": "done", "step": 2, "steps_done": 2,
        "error": None, "stuck": None, "names": ["w", "b"], "buffer_names": [],
        "bn_buffers": [], "digests": {}, "unused": [[], []], "rng": ["r0", "r1"],
        "dropout": [None, None], "epochs": [], "census": [], "find_unused": False,
        "mode": "step", "backend": "gloo", "recorded": True}
    return {**base, **values}


def test_ranks_waiting_in_backward_after_using_different_parameters_is_the_hang() -> None:
    stuck = {"phase": "step", "step": 1, "where": "train.py:9", "innermost": "graph.py:1",
             "in_user_code": False}
    records = [_record(0, phase="step", stuck={**stuck, "used_so_far": ["w"]}, unused=[]),
               _record(1, phase="step", stuck={**stuck, "used_so_far": ["b"]}, unused=[])]
    result = judge(records, 2)
    assert "ranks-skip-different-parameters" in _rules(result, Severity.FAIL)
    assert result.status == Status.ERROR  # they hung: the run could not finish


def test_distributed_sampler_padding_is_not_overlap() -> None:
    # 5 samples on 2 ranks: DistributedSampler pads with one repeated sample
    epoch = {"batches": 1, "samples": 3, "order": "x", "sampler_epoch": 0, "shuffle": False}
    ok = [_record(0, epochs=[{**epoch, "indices": [0, 2, 4]}]),
          _record(1, epochs=[{**epoch, "indices": [1, 3, 0]}])]
    assert judge(ok, 2).metrics["overlap_samples"] == 1
    assert "ranks-overlap" not in _rules(judge(ok, 2), Severity.FAIL)
    bad = [_record(0, epochs=[{**epoch, "indices": [0, 1, 2]}]),
           _record(1, epochs=[{**epoch, "indices": [1, 2, 0]}])]
    assert "ranks-overlap" in _rules(judge(bad, 2), Severity.FAIL)


def test_a_rank_stopped_before_it_began_is_a_consequence() -> None:
    error = {"type": "ValueError", "message": "bad", "where": "train.py:3", "innermost": "",
             "phase": "build", "step": 0, "collective": False}
    result = judge([None, _record(1, phase="build", error=error)], 2)
    assert [f.rule for f in result.findings if f.severity == Severity.ERROR] == ["rank-error"]
    assert result.metrics["failed_ranks"] == "1"


def test_a_rank_that_died_is_named_when_torchrun_stopped_its_peer_first() -> None:
    """Under load torchrun's SIGTERM can reach the rank waiting in the all-reduce before
    that collective raises: it leaves no error, only its stop mark, and the run read PASS
    (tests/checks/test_ddp.py::test_a_rank_that_dies_is_named failed twice so, 2026-12-01,
    beside a benchmark). The rank without a mark is the one that died."""
    waiting = _record(0, phase="step", step=3, steps_done=2, terminated=True)
    dead = _record(1, phase="step", step=3, steps_done=2)
    result = judge([waiting, dead], 2)
    assert result.status == Status.ERROR
    [error] = [f for f in result.findings if f.severity == Severity.ERROR]
    assert error.message.startswith("rank 1 died at step 3")
    assert result.metrics["failed_ranks"] == "1"
    [stop] = [f for f in result.findings if f.rule == "rank-stopped"]
    assert stop.severity == Severity.INFO and stop.message.startswith("rank 0 was stopped")
    # the twin: both finished
    assert judge([_record(0), _record(1)], 2).status == Status.PASS


def test_ranks_that_did_not_finish_and_left_no_trace_never_pass() -> None:
    """Both killed outright (SIGKILL leaves no mark): neither finished, so the run is an
    error naming both, never a pass."""
    result = judge([_record(0, phase="step", step=3), _record(1, phase="step", step=3)], 2)
    assert result.status == Status.ERROR
    assert result.metrics["failed_ranks"] == "0,1"
