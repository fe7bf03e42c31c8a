"""`diag check`: config, selection, JUnit, GitHub summary, timeout, Ctrl-C, determinism,
user state, and the Python API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from diag import checks
from diag.checks.registry import NAMES
from diag.cli import app
from diag.errors import UsageError
from diag.inputs.config import load_config
from diag.result import ExitCode, Status

import planted

runner = CliRunner()
TESTS = Path(__file__).resolve().parents[1]

FAST_CONFIG = f"""
[tool.diag]
model = "{TESTS}/planted.py:clean_mlp"
data = "{TESTS}/planted.py:regression_data"
step = "{TESTS}/leaky.py:clean"
seed = 3

[tool.diag.overfit]
lr = 0.01
max_steps = 300

[tool.diag.leaks]
iterations = 12

[tool.diag.lr-schedule]
epochs = 12

[tool.diag.speed]
stop_early = false  # the batch sizes tried must not depend on the timings
"""


def write_config(tmp_path: Path, text: str = FAST_CONFIG) -> Path:
    path = tmp_path / "diag.toml"
    path.write_text(text)
    return path


def run_check(*args: str) -> object:
    return runner.invoke(app, ["check", *args])


def test_fast_config_runs_every_check(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    junit = tmp_path / "junit.xml"
    r = run_check("--config", str(cfg), "--out", str(tmp_path / "out"), "--junit", str(junit),
                  "--format", "json", "--no-plots")
    doc = json.loads(r.stdout)  # type: ignore[attr-defined]
    statuses = {c["name"]: c["status"] for c in doc["checks"]}
    assert list(statuses) == list(NAMES)
    assert statuses["overfit"] == "pass" and statuses["leaks"] == "pass"
    assert statuses["preprocess"] == "skip"  # a user model and no pipeline
    assert statuses["lr-schedule"] == "pass" and statuses["loss-grad"] == "pass"
    assert r.exit_code == ExitCode.OK, r.output  # type: ignore[attr-defined]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == str(len(NAMES))
    assert [c.get("name") for c in suite.iter("testcase")] == list(NAMES)
    assert all(c["duration_s"] >= 0 for c in doc["checks"])


def test_junit_failure_carries_findings(tmp_path: Path) -> None:
    r = run_check("--model", f"{TESTS}/planted.py:DetachedBranch", "--data",
                  f"{TESTS}/planted.py:regression_data", "--select", "overfit", "--junit",
                  str(tmp_path / "j.xml"), "--out", str(tmp_path), "--no-plots")
    assert r.exit_code == ExitCode.CHECK_FAILED, r.output  # type: ignore[attr-defined]
    failure = ET.parse(tmp_path / "j.xml").getroot().find(".//failure")
    assert failure is not None and "never receive a gradient" in (failure.text or "")


def test_select_and_skip(tmp_path: Path) -> None:
    r = run_check("--select", "loss-grad,preprocess", "--skip", "preprocess", "--out",
                  str(tmp_path), "--format", "json", "--no-plots")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    assert [c["name"] for c in json.loads(r.stdout)["checks"]] == ["loss-grad"]  # type: ignore[attr-defined]
    r = run_check("--select", "overfitt", "--out", str(tmp_path))
    assert r.exit_code == ExitCode.USAGE_ERROR and "unknown check" in r.stderr  # type: ignore[attr-defined]


@pytest.mark.parametrize(("text", "needle"), [
    ("[tool.diag]\nmodle = 'x:y'\n", "unknown key 'modle'; did you mean 'model'?"),
    ("[tool.diag.overfit]\nsamples = 'many'\n", "samples: expected an integer"),
    ("[tool.diag.overfit]\nsteps = 3\n", "did you mean 'max_steps'?"),
    ("[tool.diag]\nmodel = 'no_such_module_q:m'\n", "[tool.diag] model: --model: no module"),
    ("[tool.diag]\nhistory = 'missing.csv'\nselect = ['lr-schedule']\n", "history"),
    ("[tool.diag]\nselect = ['nope']\n", "unknown check 'nope'"),
    ("[tool.diag\n", "not valid TOML"),
], ids=["unknown-key", "wrong-type", "unknown-check-key", "bad-spec", "missing-history",
        "bad-select", "bad-toml"])
def test_config_errors_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    cfg = write_config(tmp_path, text)
    r = run_check("--config", str(cfg), "--out", str(tmp_path))
    assert r.exit_code == ExitCode.USAGE_ERROR, r.output  # type: ignore[attr-defined]
    assert needle in r.stderr and r.stderr.count("\n") == 1, r.stderr  # type: ignore[attr-defined]


def test_pyproject_in_the_working_directory_is_read(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n[tool.diag]\nseed = 5\n"
                                             "skip = ['overfit']\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None)
    assert cfg.get("seed") == 5 and cfg.get("skip") == ["overfit"]
    (tmp_path / "pyproject.toml").write_text("[tool.diag]\nseed = 'x'\n")
    with pytest.raises(UsageError, match="pyproject.toml"):
        load_config(None)


def test_github_step_summary_is_appended(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "gh.md"
    summary.write_text("earlier\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    r = run_check("--select", "loss-grad", "--out", str(tmp_path / "o"), "--no-plots")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    text = summary.read_text()
    assert text.startswith("earlier\n") and "| loss-grad |" in text
    assert (tmp_path / "o" / "summary.md").read_text() in text


def test_timeout_is_an_error_of_that_check(tmp_path: Path) -> None:
    """A step that blocks until interrupted: it times out however fast the machine is.
    That the other checks go on is tested in tests/run/test_session.py, with no race."""
    r = run_check("--step", f"{TESTS}/sleepy.py:blocking_step", "--select", "leaks",
                  "--timeout", "0.5", "--out", str(tmp_path), "--format", "json", "--no-plots")
    assert r.exit_code == ExitCode.CHECK_ERROR, r.output  # type: ignore[attr-defined]
    doc = {c["name"]: c for c in json.loads(r.stdout)["checks"]}  # type: ignore[attr-defined]
    assert doc["leaks"]["status"] == "error" and "timed out after 0.5 s" in doc["leaks"]["summary"]
    assert doc["leaks"]["duration_s"] >= 0.5


def _ctrl_c_as_in_a_terminal() -> None:
    """diag as a terminal starts it: Ctrl-C not ignored. A test run started as a background
    job (``cmd &`` in a script) has SIGINT ignored, children inherit that, and Python then
    never raises KeyboardInterrupt: the test hung for its 120 s without this."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("plots", [False, True], ids=["no-plots", "plots"])
