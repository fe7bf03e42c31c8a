"""The CLI: exit codes, one-line errors, JSON on stdout only, files under --out, lazy torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diag.cli import OutputFormat, app
from diag.result import ExitCode

runner = CliRunner()
MLP_ARGS = ["--data", "{p}:regression_data", "--lr", "0.01", "--max-steps", "300"]


def invoke(*args: str, planted: str = "") -> object:
    return runner.invoke(app, [a.replace("{p}", planted) for a in args])


@pytest.mark.parametrize("argv", [["--help"], ["overfit", "--help"], ["check", "--help"],
                                  ["leaks", "--help"], ["lr-schedule", "--help"],
                                  ["loss-grad", "--help"], ["preprocess", "--help"],
                                  ["model", "--help"]], ids=lambda a: " ".join(a))
def test_help_does_not_import_torch(argv: list[str]) -> None:
    code = (
        "import sys\n"
        f"sys.argv = ['diag'] + {argv!r}\n"
        "from diag.cli import app\n"
        "try:\n    app()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().endswith("NO-TORCH"), out.stdout[-300:]


@pytest.mark.parametrize(("argv", "exit_code"), [
    (["lr-schedule", "--history", "{h}", "--out", "{o}", "--quiet"], 0),
    (["lr-schedule", "--history", "{h}", "--out", "{o}", "--format", "json"], 0),
    (["check", "--config", "{c}", "--out", "{o}"], 2),
    (["check", "--select", "nope", "--out", "{o}"], 2),
], ids=["history", "history-json", "config-error", "select-error"])
def test_work_that_needs_no_torch_never_imports_it(tmp_path: Path, argv: list[str],
                                                   exit_code: int) -> None:
    history = tmp_path / "h.csv"
    history.write_text("epoch,loss\n" + "".join(f"{i},{1 / (i + 1)}\n" for i in range(40)))
    config = tmp_path / "bad.toml"
    config.write_text("[tool.diag]\nmodle = 'x:y'\n")
    argv = [a.replace("{h}", str(history)).replace("{o}", str(tmp_path / "o"))
            .replace("{c}", str(config)) for a in argv]
    code = (
        "import sys\n"
        f"sys.argv = ['diag'] + {argv!r}\n"
        "from diag.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "sys.stderr.write(f'EXIT {code} ' + ('TORCH' if 'torch' in sys.modules else 'NO-TORCH'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stderr.strip().endswith(f"EXIT {exit_code} NO-TORCH"), out.stderr[-500:]


def test_version_and_python_m() -> None:
    out = subprocess.run([sys.executable, "-m", "diag", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("diag ")


def test_overfit_on_user_specs_passes_and_writes_files(planted_path: str, tmp_path: Path
                                                       ) -> None:
    r = invoke("overfit", "--model", "{p}:clean_mlp", *MLP_ARGS, "--out", str(tmp_path),
               planted=planted_path)
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    names = {p.name for p in tmp_path.iterdir()}
    assert {"overfit.json", "summary.md", "report.json", "overfit_loss.png"} <= names
    doc = json.loads((tmp_path / "overfit.json").read_text())
    assert doc["schema"] == "diag-report/1" and doc["checks"][0]["status"] == "pass"
    assert "| overfit |" in (tmp_path / "summary.md").read_text()


def test_json_format_puts_only_json_on_stdout(planted_path: str, tmp_path: Path) -> None:
    r = invoke("overfit", "--model", "{p}:DetachedBranch", *MLP_ARGS, "--format", "json",
               "--out", str(tmp_path), "--no-plots", planted=planted_path)
    assert r.exit_code == ExitCode.CHECK_FAILED, r.output  # type: ignore[attr-defined]
    doc = json.loads(r.stdout)  # type: ignore[attr-defined]
    assert set(doc) >= {"schema", "diag_version", "environment", "checks"}
    check = doc["checks"][0]
    assert check["name"] == "overfit" and check["status"] == "fail"
    assert set(check) == {"name", "status", "summary", "metrics", "findings", "series",
                          "artifacts", "duration_s"}
    assert not any(p.suffix == ".png" for p in tmp_path.iterdir())


def test_same_seed_same_json_numbers(planted_path: str, tmp_path: Path) -> None:
    docs = []
    for i in range(2):
        r = invoke("overfit", "--model", "{p}:clean_mlp", *MLP_ARGS, "--format", "json",
                   "--seed", "7", "--no-plots", "--out", str(tmp_path / str(i)),
                   planted=planted_path)
        assert r.exit_code == ExitCode.OK, r.output  # type: ignore[attr-defined]
        docs.append(json.loads(r.stdout)["checks"][0])  # type: ignore[attr-defined]
    assert docs[0]["status"] == "pass" and docs[0]["metrics"]["steps"] > 1
    assert docs[0]["metrics"] == docs[1]["metrics"] and docs[0]["series"] == docs[1]["series"]


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["--model", "no_such_module_xyz:model"], 2, "no module named"),
    (["--model", "{p}:nope"], 2, "has no attribute 'nope'"),
    (["--model", "not-a-spec"], 2, "is not a SPEC"),
    (["--model", "missing/file.py:model"], 2, "file not found"),
    (["--model", "{p}:not_a_module", "--data", "{p}:regression_data"], 2, "returned a int"),
    (["--model", "{p}:raising_factory", "--data", "{p}:regression_data"], 3, "planted.py:"),
    (["--model", "{p}:Raises", "--data", "{p}:regression_data"], 3, "planted failure"),
    (["--model", "{p}:wrong_width", "--data", "{p}:regression_data"], 2, "does not fit"),
    (["--data", "missing.npz", "--model", "{p}:clean_mlp"], 2, "not found"),
    (["--data", "{p}:regression_data"], 2, "without --model"),
    (["--samples", "0"], 2, "samples"),
], ids=["no-module", "no-attr", "not-a-spec", "no-file", "not-a-module", "factory-raises",
        "forward-raises", "output-does-not-fit", "missing-data", "data-without-model",
        "bad-option"])
def test_bad_input_gives_one_line_and_exit_code(planted_path: str, tmp_path: Path,
                                                args: list[str], code: int, needle: str
                                                ) -> None:
    r = invoke("overfit", *args, "--out", str(tmp_path), planted=planted_path)
    assert r.exit_code == code, r.output  # type: ignore[attr-defined]
    err = r.stderr  # type: ignore[attr-defined]
    assert needle in err, err
    assert "Traceback" not in err
    if code == 2 and "samples" not in needle:  # before any check ran: one line
        # (a bad option's one line comes from the console script: see below)
        assert err.startswith("diag: error: ") and err.count("\n") == 1, err
    elif code == 3:  # user code raised inside the check: that check's error, one line
        assert "diag: overfit: error: " in err and err.count("error") == 1, err


def test_model_command_json() -> None:
    r = invoke("model", "tiny-landmark", "--format", "json")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    doc = json.loads(r.stdout)  # type: ignore[attr-defined]
    assert doc["params"] == 77_224 and doc["fp32_bytes"] == 4 * 77_224
    assert doc["uint8_bytes"] == 77_224
    assert doc["layers"][0] == {"name": "features.dense0.conv0.conv", "type": "Conv2d",
                                "output_shape": [32, 56, 56], "params": 896}
    assert sum(layer["params"] for layer in doc["layers"]) == 77_224


def test_model_command_lists_and_rejects_unknown() -> None:
    r = invoke("model")
    assert r.exit_code == 0 and "tiny-landmark" in r.stdout  # type: ignore[attr-defined]
    r = invoke("model", "nope")
    assert r.exit_code == 2 and "choose one of" in r.stderr  # type: ignore[attr-defined]


def test_every_output_format_has_a_reporter_and_stdout_goes_through_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from diag.report import Report, formats
    from diag.result import CheckResult, Status
    from diag.run.plan import Job
    from diag.run.session import RunOptions, execute

    assert {f.value for f in OutputFormat} == set(formats.REPORTERS)
    report = Report([CheckResult("x", Status.PASS, "fine")])
    for fmt in formats.REPORTERS:
        stream = io.StringIO()
        formats.reporter_for(fmt).write(report, stream)
        assert "fine" in stream.getvalue()

    class Marker:
        def __init__(self, **_kw: object) -> None:
            pass

        def render(self, report: Report) -> str:
            return "MARKER\n"

        def write(self, report: Report, stream: object) -> None:
            stream.write(self.render(report))  # type: ignore[attr-defined]

    for fmt in formats.REPORTERS:  # text included: no path around the table
        monkeypatch.setitem(formats.REPORTERS, fmt, Marker)
        execute([Job.of("x", lambda _p: CheckResult("x", Status.PASS, "fine"))],
                RunOptions(out=tmp_path, fmt=fmt, quiet=True))
        assert capsys.readouterr().out == "MARKER\n"


def test_leaks_cli_planted_and_clean(tmp_path: Path) -> None:
    leaky = str(Path(__file__).parent / "leaky.py")
    r = invoke("leaks", "--step", f"{leaky}:accumulate_tensor", "--out", str(tmp_path),
               "--format", "json")
    assert r.exit_code == ExitCode.CHECK_FAILED, r.output  # type: ignore[attr-defined]
    check = json.loads(r.stdout)["checks"][0]  # type: ignore[attr-defined]
    assert check["metrics"]["graph_nodes_per_iter"] > 0
    assert set(check["series"]) >= {"tensors", "storages", "bytes", "graph_nodes"}
    assert (tmp_path / "leaks_census.png").exists()
    r = invoke("leaks", "--step", f"{leaky}:clean", "--out", str(tmp_path), "--no-plots")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]


def test_leaks_cli_step_that_raises_exits_3(tmp_path: Path) -> None:
    leaky = str(Path(__file__).parent / "leaky.py")
    r = invoke("leaks", "--step", f"{leaky}:raises", "--out", str(tmp_path), "--no-plots")
    assert r.exit_code == ExitCode.CHECK_ERROR, r.output  # type: ignore[attr-defined]
    assert "leaky.py:" in r.stdout  # type: ignore[attr-defined]


def test_lr_schedule_cli_history(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    rows = [f"{i},{2.0 * 0.9 ** i + 0.6}" for i in range(32)]
    rows += [f"{32 + i},{0.75 + 0.15 * (-1) ** i}" for i in range(28)]
    path.write_text("epoch,loss\n" + "\n".join(rows) + "\n")
    r = invoke("lr-schedule", "--history", str(path), "--lr", "0.01", "--out", str(tmp_path),
               "--format", "json")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    m = json.loads(r.stdout)["checks"][0]["metrics"]  # type: ignore[attr-defined]
    assert m["oscillation_start"] == 32 and m["recommended_lr"] == pytest.approx(0.001)
    assert isinstance(m["reduce_on_plateau_epochs"], list)
    assert (tmp_path / "lr-schedule_curve.png").exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["--history", "missing.csv"], "not found"),
    (["--history", "{h}", "--verify"], "training mode"),
    (["--history", "{h}", "--metric", "acc"], "no column 'acc'"),
], ids=["missing", "verify-with-history", "missing-metric"])
def test_lr_schedule_cli_errors(tmp_path: Path, args: list[str], needle: str) -> None:
    h = tmp_path / "h.csv"
    h.write_text("loss\n" + "\n".join(str(1 / (i + 1)) for i in range(20)) + "\n")
    r = invoke("lr-schedule", *[a.replace("{h}", str(h)) for a in args], "--out",
               str(tmp_path))
    assert r.exit_code == ExitCode.USAGE_ERROR, r.output  # type: ignore[attr-defined]
    assert needle in r.stderr  # type: ignore[attr-defined]


def test_loss_grad_cli(tmp_path: Path) -> None:
    lp = str(Path(__file__).parent / "losses.py")
    r = invoke("loss-grad", f"{lp}:softmax_over_batch", "--target", "index", "--out",
               str(tmp_path), "--format", "json")
    assert r.exit_code == ExitCode.CHECK_FAILED, r.output  # type: ignore[attr-defined]
    assert json.loads(r.stdout)["checks"][0]["metrics"]["batch_independent"] is False  # type: ignore[attr-defined]
    r = invoke("loss-grad", f"{lp}:l1", "--pred-shape", "4,3", "--out", str(tmp_path))
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    r = invoke("loss-grad", "--out", str(tmp_path))  # the browser model's own losses
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["{lp}:raises"], 3, "losses.py:"),
    (["{lp}:nope"], 2, "no attribute"),
    (["{lp}:mse", "--pred-shape", "a,b"], 2, "not a shape"),
], ids=["raises", "missing", "bad-shape"])
def test_loss_grad_cli_errors(tmp_path: Path, args: list[str], code: int, needle: str) -> None:
    lp = str(Path(__file__).parent / "losses.py")
    r = invoke("loss-grad", *[a.replace("{lp}", lp) for a in args], "--out", str(tmp_path))
    assert r.exit_code == code, r.output  # type: ignore[attr-defined]
    assert needle in (r.stderr + r.stdout)  # type: ignore[attr-defined]


def test_preprocess_cli(tmp_path: Path) -> None:
    pp = str(Path(__file__).parent / "pipelines.py")
    r = invoke("preprocess", "--out", str(tmp_path))
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    assert len(list(tmp_path.glob("preprocess_probe_*.png"))) == 5
    r = invoke("preprocess", "--pipeline", f"{pp}:Uint8Wrap", "--out", str(tmp_path),
               "--no-plots")
    assert r.exit_code == ExitCode.CHECK_FAILED, r.output  # type: ignore[attr-defined]
    r = invoke("preprocess", "--pipeline", f"{pp}:Raises", "--out", str(tmp_path), "--no-plots")
    assert r.exit_code == ExitCode.CHECK_ERROR, r.output  # type: ignore[attr-defined]
    r = invoke("preprocess", "--pipeline", f"{pp}:Nope", "--out", str(tmp_path))
    assert r.exit_code == ExitCode.USAGE_ERROR, r.output  # type: ignore[attr-defined]


@pytest.mark.parametrize(("argv", "needle"), [
    (["overfit", "--lr", "-1"], "Invalid value for '--lr'"),
    (["overfit", "--bogus"], "No such option: --bogus"),
    (["nope"], "No such command 'nope'"),
    (["model", "--format", "xml"], "'xml' is not one of 'text', 'json'"),
], ids=["bad-value", "unknown-option", "unknown-command", "bad-choice"])
def test_console_script_bad_options_are_one_line_exit_2(argv: list[str], needle: str) -> None:
    out = subprocess.run([sys.executable, "-m", "diag", *argv], capture_output=True, text=True)
    assert out.returncode == ExitCode.USAGE_ERROR, out.stderr
    assert out.stderr.startswith("diag: error: ") and out.stderr.count("\n") == 1, out.stderr
    assert needle in out.stderr and "--help'" in out.stderr


@pytest.mark.parametrize(("argv", "needle"), [
    (["--range-steps", "300"], "add --range-test"),
    (["--history", "h.csv", "--range-steps", "300"], "drop --history to train"),
], ids=["without-range-test", "with-history"])
def test_range_steps_without_a_range_test_is_a_usage_error(argv: list[str], needle: str
                                                           ) -> None:
    r = invoke("lr-schedule", *argv)
    assert r.exit_code == ExitCode.USAGE_ERROR, r.output  # type: ignore[attr-defined]
    assert needle in r.output  # type: ignore[attr-defined]


def test_console_script_without_arguments_shows_help() -> None:
    out = subprocess.run([sys.executable, "-m", "diag"], capture_output=True, text=True)
    assert out.returncode == 0 and "Usage: diag" in out.stdout
