"""speed: each planted throughput problem is found next to its correct twin, which gets no
warning. Only what does not depend on the machine's speed is asserted: the sleeping loader
waits 20 ms per batch against a sub-millisecond step, batch 1 against batch 64 of a tiny
MLP differs by far more than 2x, and everything else is counted, not timed."""

from __future__ import annotations

import copy
import inspect
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from diag import checks
from diag.cli import app
from diag.result import ExitCode, Severity, Status

import speed_cases as s

speed = checks.speed
TABLE = s.table()


THREADS = "intra-op threads at the knee batch"
"""The thread sweep's finding: a timing that follows the machine's load (tested in
test_threads.py); the tests here are about the other findings."""


def _warnings(r: object) -> list[str]:
    return [f.message for f in r.findings  # type: ignore[attr-defined]
            if f.severity == Severity.WARN and not f.message.startswith(THREADS)]


def test_a_loader_sleeping_20_ms_per_batch_is_found_with_its_cause() -> None:
    r = speed(model=s.mlp, data=TABLE, loader=s.sleepy_loader, max_batch=8)
    assert r.status == Status.WARN
    [msg] = _warnings(r)
    assert msg.startswith("the step waits for data") and "num_workers=0" in msg
    assert "__getitem__" in msg and "workers, overlapped with the step" in msg
    assert r.metrics["data_wait_fraction"] > 0.3
    assert r.metrics["workers_speedup"] > 1.5  # 20 ms of loading split over 2+ workers


def test_the_same_batches_cached_in_memory_get_no_warning() -> None:
    r = speed(model=s.mlp, data=TABLE, loader=s.cached_batches, max_batch=8)
    assert not _warnings(r), r.summary
    assert r.metrics["data_wait_fraction"] < 0.3


def test_three_item_calls_are_three_sync_sites_with_their_lines() -> None:
    lines = [i for i, text in enumerate(inspect.getsource(s).splitlines(), 1)
             if "# sync " in text and ".item()" in text]
    assert len(lines) == 3
    r = speed(model=s.mlp, data=TABLE, step=s.syncing_step, max_batch=2)
    assert r.metrics["sync_sites"] == 3 and r.metrics["syncs_per_step"] == 3
    [finding] = [f for f in r.findings if "host-sync sites" in f.message]
    for line in lines:
        assert f"speed_cases.py:{line} .item() (1 per step)" in finding.message
    assert "every 50 steps" in finding.hint
    assert not _warnings(r)  # on CPU nothing waits: counted, not blamed


def test_a_step_without_syncs_has_none() -> None:
    r = speed(model=s.mlp, data=TABLE, step=s.quiet_step, max_batch=2)
    assert r.metrics["sync_sites"] == 0
    assert not any("host-sync" in f.message for f in r.findings)
    assert not _warnings(r)


def test_512_inputs_resized_to_32_inside_the_model_are_flagged() -> None:
    r = speed(model=s.shrinks_inside, data=s.big_images(), max_batch=2)
    assert r.status == Status.WARN
    [msg] = _warnings(r)
    assert "inputs of 3x512x512 (3.15 MB per sample) are shrunk to 3x32x32" in msg
    assert "256x the memory" in msg
    assert r.metrics["input_bytes_per_sample"] == 3 * 512 * 512 * 4
    assert r.metrics["consumed_bytes_per_sample"] == 3 * 32 * 32 * 4


def test_inputs_made_at_32_get_no_warning() -> None:
    r = speed(model=s.takes_32, data=s.small_images(), max_batch=2)
    assert not _warnings(r) and "input_bytes_per_sample" not in r.metrics


def test_a_model_out_of_memory_above_64_stops_the_sweep_there() -> None:
    r = speed(model=s.oom_above_64, data=TABLE, max_batch=512, stop_early=False)
    assert r.metrics["oom_at"] == 128 and r.metrics["largest_fits"] == 64
    assert r.series["batch"] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
    assert any("batch 128 ran out of memory" in f.message for f in r.findings)
    assert r.status != Status.ERROR and not _warnings(r)  # reported, never a crash


