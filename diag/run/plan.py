"""One way in: every single command, `diag check` and the Python API build their work here.

The plan takes what the user set (``Sources``: SPECs, files or Python objects), the common
``Settings`` (seed, task, input size), the selected checks and their options, resolves every
input the selected checks need up front, and returns the jobs. A SPEC that does not
resolve, a missing file, a bad option: one error naming the setting, exit 2, before any
check starts. Since every door comes through here, the same seed and options give the same
numbers whichever door the user came in by.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diag.checks.base import (
    Check,
    CheckTimeout,
    Progress,
    preload,
    run_check,
    time_limit,
    timeout_result,
)
from diag.checks.registry import BY_NAME, CHECKS, NAMES
from diag.errors import DiagError, UsageError, UserCodeError
from diag.inputs import Inputs
from diag.result import CheckResult, Status
from diag.run.threads import Threads

DEFAULT_SAMPLES = 48
"""Samples in the generated data set, for every check and every door (overfit draws its
``samples`` from these, the others use all of them)."""

MAX_SEED = 2**63 - 1

SOURCE_KEYS = ("model", "data", "loss", "step", "pipeline", "history")


@dataclass(frozen=True)
class Sources:
    """What the user plugged in: SPEC strings, file paths or Python objects (None: the
    built-in default)."""

    model: Any = None
    data: Any = None
    loss: Any = None
    step: Any = None
    pipeline: Any = None
    history: Any = None
    origins: Mapping[str, str] = field(default_factory=dict)
    """Key -> how the user set it ("--model", "pyproject.toml [tool.diag] model"), for
    error messages. Keys not in it are named as command-line options."""

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SOURCE_KEYS}

    def origin(self, key: str) -> str:
        return self.origins.get(key, f"--{key}")


@dataclass(frozen=True)
class Settings:
    """The options every check shares."""

    seed: int = 0
    task: str = "landmarks"
    """Head of the default browser model: landmarks or classify."""
    input_size: int = 48
    """Input size of the generated data, in pixels."""
    threads: int | None = None
    """Intra-op threads for diag's own runs (``--threads``); None: the rule of
    ``diag.run.threads``."""

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not (
                0 <= self.seed <= MAX_SEED):
            raise UsageError(f"seed {self.seed!r} is out of range",
                             hint=f"use an integer from 0 to {MAX_SEED}")
        if self.task not in ("landmarks", "classify"):
            raise UsageError(f"task {self.task!r} is not known", hint="use landmarks or classify")
        if isinstance(self.input_size, bool) or not isinstance(self.input_size, int) or (
                self.input_size < 8):
            raise UsageError(f"input_size {self.input_size!r} is too small",
                             hint="use an integer of at least 8 (the browser uses 112)")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(
                self.threads, int) or not 1 <= self.threads <= 4096):
            raise UsageError(f"threads {self.threads!r} is not a thread count",
                             hint="give an integer from 1 up to the cores you have")


@dataclass(frozen=True)
class Job:
    """One check, ready to run: ``run`` goes through the one guard (``run_check``)."""

    name: str
    work: Callable[[Progress | None], CheckResult]
    """The check's own work, unguarded."""
    seed: int | None = 0
    torch_needed: bool = True
    inputs: Inputs | None = None
    """What the plan resolved for it (for tools and benchmarks; the work already has it)."""
    timed: bool = False
    """Its findings are timings (``Check.timed``)."""
    threads: Threads | None = None
    """The intra-op thread count its runs use (``diag.run.threads``); None: torch's."""

    def run(self, progress: Progress | None = None, timeout: float | None = None,
            quiet_stdout: bool = False) -> CheckResult:
        if self.threads is None:
            return run_check(self.name, lambda: self.work(progress), seed=self.seed,
                             torch_needed=self.torch_needed, timeout=timeout,
                             quiet_stdout=quiet_stdout)
        from diag.run.threads import using

        with using(self.threads):
            import torch

            count = torch.get_num_threads()
            result = run_check(self.name, lambda: self.work(progress), seed=self.seed,
                               torch_needed=self.torch_needed, timeout=timeout,
                               quiet_stdout=quiet_stdout)
        return result.replace(metrics={**result.metrics, "threads": count,
                                       "threads_source": self.threads.source})

    @classmethod
    def of(cls, name: str, work: Callable[[Progress | None], CheckResult]) -> Job:
        """A job from a bare callable (no seeding): for tests and tools."""
        return cls(name, work, seed=None, torch_needed=False)


