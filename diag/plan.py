"""What `diag check` runs: the configured checks, with every spec resolved up front.

A spec that does not resolve, a file that is missing, a wrong key: one error naming the
setting, exit 2, before any check starts.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from diag.checks import CHECKS
from diag.config import Config
from diag.errors import DiagError, UsageError
from diag.result import CheckResult, Status

Progress = Callable[[int, int], None]
Job = tuple[str, Callable[[Progress | None], CheckResult]]


@dataclass(frozen=True)
class Overrides:
    """Command-line values; they win over the config file."""

    model: str | None = None
    data: str | None = None
    loss: str | None = None
    step: str | None = None
    pipeline: str | None = None
    history: str | None = None
    seed: int | None = None
    task: str | None = None
    input_size: int | None = None
    select: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()


def _names(values: tuple[str, ...] | list[str], option: str) -> list[str]:
    names = [n.strip() for v in values for n in str(v).split(",") if n.strip()]
    for n in names:
        if n not in CHECKS:
            raise UsageError(f"{option}: unknown check {n!r}", hint=f"checks: {', '.join(CHECKS)}")
    return names


def selected(config: Config, cli: Overrides) -> list[str]:
    select = _names(cli.select, "--select") or _names(config.get("select", []), "select")
    skip = set(_names(cli.skip, "--skip")) | set(_names(config.get("skip", []), "skip"))
    return [c for c in CHECKS if (not select or c in select) and c not in skip]


class _Setting:
    """A setting's value and where it came from, for error messages."""

    def __init__(self, config: Config, cli: Overrides, key: str) -> None:
        cli_value = getattr(cli, key)
        self.value: Any = cli_value if cli_value is not None else config.path(key)
        self.origin = f"--{key}" if cli_value is not None else (
            f"{config.where} [tool.diag] {key}" if key in config.values else f"--{key}")

    def wrap(self, exc: DiagError) -> DiagError:
        if self.origin.startswith("--") or self.origin in exc.message:
            return exc
        return type(exc)(f"{self.origin}: {exc.message}", exc.hint, exc.location)


def build_jobs(config: Config, cli: Overrides) -> list[Job]:
    """Resolve everything the selected checks need, then return the jobs to run."""
    from diag.checks import _leaks, _lr, _overfit, _preprocess

    names = selected(config, cli)
    s = {k: _Setting(config, cli, k) for k in ("model", "data", "loss", "step", "pipeline",
                                               "history")}
    seed = cli.seed if cli.seed is not None else int(config.get("seed", 0))
    task = cli.task or str(config.get("task", "landmarks"))
    input_size = cli.input_size or int(config.get("input_size", 48))
    jobs: list[Job] = []

    needs_target = "overfit" in names or ("leaks" in names and s["step"].value is None) or (
        "lr-schedule" in names and s["history"].value is None)
    target = None
    if needs_target:
        target = _resolve_target(s, task, input_size, seed)

    if "overfit" in names:
        o = config.options("overfit")
        opts = _overfit.OverfitOptions(seed=seed, **o)
        jobs.append(("overfit", _job(_overfit.run, target, opts)))
    if "leaks" in names:
        o = config.options("leaks")
        lopts = _leaks.LeaksOptions(seed=seed, **o)
        if s["step"].value is not None:
            factory = _resolve(s["step"], lambda v: _callable_spec(v, "--step"))
            source = s["step"].value
        else:
            factory = _leaks.training_step_factory(target, seed=seed)
            source = f"training loop on {target.model_name}"  # type: ignore[union-attr]
        jobs.append(("leaks", _job(_leaks.run, factory, lopts, source=source)))
    if "lr-schedule" in names:
        o = config.options("lr-schedule")
        metric = o.pop("metric", "loss")
        ropts = _lr.LrOptions(seed=seed, **o)
        if s["history"].value is not None:
            from diag.history import load_history

            hist = _resolve(s["history"], lambda v: load_history(v, metric))
            jobs.append(("lr-schedule", _job(_lr.run_history, hist, ropts, progress=False)))
        else:
            jobs.append(("lr-schedule", _job(_lr.run_training, target, ropts)))
    if "loss-grad" in names:
        jobs.append(("loss-grad", _loss_grad_job(config, s, seed, target)))
    if "preprocess" in names:
        if s["pipeline"].value is None and s["model"].value is not None:
            skipped = CheckResult("preprocess", Status.SKIP, "no pipeline configured for your "
                                  "model: set pipeline (or --pipeline) to check yours")
            jobs.append(("preprocess", _job(lambda: skipped, progress=False)))
        else:
            pipe, src = _resolve(s["pipeline"], _preprocess.load_pipeline) if s[
                "pipeline"].value else _preprocess.load_pipeline(None)
            popts = _preprocess.PreprocessOptions(seed=seed)
            jobs.append(("preprocess", _job(_preprocess.run, pipe, popts, source=src)))
    return jobs


