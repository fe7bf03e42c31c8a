"""The checks, and the public Python API for a user's own test suite.

    from diag import checks
    checks.overfit(model=MyNet, data=(x, y)).assert_passed()

Each function returns a ``CheckResult``; ``assert_passed()`` raises AssertionError with the
findings unless it passed (warnings allowed). They build their work through the same plan
as the command line (``diag.run.plan``), so the same seed and options give the same numbers
as ``diag <check>`` and ``diag check``. User state is never changed: models are deep-copied
(or built fresh from a factory) and the global RNGs are restored. Bad arguments raise
``diag.errors.UsageError``.

Layout: one folder per check (``overfit/``, ``leaks/``, ``lr/``, ``lossgrad/``,
``preprocess/``), each with its options and registry record in ``__init__.py`` and its
code in public modules (``check.py``, ``figures.py``, ``detect.py`` ...); ``base.py`` holds
the Check record and the guard, ``registry.py`` the one list of checks.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Sequence
from typing import Any

from diag.result import CheckResult


class _ChecksPackage(types.ModuleType):
    """``checks.overfit`` is the API function, and ``diag/checks/overfit/`` the check's
    folder. Importing the folder would make the import system set ``checks.overfit`` to
    the subpackage; this keeps the function. Import a folder's code with
    ``from diag.checks.overfit import ...`` (or ``importlib``), never ``import ... as``."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and callable(self.__dict__.get(name)):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _ChecksPackage


def _run(name: str, options: dict[str, Any], *, seed: int = 0, task: str = "landmarks",
         input_size: int = 48, threads: int | None = None, **sources: Any) -> CheckResult:
    from diag.checks.base import validate_options
    from diag.checks.registry import get
    from diag.run.plan import Settings, Sources, build

    check = get(name)
    opts = validate_options(check, options, f"checks.{name.replace('-', '_')}():")
    settings = Settings(seed=seed, task=task, input_size=input_size, threads=threads)
    [job] = build(Sources(**sources), settings, [name], {name: opts})
    return job.run()


def overfit(model: Any = None, data: Any = None, loss: Any = None, *, samples: int = 16,
            max_steps: int = 500, lr: float = 1e-3, batch_size: int | None = None,
            target_loss: float | None = None, confirm: bool = True, seed: int = 0,
            threads: int | None = None,
            task: str = "landmarks", input_size: int = 48) -> CheckResult:
    """Can ``model`` (a Module, deep-copied, or a factory) memorise a few samples of
    ``data`` ((x, y) tensors or a Dataset)? Defaults: the browser net on generated faces.
    When it cannot, each suspected cause is tested by a rerun with its fix (``confirm``)."""
    return _run("overfit", {"samples": samples, "max_steps": max_steps, "lr": lr,
                            "batch_size": batch_size, "target_loss": target_loss,
                            "confirm": confirm},
                seed=seed, threads=threads,
                task=task, input_size=input_size, model=model, data=data,
                loss=loss)


def leaks(step: Callable[[], Callable[[], object]] | None = None, *, model: Any = None,
          data: Any = None, loss: Any = None, iterations: int = 30, warmup: int = 5,
          seed: int = 0, threads: int | None = None,
          task: str = "landmarks", input_size: int = 48) -> CheckResult:
    """Does ``step()`` leak? ``step`` is a zero-argument factory returning the iteration
    function; without it, diag's training loop on ``model``/``data``/``loss``."""
    return _run("leaks", {"iterations": iterations, "warmup": warmup}, seed=seed,
                threads=threads, task=task,
                input_size=input_size, step=step, model=model, data=data, loss=loss)


def lr_schedule(history: Sequence[float] | str | None = None, *, model: Any = None,
                data: Any = None, loss: Any = None, epochs: int = 30, lr: float | None = None,
                verify: bool = False, range_test: bool = False, metric: str = "loss",
                val_metric: str | None = None, lr_column: str | None = None,
                run: str | None = None, pattern: str | None = None, kind: str = "auto",
                seed: int = 0,
                threads: int | None = None, task: str = "landmarks", input_size: int = 48
                ) -> CheckResult:
    """Diagnose a loss curve: a list of numbers, a CSV/JSON file, or (None) a training run.
    From a file, ``val_metric`` (default: ``val_<metric>`` when present) is judged for
    overfitting against the training curve; ``lr_column`` names the LR column; ``kind``
    ("auto", "train", "val") says whether ``metric`` is a validation curve."""
    return _run("lr-schedule", {"epochs": epochs, "lr": lr, "verify": verify,
                                "range_test": range_test, "metric": metric,
                                "val_metric": val_metric, "lr_column": lr_column,
                                "run": run, "pattern": pattern, "kind": kind},
                seed=seed, threads=threads,
                task=task, input_size=input_size, history=history, model=model,
                data=data, loss=loss)


