"""The plot worker's head start: started before typer for a command that draws plots,
handed to the run, closed when the guess was wrong."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from diag.report import worker
from diag.report.worker import PlotWorker


@pytest.fixture(autouse=True)
def _clean_head_start() -> object:
    worker.drop_early()
    yield
    worker.drop_early()


class FakeWorker:
    def __init__(self) -> None:
        self.discarded = False

    def discard(self) -> None:
        self.discarded = True

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("argv", "started", "kept"), [
    (["lr-schedule", "--history", "h.csv"], True, True),
    (["check", "--out", "o"], True, True),
    (["--quiet", "overfit"], True, True),
    (["loss-grad", "--loss", "m:f"], True, False),  # draws nothing: killed at once
    (["lr-schedule", "--no-plots"], False, False),
    (["check", "--help"], False, False),
    (["--help"], False, False),
    ([], False, False),
])
def test_the_head_start_is_kept_for_commands_that_draw(monkeypatch: pytest.MonkeyPatch,
                                                       argv: list[str], started: bool,
                                                       kept: bool) -> None:
    made: list[FakeWorker] = []
    monkeypatch.setattr(PlotWorker, "start",
                        classmethod(lambda cls: made.append(FakeWorker()) or made[-1]))
    worker.start_early(argv)
    worker.start_early(argv)  # once per command line
    assert len(made) == int(started)
    assert (worker._HeadStart.worker is not None) == kept
    assert all(w.discarded != kept for w in made)


def test_a_discarded_worker_is_gone() -> None:
    early = PlotWorker.spawn()
    assert early is not None
    early.discard()
    assert early._proc.returncode is not None


def test_a_wrong_guess_is_closed_and_a_missed_one_started(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    early = PlotWorker.spawn()
    assert early is not None
    worker._HeadStart.worker = early
    assert worker.take_early(plots=False) is None  # the command had --no-plots after all
    assert early._proc.wait(timeout=30) == 0
    monkeypatch.setattr(PlotWorker, "start", classmethod(lambda cls: "new"))
    assert worker.take_early(plots=True) == "new"


def test_a_head_start_nobody_takes_is_closed_at_the_end(capfd: pytest.CaptureFixture[str]
                                                        ) -> None:
    early = PlotWorker.spawn()
    assert early is not None
    worker._HeadStart.worker, worker._HeadStart.tried = early, True
    worker.drop_early()  # before the child is even warm: it ends quietly
    assert early._proc.wait(timeout=30) == 0
    assert "Traceback" not in capfd.readouterr().err
    assert worker._HeadStart.worker is None and not worker._HeadStart.tried


def test_the_console_command_draws_through_the_worker(tmp_path: Path) -> None:
    """A real process, where matplotlib is not yet imported: the worker draws."""
    history = tmp_path / "h.csv"
    history.write_text("epoch,loss\n" + "".join(f"{i},{1 / (i + 1)}\n" for i in range(40)))
    code = (
        "import sys\n"
        "from diag.report import worker\n"
        "spawned = []\n"
        "start = worker.PlotWorker.spawn.__func__\n"
        "worker.PlotWorker.spawn = classmethod(lambda cls: spawned.append(1) or start(cls))\n"
        f"sys.argv = ['diag', 'lr-schedule', '--history', {str(history)!r}, '--out',"
        f" {str(tmp_path / 'o')!r}, '--quiet']\n"
        "from diag.__main__ import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print('EXIT', code, 'SPAWNED', len(spawned),"
        " 'MPL' if 'matplotlib' in sys.modules else 'NO-MPL')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split()[-5:] == ["EXIT", "0", "SPAWNED", "1", "NO-MPL"], out
    doc = json.loads((tmp_path / "o" / "lr-schedule.json").read_text())
    pngs = [a for a in doc["checks"][0]["artifacts"] if a.endswith(".png")]
    assert [Path(a).name for a in pngs] == ["lr-schedule_curve.png"]
    assert Path(pngs[0]).read_bytes().startswith(b"\x89PNG")


def test_closing_a_hung_worker_with_a_request_stuck_in_the_pipe_returns(tmp_path: Path
                                                                         ) -> None:
    """The writer thread is blocked on a full pipe: close() kills the child first."""
    import os
    import signal
    import threading

    import numpy as np

    from diag.result import CheckResult, Status

    early = PlotWorker.spawn()
    assert early is not None
    early.wait_warm()
    os.kill(early._proc.pid, signal.SIGSTOP)
    big = CheckResult("lr-schedule", Status.PASS, "ok", plot_data={"x": np.zeros(1_000_000)})
    assert early.submit(big, tmp_path)  # 8 MB: far more than a pipe holds
    closer = threading.Thread(target=early.close, daemon=True)
    closer.start()
    closer.join(timeout=60)
    assert not closer.is_alive()
    assert early._proc.wait(timeout=30) == -signal.SIGKILL


def test_the_plot_worker_never_imports_torch() -> None:
    """Every check's figures module, imported the way the child imports them."""
    from diag.checks.registry import CHECKS

    code = (
        "import importlib, importlib.util, pkgutil, sys\n"
        "import diag.checks, diag.report.worker, diag.report.files\n"
        "names = [f'diag.checks.{m.name}.figures' for m in\n"
        "         pkgutil.iter_modules(diag.checks.__path__) if m.ispkg]\n"
        "found = [importlib.import_module(n) for n in names if importlib.util.find_spec(n)]\n"
        "print(len(found), 'TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    with_figures = sum(c.figures is not None for c in CHECKS)
    assert out.stdout.split() == [str(with_figures), "NO-TORCH"], out.stdout + out.stderr
