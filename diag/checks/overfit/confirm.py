"""Confirm before you blame: when overfit fails, each suspected cause is tested by
experiment. Its fix is applied to a fresh copy (never the user's model) and the short
overfit is rerun; a cause is reported as confirmed only if the fix reaches the target.

Published comparisons of training-fault detectors find that most of what such tools blame
is not the bug; testing the hypothesis on the spot is what diag can do that they cannot.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from diag.inputs.data import TensorData
from diag.inputs.target import user_attributes
from diag.result import Finding, Severity

BUDGET = 3
"""The reruns cost at most this many times the failed run's steps, in all."""

_BOUNDED = (nn.Sigmoid, nn.Tanh, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Hardsigmoid, nn.Softmax)


@dataclass
class _Hypothesis:
    name: str
    cause: str
    fix: str
    hint: str
    make_model: Callable[[], nn.Module]
    data: TensorData
    lr: float
    steps: int


class _LogOf(nn.Module):
    """The model with the log of its outputs: probabilities back to logits (up to a
    per-row constant, which softmax ignores)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *args: Any) -> Tensor:
        out: Tensor = self.inner(*args)
        return torch.log(out.clamp_min(1e-12))


def _last_leaf(model: nn.Module) -> tuple[nn.Module, str, nn.Module] | None:
    """(parent, attribute, module) of the last registered leaf module."""
    found = None
    for name, module in model.named_modules():
        if name and not list(module.children()):
            found = name
    if found is None:
        return None
    parent_name, _, attr = found.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    return parent, attr, getattr(parent, attr)


def _without_last_activation(make: Callable[[], nn.Module]) -> Callable[[], nn.Module] | None:
    probe = make()
    leaf = _last_leaf(probe)
    if leaf is None or not isinstance(leaf[2], _BOUNDED):
        return None

    def build() -> nn.Module:
        model = make()
        found = _last_leaf(model)
        assert found is not None
        setattr(found[0], found[1], nn.Identity())
        return model

    return build


def _with_module_lists(make: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        model = make()
        for module in list(model.modules()):
            for attr, value in user_attributes(module):
                if isinstance(value, list | tuple) and value and all(
                        isinstance(v, nn.Module) for v in value):
                    setattr(module, attr, nn.ModuleList(list(value)))
                elif isinstance(value, dict) and value and all(
                        isinstance(v, nn.Module) for v in value.values()):
                    setattr(module, attr, nn.ModuleDict(dict(value)))
        return model

    return build


def _without_dropout(make: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        model = make()
        for module in model.modules():
            if isinstance(module, nn.modules.dropout._DropoutNd):
                module.p = 0.0
        return model

    return build


def _log_of(make: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        return _LogOf(make())

    return build


TARGET_SCALE = 10.0
"""Regression targets whose mean or std exceeds this are far from the unit scale a default
init produces: standardising them is tested."""


def _logits_loss(name: str) -> bool:
    """A loss that applies its own softmax / sigmoid (cross_entropy, BCEWithLogitsLoss),
    not one that takes probabilities (binary_cross_entropy, BCELoss, nll_loss)."""
    name = name.lower()
    if "binary_cross_entropy" in name or name.startswith("bce"):
        return "logits" in name
    return "cross_entropy" in name or "crossentropy" in name


class _LogitOf(nn.Module):
    """The model with the logit of its outputs: sigmoid probabilities back to logits."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *args: Any) -> Tensor:
        out: Tensor = self.inner(*args).clamp(1e-6, 1 - 1e-6)
        return torch.log(out) - torch.log1p(-out)


def _logit_of(make: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        return _LogitOf(make())

    return build


def _standardised_y(data: TensorData) -> TensorData:
    y = data.y.float()
    return replace(data, y=(y - y.mean()) / y.std().clamp_min(1e-12))


def _standardised(data: TensorData) -> TensorData:
    x = data.x.float()
    dims = [0, 2, 3] if x.dim() == 4 else [0]
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True).clamp_min(1e-6)
    return replace(data, x=(x - mean) / std)


