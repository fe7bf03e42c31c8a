"""`diag overfit`: can the model drive the loss to ~0 on 10-20 samples? If not, why?

The article's first debugging rule. A model that cannot memorise a handful of samples has a
bug (a detached branch, frozen or unregistered layers, an output that cannot reach the
targets, NaNs, dead ReLUs) that no amount of data or training time will fix.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from diag.checks.overfit import OverfitOptions
from diag.checks.overfit.graph import leaf_tensors
from diag.checks.overfit.relu import relu_census
from diag.errors import USER_ERRORS, DiagError, UserCodeError, user_code_error
from diag.inputs import Inputs
from diag.inputs.batches import OWN_LOSS
from diag.inputs.data import TensorData
from diag.inputs.target import Target, expected_initial_ce, user_attributes
from diag.result import CheckResult, Finding, Severity, Status
from diag.train import Trainer

NAME = "overfit"
Progress = Callable[[int, int], None]


def run(inputs: Inputs, options: OverfitOptions, progress: Progress | None = None
        ) -> CheckResult:
    """Train a fresh copy of the model on a small subset and diagnose what stops it."""
    return _run(inputs.target, options, progress)


def subset(data: TensorData, samples: int, seed: int) -> TensorData:
    n = min(samples, len(data))
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    return data.subset(order[:n].sort().values)


def _call(what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except DiagError:
        raise
    except USER_ERRORS as exc:
        raise user_code_error(exc, what) from None


@dataclass
class _Probe:
    """Findings gathered on the first step, before the optimizer has changed anything."""

    frozen: list[str]
    no_grad: list[str]
    zero_grad: list[str]
    unregistered_fixed: list[tuple[str, int]]
    unregistered_fresh: list[tuple[str, int]]
    grad_norms: dict[str, float]
    disconnected: bool = False
    """The loss has no autograd graph at all: nothing trainable shapes it."""
    redundant_bias: list[str] = field(default_factory=list)
    """Biases whose layer feeds a BatchNorm / InstanceNorm directly: the normalisation
    subtracts the per-channel mean, so their gradient is zero by construction."""


_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d,
          nn.InstanceNorm2d, nn.InstanceNorm3d)


class _BiasBeforeNorm:
    """Forward hooks that see which biased layers' outputs go straight into a
    normalisation layer in training mode (per-channel statistics over the batch)."""

    def __init__(self, model: nn.Module) -> None:
        self.outputs: dict[int, str] = {}
        self.found: list[str] = []
        self.handles = []
        for name, module in model.named_modules():
            bias = getattr(module, "bias", None)
            if isinstance(bias, nn.Parameter) and bias.requires_grad and not isinstance(
                    module, _NORMS + (nn.LayerNorm, nn.GroupNorm)):
                self.handles.append(module.register_forward_hook(
                    lambda _m, _i, out, n=name: self._out(out, n)))
            if isinstance(module, _NORMS):
                self.handles.append(module.register_forward_pre_hook(
                    lambda m, inputs: self._in(m, inputs)))

    def _out(self, out: object, name: str) -> None:
        if isinstance(out, Tensor):
            self.outputs[id(out)] = name

    def _in(self, module: nn.Module, inputs: tuple[object, ...]) -> None:
        per_batch = module.training or not getattr(module, "track_running_stats", True)
        if inputs and isinstance(inputs[0], Tensor) and per_batch:
            name = self.outputs.get(id(inputs[0]))
            if name is not None and f"{name}.bias" not in self.found:
                self.found.append(f"{name}.bias" if name else "bias")

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _first_step_probe(model: nn.Module, trainer: Trainer, xb: Tensor, yb: Tensor) -> _Probe:
    named = list(model.named_parameters())
    registered = {id(p) for _, p in named}
    spy = _BiasBeforeNorm(model)
    try:
        loss = _call("the loss", lambda: trainer.forward_loss(xb, yb))
    finally:
        spy.remove()
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        raise UserCodeError("the loss did not return a scalar tensor",
                            hint="reduce the loss to one number (e.g. .mean())")
    if not loss.requires_grad:
        frozen = [n for n, p in named if not p.requires_grad]
        return _Probe(frozen, [n for n, p in named if p.requires_grad], [], [], [], {},
                      disconnected=True)
    first = [t for t in leaf_tensors(loss) if id(t) not in registered]
    # A second forward tells apart layers kept in a plain list (the same tensors) from
    # layers built inside forward() (new tensors every call).
    again = _call("the loss", lambda: trainer.forward_loss(xb, yb))
    second_ids = {id(t) for t in leaf_tensors(again) if id(t) not in registered}
    del again
    fixed = [t for t in first if id(t) in second_ids]
    fresh = [t for t in first if id(t) not in second_ids]
    trainer.optimizer.zero_grad(set_to_none=True)
    _call("backward", loss.backward)
    frozen = [n for n, p in named if not p.requires_grad]
    no_grad = [n for n, p in named if p.requires_grad and p.grad is None]
    zero = [n for n, p in named if p.grad is not None and not bool(p.grad.any())]
    norms = {n: float(p.grad.detach().norm()) for n, p in named if p.grad is not None}
    trainer.optimizer.zero_grad(set_to_none=True)
    redundant = [n for n in spy.found if n in norms]
    zero = [n for n in zero if n not in redundant]
    return _Probe(frozen, no_grad, zero, _shapes(fixed), _shapes(fresh), norms,
                  redundant_bias=redundant)


def _shapes(tensors: list[Tensor]) -> list[tuple[str, int]]:
    return [(f"{str(t.dtype).replace('torch.', '')}{list(t.shape)}", t.numel()) for t in tensors]


def _group(names: list[str], limit: int = 4) -> str:
    """Parameter names folded to their modules: 'head.weight, head.bias' -> 'head'."""
    modules: dict[str, None] = {}
    for n in names:
        modules.setdefault(n.rsplit(".", 1)[0] if "." in n else n, None)
    mods = list(modules)
    text = ", ".join(mods[:limit])
    return text + (f" (+{len(mods) - limit} more)" if len(mods) > limit else "")


def _plain_containers(model: nn.Module) -> list[str]:
    """Attributes that hold modules in a plain list/tuple/dict, invisible to .parameters()."""
    found = []
    for mname, module in model.named_modules():
        for attr, value in user_attributes(module):
            items = (list(value.values()) if isinstance(value, dict)
                     else list(value) if isinstance(value, list | tuple) else [])
            if any(isinstance(v, nn.Module) for v in items):
                found.append(f"{mname + '.' if mname else ''}{attr}")
    return found


def _calibrated_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The trainable BatchNorm layers whose running statistics eval() would use."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
            and m.running_mean is not None
            and any(p.requires_grad for p in m.parameters(recurse=False))]


def _evaluate(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], data: TensorData,
              classify: bool) -> tuple[float, float | None, Tensor]:
    """The loss on the whole subset in eval mode. Trainable BatchNorm layers first get
    their running statistics recomputed on the subset (precise BN: a cumulative average
    over one pass in train mode, the rest of the model in eval mode): with a momentum of
    0.01 (torchvision's MobileNetV3) the running statistics lag the weights by hundreds of
    steps, and a model that has memorised the subset would read as one that has not.
    Frozen BatchNorm layers (fine-tuning) keep their statistics."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            norms = _calibrated_norms(model)
            if norms:
                momenta = [m.momentum for m in norms]
                for m in norms:
                    m.reset_running_stats()
                    m.momentum = None
                    m.train()
                try:
                    _call("the model's forward", lambda: model(data.x))
                finally:
                    for m, momentum in zip(norms, momenta, strict=True):
                        m.momentum = momentum
                        m.eval()
            pred = _call("the model's forward", lambda: model(data.x))
            loss = float(_call("the loss", lambda: loss_fn(pred, data.y)))
            own = getattr(loss_fn, "__name__", "") == OWN_LOSS  # its labels' meaning is its own
            acc = (float((pred.argmax(dim=1) == data.y).float().mean())
                   if classify and pred.dim() == 2 and data.y.dim() == 1 and not own else
                   _token_accuracy(pred, data.y) if classify and data.is_sequence and not own
                   else None)
    finally:
        model.train(was)
    return loss, acc, pred.detach()


def _run(target: Target, options: OverfitOptions, progress: Progress | None) -> CheckResult:
    if options.samples < 1 or options.max_steps < 1:
        raise DiagError("--samples and --max-steps must be at least 1")
    data = subset(target.data, options.samples, options.seed)
    classify = data.is_classification or data.is_sequence  # cross-entropy over classes
    abs_target = options.target_loss if options.target_loss is not None else (
        0.05 if classify else 1e-3)
    model = target.make_model()
    model.train()
    initial_state = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = _trainer(model, data, target.loss_fn, options.lr, options)

    init_loss, init_acc, _ = _evaluate(model, target.loss_fn, data, classify)
    census_init = _call("the model's forward", lambda: relu_census(model, data.x))
    goal = min(abs_target, options.relative_target * init_loss) if math.isfinite(
        init_loss) else abs_target

    batches = trainer.batches()
    xb, yb = next(batches)
    probe = _first_step_probe(model, trainer, xb, yb)

    px = _landmark_px(target, data)
    run = _train(model, trainer, batches, (xb, yb), target.loss_fn, data, goal, classify,
                 px, 0 if probe.disconnected else options.max_steps, progress)
    losses, nonfinite_step, passed = run.losses, run.nonfinite_step, run.passed
    final_loss, final_acc, pred = run.final_loss, run.final_acc, run.pred
    steps = len(losses)
    census_final = _call("the model's forward", lambda: relu_census(model, data.x))
    final_norms = {n: float(p.grad.detach().norm()) for n, p in model.named_parameters()
                   if p.grad is not None}

    unchanged = [n for n, p in model.named_parameters()
                 if torch.equal(p.detach(), initial_state[n])]
    findings = _diagnose(
        passed=passed, probe=probe, unchanged=unchanged, losses=losses,
        nonfinite_step=nonfinite_step, init_loss=init_loss, final_loss=final_loss,
        classify=classify, pred=pred, data=data, census_init=census_init.dead_fraction,
        census_final=census_final, model=model, final_norms=final_norms, goal=goal,
    )

    if px is not None and run.px_mean is not None and run.px_max is not None:
        where = (f"points {run.px_mean:.2f} px off on average, {run.px_max:.2f} px at worst, at "
                 f"{px} px")
        if not passed and math.isfinite(final_loss) and final_loss <= goal:
            findings = [f for f in findings if not f.message.startswith("the loss fell from")]
            findings.insert(0, Finding(
                Severity.FAIL, f"the loss reached {final_loss:.3g} but the {where} (needs "
                f"<= {PX_MEAN:g} and <= {PX_MAX:g}): the subset is not memorised yet",
                "raise --max-steps; the predictions plot shows which points are off"))
        else:
            findings.append(Finding(Severity.INFO, f"landmarks: {where}", ""))

    confirmed: list[str] = []
    tried: list[str] = []
    if not passed and options.confirm and losses:
        from diag.checks.overfit.confirm import confirm_causes

        findings, confirmed, tried = confirm_causes(
            target=target, data=data, model=model, probe_fresh=bool(probe.unregistered_fresh),
            plain_lists=bool(probe.unregistered_fixed), losses=losses, options=options,
            goal=goal, classify=classify, px=px, pred=pred, findings=findings,
            nonfinite=nonfinite_step is not None, train=_confirm_run)

    if len(data) < options.samples:
        findings.append(Finding(
            Severity.INFO, f"asked for {options.samples} samples; the data has "
            f"{len(data)}, so all of them were used", "pass smaller --samples, or more data"))

    metrics: dict[str, Any] = {
        "passed": passed,
        "steps": steps,
        "initial_loss": _round(init_loss),
        "final_loss": _round(final_loss),
        "target_loss": _round(goal),
        "samples": len(data),
        "lr": options.lr,
        "max_steps": options.max_steps,
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "dead_relu_fraction_init": round(census_init.dead_fraction, 4),
        "dead_relu_fraction": round(census_final.dead_fraction, 4),
        "nonfinite_step": nonfinite_step,
        "causes_confirmed": ",".join(confirmed),
        "causes_tried": ",".join(tried),
    }
    if run.px_mean is not None and run.px_max is not None:
        metrics.update(point_error_mean_px=round(run.px_mean, 3),
                       point_error_max_px=round(run.px_max, 3), input_px=px)
    if classify:
        metrics["accuracy"] = final_acc
        if pred is not None and (pred.dim() == 2 or data.is_sequence):
            metrics["expected_initial_loss"] = _round(expected_initial_ce(int(pred.shape[-1])))
    if probe.grad_norms:
        lo = min(probe.grad_norms, key=probe.grad_norms.__getitem__)
        hi = max(probe.grad_norms, key=probe.grad_norms.__getitem__)
        metrics.update(grad_norm_min=_round(probe.grad_norms[lo]), grad_norm_min_param=lo,
                       grad_norm_max=_round(probe.grad_norms[hi]), grad_norm_max_param=hi)

    if passed:
        status = Status.WARN if any(f.severity == Severity.WARN for f in findings) else Status.PASS
        px_text = (f", points within {run.px_mean:.2f} px (max {run.px_max:.2f} px)"
                   if run.px_mean is not None and run.px_max is not None else "")
        summary = (f"loss {init_loss:.4g} -> {final_loss:.4g} in {steps} steps on {len(data)} "
                   f"samples (target {goal:.3g}){px_text}: the model can memorise a small "
                   "subset")
    else:
        status = Status.FAIL
        top = next((f for f in findings if f.message.startswith("confirmed:")), None) or next(
            (f for f in findings if f.severity == Severity.FAIL), None)
        # the generic "fell but not far enough" would only repeat the numbers: give its hint
        cause = "" if top is None else (
            top.hint if top.message.startswith("the loss fell from") else top.message)
        summary = (f"loss {init_loss:.4g} -> {final_loss:.4g} after {steps} steps, target "
                   f"{goal:.3g} not reached" + (f": {cause}" if cause else ""))

    names = list(probe.grad_norms)
    plot_data: dict[str, Any] = {
        "grad_norm_names": names,
        "grad_norm_init": [probe.grad_norms[n] for n in names],
        "grad_norm_final": [final_norms.get(n, 0.0) for n in names],
        "goal": goal,
    }
    if data.is_image and pred is not None:
        plot_data.update(_prediction_payload(target, data, pred, classify))
    return CheckResult(
        NAME, status, summary, metrics=metrics, findings=tuple(findings),
        series={"loss": [_round(v) for v in losses]}, plot_data=plot_data,
    )


@dataclass
class _Run:
    """One training attempt: the loss per step and how it ended."""

    losses: list[float]
    nonfinite_step: int | None
    passed: bool
    final_loss: float
    final_acc: float | None
    pred: Tensor | None
    px_mean: float | None = None
    px_max: float | None = None


PX_MEAN, PX_MAX = 1.0, 3.0
"""Landmark nets pass only when the points sit within 1 px on average and 3 px at worst,
at the model's input size: what the predictions picture shows must agree with the verdict."""


def _landmark_px(target: Target, data: TensorData) -> int | None:
    """The input size in pixels when the targets are landmark points (x, y in [0, 1])."""
    if (target.task == "landmarks" and data.is_image and data.y.dim() == 2
            and data.y.shape[1] % 2 == 0 and torch.is_floating_point(data.y)):
        return int(data.x.shape[-1])
    return None


def _px_errors(pred: Tensor, y: Tensor, px: int) -> tuple[float, float]:
    err = ((pred.detach().float() - y.float()).reshape(len(y), -1, 2) * px).norm(dim=-1)
    return float(err.mean()), float(err.max())


def _train(model: nn.Module, trainer: Trainer, batches: Any, first: tuple[Tensor, Tensor],
           loss_fn: Callable[[Tensor, Tensor], Tensor], data: TensorData, goal: float,
           classify: bool, px: int | None, max_steps: int, progress: Progress | None
           ) -> _Run:
    """Train until the loss is at the goal on the whole subset (eval mode), with full
    accuracy for classifiers and points within PX_MEAN / PX_MAX for landmark nets."""
    losses: list[float] = []
    nonfinite_step: int | None = None
    passed = False
    final_loss, final_acc, pred = math.inf, None, None
    next_confirm = 0
    xb, yb = first
    for step in range(max_steps):
        if step:
            xb, yb = next(batches)
        try:
            loss = trainer.step(xb, yb)
        except USER_ERRORS as exc:
            raise user_code_error(exc, "a training step (forward, loss or backward)") from None
        value = loss.item()
        losses.append(value)
        if progress is not None:
            progress(step + 1, max_steps)
        if not math.isfinite(value):
            nonfinite_step = step
            break
        if value <= goal and step >= next_confirm:
            final_loss, final_acc, pred = _evaluate(model, loss_fn, data, classify)
            close = px is None or pred is None or _points_close(pred, data.y, px)
            if final_loss <= goal and (final_acc is None or final_acc == 1.0) and close:
                passed = True
                break
            next_confirm = step + 10
    if not passed:
        final_loss, final_acc, pred = _evaluate(model, loss_fn, data, classify)
    run = _Run(losses, nonfinite_step, passed, final_loss, final_acc, pred)
    if px is not None and pred is not None and pred.shape == data.y.shape:
        run.px_mean, run.px_max = _px_errors(pred, data.y, px)
    return run


def _trainer(model: nn.Module, data: TensorData, loss_fn: Callable[[Tensor, Tensor], Tensor],
             lr: float, options: OverfitOptions) -> Trainer:
    """The overfit loop's trainer: the whole subset per step unless --batch-size is smaller
    (then shuffled, seeded)."""
    return Trainer(model, data, loss_fn, lr=lr, batch_size=options.batch_size or len(data),
                   seed=options.seed,
                   shuffle=options.batch_size is not None and options.batch_size < len(data))


def _confirm_run(make_model: Callable[[], nn.Module], data: TensorData,
                 loss_fn: Callable[[Tensor, Tensor], Tensor], lr: float, steps: int,
                 options: OverfitOptions, goal: float, classify: bool, px: int | None) -> _Run:
    """One rerun for a suspected cause: a fresh model, the same seed, subset and loop."""
    model = make_model()
    model.train()
    trainer = _trainer(model, data, loss_fn, lr, options)
    batches = trainer.batches()
    return _train(model, trainer, batches, next(batches), loss_fn, data, goal, classify, px,
                  steps, None)


def _points_close(pred: Tensor, y: Tensor, px: int) -> bool:
    if pred.shape != y.shape:
        return True
    mean, worst = _px_errors(pred, y, px)
    return mean <= PX_MEAN and worst <= PX_MAX


def _round(value: float) -> float:
    """Six significant digits: stable across runs, readable in JSON."""
    if not math.isfinite(value) or value == 0:
        return value
    return float(f"{value:.6g}")


def _diagnose(*, passed: bool, probe: _Probe, unchanged: list[str], losses: list[float],
              nonfinite_step: int | None, init_loss: float, final_loss: float, classify: bool,
              pred: Tensor | None, data: TensorData, census_init: float, census_final: Any,
              model: nn.Module, final_norms: dict[str, float], goal: float) -> list[Finding]:
    """Every cause we can see, as findings; FAIL severity only when the check failed."""
    cause = Severity.FAIL if not passed else Severity.WARN
    f: list[Finding] = []

    if nonfinite_step is not None or not math.isfinite(init_loss):
        at = "at initialisation" if not math.isfinite(init_loss) else (
            f"at step {nonfinite_step + 1}" if nonfinite_step is not None else "")
        f.append(Finding(Severity.FAIL, f"the loss became NaN/Inf {at}",
                         "look for log(0), division by zero or sqrt of a negative in forward "
                         "and loss; lower the learning rate or clip gradients "
                         "(torch.nn.utils.clip_grad_norm_)"))
    if probe.unregistered_fixed:
        where = _plain_containers(model)
        n = sum(c for _, c in probe.unregistered_fixed)
        f.append(Finding(
            cause, f"{len(probe.unregistered_fixed)} tensors ({n} values) shape the output but "
            f"are not in model.parameters(), so the optimizer never updates them",
            "hold sub-modules in nn.ModuleList / nn.ModuleDict (not a plain list) and tensors "
            "in nn.Parameter", location=", ".join(where[:3])))
    if probe.unregistered_fresh:
        n = sum(c for _, c in probe.unregistered_fresh)
        f.append(Finding(
            cause, f"{len(probe.unregistered_fresh)} trainable tensors ({n} values) are created "
            "anew inside forward(): new random weights every call, never trained",
            "create layers once in __init__ and only call them in forward()"))
    if probe.frozen:
        f.append(Finding(
            cause if unchanged and not passed else Severity.INFO,
            f"{len(probe.frozen)} parameter tensors are frozen (requires_grad=False)"
            + (": the rest memorised the subset without them (frozen on purpose?)" if passed
               else ""),
            "unfreeze them (p.requires_grad_(True)) if they should learn",
            location=_group(probe.frozen)))
    if probe.redundant_bias:
        f.append(Finding(
            Severity.INFO, f"redundant bias (BatchNorm follows): {len(probe.redundant_bias)} "
            "bias tensors feed a normalisation layer that subtracts their per-channel mean, "
            "so their gradient is zero by construction; not a vanishing gradient",
            "bias=False on those layers saves the parameters",
            location=_group(probe.redundant_bias)))
    if probe.no_grad:
        f.append(Finding(
            cause, f"{len(probe.no_grad)} parameter tensors never receive a gradient: their "
            "output is detached or unused on the path to the loss",
            "remove .detach()/.data/.item()/torch.no_grad() on that branch, or use the layer "
            "in forward()", location=_group(probe.no_grad)))
    if probe.zero_grad:
        f.append(Finding(
            cause, f"{len(probe.zero_grad)} parameter tensors get an all-zero gradient",
            "something multiplies their path by zero (dead ReLUs, a zero mask, a saturated "
            "activation)", location=_group(probe.zero_grad)))
    if probe.disconnected:
        f.append(Finding(
            Severity.FAIL, "the loss did not move: it does not depend on any trainable "
            "parameter (no autograd graph reaches the model's weights)",
            "check that forward() returns the output of its layers and that the loss uses "
            "the prediction (no .item(), .detach() or torch.no_grad() on the way)"))
    reported = set(probe.frozen) | set(probe.no_grad) | set(probe.zero_grad)
    still = [n for n in unchanged if n not in reported]
    if still and losses:
        f.append(Finding(
            cause, f"{len(still)} parameter tensors never changed during training",
            "check that they are in the optimizer and the learning rate is not 0",
            location=_group(still)))
    if len(losses) > 1 and all(math.isfinite(v) for v in losses):
        spread = max(losses) - min(losses)
        if spread <= 1e-7 * max(1.0, abs(losses[0])):
            f.append(Finding(
                Severity.FAIL, f"the loss did not move at all in {len(losses)} steps "
                f"(stuck at {losses[0]:.6g})",
                "the output does not depend on any trained parameter: check that forward "
                "uses its layers and that the loss uses the prediction"))

    if classify and pred is not None and (pred.dim() == 2 or data.is_sequence) and \
            math.isfinite(init_loss):
        classes = int(pred.shape[-1])
        expected = expected_initial_ce(classes)
        off = abs(init_loss - expected) > max(0.5, 0.25 * expected)
        f.append(Finding(
            Severity.WARN if off else Severity.INFO,
            f"loss at init {init_loss:.3f}, expected about ln({classes}) = {expected:.3f} for "
            "an uninformed classifier" + (" (far off)" if off else " (as expected)"),
            "scale down the last layer's initial weights and zero its bias so the first "
            "predictions are uniform" if off and init_loss > expected else
            ("the model starts out already confident; check for leaked labels" if off else "")))

    if not passed and not classify and pred is not None and pred.shape == data.y.shape:
        f.extend(_output_range(pred, data.y))

    if census_final.dead_fraction > 0.5 or census_init > 0.5:
        worst = max(census_final.sites.values(), key=lambda s: s.dead / max(s.units, 1),
                    default=None)
        f.append(Finding(
            cause if census_final.dead_fraction > 0.9 else Severity.WARN,
            f"{census_final.dead_fraction:.0%} of ReLU units are dead (zero for every sample; "
            f"{census_init:.0%} at init)",
            "look at the biases and init before those ReLUs, lower the learning rate, or use "
            "LeakyReLU", location=worst.name if worst else ""))

    norms = {n: v for n, v in probe.grad_norms.items() if n not in probe.redundant_bias}
    if norms:
        values = [v for v in norms.values() if v > 0]
        if values and max(values) > 0:
            lo_name = min(norms, key=norms.__getitem__)
            hi_name = max(norms, key=norms.__getitem__)
            lo, hi = norms[lo_name], norms[hi_name]
            vanishing = 0 < lo < 1e-7 * hi
            # a run that memorised the subset has no gradient problem: some parameters get
            # ~0 by construction (a key bias under softmax, a bias before BatchNorm)
            f.append(Finding(
                Severity.WARN if vanishing and not passed else Severity.INFO,
                f"gradient norms at step 1 range from {lo:.2e} ({lo_name}) to {hi:.2e} "
                f"({hi_name})" + (": vanishing" if vanishing else ""),
                "normalise inputs, check the init, or add skip connections" if vanishing else "",
                location=lo_name))

    if not passed and not any(x.severity == Severity.FAIL for x in f) and losses:
        f.append(Finding(
            Severity.FAIL, f"the loss fell from {init_loss:.4g} to {final_loss:.4g} but not to "
            f"{goal:.3g} within {len(losses)} steps",
            "raise --max-steps, try another --lr, or give the model more capacity"))
    order = {Severity.ERROR: 0, Severity.FAIL: 1, Severity.WARN: 2, Severity.INFO: 3}
    return sorted(f, key=lambda x: order[x.severity])


def _output_range(pred: Tensor, y: Tensor) -> list[Finding]:
    """Targets outside anything the model produces, where the output shows a hard bound: many
    outputs exactly at it (ReLU, clamp) or piled up at 0, 1 or -1 (sigmoid, tanh). A model
    that is merely undertrained has neither, and gets no such finding."""
    p, t = pred.detach().float(), y.detach().float()
    lo, hi = float(p.min()), float(p.max())
    span = max(float(t.max() - t.min()), 1e-12)
    below = float((t < lo - 1e-3 * span).float().mean())
    above = float((t > hi + 1e-3 * span).float().mean())
    out = []
    for frac, bound, side, natural in ((below, lo, "below the lowest", (0.0, -1.0)),
                                       (above, hi, "above the highest", (1.0,))):
        if frac <= 0.05:
            continue
        # The extreme output is always "at the bound": a bound needs several outputs on it,
        # at least 2 and over 5% (with 20 outputs or fewer, one alone would pass 5%).
        need = max(2, int(0.05 * p.numel()) + 1)
        on_bound = int((p == bound).sum())
        at_bound = on_bound / max(p.numel(), 1)
        piled = next((b for b in natural if abs(bound - b) < 1e-3
                      and int(((p - b).abs() < 1e-3).sum()) >= need), None)
        if on_bound >= need:
            why = (f"{at_bound:.0%} of outputs sit exactly at {bound:.4g}: a ReLU or clamp on "
                   "the output layer?")
        elif piled is not None:
            why = f"outputs pile up at {piled:g}: a sigmoid or tanh on the output layer?"
        else:
            continue
        out.append(Finding(
            Severity.FAIL, f"{frac:.0%} of target values lie {side} output the model "
            f"produced ({bound:.4g}): the output layer cannot reach them; {why}",
            "remove the activation after the last layer (or rescale the targets into its "
            "range)", location="output"))
    return out


def _token_accuracy(pred: Tensor, y: Tensor) -> float | None:
    """Accuracy over the positions that are not padding (-100)."""
    if pred.dim() != y.dim() + 1:
        return None
    keep = y != -100
    if not bool(keep.any()):
        return None
    return float((pred.argmax(dim=-1)[keep] == y[keep]).float().mean())


def _prediction_payload(target: Target, data: TensorData, pred: Tensor, classify: bool
                        ) -> dict[str, Any]:
    """Images and points (pixels of the model input) for the prediction picture."""
    from diag.model.pipeline import display_images

    k = min(8, len(data))
    x = data.x[:k]
    images = display_images(x, target.default_model)
    if images is None:
        return {}
    payload: dict[str, Any] = {"images": images}
    size = float(x.shape[-1])
    if classify and data.y.dim() == 1:
        payload["labels_true"] = data.y[:k].tolist()
        payload["labels_pred"] = pred[:k].argmax(dim=1).tolist()
    elif target.task == "landmarks" and pred.shape[-1] % 2 == 0:
        payload["points_true"] = (data.y[:k].reshape(k, -1, 2) * size).numpy()
        payload["points_pred"] = (pred[:k].reshape(k, -1, 2) * size).numpy()
    return payload

