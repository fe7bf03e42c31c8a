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
    diagnose,
    envelope,
    reduce_on_plateau_steps,
    smoothed_range_losses,
    suggestion_spread,
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
        return run_history(inputs.history, options)
    return run_training(inputs.target, options, progress)


def run_history(history: History, options: LrOptions) -> CheckResult:
    """Diagnose a curve read from a file (never imports torch)."""
    return analyse(history.values, history.index, history.index_name, history.lr, options.lr,
                   source=history.source)


def analyse(values: list[float], index: list[int], index_name: str, lrs: list[float] | None,
            lr: float | None, source: str = "", initial: float | None = None) -> CheckResult:
    """Detectors, verdict and recommendation for one curve (pure: no training).
    ``initial``: the loss before any training step, when known (training mode)."""
    d = diagnose(values, initial=initial)

    def label(p: int | None) -> int | None:
        return None if p is None else index[p]

    unit = index_name if index_name != "index" else "point"

    def lr_at(p: int) -> float | None:
        if lrs is not None and 0 <= p < len(lrs) and math.isfinite(lrs[p]):
            return float(lrs[p])
        return lr

    findings: list[Finding] = []
    point: int | None = None
    if d.nonfinite_at is not None:
        findings.append(Finding(
            Severity.FAIL, f"the loss is NaN/Inf from {unit} {index[d.nonfinite_at]}"
            + (f"; it started rising at {unit} {label(d.divergence_start)}"
               if d.divergence_start is not None and d.divergence_start < d.nonfinite_at
               else ""),
            "restart from a checkpoint before it with a 10x lower LR; add gradient clipping",
            location=f"{unit} {index[d.nonfinite_at]}"))
        point = d.divergence_start
    elif d.divergence_start is not None:
        finite_values = [v for v in values if math.isfinite(v)]
        before = (f" (it was {initial:.4g} before training)" if initial is not None
                  and d.divergence_start == 0 and min(finite_values) > initial else "")
        findings.append(Finding(
            Severity.FAIL, f"divergence: the loss rises from {unit} "
            f"{label(d.divergence_start)} and does not come back (best "
            f"{min(finite_values):.4g}, last {values[-1]:.4g}){before}",
            "lower the LR 10x from that point, or restart from the checkpoint there",
            location=f"{unit} {label(d.divergence_start)}"))
        point = d.divergence_start
    if d.no_learning and d.nonfinite_at is None and d.divergence_start is None:
        findings.append(Finding(
            Severity.FAIL, f"no learning: the loss never leaves its starting level "
            f"({values[0]:.4g})",
            "run `diag overfit` to find the bug; if the model is fine, try `--range-test` for "
            "a workable LR", location=f"{unit} {index[0]}"))
    if d.oscillation_start is not None and not d.no_learning:
        findings.append(Finding(
            Severity.WARN, f"oscillation: the loss bounces up and down without net progress "
            f"from {unit} {label(d.oscillation_start)}",
            "lower the LR 10x at that point (the article: 0.01 -> 0.001 bought ~0.3 of loss)",
            location=f"{unit} {label(d.oscillation_start)}"))
        point = point if point is not None else d.oscillation_start
    if d.plateau_start is not None and not d.no_learning and d.divergence_start is None:
        findings.append(Finding(
            Severity.WARN, f"plateau: no meaningful improvement from {unit} "
            f"{label(d.plateau_start)}",
            "lower the LR 10x there; if a validation loss plateaus too, stop training",
            location=f"{unit} {label(d.plateau_start)}"))
        if point is None:
            point = d.plateau_start

    current = lr_at(point) if point is not None else (lr_at(len(values) - 1))
    recommended = current / 10 if point is not None and current else None
    cuts = reduce_on_plateau_steps(values, lr=current or DEFAULT_LR)
    cut_labels = [index[c] for c in cuts]
    if point is not None:
        first_cut = cut_labels[0] if cut_labels else None
        findings.append(Finding(
            Severity.INFO, "torch ReduceLROnPlateau (defaults: patience 10, factor 0.1) would "
            + (f"cut the LR at {unit}s {cut_labels}" if cut_labels else "never cut the LR")
            + f"; diag points at {unit} {label(point)}"
            + (f", {first_cut - index[point]} {unit}s earlier" if first_cut is not None
               and first_cut > index[point] else ""),
            "ReduceLROnPlateau reacts to plateaus only, after its patience"))
    if recommended is None and point is not None:
        findings.append(Finding(Severity.INFO, "no learning rate known for this curve",
                                "give the file an 'lr' column or pass --lr"))

    if any(f.severity == Severity.FAIL for f in findings):
        status = Status.FAIL
    elif any(f.severity == Severity.WARN for f in findings):
        status = Status.WARN
    else:
        status = Status.PASS
    finite = [v for v in values if math.isfinite(v)]
    metrics: dict[str, Any] = {
        "plateau_start": label(d.plateau_start),
        "oscillation_start": label(d.oscillation_start),
        "divergence_start": label(d.divergence_start if d.divergence_start is not None
                                  else d.nonfinite_at),
        "no_learning": d.no_learning,
        "nonfinite_at": label(d.nonfinite_at),
        "current_lr": current,
        "recommended_lr": _round_opt(recommended),
        "reduce_on_plateau_epochs": cut_labels,
        "points": len(values),
        "index": index_name,
        "first_loss": _round(values[0]),
        "best_loss": _round_opt(min(finite)) if finite else None,
        "final_loss": _round(values[-1]),
        "window": d.window,
    }
    if source:
        metrics["source"] = source
    top = next((f for f in findings if f.severity in (Severity.FAIL, Severity.WARN)), None)
    if top is None:
        summary = (f"healthy: the loss falls from {values[0]:.4g} to {values[-1]:.4g} over "
                   f"{len(values)} {unit}s with no plateau, oscillation or divergence")
    else:
        rec = (f"; recommended LR {recommended:.3g} from {unit} {label(point)}"
               if recommended else "")
        summary = top.message + rec
    kept = envelope(values, MAX_SERIES_POINTS)
    if len(kept) < len(values):
        metrics["series_points"] = len(kept)
    plot_data = {"index": [index[i] for i in kept], "index_name": index_name,
                 "point": label(point),
                 "recommended_lr": recommended}
    return CheckResult(NAME, status, summary, metrics=metrics, findings=tuple(findings),
                       series={"loss": [_round(values[i]) for i in kept]}, plot_data=plot_data)


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
    try:
        initial = trainer.evaluate()
    except USER_ERRORS as exc:
        raise user_code_error(exc, "the loss at initialisation") from None
    for epoch in range(options.epochs):
        try:
            losses.append(trainer.train_epoch())
        except USER_ERRORS as exc:
            raise user_code_error(exc, f"training epoch {epoch}") from None
        if options.verify:
            snapshots.append(_snapshot(trainer))
        if progress is not None:
            progress(epoch + 1, total)
    result = analyse(losses, list(range(options.epochs)), "epoch", None, lr,
                     source=f"{options.epochs} epochs of {target.model_name} at lr {lr:g}",
                     initial=initial)
    metrics = dict(result.metrics)
    findings = list(result.findings)
    plot_data = dict(result.plot_data)
    if options.verify:
        findings.append(_verify(trainer, snapshots, result, metrics, progress, total,
                                options.epochs))
    if options.range_test:
        plot_data.update(_range(target, options, metrics, findings))
        if progress is not None:
            progress(total, total)
    return result.replace(metrics=metrics, findings=tuple(findings), plot_data=plot_data)


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
    for name, lr in (("old", old_lr), ("new", new_lr)):
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
        rt = range_test(model, trainer.optimizer, trainer.batches(), target.loss_fn)
    except USER_ERRORS as exc:
        raise user_code_error(exc, "the range test") from None
    suggestion, spread = suggestion_spread(rt.lrs, rt.losses)
    metrics.update(range_test_suggested_lr=_round_opt(suggestion),
                   range_test_spread_decades=round(spread, 3) if math.isfinite(spread) else None,
                   range_test_steps=len(rt.lrs))
    if suggestion is None:
        findings.append(Finding(Severity.WARN, "range test: the loss never fell; no LR to "
                                "suggest", "run `diag overfit` first"))
    else:
        stable = spread <= 0.5
        findings.append(Finding(
            Severity.INFO, f"range test: suggested initial LR {suggestion:.3g} (the middle of "
            f"the loss's fall); across smoothings it moves "
            f"{spread:.2f} decades ({'stable' if stable else 'unstable'})",
            "start training at the suggested LR" if stable else
            "the loss is noisy: use a larger batch for the sweep or trust it less"))
    smoothed = [float(v) for v in smoothed_range_losses(rt.losses)]
    return {"range_lrs": rt.lrs, "range_losses": rt.losses, "range_smoothed": smoothed,
            "range_suggestion": suggestion}