def _rescaled_targets(data: TensorData, lo: float, hi: float) -> TensorData:
    y = data.y.float()
    span = (y.max() - y.min()).clamp_min(1e-12)
    return replace(data, y=lo + (y - y.min()) / span * (hi - lo))


def _hypotheses(*, target: Any, data: TensorData, model: nn.Module, probe_fresh: bool,
                plain_lists: bool, losses: list[float], lr: float, steps: int,
                classify: bool, pred: Tensor | None, findings: list[Finding],
                nonfinite: bool) -> list[_Hypothesis]:
    """Suspected causes, from the evidence, strongest first."""
    make = target.make_model
    out: list[_Hypothesis] = []

    def add(name: str, cause: str, fix: str, hint: str, *, make_model: Callable[[],
            nn.Module] = make, new_data: TensorData = data, new_lr: float = lr,
            new_steps: int = steps) -> None:
        out.append(_Hypothesis(name, cause, fix, hint, make_model, new_data, new_lr,
                               new_steps))

    if plain_lists:
        add("plain_list", "layers kept in a plain list are never trained",
            "with the list wrapped in nn.ModuleList",
            "hold sub-modules in nn.ModuleList / nn.ModuleDict",
            make_model=_with_module_lists(make))
    if classify and pred is not None and pred.dim() >= 2 and "cross_entropy" in str(
            target.loss_name) and bool((pred >= -1e-6).all()) and float(
            (pred.sum(dim=1) - 1).abs().max()) < 1e-3:
        add("double_softmax", "the model outputs probabilities (a softmax in forward()) and "
            "cross_entropy applies its own softmax: a double softmax",
            "with the log of the outputs as logits",
            "remove the softmax from forward(): cross_entropy expects logits",
            make_model=_without_last_activation(make) or _log_of(make))
    elif pred is not None and _logits_loss(str(target.loss_name)) and pred.numel() > 1 and \
            torch.is_floating_point(pred) and bool((pred >= -1e-6).all()) and bool(
            (pred <= 1 + 1e-6).all()):
        # probabilities (a sigmoid, or a softmax over another axis) into a loss that applies
        # its own sigmoid / softmax: binary and multi-class, any output shape
        binary = "logits" in str(target.loss_name).lower()
        add("probabilities_into_logits_loss", "the model outputs probabilities in [0, 1] "
            f"and {target.loss_name} expects logits (it applies its own "
            f"{'sigmoid' if binary else 'softmax'})",
            "with the last activation removed" if _without_last_activation(make) else
            "with the outputs mapped back to logits",
            "remove the sigmoid/softmax at the end of forward() (apply it only at inference)",
            make_model=_without_last_activation(make) or (
                _logit_of(make) if binary else _log_of(make)))
    probabilities = any(h.name in ("probabilities_into_logits_loss", "double_softmax")
                        for h in out)  # the same fix: not tested twice
    if not probabilities and any(
            f.location == "output" and "cannot reach" in f.message for f in findings) or (
            not probabilities and not classify and _without_last_activation(make) is not None
            and pred is not None
            and pred.shape == data.y.shape and bool(
                (data.y < pred.min() - 1e-3).any() or (data.y > pred.max() + 1e-3).any())):
        fixed = _without_last_activation(make)
        if fixed is not None:
            add("bounded_output", "the output layer ends in a bounded activation that cannot "
                "reach the targets", "with the last activation removed",
                "remove the activation after the last layer (or rescale the targets into "
                "its range)", make_model=fixed)
        elif pred is not None:
            lo, hi = (0.1, 0.9) if float(pred.min()) >= -1e-6 else (-0.9, 0.9)
            add("bounded_output", "the output is bounded (a sigmoid, tanh or clamp in "
                "forward()) and the targets lie outside its range",
                f"with the targets rescaled into [{lo:g}, {hi:g}]",
                "remove the activation after the last layer, or rescale the targets",
                new_data=_rescaled_targets(data, lo, hi))
    if not classify and torch.is_floating_point(data.y) and data.y.numel() > 1:
        y = data.y.float()
        mean, std = float(y.mean()), float(y.std())
        if max(abs(mean), std) > TARGET_SCALE:
            add("target_scale", f"the regression targets are on a raw scale (mean {mean:.4g}, "
                f"std {std:.4g}): the output layer starts near 0 and must grow "
                f"{max(abs(mean), std):.3g}x, which Adam's steps of about the LR cannot do "
                "in time", "with standardised targets",
                "standardise the targets (y - mean) / std for training and map predictions "
                "back (pred * std + mean), or scale the loss", new_data=_standardised_y(data))
    x = data.x.float()
    if torch.is_floating_point(data.x) and (float(x.abs().max()) > 20 or (
            float(x.std()) > 0 and abs(float(x.mean())) > 3 * float(x.std()))):
        add("unnormalised_inputs", f"the inputs are not normalised (values up to "
            f"{float(x.abs().max()):.4g}, mean {float(x.mean()):.4g})",
            "with standardised inputs", "scale the inputs (e.g. /255, then subtract the mean "
            "and divide by the std) before the model", new_data=_standardised(data))
    if any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p >= 0.2
           for m in model.modules()):
        add("dropout", "dropout noise keeps a tiny subset from being memorised",
            "with dropout at 0", "turn dropout off (model.eval() or p=0) for the overfit "
            "test; it is a regulariser, not a bug", make_model=_without_dropout(make))
    finite = [v for v in losses if math.isfinite(v)]
    ups = sum(b > a for a, b in zip(finite, finite[1:], strict=False)) / max(len(finite) - 1, 1)
    erratic = nonfinite or ups > 0.3 or bool(finite and finite[-1] > finite[0])
    tail = finite[int(len(finite) * 0.8):] if len(finite) >= 10 else []
    still_falling = bool(tail) and tail[-1] < 0.9 * tail[0] and ups < 0.2 and not nonfinite
    # 10x, but at least back into the range where Adam usually works (3e-3)
    lower, higher = min(lr / 10, 3e-3), max(lr * 10, 3e-3)
    if still_falling:
        add("more_steps", "not enough steps: the loss was still falling steadily at the "
            "step limit", f"with {2 * steps} steps", f"raise --max-steps to {2 * steps}",
            new_steps=2 * steps)
    if erratic and lower < lr:
        add("lr_too_high", f"the LR ({lr:g}) is too high: the loss jumps around",
            f"at lr {lower:g}", f"lower the LR to {lower:g}", new_lr=lower)
    if not erratic and finite and finite[-1] > 0.05 * finite[0] and higher > lr:
        add("lr_too_low", f"the LR ({lr:g}) is too low: the loss falls too slowly",
            f"at lr {higher:g}", f"raise the LR to {higher:g}", new_lr=higher)
    if not erratic and finite and 0.05 * finite[0] < finite[-1] < 0.5 * finite[0] \
            and lower < lr:  # it learned, then got stuck: maybe too coarse a step
        add("lr_too_high", f"the LR ({lr:g}) is too high for this model",
            f"at lr {lower:g}", f"lower the LR to {lower:g}", new_lr=lower)
    unique: dict[str, _Hypothesis] = {}
    for h in out:
        unique.setdefault(h.name, h)
    return list(unique.values())


