"""The checks, and a small Python API for a user's own test suite.

    from diag import checks
    checks.overfit(model=MyNet, data=(x, y)).assert_passed()

Each function returns a ``CheckResult``; ``assert_passed()`` raises AssertionError with the
findings unless it passed (warnings allowed). Implementation modules (``_overfit`` ...)
expose ``run(...)``. User state is never changed: models are deep-copied (or built fresh
from a factory) and the global RNGs are restored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from diag.result import CheckResult

CHECKS = ("overfit", "leaks", "lr-schedule", "loss-grad", "preprocess")
"""Every check `diag check` runs, in order."""


def _target(model: Any, data: Any, loss: Any, seed: int, task: str, input_size: int,
            samples: int) -> Any:
    from diag.target import build_target, target_from_objects

    if model is None and data is None:
        target = build_target(task=task, input_size=input_size, samples=samples, seed=seed)
        if loss is None:
            return target
        return dataclasses.replace(target, loss_fn=loss,
                                   loss_name=getattr(loss, "__name__", "loss"))
    if model is None:
        raise TypeError("data given without model")
    if data is None:
        raise TypeError("model given without data")
    return target_from_objects(model, data, loss, seed=seed)


def overfit(model: Any = None, data: Any = None, loss: Any = None, *, samples: int = 16,
            max_steps: int = 500, lr: float = 1e-3, batch_size: int | None = None,
            target_loss: float | None = None, seed: int = 0, task: str = "landmarks",
            input_size: int = 48) -> CheckResult:
    """Can ``model`` (a Module, deep-copied, or a factory) memorise a few samples of
    ``data`` ((x, y) tensors or a Dataset)? Defaults: the browser net on generated faces."""
    from diag.checks import _overfit

    target = _target(model, data, loss, seed, task, input_size, max(samples, 16))
    return _overfit.run(target, _overfit.OverfitOptions(
        samples=samples, max_steps=max_steps, lr=lr, batch_size=batch_size,
        target_loss=target_loss, seed=seed))


def leaks(step: Callable[[], Callable[[], object]] | None = None, *, model: Any = None,
          data: Any = None, loss: Any = None, iterations: int = 30, warmup: int = 5,
          seed: int = 0) -> CheckResult:
    """Does ``step()`` leak? ``step`` is a zero-argument factory returning the iteration
    function; without it, diag's training loop on ``model``/``data``/``loss``."""
    from diag.checks import _leaks

    options = _leaks.LeaksOptions(iterations=iterations, warmup=warmup, seed=seed)
    if step is None:
        step = _leaks.training_step_factory(_target(model, data, loss, seed, "landmarks", 48,
                                                    48), seed=seed)
    return _leaks.run(step, options)


def lr_schedule(history: Sequence[float] | str | None = None, *, model: Any = None,
                data: Any = None, loss: Any = None, epochs: int = 30, lr: float | None = None,
                verify: bool = False, range_test: bool = False, metric: str = "loss",
                seed: int = 0) -> CheckResult:
    """Diagnose a loss curve: a list of numbers, a CSV/JSON file, or (None) a training run."""
    from diag.checks import _lr

    options = _lr.LrOptions(epochs=epochs, lr=lr, verify=verify, range_test=range_test,
                            seed=seed)
    if isinstance(history, str):
        from diag.history import load_history

        return _lr.run_history(load_history(history, metric), options)
    if history is not None:
        values = [float(v) for v in history]
        return _lr.analyse(values, list(range(len(values))), "index", None, lr)
    return _lr.run_training(_target(model, data, loss, seed, "landmarks", 48, 48), options)


def loss_grad(loss: Callable[..., Any] | None = None, *, pred_shape: tuple[int, ...] = (8, 10),
              target: str | Callable[[tuple[int, ...]], Any] = "like",
              reference: Callable[..., Any] | None = None, seed: int = 0) -> CheckResult:
    """Test a custom loss's gradients; None checks the browser model's own losses."""
    from diag.checks import _lossgrad

    options = _lossgrad.LossGradOptions(pred_shape=tuple(pred_shape), seed=seed)
    if loss is None:
        return _lossgrad.run(_lossgrad.default_losses(), options)
    kind, fn = (target, None) if isinstance(target, str) else ("like", target)
    name = getattr(loss, "__name__", type(loss).__name__)
    return _lossgrad.run([_lossgrad.LossUnderTest(name, loss, kind, fn, reference,
                                                  getattr(reference, "__name__", ""))],
                         options)


def preprocess(pipeline: Any = None, *, seed: int = 0) -> CheckResult:
    """Do the pipeline's preprocess and postprocess round-trip? None: the browser's."""
    from diag.checks import _preprocess
    from diag.pipeline import default_pipeline

    return _preprocess.run(pipeline if pipeline is not None else default_pipeline(),
                           _preprocess.PreprocessOptions(seed=seed))


__all__ = ["CHECKS", "leaks", "loss_grad", "lr_schedule", "overfit", "preprocess"]