def test_ctrl_c_writes_finished_checks_and_exits_130(tmp_path: Path, plots: bool) -> None:
    """With plots, Ctrl-C reaches the whole process group, as from a terminal: the plot
    worker ignores it and the finished check's plots are drawn and listed."""
    cfg = write_config(tmp_path, FAST_CONFIG.replace("leaky.py:clean", "sleepy.py:blocking_step"))
    out = tmp_path / "out"
    env = dict(os.environ, NO_COLOR="1")
    proc = subprocess.Popen([sys.executable, "-m", "diag", "check", "--config", str(cfg),
                             "--out", str(out), "--select", "overfit,leaks"]
                            + ([] if plots else ["--no-plots"]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, preexec_fn=_ctrl_c_as_in_a_terminal)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # no race: wait until diag says leaks (which blocks) started
        seen.append(line)
        if "running leaks" in line:
            break
    os.killpg(proc.pid, signal.SIGINT)
    stdout, rest = proc.communicate(timeout=120)
    stderr = "".join(seen) + rest
    assert proc.returncode == ExitCode.INTERRUPTED, (stdout, stderr)
    assert "interrupted while running leaks" in stderr
    assert "Traceback" not in stderr, stderr  # nor from the plot worker
    report = json.loads((out / "report.json").read_text())
    assert [c["name"] for c in report["checks"]] == ["overfit"]
    assert report["interrupted"] == "leaks"
    overfit = json.loads((out / "overfit.json").read_text())["checks"][0]
    assert overfit["status"] == "pass"
    pngs = [a for a in overfit["artifacts"] if a.endswith(".png")]
    assert [Path(a).name for a in pngs] == (
        ["overfit_loss.png", "overfit_grad_norms.png"] if plots else []), overfit["artifacts"]
    assert all(Path(a).stat().st_size > 1000 for a in pngs)
    assert not list(out.glob(".*.tmp")) and not list(out.glob(".*.png"))


def test_two_runs_with_the_same_seed_write_identical_metrics(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    docs = []
    for i in range(2):
        out = subprocess.run([sys.executable, "-m", "diag", "check", "--config", str(cfg),
                              "--out", str(tmp_path / str(i)), "--no-plots", "--format",
                              "json", "--skip", "preprocess"],
                             capture_output=True, text=True)
        assert out.returncode == ExitCode.OK, out.stderr
        doc = json.loads(out.stdout)["checks"]
        # the planted data's targets are random noise: `diag data` rightly finds no signal;
        # speed's findings are timings (a thread count that is slower right now: warn)
        statuses = {c["name"]: c["status"] for c in doc}
        assert statuses.pop("speed") in ("pass", "warn")
        assert statuses.pop("ddp") == "skip"  # no [tool.diag.ddp]: it would start processes
        assert statuses == {n: "warn" if n == "data" else "pass" for n in NAMES
                            if n not in ("preprocess", "speed", "ddp")}, doc
        docs.append({c["name"]: (c["metrics"], c["series"]) for c in doc})
    # speed's metrics are timings; its batch sizes and activation bytes are not
    speeds = [d.pop("speed") for d in docs]
    assert docs[0] == docs[1]
    assert speeds[0][1]["batch"] == speeds[1][1]["batch"]
    assert speeds[0][1]["saved_bytes"] == speeds[1][1]["saved_bytes"]
    assert docs[0]["overfit"][0]["steps"] > 1 and docs[0]["leaks"][0]["iterations"] == 12


def test_user_state_is_unchanged_by_the_api() -> None:
    model = planted.MLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = planted.regression_data()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    moments = {k: v.clone() for k, v in opt.state_dict()["state"][0].items()}
    import random

    import numpy as np

    torch.manual_seed(11)
    random.seed(11)
    np.random.seed(11)
    expected = (torch.rand(2), random.random(), np.random.rand())
    torch.manual_seed(11)
    random.seed(11)
    np.random.seed(11)

    results = [checks.overfit(model, (x, y), lr=0.01, max_steps=50),
               checks.lr_schedule(model=model, data=(x, y), epochs=10),
               checks.leaks(model=model, data=(x, y), iterations=10),
               checks.loss_grad()]
    # the checks really ran: they trained copies, counted, differentiated
    assert [r.status for r in results] != [Status.ERROR] * 4
    assert all(r.status in (Status.PASS, Status.WARN, Status.FAIL) for r in results), results
    assert 1 < results[0].metrics["steps"] <= 50 and results[0].series["loss"][-1] < \
        results[0].series["loss"][0]
    assert len(results[1].series["loss"]) == 10 and len(results[2].series["tensors"]) == 10

    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    after = opt.state_dict()["state"][0]
    assert all(torch.equal(moments[k], after[k]) for k in moments)
    assert torch.equal(torch.rand(2), expected[0])
    assert random.random() == expected[1] and np.random.rand() == expected[2]


def test_python_api_asserts() -> None:
    checks.overfit(planted.clean_mlp, planted.regression_data(), lr=0.01).assert_passed()
    checks.loss_grad(torch.nn.functional.l1_loss).assert_passed()
    with pytest.raises(AssertionError, match="never receive a gradient"):
        checks.overfit(planted.DetachedBranch, planted.regression_data(), lr=0.01,
                       max_steps=100).assert_passed()
    r = checks.lr_schedule([1.0 / (i + 1) for i in range(30)])
    assert r.status == Status.PASS
    assert checks.preprocess().status == Status.PASS


def test_security_pickled_npz_is_refused(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([object()], dtype=object), y=np.zeros(1))
    r = run_check("--model", f"{TESTS}/planted.py:clean_mlp", "--data", str(path),
                  "--out", str(tmp_path))
    assert r.exit_code == ExitCode.USAGE_ERROR and "refuses to unpickle" in r.stderr  # type: ignore[attr-defined]


def test_the_readme_config_example_is_valid() -> None:
    """The README's [tool.diag] example uses only keys and types the parser accepts."""
    from diag.inputs.config import parse

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    readme = (TESTS.parent / "README.md").read_text()
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    cfg = parse(tomllib.loads(block)["tool"]["diag"], "README.md")
    assert cfg.get("timeout") == 120 and cfg.options("loss-grad").target == "index"
