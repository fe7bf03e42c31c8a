"""One way in: `diag <check>`, `diag check --select <check>` and `checks.<check>()` give the
same numbers for the same seed and options, for every check in the registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from diag import checks
from diag.checks.registry import BY_NAME, NAMES
from diag.cli import app
from diag.errors import UsageError
from diag.result import ExitCode, Status

runner = CliRunner()

# Small options, the same through every door: command-line options, config keys, API kwargs.
DOORS: dict[str, tuple[list[str], str, dict[str, Any], Status]] = {
    "overfit": (["--max-steps", "15", "--samples", "8"], "max_steps = 15\nsamples = 8",
                {"max_steps": 15, "samples": 8}, Status.FAIL),  # 15 steps are too few
    "leaks": (["--iterations", "9", "--warmup", "2"], "iterations = 9\nwarmup = 2",
              {"iterations": 9, "warmup": 2}, Status.PASS),
    "lr-schedule": (["--epochs", "10"], "epochs = 10", {"epochs": 10}, Status.PASS),
    "loss-grad": (["--pred-shape", "4,6"], "pred_shape = [4, 6]", {"pred_shape": (4, 6)},
                  Status.PASS),
    "preprocess": ([], "", {}, Status.PASS),
    "size": (["--max-size", "1MB"], 'max_size = "1MB"', {"max_size": "1MB"}, Status.PASS),
    "init": (["--batch-size", "16"], "batch_size = 16", {"batch_size": 16}, Status.PASS),
    "data": (["--batch-size", "8"], "batch_size = 8", {"batch_size": 8}, Status.PASS),
    "speed": (["--max-batch", "4"], "max_batch = 4", {"max_batch": 4}, Status.PASS),
    "ddp": (["--steps", "4"], "steps = 4", {"steps": 4}, Status.PASS),  # torchrun, 2 ranks
}
TIMED = {"speed"}
"""Checks whose metrics are timings: the doors must agree on everything else."""
API = {"overfit": checks.overfit, "leaks": checks.leaks, "lr-schedule": checks.lr_schedule,
       "loss-grad": checks.loss_grad, "preprocess": checks.preprocess, "size": checks.size,
       "init": checks.init, "data": checks.data, "speed": checks.speed, "ddp": checks.ddp}


def test_every_registered_check_has_a_door_test() -> None:
    assert set(DOORS) == set(NAMES) == set(API)


def _from_cli(args: list[str]) -> dict[str, Any]:
    r = runner.invoke(app, args)
    assert r.exit_code in (ExitCode.OK, ExitCode.CHECK_FAILED), r.output
    doc: dict[str, Any] = json.loads(r.stdout)["checks"][0]
    return doc


@pytest.mark.parametrize("name", list(DOORS))
def test_the_three_doors_give_the_same_numbers(name: str, tmp_path: Path) -> None:
    cli_args, config_keys, kwargs, expected = DOORS[name]
    seed = ["--seed", "5"]
    common = ["--format", "json", "--no-plots", "--quiet"]
    single = _from_cli([name, *cli_args, *seed, *common, "--out", str(tmp_path / "a")])

    config = tmp_path / "diag.toml"
    config.write_text(f'[tool.diag]\nseed = 5\nselect = ["{name}"]\n'
                      + (f"[tool.diag.{BY_NAME[name].config_table}]\n{config_keys}\n"
                         if config_keys else ""))
    via_check = _from_cli(["check", "--config", str(config), *common, "--out",
                           str(tmp_path / "b")])

    api = API[name](seed=5, **kwargs).to_dict()  # type: ignore[operator]

    if name in TIMED:
        # speed's verdict may rest on timings (a thread count 1.25x faster on a quiet
        # machine, a batch under half the knee): pass or warn, never fail, at any speed
        for doc in (single, via_check, api):
            assert doc["status"] in (Status.PASS.value, Status.WARN.value), doc["summary"]
        for other in (via_check, api):
            assert set(other["metrics"]) == set(single["metrics"])
            assert other["series"]["batch"] == single["series"]["batch"] == [1.0, 2.0, 4.0]
            assert other["series"]["saved_bytes"] == single["series"]["saved_bytes"]
        return
    assert single["status"] == expected.value, single["summary"]
    for other in (via_check, api):
        assert other["status"] == single["status"]
        assert other["metrics"] == single["metrics"]
        assert other["series"] == single["series"]
        # (process RSS, not deterministic, may add an info finding: compare the rest)
        assert [f["message"] for f in other["findings"] if "RSS" not in f["message"]] == [
            f["message"] for f in single["findings"] if "RSS" not in f["message"]]


def test_options_are_validated_by_the_same_rules_at_every_door(tmp_path: Path) -> None:
    r = runner.invoke(app, ["leaks", "--iterations", "6", "--warmup", "5", "--out",
                            str(tmp_path)])
    assert r.exit_code == ExitCode.USAGE_ERROR and "fewer than 4 iterations" in r.stderr
    config = tmp_path / "diag.toml"
    config.write_text("[tool.diag.leaks]\niterations = 6\nwarmup = 5\n")
    r = runner.invoke(app, ["check", "--config", str(config), "--out", str(tmp_path)])
    assert r.exit_code == ExitCode.USAGE_ERROR and "fewer than 4 iterations" in r.stderr
    with pytest.raises(UsageError, match="fewer than 4 iterations"):
        checks.leaks(iterations=6, warmup=5)


def test_config_keys_come_from_the_options_dataclasses() -> None:
    import dataclasses

    from diag.checks.registry import BY_NAME, CHECKS

    for check in CHECKS:
        fields = {f.name for f in dataclasses.fields(check.options)}
        assert set(check.option_keys()) <= fields - {"seed"}
    assert set(BY_NAME["overfit"].option_keys()) == {"samples", "max_steps", "lr", "batch_size",
                                            "target_loss", "confirm"}