def check_names(values: Sequence[str], option: str) -> list[str]:
    """``--select``/``--skip`` values (comma-separated or repeated) as check names."""
    names = [n.strip() for v in values for n in str(v).split(",") if n.strip()]
    if values and not names:
        raise UsageError(f"{option}: no check named", hint=f"checks: {', '.join(NAMES)}")
    for n in names:
        if n not in BY_NAME:
            raise UsageError(f"{option}: unknown check {n!r}", hint=f"checks: {', '.join(NAMES)}")
    return names


def build(sources: Sources, settings: Settings, names: Sequence[str],
          options: Mapping[str, Any] | None = None, *,
          option_origins: Mapping[str, str] | None = None,
          base: Path | None = None, timeout: float | None = None) -> list[Job]:
    """Resolve what the checks ``names`` need and return their jobs, in registry order.

    ``options`` maps a check name to its options object (default: the defaults);
    ``option_origins`` names where a check's options came from, for errors; ``base`` is the
    folder relative paths in check options are relative to (the config file's). ``timeout``
    (seconds per check) also bounds the work done here for a check: building and trying
    the model, a check's ``prepare`` (the loader's first batch); over it, the checks that
    needed that work are reported as timed out and the others run.
    """
    options = dict(options or {})
    selected = [c for c in CHECKS if c.name in set(names)]
    if not selected:
        raise UsageError("no check selected", hint=f"checks: {', '.join(NAMES)}")
    opts = {c.name: dataclasses.replace(options.get(c.name) or c.options(), seed=settings.seed)
            for c in selected}
    src = sources.as_dict()
    if timeout is not None:  # diag's own imports never count against (or break on) the limit
        for c in selected:
            preload(c.run)
            preload(c.prepare)
    needs = set().union(*(c.needs(src) for c in selected))
    inputs, broken = _resolve(sources, settings, needs, opts, timeout, settings.threads)

    jobs: list[Job] = []
    for check in selected:
        o = opts[check.name]
        if check.prepare is not None:
            where = (option_origins or {}).get(check.name, "")
            try:
                with time_limit(timeout):
                    o = check.prepare(inputs, o, _spec_resolver(where, base))
            except CheckTimeout as exc:
                stuck = timeout_result(check.name, timeout, exc.__traceback__,
                                       "preparing its inputs (the loader's first batch)")
                jobs.append(Job(check.name, _constant(stuck), seed=None, torch_needed=False))
                continue
        if broken is not None and "target" in check.needs(src):
            jobs.append(Job(check.name, _constant(broken(check.name)), seed=None,
                            torch_needed=False))
            continue
        if check.name == "preprocess" and sources.pipeline is None and sources.model is not None:
            skipped = CheckResult("preprocess", Status.SKIP, "no pipeline configured for your "
                                  "model: set pipeline (or --pipeline) to check yours")
            jobs.append(Job(check.name, _constant(skipped), seed=None, torch_needed=False))
            continue
        torch_needed = check.torch_needed(src)
        jobs.append(Job(check.name, _work(check, inputs, o), seed=settings.seed,
                        torch_needed=torch_needed, inputs=inputs, timed=check.timed,
                        threads=(None if check.timed or not torch_needed else
                                 inputs.threads or _threads_without_model(settings))))
    return jobs


def _threads_without_model(settings: Settings) -> Threads:
    """No model to judge (a loss, a pipeline, the user's own step): --threads or the
    user's setting, else torch's default."""
    from diag.run.threads import user_choice

    if settings.threads is not None:
        return Threads(settings.threads, "--threads")
    return user_choice() or Threads(None, "torch's default (no model to judge)")


def _constant(result: CheckResult) -> Callable[[Progress | None], CheckResult]:
    def work(_progress: Progress | None) -> CheckResult:
        return result

    return work


def _work(check: Check, inputs: Inputs, options: Any) -> Callable[[Progress | None],
                                                                  CheckResult]:
    def work(progress: Progress | None) -> CheckResult:
        return check.run(inputs, options, progress)

    return work


def _spec_resolver(where: str, base: Path | None) -> Callable[[str, str], Any]:
    """``resolve(value, option)`` for a check's SPEC options: relative file paths are
    relative to the config file, errors name the config key (or the option)."""
    from diag.inputs.config import relative_to
    from diag.inputs.spec import resolve

    def resolver(value: str, option: str) -> Any:
        name = f"{where} {option.lstrip('-').replace('-', '_')}" if where else option
        return resolve(relative_to(value, base) if where else value, name)

    def locate(value: str) -> str:
        """The SPEC as another process in the same folder resolves it."""
        return relative_to(value, base) if where else value

    resolver.locate = locate  # type: ignore[attr-defined]
    return resolver