def _job(fn: Callable[..., CheckResult], *args: Any, progress: bool = True, **kwargs: Any
         ) -> Callable[[Progress | None], CheckResult]:
    """A job: ``fn(*args, progress, **kwargs)`` (or without progress) when run."""

    def run(p: Progress | None) -> CheckResult:
        return fn(*args, p, **kwargs) if progress else fn(*args, **kwargs)

    return run


def _resolve(setting: _Setting, fn: Callable[[Any], Any]) -> Any:
    try:
        return fn(setting.value)
    except DiagError as exc:
        raise setting.wrap(exc) from None


def _resolve_option(value: str, option: str) -> Any:
    from diag.spec import resolve

    return resolve(value, option)


def _callable_spec(value: str, option: str) -> Any:
    from diag.spec import resolve

    obj = resolve(value, option)
    if not callable(obj):
        raise UsageError(f"{option} {value} is a {type(obj).__name__}",
                         hint="give a zero-argument factory returning step()")
    return obj


def _resolve_target(s: dict[str, _Setting], task: str, input_size: int, seed: int) -> Any:
    from diag.target import build_target, check_fit

    for key in ("model", "loss"):
        if s[key].value is not None:
            _resolve(s[key], functools.partial(_resolve_option, option=f"--{key}"))
    data = s["data"].value
    if data is not None and (data.endswith(".npz") or os.path.exists(data)):
        if not os.path.exists(data):
            raise s["data"].wrap(UsageError(f"--data file not found: {data}",
                                            hint="check the path"))
    try:
        target = build_target(model=s["model"].value, data=data, loss=s["loss"].value,
                              task=task, input_size=input_size, samples=48, seed=seed)
        check_fit(target, seed)
    except DiagError as exc:
        origin = next((st for st in s.values() if st.value and st.value in exc.message),
                      None)
        raise (origin.wrap(exc) if origin else exc) from None
    return target


def _loss_grad_job(config: Config, s: dict[str, _Setting], seed: int, target: Any
                   ) -> Callable[[Progress | None], CheckResult]:
    from diag.checks import _lossgrad
    from diag.target import load_loss

    o = config.options("loss-grad")
    shape = tuple(o.get("pred_shape", (8, 10)))
    options = _lossgrad.LossGradOptions(pred_shape=shape, seed=seed)
    if s["loss"].value is None:
        losses = _lossgrad.default_losses()
    else:
        fn = _resolve(s["loss"], load_loss)
        kind = o.get("target") or ("index" if target is not None
                                   and target.is_classification else "like")
        target_fn = None
        if kind not in _lossgrad.TARGET_KINDS:
            target_fn = _callable_spec(kind, "[tool.diag.loss-grad] target")
            kind = "like"
        reference = o.get("reference")
        ref = load_loss(reference) if reference else None
        losses = [_lossgrad.LossUnderTest(s["loss"].value.rsplit(":", 1)[-1], fn, kind,
                                          target_fn, ref, reference or "")]
    return _job(_lossgrad.run, losses, options)
