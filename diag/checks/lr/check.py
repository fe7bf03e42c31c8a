"""`diag lr-schedule`: plateau, oscillation and divergence in a loss curve, and which LR.

The article: when the loss stops falling, stop; when it oscillates, lower the learning rate
(0.01 -> 0.001 at epoch 32 bought a further ~0.3 of loss). ReduceLROnPlateau reacts only to
plateaus, after a fixed patience, and says nothing about why; this check reads the curve,
says what it sees and where, recommends an LR, and can verify the recommendation.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

from diag.checks.lr import LrOptions
from diag.checks.lr.detect import (
    LR_FLOOR,
    SHORT,
    diagnose,
    envelope,
    reduce_on_plateau_steps,
    suggest_range_lr,
    validation_rise,
)
from diag.errors import USER_ERRORS, UsageError, user_code_error
from diag.inputs import Inputs
from diag.inputs.history import History
from diag.result import CheckResult, Finding, Severity, Status

NAME = "lr-schedule"
Progress = Callable[[int, int], None]
DEFAULT_LR = 1e-3
MAX_SERIES_POINTS = 4000
"""Reports carry at most this many points of a curve (each bucket's min and max, so plots
still show spikes); the metrics are computed on every point."""


def run(inputs: Inputs, options: LrOptions, progress: Progress | None = None
        ) -> CheckResult:
    """A history file's curve, or (without one) the curve of a short training run."""
    if inputs.history is not None:
        return run_history(inputs.history, options, inputs.history_val)
    return run_training(inputs.target, options, progress)


def run_history(history: History, options: LrOptions, validation: History | None = None
                ) -> CheckResult:
    """Diagnose a curve read from a file (never imports torch); with a validation curve
    from the same file, also where validation bottoms out while training falls."""
    result = _described(analyse(history.values, history.index, history.index_name,
                                 history.lr, options.lr, source=history.source,
                                 metric=history.metric, kind=options.kind), history,
                        validation)
    if validation is None:
        return result
    val = analyse(validation.values, validation.index, validation.index_name, validation.lr,
                  options.lr, metric=validation.metric, train=history.values,
                  train_index=history.index)
    tag = f"[{validation.metric}] "
    findings = tuple(result.findings) + tuple(
        Finding(f.severity, tag + f.message, f.hint, f.location) for f in val.findings
        if f.severity != Severity.INFO or "overfitting" in f.message)
    metrics = dict(result.metrics)
    metrics.update(val_metric=validation.metric, overfitting=val.metrics["overfitting"],
                   best_epoch_val=val.metrics["best_epoch_val"],
                   val_best_loss=val.metrics["best_loss"], val_final_loss=val.metrics[
                       "final_loss"])
    order = [Status.FAIL, Status.WARN, Status.PASS]
    status = next(s for s in order if s in (result.status, val.status))
    summary = result.summary
    if val.status in (Status.FAIL, Status.WARN) and (
            order.index(val.status) < order.index(result.status)
            or result.status == Status.PASS):
        summary = tag + val.summary
    series = dict(result.series)
    series["val"] = list(val.series["loss"])
    plot_data = dict(result.plot_data)
    plot_data.update(val_index=val.plot_data["index"], val_metric=validation.metric,
                     best_epoch_val=val.plot_data.get("best_epoch_val"))
    return result.replace(status=status, summary=summary, findings=findings, metrics=metrics,
                          series=series, plot_data=plot_data)