def test_the_same_model_without_the_limit_runs_every_size() -> None:
    r = speed(model=s.mlp, data=TABLE, max_batch=128, stop_early=False)
    assert r.metrics["oom_at"] is None and r.series["batch"][-1] == 128.0


def test_batch_1_against_a_tiny_mlps_knee_is_warned() -> None:
    r = speed(model=s.mlp, data=TABLE, max_batch=64, batch_size=1, stop_early=False)
    assert any(m.startswith("your batch size 1 runs at") for m in _warnings(r))
    # the twin, at the knee: no warning unless this run's own figures (another run, another
    # load) put it under half the knee's throughput; the verdict follows the figures
    r = speed(model=s.mlp, data=TABLE, max_batch=64, batch_size=r.metrics["knee_batch"],
              stop_early=False)
    slow = r.metrics["batch_size_samples_per_s"] < 0.5 * r.metrics["knee_samples_per_s"]
    assert any(m.startswith("your batch size") for m in _warnings(r)) == slow


def test_the_knee_is_the_smallest_size_within_10_percent_of_the_best() -> None:
    r = speed(model=s.mlp, data=TABLE, max_batch=16)
    tput = dict(zip(r.series["batch"], r.series["samples_per_s"], strict=True))
    best = max(tput.values())
    knee = min(b for b, t in tput.items() if t >= 0.9 * best)
    assert r.metrics["knee_batch"] == knee and r.metrics["knee_batch"] <= r.metrics["best_batch"]
    # activation memory grows linearly with the batch (plus the weights saved once)
    saved = r.series["saved_bytes"]
    assert saved == sorted(saved) and saved[2] - saved[1] == 2 * (saved[1] - saved[0])


