"""diag in CI the way CI tools work: SARIF 2.1.0 (validated against the official schema,
tests/data/sarif/), stable rule ids, a baseline that ratchets, the pytest plugin, the
pre-commit hook and the GitHub composite action."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest

from diag.result import ExitCode

from clirun import diag

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
SCHEMA = TESTS / "data" / "sarif" / "sarif-schema-2.1.0.json"
LEAKY = f"{TESTS}/leaky.py"


def validate(doc: dict[str, object]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft4Validator(schema).validate(doc)


def _sarif(*args: str, tmp: Path) -> dict[str, object]:
    r = diag(*args, "--format", "sarif", "--no-plots", "--out", str(tmp))
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


# --- SARIF -----------------------------------------------------------------------------------
def test_sarif_of_a_planted_leak_is_valid_and_points_at_the_line(tmp_path: Path) -> None:
    doc = _sarif("leaks", "--step", f"{LEAKY}:list_of_losses", "--iterations", "12",
                 tmp=tmp_path)
    validate(doc)
    run = doc["runs"][0]  # type: ignore[index]
    growth = [r for r in run["results"] if r["ruleId"] == "diag/leaks/tensor-growth"]
    assert growth and growth[0]["level"] == "error"
    where = growth[0]["locations"][0]["physicalLocation"]
    assert where["artifactLocation"]["uri"] == "tests/leaky.py"  # relative to the repo
    line = where["region"]["startLine"]
    # the leaked losses are created by _train's F.mse_loss (the step appends them)
    assert "F.mse_loss" in (TESTS / "leaky.py").read_text().splitlines()[line - 1]
    rule = next(r for r in run["tool"]["driver"]["rules"]
                if r["id"] == "diag/leaks/tensor-growth")
    assert rule["help"]["text"] and rule["shortDescription"]["text"]


def test_findings_without_a_location_point_at_the_config(tmp_path: Path) -> None:
    doc = _sarif("loss-grad", tmp=tmp_path)
    validate(doc)
    results = doc["runs"][0]["results"]  # type: ignore[index]
    assert results and all(
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "pyproject.toml"
        for r in results if r["level"] == "note")


def test_check_writes_sarif_beside_the_other_outputs(tmp_path: Path) -> None:
    path = tmp_path / "diag.sarif"
    r = diag("check", "--select", "loss-grad,preprocess", "--sarif", str(path), "--no-plots",
             "--out", str(tmp_path / "o"), "--quiet")
    assert r.returncode == 0, r.stderr
    validate(json.loads(path.read_text()))


def test_rule_ids_are_stable_across_runs_and_seeds(tmp_path: Path) -> None:
    ids = []
    for seed in ("0", "7"):
        doc = _sarif("leaks", "--step", f"{LEAKY}:list_of_losses", "--iterations", "12",
                     "--seed", seed, tmp=tmp_path / seed)
        ids.append(sorted({r["ruleId"] for r in doc["runs"][0]["results"]}))  # type: ignore[index]
    assert ids[0] == ids[1] and "diag/leaks/tensor-growth" in ids[0]


def test_rule_slugs_leave_numbers_out() -> None:
    from diag.report.rules import slug

    assert slug("plateau: no meaningful progress from step 30 at lr 0.001") == "plateau"
    assert slug("loss at init is 11.8, 8.5x the expected ln(4) = 1.39") == \
        "loss-at-init-is-the-expected"
    assert slug("100% of the units after fc2 are dead (zero for every sample)") == \
        "of-the-units-after-are-dead"


# --- baseline --------------------------------------------------------------------------------
def _check(tmp: Path, per_iter: int, *extra: str) -> object:
    """In the suite's own process on purpose: after some 600 tests it holds graphs of earlier
    tests' tensors, whose saved tensors the census walks. Counted by address while they were
    temporaries, they made this leak 1.82 and 2.34 tensors per iteration in two CI runs (the
    allocator reused addresses); a fresh process always gave 1.0."""
    os.environ["DIAG_TEST_LEAK_PER_ITER"] = str(per_iter)
    try:
        return diag("check", "--select", "leaks", "--step", f"{LEAKY}:keep_tensors",
                    "--no-plots", "--out", str(tmp / "out"), "--quiet",
                    "--baseline", str(tmp / "baseline.json"), *extra)
    finally:
        os.environ.pop("DIAG_TEST_LEAK_PER_ITER", None)


def test_a_leak_in_the_baseline_passes_and_a_worse_one_fails(tmp_path: Path) -> None:
    r = _check(tmp_path, 1, "--update-baseline")
    assert r.returncode == 0, r.stderr  # type: ignore[attr-defined]
    doc = json.loads((tmp_path / "baseline.json").read_text())
    assert [f["rule"] for f in doc["findings"]] == ["diag/leaks/tensor-growth"]
    assert doc["metrics"]["leaks.tensors_per_iter"] == pytest.approx(1.0)
    same = _check(tmp_path, 1)
    assert same.returncode == ExitCode.OK, same.stderr  # type: ignore[attr-defined]
    assert "0 new, 0 fixed, 0 worse" in same.stderr  # type: ignore[attr-defined]
    worse = _check(tmp_path, 3)
    assert worse.returncode == ExitCode.CHECK_FAILED, worse.stderr  # type: ignore[attr-defined]
    assert "worse: leaks.tensors_per_iter 1 -> 3" in worse.stderr  # type: ignore[attr-defined]
    assert "Against the baseline" in (tmp_path / "out" / "summary.md").read_text()


def test_a_removed_finding_is_reported_as_fixed(tmp_path: Path) -> None:
    assert _check(tmp_path, 1, "--update-baseline").returncode == 0  # type: ignore[attr-defined]
    r = diag("check", "--select", "leaks", "--step", f"{LEAKY}:clean", "--no-plots", "--out",
             str(tmp_path / "out"), "--quiet", "--baseline", str(tmp_path / "baseline.json"))
    assert r.returncode == ExitCode.OK, r.stderr
    assert "1 fixed" in r.stderr and "fixed: diag/leaks/tensor-growth" in r.stderr
    assert "better: leaks.tensors_per_iter" in r.stderr
    delta = json.loads((tmp_path / "out" / "baseline-delta.json").read_text())
    assert [f["rule"] for f in delta["fixed"]] == ["diag/leaks/tensor-growth"]


def test_a_new_finding_fails(tmp_path: Path) -> None:
    r = diag("check", "--select", "leaks", "--step", f"{LEAKY}:clean", "--no-plots", "--out",
             str(tmp_path / "out"), "--quiet", "--baseline", str(tmp_path / "baseline.json"),
             "--update-baseline")
    assert r.returncode == 0, r.stderr
    r = _check(tmp_path, 1)
    assert r.returncode == ExitCode.CHECK_FAILED  # type: ignore[attr-defined]
    assert "new: diag/leaks/tensor-growth at leaky.py:" in r.stderr  # type: ignore[attr-defined]


def test_a_bad_baseline_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text("{}")
    r = diag("check", "--select", "loss-grad", "--baseline", str(tmp_path / "b.json"),
             "--out", str(tmp_path))
    assert r.returncode == ExitCode.USAGE_ERROR and "diag-baseline/1" in r.stderr
    r = diag("check", "--select", "loss-grad", "--update-baseline", "--out", str(tmp_path))
    assert r.returncode == ExitCode.USAGE_ERROR and "needs --baseline" in r.stderr


# --- pytest ----------------------------------------------------------------------------------
def _project(pytester: pytest.Pytester, loss: str) -> None:
    pytester.makepyprojecttoml(f'[tool.diag]\nloss = "{TESTS}/losses.py:{loss}"\n'
                               'select = ["loss-grad"]\n')


def test_pytest_diag_runs_the_configured_checks_as_items(pytester: pytest.Pytester) -> None:
    _project(pytester, "mse")
    result = pytester.runpytest("--diag", "-q")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest("--diag", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*diag[[]loss-grad[]]*"])


def test_a_failed_check_shows_its_findings(pytester: pytest.Pytester) -> None:
    _project(pytester, "wrong_backward")
    result = pytester.runpytest("--diag")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*diag loss-grad: fail*", "*FAIL*"])


def test_without_diag_the_plugin_adds_nothing(pytester: pytest.Pytester) -> None:
    _project(pytester, "mse")
    pytester.makepyfile("def test_one():\n    assert True\n")
    pytester.runpytest("-q").assert_outcomes(passed=1)


def test_the_fixture_and_the_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(f"""
import pytest
import sys
sys.path.insert(0, {str(TESTS)!r})
import losses