def _described(result: CheckResult, history: History, validation: History | None
               ) -> CheckResult:
    """The result, saying which file, format and columns it read, and what the reader
    noticed (a truncated record, other runs in the folder)."""
    if not history.format:
        return result
    used = history.used + (f"; validation: {validation.metric}" if validation else "")
    notes = tuple(Finding(Severity.INFO, note, "", history.source) for note in history.notes)
    notes += tuple(Finding(Severity.WARN, problem, "the log was cut short or damaged (a run "
                           "still writing, a copy broken off): the verdict covers what was "
                           "read", history.source) for problem in history.problems)
    read = Finding(Severity.INFO, f"read {history.source} as {history.format}: {used}", "",
                   history.source)
    upgraded = bool(history.problems) and result.status == Status.PASS
    return result.replace(status=Status.WARN if upgraded else result.status,
                          summary=(f"{history.problems[0]}; {result.summary}" if upgraded
                                   else result.summary), metrics={**result.metrics,
                                                  "history_format": history.format,
                                                  "history_columns": used},
                          findings=tuple(result.findings) + (read, *notes))


def _looks_like_validation(metric: str) -> bool:
    name = metric.lower()
    return any(name.startswith(p) or f"/{p}" in name or f"_{p}" in name
               for p in ("val", "valid", "test", "eval"))


