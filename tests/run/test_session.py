"""Running several checks: isolation of errors, Ctrl-C, atomic report files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diag.result import CheckResult, ExitCode, Status
from diag.run.plan import Job
from diag.run.session import RunOptions, execute


def ok(_progress: object) -> CheckResult:
    return CheckResult("first", Status.PASS, "fine", metrics={"x": 1.0})


def boom(_progress: object) -> CheckResult:
    raise RuntimeError("internal kaboom")


def interrupt(_progress: object) -> CheckResult:
    raise KeyboardInterrupt


def failing(_progress: object) -> CheckResult:
    return CheckResult("third", Status.FAIL, "bad")


def test_a_raising_check_does_not_stop_the_others(tmp_path: Path) -> None:
    code = execute([Job.of("first", ok), Job.of("second", boom), Job.of("third", failing)],
                   RunOptions(out=tmp_path, fmt="json", quiet=True))
    assert code == ExitCode.CHECK_ERROR  # error (3) wins over fail (1)
    doc = json.loads((tmp_path / "report.json").read_text())
    statuses = {c["name"]: c["status"] for c in doc["checks"]}
    assert statuses == {"first": "pass", "second": "error", "third": "fail"}
    second = next(c for c in doc["checks"] if c["name"] == "second")
    assert "internal kaboom" in second["summary"]


def test_interrupt_writes_finished_checks_and_returns_130(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    code = execute([Job.of("first", ok), Job.of("second", interrupt), Job.of("third", failing)],
                   RunOptions(out=tmp_path, fmt="text", quiet=False))
    assert code == ExitCode.INTERRUPTED
    assert "interrupted while running second" in capsys.readouterr().err
    doc = json.loads((tmp_path / "report.json").read_text())
    assert [c["name"] for c in doc["checks"]] == ["first"] and doc["interrupted"] == "second"
    assert json.loads((tmp_path / "first.json").read_text())["checks"][0]["status"] == "pass"
    assert not list(tmp_path.glob(".*.tmp"))


def test_json_report_turns_nan_into_strings(tmp_path: Path) -> None:
    def nan(_p: object) -> CheckResult:
        return CheckResult("n", Status.FAIL, "nan", metrics={"loss": float("nan")},
                           series={"loss": [1.0, float("inf")]})

    execute([Job.of("n", nan)], RunOptions(out=tmp_path, fmt="json", quiet=True))
    doc = json.loads((tmp_path / "n.json").read_text())
    assert doc["checks"][0]["metrics"]["loss"] == "nan"
    assert doc["checks"][0]["series"]["loss"] == [1.0, "inf"]


def blocks(_progress: object) -> CheckResult:
    import time

    while True:  # until the timer interrupts it
        time.sleep(0.05)


def test_a_timed_out_check_is_an_error_and_the_others_go_on(tmp_path: Path) -> None:
    """No race: the blocking job always times out, the others do no work at all."""
    code = execute([Job.of("first", ok), Job.of("second", blocks), Job.of("third", failing)],
                   RunOptions(out=tmp_path, fmt="json", quiet=True, timeout=0.3))
    assert code == ExitCode.CHECK_ERROR
    doc = json.loads((tmp_path / "report.json").read_text())
    statuses = {c["name"]: c["status"] for c in doc["checks"]}
    assert statuses == {"first": "pass", "second": "error", "third": "fail"}
    second = next(c for c in doc["checks"] if c["name"] == "second")
    assert second["summary"].startswith("timed out after 0.3 s (stuck at test_session.py:")
    assert second["duration_s"] >= 0.3 and second["metrics"] == {"error_type": "timeout"}


def test_sys_exit_in_user_code_is_that_checks_error(tmp_path: Path) -> None:
    def exits(_p: object) -> CheckResult:
        raise SystemExit(0)

    code = execute([Job.of("first", exits), Job.of("third", failing)],
                   RunOptions(out=tmp_path, fmt="json", quiet=True))
    assert code == ExitCode.CHECK_ERROR
    doc = json.loads((tmp_path / "report.json").read_text())
    assert [c["status"] for c in doc["checks"]] == ["error", "fail"]
    assert "sys.exit(0)" in doc["checks"][0]["summary"]


def test_prints_of_user_code_stay_off_stdout_in_json_mode(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    def chatty(_p: object) -> CheckResult:
        print("epoch 1 done")
        return ok(_p)

    execute([Job.of("first", chatty)], RunOptions(out=tmp_path, fmt="json", quiet=True))
    out = capsys.readouterr()
    assert json.loads(out.out)["checks"][0]["status"] == "pass"
    assert "epoch 1 done" in out.err


def test_unwritable_out_is_a_usage_error(tmp_path: Path) -> None:
    from diag.errors import UsageError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError):
        execute([Job.of("first", ok)], RunOptions(out=blocker / "sub", quiet=True))


def test_report_files_are_readable_like_plain_files(tmp_path: Path) -> None:
    import os
    import stat

    execute([Job.of("first", ok)], RunOptions(out=tmp_path, quiet=True))
    umask = os.umask(0)
    os.umask(umask)
    for name in ("first.json", "summary.md", "report.json"):
        mode = stat.S_IMODE(os.stat(tmp_path / name).st_mode)
        assert mode == 0o666 & ~umask, (name, oct(mode))


# --- the plot worker: plots drawn in a child process while the next check runs ---------
def lr_result(tmp_path: Path) -> CheckResult:
    """A real result with a plot, made without torch: lr-schedule on a short history."""
    from diag import checks

    history = tmp_path / "history.csv"
    history.write_text("epoch,loss\n" + "".join(f"{i},{1 / (i + 1)}\n" for i in range(40)))
    return checks.lr_schedule(history=str(history))


def artifacts(out: Path, name: str = "lr-schedule") -> list[str]:
    doc = json.loads((out / f"{name}.json").read_text())
    return [Path(a).name for a in doc["checks"][0]["artifacts"]]


def test_the_plot_worker_writes_the_files_in_process_rendering_writes(tmp_path: Path) -> None:
    from diag.report.worker import PlotWorker

    result = lr_result(tmp_path)
    worker = PlotWorker.spawn()
    assert worker is not None
    for out, w in ((tmp_path / "here", None), (tmp_path / "child", worker)):
        code = execute([Job.of("lr-schedule", lambda _p: result), Job.of("first", ok)],
                       RunOptions(out=out, fmt="json", quiet=True), w)
        assert code == ExitCode.OK
    assert artifacts(tmp_path / "child") == artifacts(tmp_path / "here") == [
        "lr-schedule_curve.png", "lr-schedule.json"]
    png = (tmp_path / "child" / "lr-schedule_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    report = json.loads((tmp_path / "child" / "report.json").read_text())
    assert [Path(a).name for a in report["checks"][0]["artifacts"]] == artifacts(
        tmp_path / "child")
    assert worker._proc.wait(timeout=30) == 0  # closed by execute, exits on its own
    assert not list((tmp_path / "child").glob(".*"))


def test_a_dead_plot_worker_costs_no_plot(tmp_path: Path) -> None:
    from diag.report.worker import PlotWorker

    result = lr_result(tmp_path)
    worker = PlotWorker.spawn()
    assert worker is not None
    worker._proc.kill()
    worker._proc.wait()
    execute([Job.of("lr-schedule", lambda _p: result)],
            RunOptions(out=tmp_path / "o", fmt="json", quiet=True), worker)
    assert artifacts(tmp_path / "o") == ["lr-schedule_curve.png", "lr-schedule.json"]
    assert (tmp_path / "o" / "lr-schedule_curve.png").stat().st_size > 10_000


def test_a_hung_plot_worker_is_killed_and_the_plots_drawn_in_process(tmp_path: Path) -> None:
    import os
    import signal

    from diag.report.worker import PlotWorker

    result = lr_result(tmp_path)
    worker = PlotWorker.spawn()
    assert worker is not None
    worker.wait_warm()
    os.kill(worker._proc.pid, signal.SIGSTOP)  # alive, never answers
    worker.patience_s = 1.0
    execute([Job.of("lr-schedule", lambda _p: result)],
            RunOptions(out=tmp_path / "o", fmt="json", quiet=True), worker)
    assert artifacts(tmp_path / "o") == ["lr-schedule_curve.png", "lr-schedule.json"]
    assert worker._proc.wait(timeout=30) == -signal.SIGKILL


def test_a_result_that_does_not_pickle_is_drawn_in_process(tmp_path: Path) -> None:
    from diag.report.worker import PlotWorker

    result = lr_result(tmp_path)
    odd = result.replace(plot_data={**result.plot_data, "callback": lambda: None})
    worker = PlotWorker.spawn()
    assert worker is not None
    execute([Job.of("lr-schedule", lambda _p: odd)],
            RunOptions(out=tmp_path / "o", fmt="json", quiet=True), worker)
    assert artifacts(tmp_path / "o") == ["lr-schedule_curve.png", "lr-schedule.json"]
    assert worker.pending == 0


@pytest.mark.parametrize("in_child", [False, True], ids=["in-process", "worker"])
def test_a_plot_that_cannot_be_written_is_a_warning(tmp_path: Path, in_child: bool) -> None:
    from diag.report.worker import PlotWorker

    result = lr_result(tmp_path)
    out = tmp_path / "o"
    (out / "lr-schedule_curve.png").mkdir(parents=True)  # a folder where the PNG goes
    execute([Job.of("lr-schedule", lambda _p: result), Job.of("first", ok)],
            RunOptions(out=out, fmt="json", quiet=True),
            PlotWorker.spawn() if in_child else None)
    checks = json.loads((out / "report.json").read_text())["checks"]
    assert [c["name"] for c in checks] == ["lr-schedule", "first"]
    finding = checks[0]["findings"][-1]
    assert finding["severity"] == "warn"
    assert finding["message"].startswith("could not write report files: ")
    assert "lr-schedule_curve.png" in finding["message"]


def test_a_timed_check_starts_once_the_plots_before_it_are_drawn(tmp_path: Path) -> None:
    from diag.report.worker import PlotWorker

    result = lr_result(tmp_path)
    seen: list[list[str]] = []

    def timed(_p: object) -> CheckResult:
        seen.append(sorted(p.name for p in tmp_path.glob("o/*")))
        return CheckResult("timed", Status.PASS, "ok")

    execute([Job.of("lr-schedule", lambda _p: result),
             Job("timed", timed, seed=None, torch_needed=False, timed=True)],
            RunOptions(out=tmp_path / "o", fmt="json", quiet=True), PlotWorker.spawn())
    assert seen == [["lr-schedule.json", "lr-schedule_curve.png"]]


def test_a_timed_check_waits_until_the_worker_has_loaded_matplotlib(tmp_path: Path) -> None:
    from diag.report.worker import PlotWorker

    worker = PlotWorker.spawn()
    assert worker is not None
    seen: list[bool] = []

    def timed(_p: object) -> CheckResult:
        seen.append(worker._warm)  # set once the child's ("ready", None) was read
        return CheckResult("timed", Status.PASS, "ok")

    execute([Job("timed", timed, seed=None, torch_needed=False, timed=True)],
            RunOptions(out=tmp_path, fmt="json", quiet=True), worker)
    assert seen == [True]


def test_a_worker_that_cannot_load_matplotlib_costs_no_plot(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capfd: pytest.CaptureFixture[str]
                                                            ) -> None:
    from diag.report.worker import PlotWorker

    result = lr_result(tmp_path)
    broken = tmp_path / "broken" / "matplotlib"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    monkeypatch.setenv("PYTHONPATH", str(broken.parent))  # the child's import fails
    worker = PlotWorker.spawn()
    assert worker is not None
    execute([Job.of("lr-schedule", lambda _p: result)],
            RunOptions(out=tmp_path / "o", fmt="json", quiet=True), worker)
    assert artifacts(tmp_path / "o") == ["lr-schedule_curve.png", "lr-schedule.json"]
    assert worker._proc.wait(timeout=30) == 1
    assert "Traceback" not in capfd.readouterr().err


def test_ctrl_c_while_the_worker_draws_keeps_every_json(tmp_path: Path) -> None:
    """Ctrl-C while the finished checks' plots are drawn: their JSON, report.json and
    summary.md are written all the same, and no temporary PNG is left in --out."""
    import os
    import signal

    from diag.report.worker import PlotWorker

    result = lr_result(tmp_path)
    worker = PlotWorker.spawn()
    assert worker is not None
    worker.wait_warm()
    os.kill(worker._proc.pid, signal.SIGSTOP)  # stays "drawing" until it is killed
    out = tmp_path / "o"
    out.mkdir()
    (out / ".lr-schedule_curve.png.x1y2.png").write_bytes(b"half a png")  # mid-write

    def ctrl_c() -> object:
        raise KeyboardInterrupt

    worker.next_reply = ctrl_c  # type: ignore[method-assign]
    code = execute([Job.of("lr-schedule", lambda _p: result), Job.of("first", ok)],
                   RunOptions(out=out, fmt="json", quiet=True), worker)
    assert code == ExitCode.INTERRUPTED
    report = json.loads((out / "report.json").read_text())
    assert [c["name"] for c in report["checks"]] == ["lr-schedule", "first"]
    assert report["interrupted"] == "plots"
    assert artifacts(out) == ["lr-schedule.json"] and (out / "summary.md").is_file()
    assert not list(out.glob(".*"))
    assert worker._proc.wait(timeout=30) == -signal.SIGKILL


def test_ctrl_c_while_drawing_in_process_keeps_that_checks_json(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import diag.report.figures as figures

    def ctrl_c(_result: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(figures, "figures_for", ctrl_c)
    result = lr_result(tmp_path)
    code = execute([Job.of("lr-schedule", lambda _p: result), Job.of("first", ok)],
                   RunOptions(out=tmp_path / "o", fmt="json", quiet=True))
    assert code == ExitCode.INTERRUPTED
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert [c["name"] for c in report["checks"]] == ["lr-schedule"]
    assert artifacts(tmp_path / "o") == ["lr-schedule.json"]
