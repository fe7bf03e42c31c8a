"""Plots rendered in a child process while the next check runs.

The PNGs are a fifth of a ``diag check`` on the defaults (15 figures at 0.15 to 0.3 s each,
after 0.4 s of importing matplotlib), and on two cores they need not wait: the child imports
matplotlib while the parent imports torch and plans, then draws check N's figures while
check N+1 runs. The parent writes each check's JSON once its plot paths are back.

The child never imports torch: the figure functions take numbers. It ignores Ctrl-C, so the
plots of the checks that finished before an interrupt are still drawn, and it exits when its
stdin closes (the parent is done or gone).

Protocol, both ways: an 8-byte big-endian length, then a pickle. Parent to child:
``(result, out)``. Child to parent: ``("ready", None)`` once matplotlib is loaded, then for
each result ``("ok", paths)``, ``("oserror", message)`` or ``("error", message)``.
"""

from __future__ import annotations

import os
import pickle
import queue
import select
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from diag.result import CheckResult

_HEADER = 8


def _frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_HEADER, "big") + data


def _send(fh: IO[bytes], message: Any) -> None:
    fh.write(_frame(message))
    fh.flush()


def _read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            raise EOFError("plot worker closed its pipe")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int) -> Any:
    size = int.from_bytes(_read_exact(fd, _HEADER), "big")
    return pickle.loads(_read_exact(fd, size))


def serve() -> None:
    """The child: render each ``(result, out)`` it is sent until stdin closes. A parent
    that closed its end early (a wrong head start, a usage error) ends it quietly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(10)  # the checks come first; the plots take the cycles they leave
    try:
        _serve(sys.stdin.fileno(), sys.stdout.buffer)
    except (BrokenPipeError, EOFError):
        os._exit(0)  # nothing to flush, and no "Exception ignored" at shutdown
    except Exception:  # noqa: BLE001 - e.g. matplotlib will not import: the parent, reading
        os._exit(1)  # EOF, draws in-process and reports the same error as its own


def _serve(stdin: int, stdout: IO[bytes]) -> None:
    from diag.report.files import write_plots

    _warm_up()
    _send(stdout, ("ready", None))
    while True:
        result, out = _receive(stdin)
        try:
            reply: tuple[str, Any] = ("ok", write_plots(result, out).artifacts)
        except OSError as exc:
            reply = ("oserror", str(exc))
        except Exception as exc:  # noqa: BLE001 - the parent redraws it in-process
            reply = ("error", f"{type(exc).__name__}: {exc}")
        _send(stdout, reply)


def _warm_up() -> None:
    """Import matplotlib and draw one labelled figure (fonts found and loaded) while the
    parent is still importing torch and planning: the first real plot is then no dearer
    than the rest."""
    from diag.report.figures import new_figure

    fig = new_figure(2, 1)
    ax = fig.add_subplot()
    ax.plot([0, 1], [1, 0])
    ax.set_title("warm-up")
    ax.set_xlabel("x (unit)")
    fig.canvas.draw()


class PlotWorker:
    """The parent's side: ``submit`` results in order, collect replies in the same order.

    Requests go through a writer thread, so a large result never blocks the next check
    while the child is still drawing the previous one."""

    patience_s = 120.0
    """How long one check's plots (or loading matplotlib, font cache included) may take in
    the child before it is given up as hung."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self._pending: deque[CheckResult] = deque()
        self._closed = False
        self._warm = False
        """Its ("ready", None) has been read: matplotlib is loaded and it is idle or busy
        only with what was sent."""
        self._outbox: queue.Queue[bytes | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="diag-plots",
                                        daemon=True)
        self._writer.start()

    @classmethod
    def start(cls) -> PlotWorker | None:
        """A running worker, or None where rendering in-process is as good or all there is:
        not POSIX (select on pipes), or matplotlib already imported in this process (a test
        session or a notebook: the import is paid, a child would pay it again)."""
        if os.name != "posix" or "matplotlib.figure" in sys.modules:
            return None
        return cls.spawn()

    @classmethod
    def spawn(cls) -> PlotWorker | None:
        """A running worker whatever this process has imported; None if it cannot start."""
        root = str(Path(__file__).resolve().parents[2])  # the folder holding diag/
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        for threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[threads] = "1"  # it draws; thread pools would only take the checks' cores
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", "from diag.report.worker import serve; serve()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        except OSError:
            return None
        return cls(proc)

    def _write_loop(self) -> None:
        assert self._proc.stdin is not None
        try:
            while (frame := self._outbox.get()) is not None:
                self._proc.stdin.write(frame)
                self._proc.stdin.flush()
        except (OSError, ValueError):  # the child died: its replies will read EOF
            return

    def submit(self, result: CheckResult, out: Path) -> bool:
        """Queue the result's plots; False if it cannot be sent (it does not pickle): the
        caller draws that one in-process."""
        try:
            frame = _frame((result, out))
        except Exception:  # noqa: BLE001 - pickling can raise almost anything
            return False
        self._pending.append(result)
        self._outbox.put(frame)
        return True

    @property
    def pending(self) -> int:
        return len(self._pending)

    def ready(self) -> bool:
        """A reply can be read without waiting."""
        if not self._warm and self._readable():
            self.wait_warm()
        return self._warm and self._readable()

    def _readable(self) -> bool:
        assert self._proc.stdout is not None
        readable, _, _ = select.select([self._proc.stdout.fileno()], [], [], 0)
        return bool(readable)

    def wait_warm(self) -> None:
        """Block until the child has loaded matplotlib (or died): from then on it uses the
        CPU only for plots it was sent. A timed check waits for this and for the replies."""
        assert self._proc.stdout is not None
        if self._warm:
            return
        fd = self._proc.stdout.fileno()
        try:
            if not select.select([fd], [], [], self.patience_s)[0]:
                self._proc.kill()  # hung while loading: its plots are drawn in-process
                raise EOFError
            _receive(fd)
        except (EOFError, OSError, pickle.UnpicklingError):
            pass  # a dead child: next_reply answers ("error", ...) for each pending plot
        finally:
            self._warm = True

    def next_reply(self) -> tuple[CheckResult, tuple[str, Any]]:
        """The oldest pending result and the child's reply for it (blocks). A child that
        died answers ``("error", ...)``: the caller draws that one in-process."""
        assert self._proc.stdout is not None
        self.wait_warm()
        result = self._pending.popleft()
        fd = self._proc.stdout.fileno()
        try:
            if not select.select([fd], [], [], self.patience_s)[0]:
                self._proc.kill()  # hung: every pending plot is drawn in-process
                raise EOFError(f"no answer in {self.patience_s:g} s")
            return result, _receive(fd)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            return result, ("error", f"plot worker gone: {exc}")

    def discard(self) -> None:
        """Kill it now, whatever it was doing."""
        self._pending.clear()
        self._proc.kill()
        self.close()
        self._proc.wait()

    def close(self) -> None:
        """Stop the child. With every reply read it exits by itself once its stdin closes
        (not waited for: its interpreter's shutdown is 0.1 s); with plots still pending
        (an error on the way), it is killed."""
        if self._closed:
            return
        self._closed = True
        if self._pending:  # killed first: a writer blocked on a full pipe then gets EPIPE
            self._proc.kill()
        self._outbox.put(None)
        self._writer.join(timeout=5)
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        if self._pending:
            self._proc.wait()