def _wrap(sources: Sources, key: str, exc: DiagError) -> DiagError:
    origin = sources.origin(key)
    if origin.startswith("--") or origin in exc.message:
        return exc
    return type(exc)(f"{origin}: {exc.message}", exc.hint, exc.location)


def _resolve(sources: Sources, settings: Settings, needs: set[str],
             opts: Mapping[str, Any], timeout: float | None = None,
             threads: int | None = None
             ) -> tuple[Inputs, Callable[[str], CheckResult] | None]:
    """Every input in ``needs``, resolved now: bad input raises before any check runs. User
    code that raises while the target is tried (a forward that fails), or that runs past
    ``timeout``, is returned instead, as the result of each check that needs the target:
    the others still run."""
    fields: dict[str, Any] = {"specs": {
        "model": sources.model, "data": sources.data, "loss": sources.loss,
        "task": settings.task, "input_size": settings.input_size}}
    target = None
    broken: Callable[[str], CheckResult] | None = None
    if "target" in needs:
        import diag.inputs.target  # noqa: F401  (torch: imported before the limit starts)

        try:
            with time_limit(timeout):
                target = _target(sources, settings)
                from diag.run.threads import choose

                fields["threads"] = choose(target, threads, settings.seed)
        except UserCodeError as exc:
            broken = exc.as_result
        except CheckTimeout as exc:
            tb = exc.__traceback__

            def broken(name: str) -> CheckResult:
                return timeout_result(name, timeout, tb,
                                      "building the model and trying it on the data")
        fields["target"] = target
    if "data" in needs and target is None:
        from diag.inputs.target import to_data

        try:
            fields["data"] = to_data(sources.data, settings.task, settings.input_size,
                                     DEFAULT_SAMPLES, settings.seed, check_finite=False)
        except DiagError as exc:
            raise _wrap(sources, "data", exc) from None
    if "step" in needs:
        fields["step"], fields["step_source"] = _step(sources)
        fields["step_is_users"] = True
    elif "leaks" in opts and target is not None:
        from diag.checks.leaks.check import training_step_factory

        fields["step"] = training_step_factory(target, seed=settings.seed)
        fields["step_source"] = f"training loop on {target.model_name}"
    if "pipeline" in needs and not (sources.pipeline is None and sources.model is not None):
        from diag.checks.preprocess.check import load_pipeline

        try:
            fields["pipeline"], fields["pipeline_source"] = load_pipeline(sources.pipeline)
        except DiagError as exc:
            raise _wrap(sources, "pipeline", exc) from None
    if "history" in needs:
        lr_opts = opts.get("lr-schedule")
        metric = getattr(lr_opts, "metric", "loss")
        lr_column = getattr(lr_opts, "lr_column", None)
        if isinstance(sources.history, str | os.PathLike):
            from diag.inputs.history import load_pair

            try:
                fields["history"], fields["history_val"] = load_pair(
                    str(sources.history), metric, getattr(lr_opts, "val_metric", None),
                    lr_column, getattr(lr_opts, "run", None), getattr(lr_opts, "pattern", None))
            except DiagError as exc:
                raise _wrap(sources, "history", exc) from None
        else:
            fields["history"] = _history(sources, metric, lr_column)
    if "loss" in needs and sources.loss is not None:
        from diag.inputs.target import to_loss

        try:
            fields["loss"], fields["loss_name"] = to_loss(sources.loss)
        except DiagError as exc:
            raise _wrap(sources, "loss", exc) from None
        fields["classify"] = _classify(sources, settings, target)
    return Inputs(**fields), broken


def _target(sources: Sources, settings: Settings) -> Any:
    from diag.inputs.spec import resolve
    from diag.inputs.target import build_target, check_fit

    for key in ("model", "loss"):
        value = getattr(sources, key)
        if isinstance(value, str) and not (key == "model" and os.path.isdir(value)):
            try:
                resolve(value, f"--{key}")
            except DiagError as exc:
                raise _wrap(sources, key, exc) from None
    data = sources.data
    if isinstance(data, str) and (data.endswith(".npz") or ":" not in os.path.basename(data)) \
            and not os.path.exists(data):
        raise _wrap(sources, "data", UsageError(f"--data file not found: {data}",
                                                hint="check the path"))
    try:
        target = build_target(model=sources.model, data=data, loss=sources.loss,
                              task=settings.task, input_size=settings.input_size,
                              samples=DEFAULT_SAMPLES, seed=settings.seed)
        check_fit(target, settings.seed)
    except DiagError as exc:
        named = next((k for k in ("model", "data", "loss") if isinstance(getattr(sources, k),
                                                                          str)
                      and getattr(sources, k) in exc.message), None)
        raise (_wrap(sources, named, exc) if named else exc) from None
    return target