def test_the_users_model_and_rng_are_untouched() -> None:
    model = s.mlp()
    before = copy.deepcopy(model.state_dict())
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    speed(model=model, data=TABLE, max_batch=4)
    assert torch.equal(torch.rand(2), expected)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_cuda_without_a_device_is_skipped_never_faked(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: the CUDA path runs for real")
    r = CliRunner().invoke(app, ["speed", "--device", "cuda", "--format", "json", "--out",
                                 str(tmp_path), "--no-plots", "-q"])
    assert r.exit_code == ExitCode.OK
    doc = json.loads(r.stdout)["checks"][0]
    assert doc["status"] == "skip" and "no CUDA device" in doc["summary"]
    assert "best_batch" not in doc["metrics"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_cuda_path_times_with_synchronize_and_reports_peak_memory() -> None:
    r = speed(model=s.mlp, data=TABLE, device="cuda", max_batch=8)
    assert r.metrics["device"] == "cuda" and r.metrics["best_batch"] >= 1


def test_a_bad_device_is_a_usage_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["speed", "--device", "tpu", "--out", str(tmp_path)])
    assert r.exit_code == ExitCode.USAGE_ERROR and "tpu" in r.stderr


def test_the_plot_has_a_title_and_labelled_axes() -> None:
    from diag.checks.speed.figures import figures

    fig = figures(speed(model=s.oom_above_64, data=TABLE, max_batch=256,
                        stop_early=False))["sweep"]
    ax, mem = fig.axes
    assert ax.get_title() and "samples per second" in ax.get_ylabel()
    assert "batch size" in ax.get_xlabel() and "MB" in mem.get_ylabel()


def test_a_step_over_the_callers_own_model_gives_it_back_unchanged() -> None:
    before = copy.deepcopy(s.SHARED_MODEL.state_dict())
    opt_before = copy.deepcopy(s.SHARED_OPT.state_dict())
    r = speed(model=s.mlp, data=TABLE, step=s.shared_state_step, max_batch=2)
    assert r.metrics["sync_sites"] == 0
    assert all(torch.equal(v, before[k]) for k, v in s.SHARED_MODEL.state_dict().items())
    assert s.SHARED_OPT.state_dict()["state"] == opt_before["state"] == {}


def test_a_forward_that_raises_mid_sweep_is_the_checks_error_with_its_line() -> None:
    class Breaks(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(s.FEATURES, s.CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] > 2:  # the plan's probe uses 2 samples
                raise ValueError("shape trouble at batch > 2")
            return self.fc(x)

    r = speed(model=Breaks, data=TABLE, max_batch=8)
    assert r.status == Status.ERROR
    assert "shape trouble" in r.summary and "test_speed.py:" in r.findings[0].location


def test_a_forward_that_raises_in_eval_mode_is_user_code_not_an_internal_error() -> None:
    class EvalBreaks(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(s.FEATURES, s.CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.training:
                raise RuntimeError("no eval path")
            return self.fc(x)

    r = speed(model=EvalBreaks, data=TABLE, max_batch=2)
    assert r.status == Status.ERROR
    assert "internal error" not in r.summary and "no eval path" in r.summary
    assert "test_speed.py:" in r.findings[0].location


def test_a_slow_transform_is_named_as_the_cause_and_put_back() -> None:
    r = speed(model=s.mlp, data=TABLE, loader=s.slow_transform_loader, max_batch=4)
    [msg] = _warnings(r)
    assert "cause: the transform (" in msg and "ms decode per sample" in msg
    assert s.SHARED_TRANSFORM_LOADER.dataset.transform is s.slow_transform  # put back


def test_diag_check_runs_the_short_sweep_unless_the_config_says_otherwise(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no pyproject.toml here: the defaults
    args = ["check", "--select", "speed", "--format", "json", "--no-plots", "-q", "--out",
            str(tmp_path / "out")]
    r = CliRunner().invoke(app, args)
    assert json.loads(r.stdout)["checks"][0]["metrics"]["largest_tried"] <= 32
    (tmp_path / "pyproject.toml").write_text("[tool.diag.speed]\nmax_batch = 2\n")
    r = CliRunner().invoke(app, args)
    assert json.loads(r.stdout)["checks"][0]["series"]["batch"] == [1.0, 2.0]


def test_a_time_budget_stops_the_sweep_and_skips_the_probes_that_would_pass_it() -> None:
    """Whatever the machine's speed, a step takes more than a microsecond: with that budget
    only batch 1 runs, and the finding says why the sweep stopped."""
    r = speed(model=s.mlp, data=TABLE, max_batch=64, budget_s=1e-6)
    assert r.series["batch"] == [1.0] and r.metrics["sweep_stopped_by_budget"] is True
    sweep = next(f.message for f in r.findings if f.message.startswith("batch-size sweep"))
    assert "the time budget (1e-06 s, --budget): batch 2 and up not tried" in sweep
    skipped = [f.message for f in r.findings if f.rule == "speed-over-budget"]
    assert any("reading the loss" in m for m in skipped)
    assert "loss_read_cost_fraction" not in r.metrics
    # the twin: the default budget is far beyond a tiny MLP's sweep
    r = speed(model=s.mlp, data=TABLE, max_batch=64)
    assert r.metrics["sweep_stopped_by_budget"] is False
    assert not any(f.rule == "speed-over-budget" for f in r.findings)


def test_a_model_that_cannot_train_on_one_sample_is_swept_from_two() -> None:
    """BatchNorm over one value per channel refuses batch 1 in training (MobileNetV3 at 32x32
    pools to 1x1 before one): the sweep starts at 2 and says why, instead of an error."""

    def bn_mlp() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16),
                                   torch.nn.Linear(16, 3))

    x = torch.randn(32, 8)
    y = torch.randint(0, 3, (32,))
    r = speed(model=bn_mlp, data=(x, y), max_batch=8)
    assert r.status != Status.ERROR, r.summary
    assert r.series["batch"][0] == 2.0
    assert any(f.rule == "speed-batch-1" for f in r.findings)
