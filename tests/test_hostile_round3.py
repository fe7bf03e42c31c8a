"""Reliability, round 3 (the hostile-user issue): ``--timeout`` bounds everything a check
does, bad input found inside a check is exit 2, a verdict never passes on NaN, and the
smaller crashes found by trying diag as a hostile user would. Each case goes through the
command line: its exit code, one line on stderr, nothing written outside ``--out``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diag.result import ExitCode

from clirun import diag, one_line

TESTS = Path(__file__).resolve().parent
FUZZ_EXAMPLES = int(os.environ.get("DIAG_FUZZ_EXAMPLES", "60"))
"""Examples per fuzz test; raise it (e.g. 2000) for a long hunt."""
SLEEPY = TESTS / "sleepy.py"


def diag_bounded(*args: str, cwd: Path | None = None, limit: float = 180
                 ) -> subprocess.CompletedProcess[str]:
    """The console script in a subprocess with its own time limit: a hang fails this test,
    never the suite."""
    return subprocess.run([sys.executable, "-m", "diag", *args], capture_output=True,
                          text=True, timeout=limit, cwd=cwd)


def _checks(stdout: str) -> dict[str, dict[str, object]]:
    return {c["name"]: c for c in json.loads(stdout)["checks"]}


# --- --timeout bounds the plan's work too ---------------------------------------------------
def _small_history(tmp: Path) -> str:
    """A check that needs a few milliseconds, so "the others go on" holds on a busy
    machine: lr-schedule on a 12-point file."""
    path = tmp / "h.csv"
    path.write_text("epoch,loss\n" + "".join(f"{i},{1 / (i + 1)}\n" for i in range(12)))
    return str(path)


def test_a_forward_that_blocks_in_the_plan_times_out_that_check(tmp_path: Path) -> None:
    r = diag_bounded("check", "--model", f"{SLEEPY}:BlockingForward", "--select",
                     "init,lr-schedule", "--history", _small_history(tmp_path),
                     "--timeout", "5", "--no-plots", "--format", "json",
                     "--out", str(tmp_path / "out"))
    assert r.returncode == ExitCode.CHECK_ERROR, r.stderr
    doc = _checks(r.stdout)
    assert doc["init"]["status"] == "error"
    assert "timed out after 5 s while building the model" in str(doc["init"]["summary"])
    assert "sleepy.py:" in str(doc["init"]["summary"])  # where it was stuck
    assert doc["lr-schedule"]["status"] == "pass"  # the others go on
    assert (tmp_path / "out" / "report.json").is_file()
    assert (tmp_path / "out" / "init.json").is_file()


def test_a_loader_that_blocks_before_its_first_batch_times_out(tmp_path: Path) -> None:
    cfg = tmp_path / "diag.toml"
    cfg.write_text(f'[tool.diag]\nselect = ["data", "lr-schedule"]\ntimeout = 5\n'
                   f'history = "{_small_history(tmp_path)}"\n'
                   f'[tool.diag.data-check]\nloader = "{SLEEPY}:blocking_loader"\n')
    r = diag_bounded("check", "--config", str(cfg), "--no-plots", "--format", "json",
                     "--out", str(tmp_path / "out"))
    assert r.returncode == ExitCode.CHECK_ERROR, r.stderr
    doc = _checks(r.stdout)
    assert "timed out after 5 s while preparing" in str(doc["data"]["summary"])
    assert doc["lr-schedule"]["status"] == "pass"


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1"])
def test_timeout_must_be_a_positive_finite_number(value: str, tmp_path: Path) -> None:
    r = diag("check", "--timeout", value, "--out", str(tmp_path))
    assert r.returncode == ExitCode.USAGE_ERROR
    assert "--timeout" in one_line(r.stderr)
    cfg = tmp_path / "diag.toml"
    cfg.write_text(f"[tool.diag]\ntimeout = {value}\n")
    r = diag("check", "--config", str(cfg), "--out", str(tmp_path))
    assert r.returncode == ExitCode.USAGE_ERROR
    assert "timeout" in one_line(r.stderr)


# --- every option: finite, in range, named as the user wrote it -----------------------------
def test_max_size_must_be_a_positive_size(tmp_path: Path) -> None:
    r = diag("size", "--max-size", "-5MB", "--out", str(tmp_path))
    assert r.returncode == ExitCode.USAGE_ERROR
    assert "--max-size" in one_line(r.stderr)
    cfg = tmp_path / "diag.toml"
    cfg.write_text('[tool.diag]\nselect = ["size"]\n[tool.diag.size]\nmax_size = "-5MB"\n')
    r = diag("check", "--config", str(cfg), "--out", str(tmp_path))
    assert r.returncode == ExitCode.USAGE_ERROR
    line = one_line(r.stderr)
    assert "max_size" in line and "--max-size" not in line, line


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1"])
def test_max_error_must_be_finite_and_not_negative(value: str, tmp_path: Path) -> None:
    r = diag("size", f"--max-error={value}", "--out", str(tmp_path))
    assert r.returncode == ExitCode.USAGE_ERROR, r.stderr
    assert "--max-error" in one_line(r.stderr)


def _float_options() -> list[tuple[str, str]]:
    import typing

    from diag.checks.registry import CHECKS

    return [(c.name, key) for c in CHECKS for key in c.option_keys()
            if float in typing.get_args(typing.get_type_hints(c.options)[key])
            or typing.get_type_hints(c.options)[key] is float]


@pytest.mark.parametrize(("check", "key"), _float_options())
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")],
                         ids=["nan", "inf", "-inf"])
def test_every_float_option_refuses_non_finite_values(check: str, key: str,
                                                      value: float) -> None:
    from diag.checks.base import validate_options
    from diag.checks.registry import get
    from diag.errors import UsageError

    with pytest.raises(UsageError, match=key):
        validate_options(get(check), {key: value}, f"[tool.diag.{check}]")


def test_every_check_has_float_options_audited() -> None:
    assert {c for c, _ in _float_options()} >= {"overfit", "lr-schedule", "size", "init"}


def test_fuzzed_option_values_are_options_or_one_usage_error() -> None:
    """Any value TOML can hold, in any key of any check: valid options or a UsageError
    naming the key, never another exception."""
    import datetime

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from diag.checks.base import validate_options
    from diag.checks.registry import CHECKS
    from diag.errors import UsageError

    leaves = st.one_of(st.booleans(), st.integers(-2**70, 2**70), st.floats(),
                       st.text(max_size=10), st.datetimes(), st.dates(),
                       st.just(datetime.time(1, 2)))
    values = st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
        max_leaves=6)
    keys = st.sampled_from([(c, k) for c in CHECKS for k in c.option_keys()])

    @settings(max_examples=5 * FUZZ_EXAMPLES, deadline=None)
    @given(key=keys, value=values)
    def fuzz(key: tuple[object, str], value: object) -> None:
        check, name = key
        try:
            validate_options(check, {name: value}, "[tool.diag.x]")  # type: ignore[arg-type]
        except UsageError as exc:
            assert name in exc.message and "\n" not in exc.one_line()

    fuzz()


# --- --export: bad folders are exit 2 and leave nothing behind -------------------------------
def test_export_to_an_existing_file_is_a_usage_error(tmp_path: Path) -> None:
    target = tmp_path / "weights"
    target.write_text("mine")
    r = diag("size", "--export", str(target), "--out", str(tmp_path / "out"), "--no-plots")
    assert r.returncode == ExitCode.USAGE_ERROR
    assert "--export" in one_line(r.stderr) and target.read_text() == "mine"


def test_export_under_proc_is_a_usage_error_and_writes_nothing(tmp_path: Path) -> None:
    r = diag("size", "--export", "/proc/diag-export-test/w", "--out", str(tmp_path),
             "--no-plots")
    assert r.returncode == ExitCode.USAGE_ERROR, r.stderr
    assert "--export" in one_line(r.stderr)


def test_export_where_a_subfolder_name_is_a_file_leaves_nothing_partial(tmp_path: Path) -> None:
    out = tmp_path / "w"
    out.mkdir()
    (out / "tfjs-uint8").write_text("in the way")
    r = diag("size", "--export", str(out), "--out", str(tmp_path / "r"), "--no-plots")
    assert r.returncode == ExitCode.USAGE_ERROR, r.stderr
    assert "tfjs-uint8" in one_line(r.stderr)
    assert sorted(p.name for p in out.iterdir()) == ["tfjs-uint8"]
    assert (out / "tfjs-uint8").read_text() == "in the way"


# --- bad input found inside a check: exit 2, one line ---------------------------------------
H3 = f"{TESTS}/hostile/round3.py"
DATA = ("--data", f"{TESTS}/hostile/hostile.py:data", "--model", f"{H3}:linear")


@pytest.mark.parametrize(("loader", "expected"), [
    ("ragged_loader", "shape (4, 5) in batch 3, but (4, 4) in batch 1"),
    ("string_loader", "inputs is a list"),
    ("keyless_loader", "dicts with keys ['inputs', 'wanted']"),
    ("generator_object", "can be read only once"),
    ("huge_loader", "GB once copied"),
])
def test_loader_trouble_after_the_first_batch_is_a_usage_error(loader: str, expected: str,
                                                              tmp_path: Path) -> None:
    r = diag("data", "--loader", f"{H3}:{loader}", *DATA, "--no-plots", "--out", str(tmp_path))
    assert r.returncode == ExitCode.USAGE_ERROR, r.stderr
    assert expected in one_line(r.stderr)


def test_speed_with_too_few_batches_is_a_usage_error(tmp_path: Path) -> None:
    r = diag("speed", "--loader", f"{H3}:two_batch_loader", *DATA, "--max-batch", "2",
             "--no-plots", "--out", str(tmp_path))
    assert r.returncode == ExitCode.USAGE_ERROR, r.stderr
    assert "fewer than 3 batches" in one_line(r.stderr)


@pytest.mark.parametrize(("command", "factory", "what"), [
    ("leaks", "step_factory_returns_none", "returned None"),
    ("leaks", "step_factory_returns_int", "returned an int"),
    ("speed", "step_factory_returns_none", "returned None"),
])
def test_a_step_factory_that_returns_no_callable_points_at_the_factory(
        command: str, factory: str, what: str, tmp_path: Path) -> None:
    extra = DATA + ("--max-batch", "2") if command == "speed" else ()
    r = diag(command, "--step", f"{H3}:{factory}", *extra, "--no-plots", "--out",
             str(tmp_path))
    assert r.returncode == ExitCode.USAGE_ERROR, r.stderr
    line = one_line(r.stderr)
    assert what in line and "round3.py:" in line and "check.py" not in line, line


def test_init_on_a_model_without_a_weight_matrix_is_a_usage_error(tmp_path: Path) -> None:
    r = diag("init", "--model", f"{H3}:NoWeightMatrix", "--data",
             f"{TESTS}/hostile/hostile.py:data", "--no-plots", "--out", str(tmp_path))
    assert r.returncode == ExitCode.USAGE_ERROR, r.stderr
    assert "no layer with a weight matrix" in one_line(r.stderr)


def test_a_huge_pred_shape_is_refused_before_any_allocation(tmp_path: Path) -> None:
    r = diag("loss-grad", "--pred-shape", "100000,100000", "--out", str(tmp_path))
    assert r.returncode == ExitCode.USAGE_ERROR, r.stderr
    line = one_line(r.stderr)
    assert "--pred-shape" in line and "10,000,000,000 elements" in line
    assert list(tmp_path.iterdir()) == []  # refused before any check ran


# --- a verdict never passes on NaN ----------------------------------------------------------
@pytest.mark.parametrize(("model", "expected"), [
    ("nan_output", "non-finite output at init: first at the model's output"),
    ("frozen", "nothing to train"),
    ("huge_weights", "non-finite output at init: first at 2"),
    ("deep_std1", "the loss at init is inf: the output std grows"),
])
def test_init_fails_on_non_finite_or_nothing_to_train(model: str, expected: str,
                                                      tmp_path: Path) -> None:
    r = diag("init", "--model", f"{H3}:{model}", "--data", f"{TESTS}/hostile/hostile.py:data",
             "--format", "json", "--out", str(tmp_path))
    assert r.returncode == ExitCode.CHECK_FAILED, r.stderr
    doc = _checks(r.stdout)["init"]
    assert doc["status"] == "fail" and expected in str(doc["summary"]), doc["summary"]


def test_init_passes_the_healthy_twin(tmp_path: Path) -> None:
    r = diag("init", "--model", f"{H3}:linear", "--data", f"{TESTS}/hostile/hostile.py:data",
             "--format", "json", "--out", str(tmp_path))
    assert r.returncode == ExitCode.OK, r.stderr


# --- smaller ones ---------------------------------------------------------------------------
@pytest.mark.slow
def test_overfit_confirms_plain_list_layers_beside_registered_modules(tmp_path: Path) -> None:
    r = diag("overfit", "--model", f"{H3}:ListAndModules", "--data",
             f"{TESTS}/hostile/hostile.py:data", "--no-plots", "--format", "json",
             "--out", str(tmp_path))
    assert r.returncode == ExitCode.CHECK_FAILED, r.stderr
    doc = _checks(r.stdout)["overfit"]
    assert "plain list" in str(doc["summary"]) and "internal error" not in str(doc["summary"])


@pytest.mark.parametrize("command", ["init", "speed", "overfit"])
def test_an_attribute_shadowing_a_module_method_is_named(command: str, tmp_path: Path) -> None:
    r = diag(command, "--model", f"{H3}:ShadowsTo", "--data", f"{TESTS}/hostile/hostile.py:data",
             "--no-plots", "--out", str(tmp_path))
    assert r.returncode == ExitCode.USAGE_ERROR, r.stderr
    line = one_line(r.stderr)
    assert "'to'" in line and "nn.Module.to()" in line and "rename" in line


def test_a_pipeline_returning_a_str_is_a_fail_not_an_internal_error(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe.py"
    pipe.write_text("from diag.model.pipeline import BrowserPipeline\n\n\n"
                    "class StrTensor(BrowserPipeline):\n"
                    "    def preprocess(self, image, points):\n"
                    "        return 'abc', super().preprocess(image, points)[1]\n")
    r = diag("preprocess", "--pipeline", f"{pipe}:StrTensor", "--no-plots", "--format", "json",
             "--out", str(tmp_path / "o"))
    assert r.returncode == ExitCode.CHECK_FAILED, r.stderr
    assert "returned a str, not a tensor" in str(_checks(r.stdout)["preprocess"]["summary"])


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_fractional_epochs_are_read(suffix: str, tmp_path: Path) -> None:
    epochs = [0.5 * (i + 1) for i in range(14)]
    losses = [1.0 / (1 + e) for e in epochs]
    path = tmp_path / f"h{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps([{"epoch": e, "loss": v} for e, v in zip(epochs, losses,
                                                                             strict=True)]))
    else:
        path.write_text("epoch,loss\n" + "".join(f"{e},{v}\n" for e, v in zip(epochs, losses,
                                                                              strict=True)))
    r = diag("lr-schedule", "--history", str(path), "--no-plots", "--format", "json",
             "--out", str(tmp_path / "o"))
    assert r.returncode == ExitCode.OK, r.stderr
    doc = _checks(r.stdout)["lr-schedule"]
    assert "14 logged points" in str(doc["summary"]), doc["summary"]


def test_seed_range_is_stated_and_enforced(tmp_path: Path) -> None:
    assert "0 to 2**63-1" in " ".join(diag("overfit", "--help").stdout.split())
    r = diag("overfit", "--seed", "-1", "--out", str(tmp_path))
    assert r.returncode == ExitCode.USAGE_ERROR
    assert "from 0 to" in one_line(r.stderr)


def test_check_help_lists_every_check_of_the_registry() -> None:
    from diag.checks.registry import NAMES

    text = " ".join(diag("check", "--help").stdout.split())
    listed = text.split("Only these checks (comma-separated or repeated):")[1].split(".")[0]
    assert [n.strip(" ,│") for n in listed.split(",")] == list(NAMES), listed


def test_fuzzed_tool_diag_tables_parse_or_are_one_usage_error() -> None:
    """Random keys, types and nesting in [tool.diag] and its sub-tables: a Config or one
    UsageError naming the key, never another exception."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from diag.checks.registry import BY_TABLE
    from diag.errors import UsageError
    from diag.inputs.config import TOP_KEYS, parse

    leaves = st.one_of(st.booleans(), st.integers(-2**70, 2**70), st.floats(),
                       st.text(max_size=8), st.sampled_from(["overfit", "leaks", "2MB", "-1"]))
    values = st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
        max_leaves=6)
    sub_keys = sorted({k for c in BY_TABLE.values() for k in c.option_keys()})
    sub_tables = st.dictionaries(st.sampled_from(sub_keys) | st.text(max_size=6), values,
                                 max_size=3)
    tables = st.dictionaries(st.sampled_from(sorted(TOP_KEYS)) | st.text(max_size=6),
                             values, max_size=4) | st.dictionaries(
        st.sampled_from(sorted(BY_TABLE)), sub_tables, min_size=1, max_size=2)

    @settings(max_examples=5 * FUZZ_EXAMPLES, deadline=None)
    @given(table=tables)
    def fuzz(table: dict[str, object]) -> None:
        try:
            parse(table, "pyproject.toml")
        except UsageError as exc:
            assert "\n" not in exc.one_line()

    fuzz()