def analyse(values: list[float], index: list[float], index_name: str, lrs: list[float] | None,
            lr: float | None, source: str = "", initial: float | None = None,
            metric: str = "loss", train: list[float] | None = None,
            train_index: list[float] | None = None, kind: str = "auto") -> CheckResult:
    """Detectors, verdict and recommendation for one curve (pure: no training).

    ``initial``: the loss before any training step, when known (training mode). ``train``:
    the training curve, when ``values`` is a validation curve (e.g. ``val_loss``): then a
    rise is overfitting, judged against the validation's best, not divergence. ``kind``:
    "val" or "train" says what ``values`` is; "auto" reads it from the metric's name.
    """
    validation = train is not None or kind == "val" or (
        kind == "auto" and _looks_like_validation(metric))
    d = diagnose(values, initial=initial, lrs=lrs, validation=validation)

    def label(p: int | None) -> float | None:
        return None if p is None else index[p]

    unit = index_name if index_name != "index" else "point"
    # counts of logged points are in the index's unit only when it counts 1 per point
    per_point = all(b - a == 1 for a, b in zip(index, index[1:], strict=False))

    def points(n: int) -> str:
        return f"{n} {unit}s" if per_point else f"{n} logged points"

    def lr_at(p: int) -> float | None:
        if lrs is not None and 0 <= p < len(lrs) and math.isfinite(lrs[p]):
            return float(lrs[p])
        return lr

    def at_lr(p: int) -> str:
        value = lr_at(p)
        return f" at lr {value:.3g}" if value else ""

    findings: list[Finding] = []
    point: int | None = None
    finite = [v for v in values if math.isfinite(v)]
    overfit_at: int | None = None
    if train is not None:
        overfit_at = _overfitting(values, index, train, train_index)
    elif validation and finite:
        overfit_at = _validation_rise(values)
    if d.nonfinite_at is not None:
        findings.append(Finding(
            Severity.FAIL, f"the {metric} is NaN/Inf from {unit} {index[d.nonfinite_at]}"
            + (f"; it started rising at {unit} {label(d.divergence_start)}"
               if d.divergence_start is not None and d.divergence_start < d.nonfinite_at
               else ""),
            "restart from a checkpoint before it with a 10x lower LR; add gradient clipping",
            location=f"{unit} {index[d.nonfinite_at]}"))
        point = d.divergence_start
    elif d.divergence_start is not None:
        before = (f" (it was {initial:.4g} before training)" if initial is not None
                  and d.divergence_start == 0 and min(finite) > initial else "")
        findings.append(Finding(
            Severity.FAIL, f"divergence: the loss rises from {unit} "
            f"{label(d.divergence_start)}{at_lr(d.divergence_start)} and does not come back "
            f"(best {min(finite):.4g}, last {values[-1]:.4g}){before}",
            "lower the LR 10x from that point, or restart from the checkpoint there",
            location=f"{unit} {label(d.divergence_start)}"))
        point = d.divergence_start
    if overfit_at is not None and d.nonfinite_at is None:
        best = values[overfit_at]
        tail = sorted(values[-max(3, d.window // 2):])
        final = tail[len(tail) // 2]
        findings.append(Finding(
            Severity.WARN, f"overfitting: the {metric} is best at {unit} "
            f"{label(overfit_at)} ({best:.4g}) and then rises {100 * (final / best - 1):.0f}%, "
            "more than its noise, "
            + ("while the training loss keeps falling" if train is not None else
               "(a validation curve; no training curve given to compare)"),
            f"best {unit} {label(overfit_at)}: stop there (early stopping / keep that "
            "checkpoint) or regularise (more data, augmentation, weight decay, dropout); a "
            "lower LR will not fix it", location=f"{unit} {label(overfit_at)}"))
    elif validation and d.nonfinite_at is None and finite:
        rise = validation_rise(values)
        if rise is not None:
            at, fraction = rise
            findings.append(Finding(
                Severity.INFO, f"the {metric} ends {100 * fraction:.0f}% above its best "
                f"({unit} {label(at)}), within its noise: too early to call it overfitting",
                "log more epochs (or evaluate on more samples) to decide",
                location=f"{unit} {label(at)}"))
    if d.ends_at_worst is not None and overfit_at is None:
        at = d.ends_at_worst
        best_at = min(range(at), key=lambda i: values[i])
        ratio = (f", {values[at] / values[best_at]:.3g}x its best" if values[best_at] > 0
                 else ", its best")
        findings.append(Finding(
            Severity.WARN, f"the {metric} ends at its worst: its last point ({unit} "
            f"{label(at)}: {values[at]:.4g}) is above every earlier one, its start "
            f"({values[0]:.4g}) included{ratio} ({values[best_at]:.4g} at {unit} "
            f"{label(best_at)}); one point cannot tell a spike from the start of a "
            "divergence",
            f"log a few more {unit}s; if it stays up, "
            + (f"keep the best checkpoint ({unit} {label(best_at)}): a validation loss that "
               "jumps while training does not points at overfitting or at the evaluation (a "
               "changed split or preprocessing)" if validation else
               f"go back to the best checkpoint ({unit} {label(best_at)}) and lower the LR "
               "10x"), location=f"{unit} {label(at)}"))
    if d.no_learning and d.nonfinite_at is None and d.divergence_start is None:
        findings.append(Finding(
            Severity.FAIL, f"no learning: the loss never leaves its starting level "
            f"({values[0]:.4g})",
            "run `diag overfit` to find the bug; if the model is fine, try `--range-test` for "
            "a workable LR", location=f"{unit} {index[0]}"))
    if d.oscillation_start is not None and not d.no_learning and d.divergence_start is None:
        findings.append(Finding(
            Severity.WARN, f"oscillation: the loss keeps climbing back up from {unit} "
            f"{label(d.oscillation_start)}{at_lr(d.oscillation_start)} instead of settling",
            "lower the LR 10x at that point (the article: 0.01 -> 0.001 bought ~0.3 of loss)",
            location=f"{unit} {label(d.oscillation_start)}"))
        point = point if point is not None else d.oscillation_start
    plateau = (d.plateau_start is not None and not d.no_learning and overfit_at is None
               and d.divergence_start is None and d.nonfinite_at is None)
    collapsed = (d.lr_collapse is not None and d.nonfinite_at is None
                 and d.divergence_start is None and d.tail not in ("improving", "slow"))
    if collapsed and d.lr_collapse is not None:
        low = lr_at(d.lr_collapse)
        since = (f"; the loss has been flat since {unit} {label(d.plateau_start)}"
                 f"{at_lr(d.plateau_start)}" if plateau and d.plateau_start is not None
                 else "")
        findings.append(Finding(
            Severity.WARN, f"LR collapse: the LR collapsed to {low:.3g} by {unit} "
            f"{label(d.lr_collapse)} (is the scheduler stepped per batch instead of per "
            f"epoch?){since}",
            "step the scheduler once per epoch, or lengthen its step size / raise its floor "
            "(eta_min); lowering the LR further cannot help",
            location=f"{unit} {label(d.lr_collapse)}"))
        plateau = False
        if point is None:
            point = d.plateau_start if d.plateau_start is not None else d.lr_collapse
    if plateau and d.plateau_start is not None:
        current_lr = lr_at(d.plateau_start)
        first_lr = lr_at(d.analysis_start)
        spent = bool(current_lr and first_lr and current_lr <= first_lr / 100)
        findings.append(Finding(
            Severity.WARN, f"plateau: no meaningful progress from {unit} "
            f"{label(d.plateau_start)}{at_lr(d.plateau_start)} to the end of the run",
            ("the LR is already 100x or more below where it started: stop here (a lower LR "
             "buys little); more data or a bigger model to go further" if spent else
             "lower the LR 10x there; if a validation loss plateaus too, stop training"),
            location=f"{unit} {label(d.plateau_start)}"))
        if point is None:
            point = d.plateau_start
    if d.stall is not None:
        a, b = d.stall
        findings.append(Finding(
            Severity.INFO, f"stall: the loss sat flat from {unit} {label(a)} to {label(b)}, "
            "then fell again: a slow start, not a plateau",
            "no need to lower the LR for it; a warm-up, a better init or a higher LR may "
            "shorten it", location=f"{unit} {label(a)}"))
    if d.analysis_start > 0:
        findings.append(Finding(
            Severity.INFO, f"warm-up: the LR rises until {unit} {label(d.analysis_start)}; "
            "what the loss does before that is not judged", ""))
    if d.lr_steps:
        findings.append(Finding(
            Severity.INFO, f"LR schedule: step drops at {unit}s "
            f"{[label(p) for p in d.lr_steps]}; the plateau test covers the last LR segment "
            f"(from {unit} {label(d.segment_start)})", ""))
    findings.extend(Finding(
        Severity.INFO, f"spike at {unit} {label(p)} ({values[p]:.4g}): the loss came back "
        "down, so this is not divergence",
        "a bad batch or an LR schedule step; gradient clipping helps if they repeat",
        location=f"{unit} {label(p)}") for p in d.spikes[:5])
    if d.still_improving and not any(f.severity in (Severity.FAIL, Severity.WARN)
                                     for f in findings):
        findings.append(Finding(
            Severity.INFO, f"still improving: {_percent(-100 * d.improvement)}% over the last "
            f"{points(d.improvement_window)}", "train longer"))
    if (d.tail == "unsure" and not collapsed and d.plateau_start is None and not validation
            and not any(f.severity in (Severity.FAIL, Severity.WARN) for f in findings)):
        findings.append(Finding(
            Severity.INFO, f"too noisy to tell whether the {metric} still falls: over the "
            f"last {points(d.improvement_window)} it moved "
            f"{_percent(-100 * d.improvement)}% of its level, within its noise",
            "log more points (or a smoother metric) to decide"))
    if len(values) < SHORT:
        findings.append(Finding(
            Severity.INFO, f"a short curve ({points(len(values))}): oscillation and plateaus "
            "are told apart from noise only roughly", "log more epochs for a firmer verdict"))

    current = lr_at(point) if point is not None else (lr_at(len(values) - 1))
    recommended = (current / 10 if point is not None and current and overfit_at is None
                   and not collapsed else None)
    if recommended is not None and recommended < LR_FLOOR:
        recommended = None  # never advise an LR that cannot train
    cuts = reduce_on_plateau_steps(values, lr=current or DEFAULT_LR)
    cut_labels = [index[c] for c in cuts]
    if point is not None:
        first_cut = cut_labels[0] if cut_labels else None
        findings.append(Finding(
            Severity.INFO, "torch ReduceLROnPlateau (defaults: patience 10, factor 0.1) would "
            + (f"cut the LR at {unit}s {cut_labels}" if cut_labels else "never cut the LR")
            + f"; diag points at {unit} {label(point)}"
            + (f", {first_cut - index[point]:g} {unit}s earlier" if first_cut is not None
               and first_cut > index[point] else ""),
            "ReduceLROnPlateau reacts to plateaus only, after its patience"))
    if recommended is None and point is not None and overfit_at is None and not collapsed:
        findings.append(Finding(Severity.INFO, "no learning rate known for this curve",
                                "give the file an 'lr' column or pass --lr"))
    if lrs and all(math.isfinite(v) for v in lrs) and max(lrs) == 0:
        # LR 0 all along: the weights never move, whatever the curve looks like; advice to
        # lower the LR (plateau, oscillation) or to hunt a model bug (no learning) is wrong
        nonfinite = f"the {metric} is NaN/Inf"  # that finding stays
        findings = [f for f in findings if f.severity not in (Severity.FAIL, Severity.WARN)
                    or f.message.startswith(nonfinite)]
        findings.append(Finding(
            Severity.FAIL, f"the learning rate is 0 at every logged {unit}: the weights never "
            "move", "set a nonzero LR (Adam: 1e-3, the article's default); if a scheduler "
            "sets it, check its warm-up start and its floor (eta_min)",
            location=f"{unit} {index[0]}"))
        recommended = None

    if any(f.severity == Severity.FAIL for f in findings):
        status = Status.FAIL
    elif any(f.severity == Severity.WARN for f in findings):
        status = Status.WARN
    else:
        status = Status.PASS
    metrics: dict[str, Any] = {
        "plateau_start": label(d.plateau_start) if plateau else None,
        "oscillation_start": label(d.oscillation_start),
        "divergence_start": label(d.divergence_start if d.divergence_start is not None
                                  else d.nonfinite_at),
        "no_learning": d.no_learning,
        "nonfinite_at": label(d.nonfinite_at),
        "stall": [label(d.stall[0]), label(d.stall[1])] if d.stall else None,
        "still_improving": d.still_improving,
        "trend": d.tail,
        "lr_collapse": label(d.lr_collapse) if collapsed else None,
        "ends_at_worst": label(d.ends_at_worst) if overfit_at is None else None,
        "best_epoch_val": label(overfit_at) if validation and overfit_at is not None else (
            label(int(min(range(len(values)), key=lambda i: values[i]
                          if math.isfinite(values[i]) else math.inf)))
            if validation and finite else None),
        "overfitting": overfit_at is not None,
        "spikes": [label(p) for p in d.spikes],
        "current_lr": current,
        "recommended_lr": _round_opt(recommended),
        "reduce_on_plateau_epochs": cut_labels,
        "points": len(values),
        "index": index_name,
        "metric": metric,
        "first_loss": _round(values[0]),
        "best_loss": _round_opt(min(finite)) if finite else None,
        "final_loss": _round(values[-1]),
        "window": d.window,
    }
    if source:
        metrics["source"] = source
    top = next((f for f in findings if f.severity in (Severity.FAIL, Severity.WARN)), None)
    if top is None and validation and finite:
        early = next((f.message for f in findings if "too early to call" in f.message), None)
        best_at = min(range(len(values)), key=lambda i: values[i]
                      if math.isfinite(values[i]) else math.inf)
        summary = early or (f"no overfitting: the {metric} goes from {values[0]:.4g} to "
                            f"{values[-1]:.4g} over {points(len(values))}, best "
                            f"{values[best_at]:.4g} at {unit} {label(best_at)}")
    elif top is None:
        trend = (f"still improving ({_percent(-100 * d.improvement)}% over the last "
                 f"{points(d.improvement_window)}: train longer)" if d.still_improving else
                 "no plateau, oscillation or divergence")
        moves = "falls" if values[-1] < values[0] else "goes"
        summary = (f"healthy: the {metric} {moves} from {values[0]:.4g} to "
                   f"{values[-1]:.4g} over {points(len(values))}, {trend}")
    else:
        rec = (f"; recommended LR {recommended:.3g} from {unit} {label(point)}"
               if recommended else "")
        summary = top.message + rec
    kept = envelope(values, MAX_SERIES_POINTS)
    if len(kept) < len(values):
        metrics["series_points"] = len(kept)
    plot_data = {"index": [index[i] for i in kept], "index_name": index_name,
                 "point": label(point), "recommended_lr": recommended,
                 "stall": metrics["stall"], "best_epoch_val": metrics["best_epoch_val"]
                 if overfit_at is not None else None,
                 "warmup_end": label(d.analysis_start) if d.analysis_start else None,
                 "lr_steps": [(label(p), lr_at(p)) for p in d.lr_steps if lr_at(p)]}
    return CheckResult(NAME, status, summary, metrics=metrics, findings=tuple(findings),
                       series={"loss": [_round(values[i]) for i in kept]}, plot_data=plot_data)


def _overfitting(values: list[float], index: list[float], train: list[float],
                 train_index: list[float] | None) -> int | None:
    """Where validation bottoms out while training keeps falling (positions in values)."""
    from diag.checks.lr.detect import detect_overfitting

    if train_index is not None and train_index != index:  # align on the shared epochs
        where = {e: i for i, e in enumerate(train_index)}
        pairs = [(i, where[e]) for i, e in enumerate(index) if e in where]
        if len(pairs) < 5:
            return None
        v = [values[i] for i, _ in pairs]
        t = [train[j] for _, j in pairs]
        at = detect_overfitting(t, v)
        return None if at is None else pairs[at][0]
    return detect_overfitting(train, values)


def _validation_rise(values: list[float]) -> int | None:
    """A validation curve alone: a rise that settles well above its best (no training
    curve to compare, so the finding says so)."""
    from diag.checks.lr.detect import detect_overfitting

    return detect_overfitting(None, values)


def _round(v: float) -> float:
    """Six significant digits (NaN/Inf kept): stable across runs, readable in JSON."""
    if not math.isfinite(v) or v == 0:
        return v
    return float(f"{v:.6g}")


def _round_opt(v: float | None) -> float | None:
    return None if v is None else _round(v)


def run_training(target: Any, options: LrOptions, progress: Progress | None = None
                 ) -> CheckResult:
    """Train the target for ``epochs``, analyse the per-epoch loss; optionally verify the
    recommendation and run the range test."""
    return _train_and_analyse(target, options, progress)


def _train_and_analyse(target: Any, options: LrOptions, progress: Progress | None
                       ) -> CheckResult:
    from diag.train import Trainer

    if options.epochs < 10:
        raise UsageError(f"--epochs {options.epochs} is too few", hint="the detectors need 10")
    lr = options.lr or DEFAULT_LR
    model = target.make_model()
    trainer = Trainer(model, target.data, target.loss_fn, lr=lr,
                      batch_size=options.batch_size, seed=options.seed)
    total = options.epochs + (options.epochs if options.verify else 0) + (
        1 if options.range_test else 0)
    losses: list[float] = []
    snapshots: list[dict[str, Any]] = []
    # Snapshots let a detected plateau be confirmed by experiment (resume at a 10x lower
    # LR); kept only while they fit in a modest budget (model + Adam's two moments).
    state_bytes = 3 * sum(p.numel() * p.element_size() for p in model.parameters())
    keep_snapshots = options.verify or state_bytes * options.epochs <= SNAPSHOT_BUDGET
    try:
        initial = trainer.evaluate()
    except USER_ERRORS as exc:
        raise user_code_error(exc, "the loss at initialisation") from None
    for epoch in range(options.epochs):
        try:
            losses.append(trainer.train_epoch())
        except USER_ERRORS as exc:
            raise user_code_error(exc, f"training epoch {epoch}") from None
        if keep_snapshots:
            snapshots.append(_snapshot(trainer))
        if progress is not None:
            progress(epoch + 1, total)
    result = analyse(losses, list(range(options.epochs)), "epoch", None, lr,
                     source=f"{options.epochs} epochs of {target.model_name} at lr {lr:g}",
                     initial=initial)
    metrics = dict(result.metrics)
    findings = list(result.findings)
    plot_data = dict(result.plot_data)
    plateau_only = (metrics.get("plateau_start") is not None and result.status == Status.WARN
                    and metrics.get("oscillation_start") is None)
    if options.verify and not plateau_only:
        findings.append(_verify(trainer, snapshots, result, metrics, progress, total,
                                options.epochs))
    elif snapshots and plateau_only:
        # Confirm before advising: does the recommended drop help on this very run?
        verdict = _verify(trainer, snapshots, result, metrics,
                          progress if options.verify else None, total, options.epochs)
        gain = metrics.get("verify_gain")
        old = metrics.get("verify_loss_old_lr")
        if isinstance(gain, float) and isinstance(old, float) and gain <= 0.01 * abs(old):
            findings = [_converged(f, verdict) if f.message.startswith("plateau:") else f
                        for f in findings]
            metrics.update(recommended_lr=None, converged=True)
            plot_data.update(point=None, recommended_lr=None)
            top = next((f for f in findings if f.severity in (Severity.FAIL, Severity.WARN)),
                       None)
            if top is None:
                summary = next(f.message for f in findings if f.message.startswith(
                    "converged"))
                result = result.replace(status=Status.PASS, summary=summary)
        else:
            findings.append(verdict)
    if options.range_test:
        plot_data.update(_range(target, options, metrics, findings))
        if progress is not None:
            progress(total, total)
    return result.replace(metrics=metrics, findings=tuple(findings), plot_data=plot_data)


SNAPSHOT_BUDGET = 256 * 2**20
"""Bytes of per-epoch snapshots kept in training mode to confirm a plateau by experiment."""


def _converged(plateau: Finding, verdict: Finding) -> Finding:
    """A plateau that a 10x lower LR measurably does not help: converged, not a warning."""
    if plateau.message.startswith("converged"):
        return plateau
    text = plateau.message.replace("plateau: no meaningful progress", "converged: no "
                                   "meaningful progress", 1)
    return Finding(Severity.INFO, f"{text}; {verdict.message.replace('--verify: ', '')}",
                   "a lower LR does not help here (measured): stop training at that point, "
                   "or give the model more data or capacity", plateau.location)


def _snapshot(trainer: Any) -> dict[str, Any]:
    return {"model": copy.deepcopy(trainer.model.state_dict()),
            "optimizer": copy.deepcopy(trainer.optimizer.state_dict()),
            "generator": trainer.generator.get_state()}


def _restore(trainer: Any, snap: dict[str, Any]) -> None:
    trainer.model.load_state_dict(snap["model"])
    trainer.optimizer.load_state_dict(snap["optimizer"])
    trainer.generator.set_state(snap["generator"])


def _verify(trainer: Any, snapshots: list[dict[str, Any]], result: CheckResult,
            metrics: dict[str, Any], progress: Progress | None, total: int, done: int
            ) -> Finding:
    """Resume from the detected point twice: at the old LR and at the recommended one."""
    point = result.plot_data.get("point")
    recommended = result.metrics.get("recommended_lr")
    old_lr = trainer.lr
    if point is None or not isinstance(recommended, float | int) or not recommended:
        metrics["verify_gain"] = None
        return Finding(Severity.INFO, "--verify: nothing to verify (no plateau, oscillation "
                       "or divergence detected)")
    new_lr = float(recommended)
    horizon = max(len(snapshots) - 1 - int(point), 5)
    outcomes = {}
    recorded = list(result.series.get("loss", []))[int(point) + 1:]
    if len(recorded) >= horizon:  # the run itself already continued at the old LR
        tail = recorded[:horizon][-3:]
        outcomes["old"] = sum(tail) / len(tail)
    for name, lr in (("old", old_lr), ("new", new_lr)):
        if name in outcomes:
            continue
        _restore(trainer, snapshots[int(point)])
        trainer.set_lr(lr)
        curve = [trainer.train_epoch() for _ in range(horizon)]
        outcomes[name] = sum(curve[-3:]) / len(curve[-3:])
        if progress is not None:
            progress(min(done + horizon * (2 if name == "new" else 1), total), total)
    gain = outcomes["old"] - outcomes["new"]
    metrics.update(verify_epochs=horizon, verify_loss_old_lr=_round(outcomes["old"]),
                   verify_loss_new_lr=_round(outcomes["new"]), verify_gain=_round(gain))
    better = gain > 0
    return Finding(
        Severity.INFO, f"--verify: resuming at epoch {point} for {horizon} epochs, lr "
        f"{new_lr:.3g} reached {outcomes['new']:.4g} against {outcomes['old']:.4g} at lr "
        f"{old_lr:.3g} ({'a further' if better else 'no further'} {abs(gain):.4g} of loss)",
        "adopt the recommended drop" if better else
        "the drop did not help here: stop training at that point, or look at the data")


def _range(target: Any, options: LrOptions, metrics: dict[str, Any],
           findings: list[Finding]) -> dict[str, Any]:
    from diag.checks.lr.rangetest import range_test
    from diag.train import Trainer

    model = target.make_model()
    trainer = Trainer(model, target.data, target.loss_fn, lr=options.lr or DEFAULT_LR,
                      batch_size=options.batch_size, seed=options.seed)
    try:
        rt = range_test(model, trainer.optimizer, trainer.batches(), target.loss_fn,
                        num_iter=options.range_steps)
    except USER_ERRORS as exc:
        raise user_code_error(exc, "the range test") from None
    answer = suggest_range_lr(rt.lrs, rt.losses)
    suggestion, spread = answer.lr, answer.spread
    metrics.update(range_test_suggested_lr=_round_opt(suggestion),
                   range_test_spread_decades=round(spread, 3) if math.isfinite(spread) else None,
                   range_test_steps=len(rt.lrs), range_test_sweeps=len(rt.sweeps))
    if suggestion is None:
        findings.append(Finding(Severity.WARN, f"range test: no trustworthy LR to suggest: "
                                f"{answer.reason}", _decline_fix(answer.reason,
                                                                 options.range_steps)))
    else:
        rules = ", ".join(f"{name} {value:.2g}" for name, value in answer.rules)
        findings.append(Finding(
            Severity.INFO, f"range test: suggested initial LR {suggestion:.3g}, the median "
            f"of three readings of {len(rt.sweeps)} sweeps averaged ({rules}); the two "
            f"nearest agree within {spread:.2f} decades", "start training at the suggested LR"))
    return {"range_lrs": rt.lrs, "range_losses": rt.losses,
            "range_smoothed": list(answer.smoothed),
            "range_suggestion": suggestion}


def _decline_fix(reason: str, steps: int) -> str:
    """What to do when the range test gives no LR. A loss that never fell in the sweep is a
    model that cannot learn, or one that learns too slowly for one batch per LR over the
    sweep's steps: a 2-layer Transformer encoder on token ids fell 4 % in 100 steps and
    clearly in 300 (benchmarks/lr_tasks.py, encoder_tokens)."""
    if reason.startswith("the loss never fell"):
        longer = min(3 * steps, 100_000)
        return (f"run `diag overfit`: if the model can learn, it learns too slowly for "
                f"{steps} steps a sweep; sweep longer with --range-steps {longer} (config "
                f"range_steps)")
    return "use a larger batch for the sweep if it is noisy"


def _percent(value: float) -> str:
    """A percentage in words people read: two significant digits, never an exponent
    (``.2g`` printed a fall of 3,200 % of the level as "-3.2e+03")."""
    return f"{value:.2g}" if abs(value) < 100 else f"{value:.0f}"