def _step(sources: Sources) -> tuple[Any, str]:
    step = sources.step
    if isinstance(step, str):
        from diag.inputs.spec import resolve

        try:
            obj = resolve(step, sources.origin("step"))
        except DiagError as exc:
            raise _wrap(sources, "step", exc) from None
        source = step
    else:
        obj, source = step, getattr(step, "__name__", type(step).__name__)
    if not callable(obj):
        raise UsageError(f"{sources.origin('step')} {source} is a {type(obj).__name__}",
                         hint="give a zero-argument factory returning step()")
    return obj, source


def _history(sources: Sources, metric: str, lr_column: str | None = None) -> Any:
    """A history given as a list of numbers (the API)."""
    from diag.inputs.history import History

    history = sources.history
    try:
        values = [float(v) for v in history]
    except (TypeError, ValueError):
        raise UsageError(f"history is a {type(history).__name__}",
                         hint="give a log file or run folder, or a list of numbers") from None
    if len(values) < 10:
        raise UsageError(f"the history has {len(values)} points; the detectors need at least 10",
                         hint="log more epochs or steps")
    return History(values, list(range(len(values))), "index", None, metric, "")


def _classify(sources: Sources, settings: Settings, target: Any) -> bool:
    """Whether the loss sees class indices: from the user's data when given, else the task."""
    if target is not None:
        return bool(target.is_classification)
    if sources.data is not None:
        from diag.inputs.target import to_data

        try:
            data = to_data(sources.data, settings.task, settings.input_size, DEFAULT_SAMPLES,
                           settings.seed)
        except DiagError as exc:
            raise _wrap(sources, "data", exc) from None
        return bool(data.is_classification)
    return settings.task == "classify"


# --- `diag check`: the config file and the command line, merged -----------------------------
@dataclass(frozen=True)
class Overrides:
    """`diag check`'s command-line values; they win over the config file."""

    model: str | None = None
    data: str | None = None
    loss: str | None = None
    step: str | None = None
    pipeline: str | None = None
    history: str | None = None
    seed: int | None = None
    task: str | None = None
    input_size: int | None = None
    threads: int | None = None
    select: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()


def selected(config: Any, cli: Overrides) -> list[str]:
    """The checks `diag check` runs: --select/--skip win over the file's select/skip."""
    select = check_names(cli.select, "--select") or check_names(config.get("select", []),
                                                                 "select")
    skip = set(check_names(cli.skip, "--skip")) | set(check_names(config.get("skip", []),
                                                                  "skip"))
    names = [c for c in NAMES if (not select or c in select) and c not in skip]
    if not names:
        raise UsageError("every check is skipped: nothing to run",
                         hint="skip fewer checks, or select one")
    return names


def plan_check(config: Any, cli: Overrides, timeout: float | None = None) -> list[Job]:
    """`diag check`: the config (``diag.inputs.config.Config``) and the command line as
    sources, settings and options, then ``build`` like every other door."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key in SOURCE_KEYS:
        cli_value = getattr(cli, key)
        if cli_value is not None:
            values[key] = cli_value
        elif config.get(key) is not None:
            values[key] = config.path(key)
            origins[key] = f"{config.where} [tool.diag] {key}"
    settings = Settings(
        seed=cli.seed if cli.seed is not None else config.get("seed", 0),
        task=cli.task or config.get("task", "landmarks"),
        input_size=cli.input_size or config.get("input_size", 48),
        threads=cli.threads or config.get("threads"))
    names = selected(config, cli)
    options = {name: config.options(name) for name in names if config.options(name)}
    option_origins = {name: f"{config.where} [tool.diag.{BY_NAME[name].config_table}]"
                      for name in options}
    jobs = build(Sources(**values, origins=origins), settings, names, options,
                 option_origins=option_origins, base=config.base, timeout=timeout)
    return [_skipped_unless_configured(job, config) for job in jobs]


def _skipped_unless_configured(job: Job, config: Any) -> Job:
    """ddp spawns processes: `diag check` runs it only when ``[tool.diag.ddp]`` is set."""
    if job.name != "ddp" or config.options("ddp") is not None:
        return job
    skipped = CheckResult("ddp", Status.SKIP, "not configured: add a [tool.diag.ddp] table "
                          "(it starts torchrun processes) to run it")
    return Job("ddp", _constant(skipped), seed=None, torch_needed=False)