def test_fixture(diag_check):
    diag_check("loss-grad", loss=losses.mse).assert_passed()

@pytest.mark.diag("loss-grad")
def test_marker_passes(diag_loss=None):
    pass

@pytest.fixture
def diag_loss():
    return losses.wrong_backward

@pytest.mark.diag("loss-grad")
def test_marker_on_the_tests_own_loss(diag_loss):
    pass
""")
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_marker_on_the_tests_own_loss*"])


# --- pre-commit and GitHub Actions -----------------------------------------------------------
def _yaml(name: str) -> object:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((ROOT / name).read_text())


def test_the_pre_commit_hook_names_a_command_that_exists() -> None:
    [hook] = _yaml(".pre-commit-hooks.yaml")  # type: ignore[misc]
    assert hook["id"] == "diag-check" and hook["pass_filenames"] is False
    assert hook["files"] == r"(\.py|pyproject\.toml)$"
    argv = shlex.split(hook["entry"])
    assert argv[:2] == ["diag", "check"]
    help_text = diag("check", "--help").stdout
    assert all(opt in help_text for opt in argv[2:])


def test_the_action_runs_diag_check_with_sarif_and_uploads_it() -> None:
    action = _yaml("action.yml")
    steps = action["runs"]["steps"]  # type: ignore[index]
    assert action["runs"]["using"] == "composite"  # type: ignore[index]
    run = next(s["run"] for s in steps if "diag check" in s.get("run", ""))
    help_text = diag("check", "--help").stdout
    for opt in ("--sarif", "--junit", "--baseline"):
        assert opt in run and opt in help_text
    upload = next(s for s in steps if "upload-sarif" in s.get("uses", ""))
    assert upload["with"]["sarif_file"] == "${{ inputs.sarif }}"
    assert upload["if"] == "always()"