class _HeadStart:
    """The worker started before the command line was parsed, until the run takes it."""

    tried = False
    worker: PlotWorker | None = None


def start_early(argv: Sequence[str]) -> None:
    """Start the plot worker before typer is even imported, when the command line looks
    like a command that draws plots: matplotlib's import (0.4 s) then runs beside diag's
    own imports and plan. Only a head start, once per process: ``take_early`` starts one
    if this guessed no, and closes this one if it guessed wrong."""
    if _HeadStart.tried:
        return
    _HeadStart.tried = True
    words = [a for a in argv if not a.startswith("-")]
    if not words or "--no-plots" in argv or {"--help", "-h"} & set(argv):
        return
    worker = PlotWorker.start()  # before the registry's import: 30 ms sooner
    if worker is None:
        return
    from diag.checks.registry import CHECKS

    if words[0] in {c.name for c in CHECKS if c.figures is not None} | {"check"}:
        _HeadStart.worker = worker
    else:  # a command that draws nothing: gone before it has loaded anything
        worker.discard()


def take_early(plots: bool) -> PlotWorker | None:
    """The run's worker: the head start, or a new one; None without plots (or where a
    worker is no gain, see ``PlotWorker.start``)."""
    early, _HeadStart.worker = _HeadStart.worker, None
    if not plots:
        if early is not None:
            early.close()
        return None
    return early if early is not None else PlotWorker.start()


def drop_early() -> None:
    """End of a command line: close a head start nobody took, and allow the next one."""
    early, _HeadStart.worker = _HeadStart.worker, None
    _HeadStart.tried = False
    if early is not None:
        early.close()
