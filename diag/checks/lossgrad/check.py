"""`diag loss-grad`: test a custom loss's gradients the way the article asks, automatically.

torch.autograd.gradcheck is the raw tool; it needs float64, trips on kinks and randomness,
and says nothing about NaN at edge inputs, gradients that never reach the prediction, or
losses that mix the samples of a batch. Each property here is reported on its own, with the
worst input found and a hint.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from diag.checks.lossgrad import TARGET_KINDS, LossGradOptions
from diag.errors import USER_ERRORS, DiagError, UsageError, UserCodeError, user_code_error
from diag.inputs import Inputs
from diag.result import CheckResult, Finding, Severity, Status

NAME = "loss-grad"
LossFn = Callable[[Tensor, Tensor], Tensor]
TargetFn = Callable[[tuple[int, ...], torch.Generator, torch.dtype], Tensor]
@dataclass(frozen=True)
class LossUnderTest:
    name: str
    fn: LossFn
    target: str
    target_fn: Callable[[tuple[int, ...]], Tensor] | None = None
    reference: LossFn | None = None
    reference_name: str = ""


class _BadLoss(DiagError):
    """The loss returned something that is not a scalar tensor."""


def make_target(kind: str, shape: tuple[int, ...], gen: torch.Generator, dtype: torch.dtype,
                custom: Callable[[tuple[int, ...]], Tensor] | None = None) -> Tensor:
    if custom is not None:
        try:
            t = custom(shape)
        except USER_ERRORS as exc:
            raise user_code_error(exc, "--target factory") from None
        if not isinstance(t, Tensor):
            raise UsageError(f"--target factory returned a {type(t).__name__}",
                             hint="return a tensor for the given pred shape")
        return t.to(dtype) if torch.is_floating_point(t) else t
    if kind == "index":
        if len(shape) < 2:
            raise UsageError("--target index needs a pred shape (N, C)", hint="--pred-shape 8,10")
        return torch.randint(0, shape[1], (shape[0],) + shape[2:], generator=gen)
    if kind == "binary":
        return torch.randint(0, 2, shape, generator=gen).to(dtype)
    return torch.randn(shape, generator=gen, dtype=dtype)


def _generic_pred(kind: str, shape: tuple[int, ...], gen: torch.Generator,
                  dtype: torch.dtype) -> Tensor:
    if kind == "binary":  # valid as probabilities and as logits
        return (torch.rand(shape, generator=gen, dtype=torch.float64) * 0.9 + 0.05).to(dtype)
    scale = 2.0 if kind == "index" else 1.0
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)


class _Caller:
    """Calls the loss with the RNG re-seeded each time: random losses become checkable."""

    def __init__(self, fn: LossFn, name: str, seed: int) -> None:
        self.fn, self.name, self.seed = fn, name, seed

    def __call__(self, pred: Tensor, target: Tensor, reseed: bool = True) -> Tensor:
        try:
            if reseed:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.seed)
                    out = self.fn(pred, target)
            else:
                out = self.fn(pred, target)
        except RuntimeError as exc:
            if "numpy()" in str(exc) and "requires grad" in str(exc):
                raise _Detached(str(exc)) from None
            raise user_code_error(exc, f"the loss {self.name}") from None
        except USER_ERRORS as exc:
            raise user_code_error(exc, f"the loss {self.name}") from None
        if not isinstance(out, Tensor):
            raise _BadLoss(f"the loss {self.name} returned a {type(out).__name__}, not a tensor",
                           hint="return a scalar tensor (no .item() / float() at the end)")
        if out.numel() != 1:
            raise _BadLoss(f"the loss {self.name} returned a tensor of shape "
                           f"{tuple(out.shape)}, not a scalar",
                           hint="reduce it with .mean() or .sum()")
        return out.reshape(())


class _Detached(Exception):
    pass


def _grad(call: _Caller, pred: Tensor, target: Tensor, reseed: bool = True
          ) -> tuple[float, Tensor | None]:
    p = pred.detach().clone().requires_grad_(True)
    out = call(p, target, reseed)
    if not out.requires_grad:
        return float(out.detach()), None
    (g,) = torch.autograd.grad(out, p, allow_unused=True)
    return float(out.detach()), (None if g is None else g.detach())


# --- the properties ----------------------------------------------------------------------
def check_reaches_pred(call: _Caller, pred: Tensor, target: Tensor) -> Finding | None:
    try:
        _, g = _grad(call, pred, target)
    except _Detached:
        return Finding(Severity.FAIL, "the gradient never reaches pred: the loss calls "
                       ".numpy() on it", "compute the loss with torch operations only")
    if g is None:
        return Finding(Severity.FAIL, "the gradient never reaches pred: the loss's output "
                       "does not depend on it through autograd",
                       "remove .item(), .detach(), .numpy() or torch.tensor(...) rewrapping "
                       "inside the loss")
    if not bool(g.any()):
        return Finding(Severity.FAIL, "the gradient is identically zero on generic inputs",
                       "a hard threshold, round() or argmax inside the loss has no gradient; "
                       "use a smooth surrogate")
    return None


def kink_probe(kind: str, pred: Tensor, target: Tensor, gen: torch.Generator) -> Tensor:
    """``pred`` with half its elements moved onto the usual kinks: pred == target (L1,
    smooth L1), 0 (ReLU, abs), the hinge margin pred * (2t - 1) == 1."""
    probe = pred.detach().clone().to(torch.float64)
    mask = torch.rand(probe.shape, generator=gen) < 0.5
    if kind == "index" or not torch.is_floating_point(target) or target.shape != probe.shape:
        return torch.where(mask, torch.zeros_like(probe), probe)
    t = target.to(torch.float64)
    spot = t.clone()
    if kind == "binary":
        spot = torch.where(torch.rand(probe.shape, generator=gen) < 0.5, 2 * t - 1, t)
    return torch.where(mask, spot, probe)


def check_gradient(call: _Caller, pred: Tensor, target: Tensor, rtol: float
                   ) -> tuple[Finding | None, dict[str, Any]]:
    """Central differences in float64 against autograd, skipping elements at a kink (where
    the one-sided differences disagree), as gradcheck cannot."""
    pred = pred.to(torch.float64)
    target = target.to(torch.float64) if torch.is_floating_point(target) else target
    f0, g = _grad(call, pred, target)
    if g is None:
        return None, {"grad_checked": 0}
    flat = pred.detach().flatten()
    eps = 1e-6
    scale = max(float(g.abs().max()), 1e-12)
    worst = (0.0, -1, 0.0, 0.0)
    kinks = checked = 0
    for k in range(flat.numel()):
        up, down = flat.clone(), flat.clone()
        up[k] += eps
        down[k] -= eps
        fp = float(call(up.view_as(pred), target).detach())
        fm = float(call(down.view_as(pred), target).detach())
        fwd, bwd = (fp - f0) / eps, (f0 - fm) / eps
        if abs(fwd - bwd) > 1e-3 * (abs(fwd) + abs(bwd)) + 1e-4 * scale:
            kinks += 1
            continue
        central = (fp - fm) / (2 * eps)
        analytic = float(g.flatten()[k])
        err = abs(central - analytic) / (scale + abs(central))
        checked += 1
        if err > worst[0]:
            worst = (err, k, analytic, central)
    info = {"grad_checked": checked, "grad_kinks_skipped": kinks,
            "grad_max_rel_error": float(f"{worst[0]:.3g}")}
    if checked == 0:
        return Finding(Severity.WARN, "no element could be gradient-checked (a kink at every "
                       "element)", "check the loss by hand"), info
    if worst[0] > max(rtol, 1e-4):
        idx = _unravel(worst[1], tuple(pred.shape))
        return Finding(
            Severity.FAIL, f"wrong gradient: d loss / d pred{list(idx)} is {worst[2]:.6g} by "
            f"autograd but {worst[3]:.6g} by finite differences (relative error "
            f"{worst[0]:.2g})",
            "a custom autograd.Function's backward is off (a missing factor, a sign, the "
            "wrong input); compare it with the derivative of forward",
            location=f"pred{list(idx)}"), info
    return None, info


def _unravel(k: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    out = []
    for dim in reversed(shape):
        out.append(k % dim)
        k //= dim
    return tuple(reversed(out))


def edge_cases(kind: str, shape: tuple[int, ...], gen: torch.Generator
               ) -> list[tuple[str, Tensor, Tensor]]:
    """(name, pred, target) in float64; each also runs in float32."""
    cases: list[tuple[str, Tensor, Tensor]] = []
    f64 = torch.float64
    if kind == "index":
        n, c = shape[0], shape[1]
        t = torch.randint(0, c, (n,) + shape[2:], generator=gen)
        top = torch.full(shape, -100.0, dtype=f64)
        top.scatter_(1, t.unsqueeze(1), 100.0)
        bottom = torch.full(shape, 100.0, dtype=f64)
        bottom.scatter_(1, t.unsqueeze(1), -100.0)
        cases += [("zero logits", torch.zeros(shape, dtype=f64), t),
                  ("logits +-100, target class at the top", top, t),
                  ("logits +-100, target class at the bottom", bottom, t),
                  ("tiny positive logits", torch.full(shape, 1e-12, dtype=f64), t),
                  ("mixed signs x10", torch.randn(shape, generator=gen, dtype=f64) * 10, t)]
        return cases
    t = make_target(kind, shape, gen, f64)
    signs = torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0).to(f64)
    cases += [("pred == target", t.clone(), t),
              ("zeros", torch.zeros(shape, dtype=f64), torch.zeros(shape, dtype=f64)),
              ("tiny positive values", torch.full(shape, 1e-12, dtype=f64),
               torch.full(shape, 1e-12, dtype=f64) if kind == "like" else t),
              ("mixed signs", signs * torch.rand(shape, generator=gen, dtype=f64) * 3, t)]
    if kind == "binary":
        cases += [("logits +-100, target at the top", (t * 2 - 1) * 100, t),
                  ("logits +-100, target at the bottom", (1 - t * 2) * 100, t)]
    else:
        cases += [("large values +-100", signs * 100, t)]
    return cases


def check_edges(call: _Caller, kind: str, shape: tuple[int, ...], gen: torch.Generator
                ) -> tuple[Finding | None, dict[str, Any]]:
    bad: list[str] = []
    for name, pred, target in edge_cases(kind, shape, gen):
        for dtype in (torch.float32, torch.float64):
            p = pred.to(dtype)
            t = target.to(dtype) if torch.is_floating_point(target) else target
            try:
                value, g = _grad(call, p, t)
            except _Detached:
                return None, {}
            parts = []
            if not math.isfinite(value):
                parts.append("value")
            if g is not None and not bool(torch.isfinite(g).all()):
                parts.append("gradient")
            if parts:
                bad.append(f"{' and '.join(parts)} not finite at {name} "
                           f"({str(dtype).replace('torch.', '')})")
    info: dict[str, Any] = {"edge_cases_failed": len(bad)}
    if not bad:
        return None, info
    info["worst_edge_case"] = bad[0]
    only32 = all("float32" in b for b in bad)
    return Finding(
        Severity.FAIL, f"{len(bad)} edge inputs give NaN/Inf: {bad[0]}"
        + (f" (+{len(bad) - 1} more)" if len(bad) > 1 else "")
        + (" -- float32 only, as people train" if only32 else ""),
        "use log_softmax / logsumexp instead of log(softmax), add eps inside sqrt, clamp "
        "before pow with exponent < 1, and compute both branches of torch.where safely",
        location=bad[0].split(" at ", 1)[1]), info


def check_batch_independence(call: _Caller, pred: Tensor, target: Tensor
                             ) -> tuple[Finding | None, dict[str, Any]]:
    """Changing sample j must not change the gradient of any other sample i."""
    pred = pred.to(torch.float64)
    target = target.to(torch.float64) if torch.is_floating_point(target) else target
    n = pred.shape[0]
    if n < 2:
        return None, {}
    _, g = _grad(call, pred, target)
    if g is None:
        return None, {}
    worst = (0.0, -1, -1)
    shared = True  # every change so far is one common factor on the other samples' gradients
    for j in (0, n - 1):
        moved = pred.detach().clone()
        moved[j] = moved[j] * 1.7 + 0.3
        _, g2 = _grad(call, moved, target)
        if g2 is None:
            continue
        others = [i for i in range(n) if i != j]
        diff = (g[others] - g2[others]).abs().reshape(len(others), -1).amax(dim=1)
        scale = max(float(g.abs().max()), 1e-12)
        k = int(diff.argmax())
        rel = float(diff[k]) / scale
        if rel > worst[0]:
            worst = (rel, others[k], j)
        a, b = g[others].reshape(-1), g2[others].reshape(-1)
        factor = float(a @ b) / max(float(a @ a), 1e-300)
        if float((b - factor * a).abs().max()) / scale > 1e-6:
            shared = False
    info: dict[str, Any] = {"batch_max_cross_influence": float(f"{worst[0]:.3g}")}
    if worst[0] > 1e-6 and shared:
        info["batch_coupling"] = "shared_scalar"
        return Finding(
            Severity.INFO, f"the samples share one scalar factor: changing sample {worst[2]} "
            "rescales every other sample's gradient by the same number (a loss taken as a "
            "function of a batch mean or total, e.g. RMSE = sqrt(mean), or a normaliser over "
            "the batch); each sample's gradient keeps its own direction",
            "fine for training (the optimizer sees a rescaled step); the per-sample weight "
            "changes with the batch, so batch size and LR interact a little",
            location=f"samples {worst[2]} -> {worst[1]}"), info
    if worst[0] > 1e-6:
        return Finding(
            Severity.FAIL, f"samples are mixed: changing sample {worst[2]} changes the gradient "
            f"of sample {worst[1]} (by {worst[0]:.2g} of the gradient's scale)",
            "a softmax / log_softmax / normalisation over dim=0 (the batch) instead of the "
            "class dimension, or a reshape that crosses samples; per-sample losses must not do "
            "that (ignore this for contrastive or batch-level losses)",
            location=f"samples {worst[2]} -> {worst[1]}"), info
    return None, info


def check_invariances(call: _Caller, pred: Tensor, target: Tensor, gen: torch.Generator
                      ) -> tuple[list[Finding], dict[str, Any]]:
    """Reduction (mean / sum), permutation invariance, determinism: information only."""
    findings: list[Finding] = []
    info: dict[str, Any] = {}
    v1 = float(call(pred, target).detach())
    v2 = float(call(torch.cat([pred, pred]), torch.cat([target, target])).detach())
    if math.isclose(v1, v2, rel_tol=1e-5, abs_tol=1e-12):
        reduction = "mean"
    elif math.isclose(2 * v1, v2, rel_tol=1e-5, abs_tol=1e-12):
        reduction = "sum"
    else:
        reduction = "other"
    info["reduction"] = reduction
    effect = {"mean": "stays", "sum": "doubles"}.get(reduction, "changes oddly")
    findings.append(Finding(
        Severity.INFO, f"reduction: {reduction} (the value {effect} when the batch is doubled)",
        "with sum, the gradient scale (and the right LR) grows with the batch size"
        if reduction == "sum" else ""))
    perm = torch.randperm(pred.shape[0], generator=gen)
    v3 = float(call(pred[perm], target[perm]).detach())
    info["permutation_invariant"] = math.isclose(v1, v3, rel_tol=1e-5, abs_tol=1e-12)
    if not info["permutation_invariant"]:
        findings.append(Finding(Severity.INFO, "the value changes when the batch is permuted "
                                f"({v1:.6g} vs {v3:.6g})",
                                "fine for sequence losses; a bug for per-sample losses"))
    a = float(call(pred, target, reseed=False).detach())
    b = float(call(pred, target, reseed=False).detach())
    info["deterministic"] = a == b
    if a != b:
        findings.append(Finding(Severity.INFO, f"the loss is random: two calls gave {a:.6g} "
                                f"and {b:.6g}", "diag re-seeds it for the gradient check; "
                                "seed or remove the randomness for reproducible training"))
    return findings, info


def check_reference(call: _Caller, ref: _Caller, pred: Tensor, target: Tensor
                    ) -> tuple[Finding | None, dict[str, Any]]:
    pred = pred.to(torch.float64)
    target = target.to(torch.float64) if torch.is_floating_point(target) else target
    v, g = _grad(call, pred, target)
    rv, rg = _grad(ref, pred, target)
    value_err = abs(v - rv) / max(abs(rv), 1e-12)
    grad_err = (float((g - rg).abs().max()) / max(float(rg.abs().max()), 1e-12)
                if g is not None and rg is not None else math.inf)
    info = {"reference_value_rel_error": float(f"{value_err:.3g}"),
            "reference_grad_rel_error": float(f"{grad_err:.3g}") if math.isfinite(grad_err)
            else None}
    if value_err > 1e-5 or grad_err > 1e-5:
        return Finding(
            Severity.FAIL, f"disagrees with the reference {ref.name}: value {v:.6g} vs "
            f"{rv:.6g}, gradient relative error {grad_err:.2g}",
            "check the reduction (mean vs sum), the target format and the formula"), info
    return None, info


# --- driver ------------------------------------------------------------------------------
def run(inputs: Inputs, options: LossGradOptions, progress: Callable[[int, int], None] | None
        = None) -> CheckResult:
    """All properties for the user's loss, or (without one) the browser model's own."""
    if inputs.loss is None:
        return run_losses(default_losses(), options, progress)
    return run_losses([_under_test(inputs, options)], options, progress)


def _under_test(inputs: Inputs, options: LossGradOptions) -> LossUnderTest:
    assert inputs.loss is not None
    target = options.target
    kind = (target if isinstance(target, str) and target in TARGET_KINDS else
            "like" if callable(target) else "index" if inputs.classify else "like")
    reference = options.reference if callable(options.reference) else None
    return LossUnderTest(
        inputs.loss_name or getattr(inputs.loss, "__name__", "loss"), inputs.loss, kind,
        target if callable(target) else None, reference,
        getattr(reference, "__name__", "reference") if reference is not None else "")


def run_losses(losses: list[LossUnderTest], options: LossGradOptions,
               progress: Callable[[int, int], None] | None = None) -> CheckResult:
    """All properties for each loss; one result (metrics keyed by loss when several)."""
    findings: list[Finding] = []
    metrics: dict[str, Any] = {}
    statuses = []
    for i, lut in enumerate(losses):
        prefix = f"{lut.name}." if len(losses) > 1 else ""
        try:
            with torch.random.fork_rng(devices=[]):
                status, fs, ms = _check_one(lut, options)
        except DiagError as exc:
            status, fs, ms = Status.ERROR, [exc.as_finding()], {}
        statuses.append(status)
        tag = f"[{lut.name}] " if len(losses) > 1 else ""
        findings += [Finding(f.severity, tag + f.message, f.hint, f.location) for f in fs]
        metrics.update({prefix + k: v for k, v in ms.items()})
        if progress is not None:
            progress(i + 1, len(losses))
    order = [Status.ERROR, Status.FAIL, Status.WARN, Status.PASS]
    status = next(s for s in order if s in statuses) if statuses else Status.SKIP
    names = ", ".join(lut.name for lut in losses)
    top = next((f for f in findings if f.severity in (Severity.ERROR, Severity.FAIL)), None)
    summary = (top.message if top else
               f"{names}: gradients correct, reach pred, finite at edge inputs, "
               + ("per-sample gradients scaled by one shared factor" if any(
                   v == "shared_scalar" for k, v in metrics.items()
                   if k.endswith("batch_coupling")) else "batch-independent"))
    findings.sort(key=lambda f: ["error", "fail", "warn", "info"].index(f.severity.value))
    return CheckResult(NAME, status, summary, metrics=metrics, findings=tuple(findings))


def prepare(inputs: Inputs, options: LossGradOptions,
            resolve: Callable[[str, str], Any]) -> LossGradOptions:
    """Resolve ``reference`` and a SPEC ``target`` before any check runs (bad ones: exit 2)."""
    import dataclasses

    changes: dict[str, Any] = {}
    if options.reference is not None:
        if inputs.loss is None:
            raise UsageError("--reference needs a loss to compare with it",
                             hint="pass the loss SPEC (diag loss-grad SPEC, or --loss)")
        if isinstance(options.reference, str):
            ref = resolve(options.reference, "--reference")
            if not callable(ref):
                raise UsageError(f"--reference {options.reference} is a {type(ref).__name__}",
                                 hint="give a callable loss(pred, target) -> scalar tensor")
            changes["reference"] = ref
    if isinstance(options.target, str) and options.target not in TARGET_KINDS:
        fn = resolve(options.target, "--target")
        if not callable(fn):
            raise UsageError(f"--target {options.target} is not callable",
                             hint="use index, like, binary or a SPEC (pred_shape) -> target")
        changes["target"] = fn
    options = dataclasses.replace(options, **changes) if changes else options
    if inputs.loss is not None:  # a loss that returns no scalar tensor is bad input (exit 2)
        lut = _under_test(inputs, options)
        gen = torch.Generator().manual_seed(options.seed)
        try:
            target = make_target(lut.target, options.pred_shape, gen, torch.float64,
                                 lut.target_fn)
            _Caller(lut.fn, lut.name, options.seed)(
                _generic_pred(lut.target, options.pred_shape, gen, torch.float64), target)
        except _BadLoss as exc:
            raise UsageError(exc.message, exc.hint) from None
        except (UserCodeError, _Detached):
            pass  # the check reports it, with its location
    return options


def _check_one(lut: LossUnderTest, options: LossGradOptions
               ) -> tuple[Status, list[Finding], dict[str, Any]]:
    shape = options.pred_shape
    gen = torch.Generator().manual_seed(options.seed)
    call = _Caller(lut.fn, lut.name, options.seed)
    kind = lut.target
    target = make_target(kind, shape, gen, torch.float64, lut.target_fn)
    pred = _generic_pred(kind, shape, gen, torch.float64)
    findings: list[Finding] = []
    metrics: dict[str, Any] = {"target": kind if lut.target_fn is None else "spec",
                               "pred_shape": "x".join(map(str, shape))}
    try:
        call(pred, target)
    except _BadLoss as exc:
        raise UsageError(exc.message, exc.hint) from None
    except _Detached:
        pass
    reach = check_reaches_pred(call, pred, target)
    metrics["grad_reaches_pred"] = reach is None
    if reach is not None:
        findings.append(reach)
    else:
        probe = kink_probe(kind, pred, target, gen)
        f, info = check_gradient(call, pred, target, options.rtol)
        f2, info2 = check_gradient(call, probe, target, options.rtol)
        info["grad_checked"] += info2["grad_checked"]
        info["grad_kinks_skipped"] = info.get("grad_kinks_skipped", 0) + info2.get(
            "grad_kinks_skipped", 0)
        info["grad_max_rel_error"] = max(info.get("grad_max_rel_error", 0.0),
                                         info2.get("grad_max_rel_error", 0.0))
        metrics.update(info)
        f = f or f2
        metrics["gradient_correct"] = f is None or f.severity != Severity.FAIL
        if f:
            findings.append(f)
        f, info = check_edges(call, kind, shape, gen)
        metrics.update(info)
        metrics["finite_at_edges"] = f is None
        if f:
            findings.append(f)
        f, info = check_batch_independence(call, pred, target)
        metrics.update(info)
        metrics["batch_independent"] = f is None or f.severity == Severity.INFO
        if f:
            findings.append(f)
    fs, info = check_invariances(call, pred, target, gen)
    metrics.update(info)
    findings += fs
    if lut.reference is not None:
        ref = _Caller(lut.reference, lut.reference_name or "reference", options.seed)
        f, info = check_reference(call, ref, pred, target)
        metrics.update(info)
        metrics["reference_match"] = f is None
        if f:
            findings.append(f)
    status = Status.FAIL if any(f.severity == Severity.FAIL for f in findings) else (
        Status.WARN if any(f.severity == Severity.WARN for f in findings) else Status.PASS)
    return status, findings, metrics


def default_losses() -> list[LossUnderTest]:
    """The browser model's own losses: landmark MSE and softmax cross-entropy."""
    from diag.inputs.target import classify_loss, landmark_loss

    return [LossUnderTest("landmark_mse", landmark_loss, "like"),
            LossUnderTest("cross_entropy", classify_loss, "index")]