def loss_grad(loss: Callable[..., Any] | str | None = None, *, data: Any = None,
              pred_shape: tuple[int, ...] = (8, 10),
              target: str | Callable[[tuple[int, ...]], Any] | None = None,
              reference: Callable[..., Any] | str | None = None, seed: int = 0,
              threads: int | None = None,
              task: str = "landmarks") -> CheckResult:
    """Test a custom loss's gradients; None checks the browser model's own losses.
    ``target`` defaults to class indices when ``data`` (or ``task``) is classification."""
    return _run("loss-grad", {"pred_shape": tuple(pred_shape), "target": target,
                              "reference": reference},
                seed=seed, threads=threads, task=task, loss=loss, data=data)


def preprocess(pipeline: Any = None, *, seed: int = 0, threads: int | None = None) -> CheckResult:
    """Do the pipeline's preprocess and postprocess round-trip? None: the browser's."""
    return _run("preprocess", {}, seed=seed, threads=threads, pipeline=pipeline)


def size(model: Any = None, data: Any = None, *, max_size: str = "2MB",
         max_error: float | None = None, precision: str = "uint8", export: str | None = None,
         seed: int = 0, threads: int | None = None,
         task: str = "landmarks", input_size: int = 48) -> CheckResult:
    """How big is ``model``, what does quantization cost on ``data``, do weights
    round-trip (with ``export``, a folder)? Defaults: the browser net on generated faces."""
    return _run("size", {"max_size": max_size, "max_error": max_error, "precision": precision,
                         "export": export}, seed=seed, threads=threads,
                         task=task, input_size=input_size,
                model=model, data=data)


def init(model: Any = None, data: Any = None, loss: Any = None, *, batch_size: int = 32,
         max_signal_change: float = 10.0, max_grad_ratio: float = 1000.0, seed: int = 0,
         threads: int | None = None,
         task: str = "landmarks", input_size: int = 48) -> CheckResult:
    """Is ``model`` healthy at step 0 on ``data``: signal and gradient per layer, dead or
    saturated units, the loss at init? Defaults: the browser net on generated faces."""
    return _run("init", {"batch_size": batch_size, "max_signal_change": max_signal_change,
                         "max_grad_ratio": max_grad_ratio}, seed=seed, threads=threads, task=task,
                input_size=input_size, model=model, data=data, loss=loss)


def data(data: Any = None, *, model: Any = None, loss: Any = None,
         loader: Callable[[], Any] | str | None = None, max_batches: int = 64,
         batch_size: int = 12, probe: bool = True, seed: int = 0, threads: int | None = None,
         task: str = "landmarks",
         input_size: int = 48) -> CheckResult:
    """Is the data what the training loop thinks it is: shuffled each epoch, inputs and
    targets aligned, clean values? ``loader``: a zero-argument factory returning an
    iterable of (inputs, targets) batches (default: diag's trainer batches ``data``)."""
    return _run("data", {"loader": loader, "max_batches": max_batches,
                         "batch_size": batch_size, "probe": probe}, seed=seed, threads=threads,
                         task=task,
                input_size=input_size, model=model, data=data, loss=loss)


def speed(model: Any = None, data: Any = None, loss: Any = None, *,
          step: Callable[[], Callable[[], object]] | str | None = None,
          loader: Callable[[], Any] | str | None = None, device: str = "cpu",
          max_batch: int = 256, batch_size: int | None = None, timed_steps: int = 5,
          warmup: int = 2, stop_early: bool = True, budget_s: float = 40.0, seed: int = 0,
          threads: int | None = None, task: str = "landmarks",
          input_size: int = 48) -> CheckResult:
    """Where does a training step's time go: a batch-size sweep (best, knee, largest that
    fits), the data-loading wait with ``loader``, host syncs in ``step``, inputs the model
    shrinks. Timings vary from run to run."""
    return _run("speed", {"loader": loader, "device": device, "max_batch": max_batch,
                          "batch_size": batch_size, "timed_steps": timed_steps,
                          "warmup": warmup, "stop_early": stop_early, "budget_s": budget_s},
                seed=seed, threads=threads,
                          task=task,
                input_size=input_size, model=model, data=data, loss=loss, step=step)


def ddp(model: Any = None, data: Any = None, loss: Any = None, *,
        step: Callable[[], Callable[[], object]] | str | None = None,
        loader: Callable[[], Any] | str | None = None, nproc: int = 2, steps: int = 10,
        find_unused: bool = False, backend: str = "auto", timeout: float = 120.0,
        batch_size: int = 8, seed: int = 0, task: str = "landmarks",
        input_size: int = 48) -> CheckResult:
    """Does DDP training stay in sync across ranks, without hangs? Launches ``nproc``
    ranks under torchrun, so ``model``, ``data``, ``loss``, ``step`` and ``loader`` must be
    SPECs or module-level functions (objects too when this process already runs under
    torchrun: then every rank calls this, and all return the same verdict)."""
    return _run("ddp", {"nproc": nproc, "steps": steps, "find_unused": find_unused,
                        "backend": backend, "timeout": timeout, "batch_size": batch_size,
                        "step": step, "loader": loader}, seed=seed, task=task,
                input_size=input_size, model=model, data=data, loss=loss)


__all__ = ["data", "ddp", "init", "leaks", "loss_grad", "lr_schedule", "overfit", "preprocess",
           "size", "speed"]
