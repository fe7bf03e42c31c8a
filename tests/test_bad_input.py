"""Every bad input and every fault gets its documented exit code and one clear line on stderr,
never a traceback; a pipeline's wrong output is a finding; `--format json` stdout stays pure.

Each case was a crash, a wrong exit code or a misleading message before (see the
reliability issue); the helpers that break the rules live in tests/hostile/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diag.checks.registry import NAMES
from diag.result import ExitCode

from clirun import diag, diag_process, one_line, write

TESTS = Path(__file__).resolve().parent
H = TESTS / "hostile"
HOSTILE = f"{H}/hostile.py"
PLANTED = f"{TESTS}/planted.py"


# --- usage errors: one line, exit 2 ---------------------------------------------------------
def _history_json(tmp: Path, bad: str) -> str:
    items = ",".join('{"epoch": %s, "loss": 0.5}' % (bad if i == 3 else i) for i in range(12))
    return write(tmp / "h.json", f"[{items}]")


USAGE = {
    "data-is-a-folder": (lambda t: ["overfit", "--model", f"{HOSTILE}:linear", "--data",
                                    str(t)], "is a folder"),
    "data-holds-strings": (lambda t: ["overfit", "--model", f"{HOSTILE}:linear", "--data",
                                      f"{HOSTILE}:string_data"], "not numbers"),
    "npz-holds-strings": (lambda t: ["overfit", "--model", f"{HOSTILE}:linear", "--data",
                                     _npz_strings(t)], "not numbers"),
    "history-null-epoch": (lambda t: ["lr-schedule", "--history", _history_json(t, "null")],
                           "epoch is missing"),
    "history-inf-epoch": (lambda t: ["lr-schedule", "--history", _history_json(t, "Infinity")],
                          "not a usable epoch"),
    "history-huge-epoch": (lambda t: ["lr-schedule", "--history", _history_json(t, "1" * 400)],
                           "too large"),
    "config-tool-is-a-string": (lambda t: ["check", "--config", write(t / "c.toml",
                                                                      'tool = "x"\n')],
                                "not a table"),
    "config-diag-is-a-string": (lambda t: ["check", "--config", write(t / "c.toml",
                                                                      '[tool]\ndiag = "x"\n')],
                                "not a table"),
    "seed-too-big-overfit": (lambda t: ["overfit", "--seed", str(2**64)], "out of range"),
    "seed-too-big-check": (lambda t: ["check", "--seed", str(2**64)], "out of range"),
    "model-cannot-be-copied": (lambda t: ["overfit", "--model", f"{HOSTILE}:locked_instance",
                                          "--data", f"{HOSTILE}:data"], "factory"),
    "step-not-callable": (lambda t: ["leaks", "--step", f"{HOSTILE}:not_callable_step"],
                          "is a int"),
    "iterations-vs-warmup": (lambda t: ["leaks", "--iterations", "6", "--warmup", "5"],
                             "fewer than 4 iterations"),
    "bad-target-kind": (lambda t: ["loss-grad", f"{HOSTILE}:loss_vector", "--target", "foo"],
                        "not one of index, like, binary"),
    "bad-target-spec": (lambda t: ["loss-grad", "torch.nn.functional:mse_loss", "--target",
                                   f"{HOSTILE}:nope"], "no attribute 'nope'"),
    "pipeline-without-postprocess": (lambda t: ["preprocess", "--pipeline",
                                                f"{HOSTILE}:NoPostprocess"],
                                     "postprocess(model_points, image_size"),
    "pipeline-channel-order-xyz": (lambda t: ["preprocess", "--pipeline", f"{HOSTILE}:XYZ"],
                                   "'XYZ' is not RGB or BGR"),
    "loss-grad-float": (lambda t: ["loss-grad", f"{HOSTILE}:loss_float"], "returned a float"),
    "loss-grad-none": (lambda t: ["loss-grad", f"{HOSTILE}:loss_none"], "returned a NoneType"),
    "loss-grad-vector": (lambda t: ["loss-grad", f"{HOSTILE}:loss_vector"], "not a scalar"),
    "overfit-loss-float": (lambda t: ["overfit", "--model", f"{HOSTILE}:linear", "--data",
                                      f"{HOSTILE}:data", "--loss", f"{HOSTILE}:loss_float"],
                           "not a scalar tensor"),
    "overfit-loss-vector": (lambda t: ["overfit", "--model", f"{HOSTILE}:linear", "--data",
                                       f"{HOSTILE}:data", "--loss", f"{HOSTILE}:loss_vector"],
                            "not a scalar tensor"),
    "label-minus-one": (lambda t: ["overfit", "--model", f"{HOSTILE}:classifier", "--data",
                                   f"{HOSTILE}:negative_label_data"],
                        "label -1 at index 3 is outside 0..2"),
    "history-row-missing-cell": (lambda t: ["lr-schedule", "--history", write(
        t / "m.csv", "epoch,loss\n" + "".join(f"{i},{1 / (i + 1)}\n" for i in range(5))
        + "5\n" + "".join(f"{i},{1 / (i + 1)}\n" for i in range(6, 12)))],
        "line 7, column 'loss'"),
    "junit-unwritable": (lambda t: ["check", "--select", "preprocess", "--junit",
                                    "/proc/nonexistent/j.xml"], "--junit"),
    "skip-every-check": (lambda t: ["check", "--skip",
                                    ",".join(NAMES)],
                         "nothing to run"),
    "select-nothing": (lambda t: ["check", "--select", ","], "no check named"),
    "timeout-zero": (lambda t: ["check", "--timeout", "0"], "not a positive number"),
}


def _npz_strings(tmp: Path) -> str:
    import numpy as np

    path = tmp / "s.npz"
    np.savez(path, x=np.array([["a", "b"]] * 4), y=np.zeros(4))
    return str(path)


@pytest.mark.parametrize("case", list(USAGE))
def test_usage_errors_are_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    argv, needle = USAGE[case]
    r = diag(*argv(tmp_path), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == ExitCode.USAGE_ERROR, (r.returncode, r.stdout[-500:], r.stderr)
    assert needle in one_line(r.stderr), r.stderr


# --- every config key and option, given an invalid value: exit 2, one line naming it ---------
CONFIG_VALUES = [
    ("overfit", "samples", "0"), ("overfit", "samples", "'many'"),
    ("overfit", "max_steps", "0"), ("overfit", "lr", "-1"), ("overfit", "lr", "0"),
    ("overfit", "batch_size", "0"), ("overfit", "target_loss", "-1"),
    ("leaks", "iterations", "2"), ("leaks", "warmup", "-3"), ("leaks", "iterations", "1.5"),
    ("lr-schedule", "epochs", "3"), ("lr-schedule", "lr", "-1"),
    ("lr-schedule", "verify", "'yes'"), ("lr-schedule", "range_test", "1"),
    ("lr-schedule", "metric", "3"),
    ("loss-grad", "pred_shape", "[8, true]"), ("loss-grad", "pred_shape", "[0, 3]"),
    ("loss-grad", "pred_shape", "[]"), ("loss-grad", "target", "'foo'"),
    ("loss-grad", "reference", "3"),
    ("preprocess", "sizes", "[[1, 2]]"),
    ("", "seed", "-1"), ("", "seed", "'x'"), ("", "input_size", "2"), ("", "task", "'x'"),
    ("", "timeout", "0"), ("", "timeout", "'soon'"), ("", "select", "'overfit'"),
    ("", "model", "3"), ("", "nope", "1"),
]


@pytest.mark.parametrize(("table", "key", "value"), CONFIG_VALUES,
                         ids=[f"{t or 'top'}.{k}={v}" for t, k, v in CONFIG_VALUES])
def test_every_config_key_rejects_an_invalid_value(table: str, key: str, value: str,
                                                   tmp_path: Path) -> None:
    header = f"[tool.diag.{table}]" if table else "[tool.diag]"
    config = write(tmp_path / "diag.toml", f"{header}\n{key} = {value}\n")
    r = diag("check", "--config", config, "--out", str(tmp_path / "out"))
    assert r.returncode == ExitCode.USAGE_ERROR, (r.stdout[-300:], r.stderr)
    assert key in one_line(r.stderr)


OPTION_VALUES = [
    ("overfit", "--samples", "0"), ("overfit", "--max-steps", "0"), ("overfit", "--lr", "0"),
    ("overfit", "--lr", "-1"), ("overfit", "--batch-size", "0"),
    ("overfit", "--target-loss", "-1"), ("overfit", "--input-size", "2"),
    ("overfit", "--task", "x"), ("overfit", "--seed", "x"), ("overfit", "--format", "xml"),
    ("leaks", "--iterations", "2"), ("leaks", "--warmup", "-1"),
    ("lr-schedule", "--epochs", "3"), ("lr-schedule", "--lr", "-1"),
    ("loss-grad", "--pred-shape", "8,x"), ("loss-grad", "--pred-shape", "0,3"),
    ("check", "--timeout", "-1"), ("check", "--select", "nope"), ("check", "--skip", "nope"),
    ("model", "--input-size", "2"),
]


@pytest.mark.parametrize(("command", "option", "value"), OPTION_VALUES,
                         ids=[f"{c} {o} {v}" for c, o, v in OPTION_VALUES])
def test_every_option_rejects_an_invalid_value(command: str, option: str, value: str,
                                               tmp_path: Path) -> None:
    r = diag(command, option, value, "--out", str(tmp_path)) if command != "model" else \
        diag(command, option, value)
    assert r.returncode == ExitCode.USAGE_ERROR, (r.stdout[-300:], r.stderr)
    assert option.lstrip("-").split("-")[0] in one_line(r.stderr).replace("_", "-")


# --- user code that raises or exits: that check's error, exit 3, the user's file:line -------
def test_sys_exit_in_forward_is_the_checks_error(tmp_path: Path) -> None:
    r = diag_process("check", "--model", f"{HOSTILE}:ExitsInForward", "--data", f"{HOSTILE}:data",
             "--select", "overfit,loss-grad", "--out", str(tmp_path), "--format", "json")
    assert r.returncode == ExitCode.CHECK_ERROR, r.stderr
    doc = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert doc["overfit"]["status"] == "error" and "sys.exit(0)" in doc["overfit"]["summary"]
    assert doc["overfit"]["findings"][0]["location"].startswith("hostile.py:")
    assert doc["loss-grad"]["status"] == "pass"  # the other check still ran


def test_system_exit_in_a_step_is_exit_3(tmp_path: Path) -> None:
    r = diag("leaks", "--step", f"{HOSTILE}:exiting_step", "--out", str(tmp_path))
    assert r.returncode == ExitCode.CHECK_ERROR, r.stderr
    assert "sys.exit(5)" in r.stderr and "hostile.py:" in r.stderr and "Traceback" not in r.stderr


def test_argparse_at_import_is_exit_3_with_a_hint(tmp_path: Path) -> None:
    r = diag_process("overfit", "--model", f"{H}/argparse_at_import.py:model", "--data",
             f"{HOSTILE}:data", "--out", str(tmp_path))
    assert r.returncode == ExitCode.CHECK_ERROR, r.stderr
    line = one_line(r.stderr)
    assert "sys.exit(2)" in line and "__main__" in line


def test_syntax_error_points_at_the_users_file(tmp_path: Path) -> None:
    r = diag("overfit", "--model", f"{H}/syntaxerr.py:model", "--data", f"{HOSTILE}:data",
             "--out", str(tmp_path))
    assert r.returncode == ExitCode.CHECK_ERROR
    line = one_line(r.stderr)
    assert "syntaxerr.py:4" in line and "frozen" not in line


# --- a pipeline whose output is wrong: that is the finding (fail, exit 1) --------------------
@pytest.mark.parametrize(("name", "needle"), [
    ("PointsAbc", "returned 'abc', not points"),
    ("PostprocessNone", "returned None, not points"),
    ("EmptyTensor", "no values (shape (3, 0, 0))"),
])
def test_wrong_pipeline_output_is_a_failure_not_an_internal_error(name: str, needle: str,
                                                                  tmp_path: Path) -> None:
    r = diag("preprocess", "--pipeline", f"{HOSTILE}:{name}", "--out", str(tmp_path),
             "--no-plots", "--format", "json")
    assert r.returncode == ExitCode.CHECK_FAILED, r.stderr
    check = json.loads(r.stdout)["checks"][0]
    assert check["status"] == "fail" and needle in check["summary"]
    assert check["metrics"]["output_contract"] is False
    assert "internal error" not in r.stdout + r.stderr


# --- divergence, not a plateau ---------------------------------------------------------------
def test_lr_100_is_divergence(tmp_path: Path) -> None:
    r = diag("lr-schedule", "--model", f"{PLANTED}:clean_mlp", "--data",
             f"{PLANTED}:regression_data", "--epochs", "10", "--lr", "100", "--out",
             str(tmp_path), "--format", "json", "--no-plots")
    assert r.returncode == ExitCode.CHECK_FAILED, r.stderr
    check = json.loads(r.stdout)["checks"][0]
    assert check["summary"].startswith("divergence"), check["summary"]
    assert check["metrics"]["divergence_start"] == 0
    assert "plateau" not in check["summary"]


# --- messages that misled -------------------------------------------------------------------
def test_history_with_a_bom_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "excel.csv", b"\xef\xbb\xbfepoch,loss\r\n" + b"".join(
        f"{i},{1 / (i + 1)}\r\n".encode() for i in range(20)))
    r = diag("lr-schedule", "--history", path, "--out", str(tmp_path), "--quiet")
    assert r.returncode == ExitCode.OK, r.stderr


def test_reference_in_a_config_is_relative_to_the_config(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    write(sub / "ref.py", "import torch.nn.functional as F\n\n\ndef ref(p, t):\n"
          "    return F.mse_loss(p, t)\n")
    config = write(sub / "diag.toml", '[tool.diag]\nloss = "torch.nn.functional:mse_loss"\n'
                   'select = ["loss-grad"]\n[tool.diag.loss-grad]\nreference = "ref.py:ref"\n')
    r = diag("check", "--config", config, "--out", str(tmp_path / "out"), "--format", "json",
             cwd=tmp_path)
    assert r.returncode == ExitCode.OK, r.stderr
    assert json.loads(r.stdout)["checks"][0]["metrics"]["reference_match"] is True
    bad = write(sub / "bad.toml", '[tool.diag]\nloss = "torch.nn.functional:mse_loss"\n'
                '[tool.diag.loss-grad]\nreference = "ref.py:nope"\n')
    r = diag("check", "--config", bad, "--select", "loss-grad", "--out", str(tmp_path / "o"))
    line = one_line(r.stderr)
    assert r.returncode == ExitCode.USAGE_ERROR and "reference" in line and "--loss" not in line


def test_check_help_shows_tool_diag() -> None:
    r = diag("check", "--help")
    assert "[tool.diag] in pyproject.toml" in " ".join(r.stdout.split())


def test_an_undertrained_linear_model_is_not_blamed_on_a_relu(tmp_path: Path) -> None:
    r = diag("overfit", "--model", f"{HOSTILE}:linear", "--data", f"{HOSTILE}:data",
             "--max-steps", "3", "--out", str(tmp_path), "--format", "json", "--no-plots")
    check = json.loads(r.stdout)["checks"][0]
    assert check["status"] == "fail" and check["metrics"]["steps"] == 3
    assert not any("ReLU or clamp" in f["message"] for f in check["findings"])


# --- output that must not be corrupted ------------------------------------------------------
def test_prints_in_user_code_do_not_corrupt_json_stdout(tmp_path: Path) -> None:
    r = diag_process("overfit", "--model", f"{HOSTILE}:Chatty", "--data", f"{HOSTILE}:data",
             "--max-steps", "5", "--format", "json", "--out", str(tmp_path), "--no-plots")
    assert json.loads(r.stdout)["checks"][0]["name"] == "overfit"
    assert "forward called" in r.stderr


def test_an_unwritable_step_summary_is_a_warning_and_costs_no_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "summary.md").mkdir(parents=True)  # a folder where the file should go
    env = {"GITHUB_STEP_SUMMARY": str(tmp_path / "missing" / "summary")}
    r = diag("check", "--select", "preprocess", "--out", str(out), "--junit",
             str(tmp_path / "j.xml"), "--no-plots", env=env)
    assert r.returncode == ExitCode.OK, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("warning") == 2, r.stderr
    assert json.loads((out / "report.json").read_text())["checks"][0]["status"] == "pass"
    assert (tmp_path / "j.xml").read_text().startswith("<?xml")