def confirm_causes(*, target: Any, data: TensorData, model: nn.Module, probe_fresh: bool,
                   plain_lists: bool, losses: list[float], options: Any, goal: float,
                   classify: bool, px: int | None, pred: Tensor | None,
                   findings: list[Finding], nonfinite: bool,
                   train: Callable[..., Any]) -> tuple[list[Finding], list[str], list[str]]:
    """Test each suspected cause by a rerun with its fix; return the findings (confirmed
    causes first; tried fixes as information; 'unexplained' when none helps), and the
    names of the confirmed and the tried causes."""
    steps = len(losses)
    hypotheses = _hypotheses(target=target, data=data, model=model, probe_fresh=probe_fresh,
                             plain_lists=plain_lists, losses=losses, lr=options.lr,
                             steps=steps, classify=classify, pred=pred, findings=findings,
                             nonfinite=nonfinite)
    budget = BUDGET * steps
    confirmed: list[tuple[_Hypothesis, Any]] = []
    tried: list[tuple[_Hypothesis, Any]] = []
    for h in hypotheses:
        if h.steps > budget:
            continue
        run = train(h.make_model, h.data, target.loss_fn, h.lr, h.steps, options, goal,
                    classify, px)
        budget -= len(run.losses)
        (confirmed if run.passed else tried).append((h, run))
    if not confirmed and budget >= steps:  # two bugs at once: a model fix with another
        model_fix = next((h for h, _ in tried if h.make_model is not target.make_model), None)
        other = next((h for h, _ in tried if h.make_model is target.make_model), None)
        if model_fix is not None and other is not None:
            combo = _combine([model_fix, other], target, data, options.lr, steps)
            if combo.steps <= budget:
                run = train(combo.make_model, combo.data, target.loss_fn, combo.lr,
                            combo.steps, options, goal, classify, px)
                (confirmed if run.passed else tried).append((combo, run))

    out: list[Finding] = []
    for h, run in confirmed:
        out.append(Finding(
            Severity.FAIL, f"confirmed: {h.cause}: {h.fix}, the loss reaches "
            f"{run.final_loss:.3g} in {len(run.losses)} steps (target {goal:.3g})", h.hint,
            location="output" if h.name in ("bounded_output", "double_softmax",
                                            "probabilities_into_logits_loss") else "",
            rule="cause/" + h.name.replace("_", "-")))
    untestable = []
    if probe_fresh:
        untestable.append("layers built inside forward()")
    if any("never receive a gradient" in f.message for f in findings):
        untestable.append("detached features")
    rest = list(findings)
    if confirmed:
        rest = [f for f in rest if not f.message.startswith("the loss fell from")]
    else:
        generic = next((f for f in rest if f.message.startswith("the loss fell from")), None)
        if generic is not None:
            rest.remove(generic)
            names = ", ".join(h.fix for h, _ in tried) or "nothing (no suspect)"
            out.append(Finding(
                Severity.FAIL, f"unexplained: {generic.message}; tried {names}; none reached "
                "the target", "look at the data and the loss by hand (`diag loss-grad` tests "
                "a custom loss), try a bigger model, or raise --max-steps", rule="unexplained"))
    out.extend(rest)
    out.extend(Finding(
        Severity.INFO, f"tried {h.fix}: the loss reached {run.final_loss:.3g} after "
        f"{len(run.losses)} steps (target {goal:.3g}): "
        + ("it helps, but not enough alone" if math.isfinite(run.final_loss)
           and run.final_loss < 0.5 * losses[-1] else "not the cause"),
        h.hint) for h, run in tried)
    if untestable:
        out.append(Finding(Severity.INFO, "not tested by experiment (no automatic fix): "
                           + ", ".join(untestable) + "; the evidence above still stands"))
    return out, [h.name for h, _ in confirmed], [h.name for h, _ in confirmed + tried]


def _combine(hs: list[_Hypothesis], target: Any, data: TensorData, lr: float, steps: int
             ) -> _Hypothesis:
    make = target.make_model
    new_data, new_lr, new_steps = data, lr, steps
    for h in hs:
        if h.make_model is not target.make_model:
            make = h.make_model
        if h.data is not data:
            new_data = h.data
        if h.lr != lr:
            new_lr = h.lr
        new_steps = max(new_steps, h.steps)
    return _Hypothesis("+".join(h.name for h in hs), " and ".join(h.cause for h in hs),
                       " and ".join(h.fix for h in hs), "; ".join(h.hint for h in hs), make,
                       new_data, new_lr, new_steps)
