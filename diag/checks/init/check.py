"""`diag init`: one seeded forward and backward pass at initialisation, layer by layer.

A *layer* is a module that owns a weight of two or more dimensions (Linear, Conv, ...), in
the order the forward pass runs them. For each: its output's mean and std, the activation
function applied after it (seen through a TorchFunctionMode, so ``torch.relu(x)`` counts as
much as ``nn.ReLU``) with the fraction of its units that are dead or saturated over the
whole batch, the weight std next to Glorot's and He's for its fans, and the gradient norm
next to the weight norm.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from diag.checks.calls import CallWatch
from diag.checks.init import InitOptions
from diag.errors import USER_ERRORS, UsageError, user_code_error
from diag.inputs import Inputs
from diag.result import CheckResult, Finding, Severity, Status

NAME = "init"
DEAD_LIMIT = 0.5
"""A layer whose activation has more than this fraction of dead (or saturated) units."""
LOSS_FACTOR = 3.0
"""A loss at init this many times the uninformed prediction's is "far above"."""
SCHEME_FACTOR = 3.0
"""A weight std this far from both Glorot's and He's is reported (info)."""

_DEAD = {"relu", "relu_", "relu6", "threshold", "threshold_"}
_SATURATING = {"relu6": (None, 6.0), "sigmoid": (0.01, 0.99), "sigmoid_": (0.01, 0.99),
               "tanh": (-0.99, 0.99), "tanh_": (-0.99, 0.99), "hardtanh": (-1.0, 1.0),
               "hardtanh_": (-1.0, 1.0),
               "hardsigmoid": (0.0, 1.0)}
ACTIVATIONS = _DEAD | set(_SATURATING) | {
    "leaky_relu", "leaky_relu_", "elu", "elu_", "gelu", "silu", "mish", "softplus",
    "hardswish", "selu", "celu", "prelu", "rrelu", "softsign", "logsigmoid"}


@dataclass
class _Activation:
    kind: str
    mean: float
    std: float
    zero_fraction: float
    dead_fraction: float | None
    saturated_fraction: float | None


@dataclass
class _Layer:
    name: str
    module: nn.Module
    mean: float = 0.0
    std: float = 0.0
    act: _Activation | None = None


def _units(out: Tensor) -> Tensor:
    """(units, values): one row per feature / channel (dim 1), over the batch and space."""
    if out.dim() < 2:
        return out.reshape(1, -1)
    return out.transpose(0, 1).reshape(out.shape[1], -1)


def _activation_stats(kind: str, out: Tensor,
                      bounds: tuple[float | None, float] | None = None) -> _Activation:
    """``bounds``: (bottom, top) of a clamp-like activation when its call set them
    (``hardtanh(x, 0, 6)`` is a ReLU-6)."""
    out = out.detach().float()
    units = _units(out)
    base = kind.rstrip("_") if kind not in _SATURATING else kind
    dead = None
    if kind in _DEAD or (bounds is not None and bounds[0] == 0):
        dead = float((units == 0).all(dim=1).float().mean())
    saturated = None
    if kind in _SATURATING:
        # Saturated: the activation's local derivative is near zero (under 5 % of its
        # largest) for most samples, at either end: a unit whose sign flips from sample to
        # sample but sits at +-1 every time passes no gradient either.
        if base == "tanh":
            flat = (1 - units ** 2) < 0.05
        elif base == "sigmoid":
            flat = units * (1 - units) < 0.05 * 0.25
        else:  # clamps: the derivative is 0 at the bounds
            low, high = bounds if bounds is not None else _SATURATING[kind]
            if bounds is not None and low == 0:
                low = None  # the bottom of a ReLU-like clamp is "dead", counted above
            flat = units >= high
            if low is not None:
                flat = flat | (units <= low)
        saturated = float((flat.float().mean(dim=1) > 0.5).float().mean())
    return _Activation(base, float(out.mean()), float(out.std()) if out.numel() > 1 else 0.0,
                       float((out == 0).float().mean()), dead, saturated)


def _bounds(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> tuple[float | None, float] | None:
    """The bounds a ``hardtanh`` call set (``hardtanh(x, 0, 6)`` is a ReLU-6)."""
    if name.rstrip("_") != "hardtanh":
        return None
    return (float(args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)),
            float(args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)))


def layer_weight(module: nn.Module) -> Tensor | None:
    """The module's own weight matrix or kernel: ``weight``, else its first own parameter
    of two or more dimensions (``in_proj_weight`` of attention, ``weight_ih_l0`` of an
    LSTM); None for modules that own none (containers, norms, activations)."""
    w = module._parameters.get("weight")
    if isinstance(w, Tensor) and w.dim() >= 2:
        return w
    return next((p for p in module._parameters.values()
                 if isinstance(p, Tensor) and p.dim() >= 2), None)


def _weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers judged. Embeddings are left out: a lookup table's gradient reaches only
    the rows a batch uses (|grad| / |weight| of a healthy Transformer's N(0, 1) table was
    1e-4 of its head's), and Glorot or He mean nothing for it."""
    return [(name or type(model).__name__, module) for name, module in model.named_modules()
            if layer_weight(module) is not None
            and not isinstance(module, nn.Embedding | nn.EmbeddingBag)]


def _fans(w: Tensor) -> tuple[int, int]:
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(w)
    return int(fan_in), int(fan_out)


def _scheme(std: float, fan_in: int, fan_out: int) -> tuple[str, float, float]:
    """(closest scheme, Glorot std, He std)."""
    glorot = math.sqrt(2.0 / (fan_in + fan_out))
    he = math.sqrt(2.0 / fan_in)
    default = 1.0 / math.sqrt(3.0 * fan_in)  # PyTorch's kaiming_uniform_(a=sqrt(5))
    if std <= 0:
        return "zero", glorot, he
    dist = {"Glorot": abs(math.log(std / glorot)), "He": abs(math.log(std / he)),
            "PyTorch default": abs(math.log(std / default))}
    return min(dist, key=dist.__getitem__), glorot, he


def _forward(model: nn.Module, layers: list[tuple[str, nn.Module]], x: Tensor
             ) -> tuple[Tensor, list[_Layer]]:
    events: list[tuple[str, Any]] = []
    records: list[_Layer] = []
    handles = []

    def on_activation(name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                      out: Any) -> None:
        if isinstance(out, Tensor):
            events.append(("act", _activation_stats(name, out, _bounds(name, args, kwargs))))

    def hook_for(name: str) -> Any:
        def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
            if isinstance(output, tuple | list):  # attention, RNNs: the output comes first
                output = next((o for o in output if isinstance(o, Tensor)), None)
            if not isinstance(output, Tensor):
                return
            seen = sum(1 for r in records if r.module is module)
            rec = _Layer(name if not seen else f"{name}#{seen + 1}", module)
            o = output.detach().float()
            rec.mean = float(o.mean())
            rec.std = float(o.std()) if o.numel() > 1 else 0.0
            records.append(rec)
            events.append(("layer", rec))
        return hook

    for name, module in layers:
        handles.append(module.register_forward_hook(hook_for(name)))
    try:
        with CallWatch(ACTIVATIONS, on_activation):
            out = model(x)
    except USER_ERRORS as exc:
        raise user_code_error(exc, "the model's forward") from None
    finally:
        for h in handles:
            h.remove()
    last: _Layer | None = None
    for kind, item in events:
        if kind == "layer":
            last = item
        elif last is not None and last.act is None:
            last.act = item
    if not isinstance(out, Tensor):
        raise UsageError(f"the model returned a {type(out).__name__}, not a tensor",
                         hint="return the prediction tensor from forward()")
    return out, records


def _skip_connections(loss: Tensor) -> int:
    """Sums of two computed tensors (residual or summed dense connections) and
    concatenations of them (dense blocks), found in the autograd graph."""
    count, seen, stack = 0, set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        nexts = [n for n, _ in node.next_functions if n is not None]
        computed = [n for n in nexts if type(n).__name__ != "AccumulateGrad"]
        kind = type(node).__name__
        if kind in ("AddBackward0", "CatBackward0") and len(computed) >= 2:
            count += 1
        stack.extend(nexts)
    return count


def _starts(values: list[float], names: list[str], shrinking: bool) -> str:
    """The first layer from which the value stays beyond 2x of the first layer's."""
    first = values[0]
    start = len(values) - 1
    for k in range(len(values) - 1, 0, -1):
        r = values[k] / first if first > 0 else 0.0
        if (r < 0.5) if shrinking else (r > 2.0):
            start = k
        else:
            break
    return names[start]


def run(inputs: Inputs, options: InitOptions, progress: Any = None) -> CheckResult:
    target = inputs.target
    data = target.data
    gen = torch.Generator().manual_seed(options.seed)
    n = min(options.batch_size, len(data))
    idx = torch.randperm(len(data), generator=gen)[:n]
    xb, yb = data.x[idx], data.y[idx]
    model = target.make_model()
    model.train()
    layers = _weighted_layers(model)
    if not layers:
        raise UsageError("the model has no layer with a weight matrix or kernel",
                         hint="diag init looks at Linear / Conv layers; is this the model?")
    pred, records = _forward(model, layers, xb)
    try:
        loss = target.loss_fn(pred, yb)
    except USER_ERRORS as exc:
        raise user_code_error(exc, f"the loss ({target.loss_name})") from None
    with torch.no_grad():
        try:
            uninformed = float(target.loss_fn(torch.zeros_like(pred), yb))
        except USER_ERRORS:
            uninformed = float("nan")
    skips = _skip_connections(loss) if loss.grad_fn is not None else 0
    if loss.requires_grad:
        try:
            loss.backward()
        except USER_ERRORS as exc:
            raise user_code_error(exc, f"the loss's backward ({target.loss_name})") from None

    rows: list[dict[str, Any]] = []
    for rec in records:
        w = layer_weight(rec.module)
        assert w is not None
        fan_in, fan_out = _fans(w)
        wstd = float(w.detach().std()) if w.numel() > 1 else 0.0
        scheme, glorot, he = _scheme(wstd, fan_in, fan_out)
        b = rec.module._parameters.get("bias")
        if b is None:
            b = next((p for n, p in rec.module._parameters.items()
                      if "bias" in n and isinstance(p, Tensor)), None)
        gnorm = float(w.grad.norm()) if w.grad is not None else 0.0
        wnorm = float(w.detach().norm())
        act = rec.act
        rows.append({
            "layer": rec.name, "type": type(rec.module).__name__, "out_mean": rec.mean,
            "out_std": rec.std, "activation": act.kind if act else "",
            "act_mean": act.mean if act else None, "act_std": act.std if act else None,
            "zero_fraction": act.zero_fraction if act else None,
            "dead_fraction": act.dead_fraction if act else None,
            "saturated_fraction": act.saturated_fraction if act else None,
            "weight_std": wstd, "glorot_std": glorot, "he_std": he, "closest_scheme": scheme,
            "bias_mean_abs": float(b.detach().abs().mean()) if isinstance(b, Tensor) else None,
            "grad_norm": gnorm, "weight_norm": wnorm,
            "grad_ratio": gnorm / wnorm if wnorm > 0 else 0.0})
    trainable = sum(1 for p in model.parameters() if p.requires_grad)
    result = _judge(rows, float(loss.detach()), uninformed, pred, yb, target, skips, options,
                    trainable)
    mixing, independent = _eval_batch_mixing(model, xb)
    # None: cannot tell (a batch of one, or a forward that is random or keeps state in eval)
    metrics = {**result.metrics, "eval_batch_independent": independent}
    if mixing is None:
        return dataclasses.replace(result, metrics=metrics)
    if result.status == Status.FAIL:  # the first failure stays the summary
        return dataclasses.replace(result, findings=(*result.findings, mixing),
                                   metrics=metrics)
    return dataclasses.replace(result, status=Status(mixing.severity.value),
                               summary=mixing.message, findings=(mixing, *result.findings),
                               metrics=metrics)


# float32 sums in another order (a batch of 1 vs 4 picks other GEMM kernels) move outputs by
# about 1e-6 of their scale; a sample normalised by its batch's statistics moves by O(1)
MIXING_RTOL = 1e-3


def _eval_batch_mixing(model: nn.Module, xb: Tensor) -> tuple[Finding | None, bool | None]:
    """In eval mode a sample's prediction must not depend on the rest of its batch: the
    same samples as a batch of 4 and one at a time. BatchNorm kept in train mode (frozen by
    requires_grad only, or a train() override) normalises each batch by its own statistics,
    and a batch of 1 by one sample's: at inference the predictions are not the model's."""
    k = min(4, len(xb))
    if k < 2 or not isinstance(xb, Tensor):
        return None, None
    model.eval()
    # BatchNorm layers that model.eval() left in train mode
    bn = [n for n, m in model.named_modules()
          if isinstance(m, nn.modules.batchnorm._NormBase) and m.training]
    try:
        with torch.no_grad():
            first = model(xb[:k])
            again = model(xb[:k])
            if not (isinstance(first, Tensor) and isinstance(again, Tensor)
                    and bool(first.isfinite().all()) and torch.equal(first, again)):
                return None, None  # random or stateful in eval: cannot tell mixing
            error = ""
            try:
                outs: list[Any] = [model(xb[i:i + 1]) for i in range(k)]
            except USER_ERRORS as exc:
                outs, error = [], f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    except USER_ERRORS:
        return None, None  # the forward's own errors are reported by the forward above
    finally:
        model.train()
    cause = (f"{len(bn)} BatchNorm layers stay in train mode after model.eval() ("
             + ", ".join(bn[:3]) + (", ..." if len(bn) > 3 else "") + ")") if bn else ""
    fix = ("let eval() reach the BatchNorm layers: freezing them takes bn.eval() as well as "
           "requires_grad=False, re-applied after every model.train()" if bn else
           "find the layer that reads across the batch (BatchNorm in train mode, a batch-wide "
           "statistic in forward) and keep it per sample in eval")
    where = bn[0] if bn else ""
    if not outs:
        return Finding(Severity.FAIL if bn else Severity.WARN, "in eval mode a batch of 1 "
                       "raises ("
                       + error[:120] + ")" + (f": {cause}" if cause else ""), fix,
                       location=where), False
    odd = next((o for o in outs if not isinstance(o, Tensor)
                or o.shape != (1, *first.shape[1:])), None)
    if (isinstance(odd, Tensor) and odd.dim() == first.dim() >= 2 and first.shape[1] == k
            and odd.shape[1] == 1):
        return None, None  # sample against sample ((N, N) logits, in-batch negatives)
    if odd is not None:
        return Finding(Severity.WARN, "in eval mode a batch of 1 returns "
                       + (f"shape {tuple(odd.shape)}" if isinstance(odd, Tensor) else
                          f"a {type(odd).__name__}")
                       + f", a batch of {k} {tuple(first.shape)}: a squeeze() that drops "
                       "the batch axis?",
                       "squeeze only named axes (x.squeeze(-1)) so one sample keeps its "
                       "batch axis", location=where), False
    alone = torch.cat(outs)
    scale = float(first.detach().float().abs().max())
    change = float((alone.float() - first.float()).abs().max())
    if change <= MIXING_RTOL * max(scale, 1e-12):
        return None, True
    if not bn and torch.is_floating_point(xb):
        # A chaotic net (saturated tanh stacks at a bad init) turns the rounding of another
        # batch size into a large change: an input nudge of a few ulps does the same. That
        # is numerical sensitivity, not mixing: say nothing either way.
        model.eval()
        try:
            with torch.no_grad():
                nudged = model(xb[:k] * (1 + 1e-6))
        except USER_ERRORS:
            nudged = None
        finally:
            model.train()
        if isinstance(nudged, Tensor) and float(
                (nudged.float() - first.float()).abs().max()) >= 0.1 * change:
            return None, None
    return Finding(Severity.FAIL, f"in eval mode a sample's prediction depends on its batch: "
                   f"alone it moves by {change:.3g} (outputs up to {scale:.3g})"
                   + (f": {cause}" if cause else ""), fix, location=where), False


def _broken(rows: list[dict[str, Any]], loss: float, pred: Tensor,
            trainable: int) -> list[Finding]:
    """What makes every other number meaningless: nothing to train, or a non-finite output,
    loss or gradient at step 0 (named at the first layer where it appears). Any of these is
    a fail: a comparison with NaN must never pass."""
    if trainable == 0:
        return [Finding(Severity.FAIL, "nothing to train: every parameter has "
                        "requires_grad=False, so no step can change the model",
                        "unfreeze at least the layers you mean to train "
                        "(p.requires_grad_(True)) and pass them to the optimizer")]
    out = next((r for r in rows if not (math.isfinite(r["out_mean"])
                                        and math.isfinite(r["out_std"]))), None)
    if out is not None or not bool(torch.isfinite(pred.detach()).all()):
        where = out["layer"] if out is not None else "the model's output"
        k = rows.index(out) if out is not None else len(rows)
        before = (f"; the std before it was {rows[k - 1]['out_std']:.3g} at "
                  f"{rows[k - 1]['layer']}" if k > 0 else "")
        return [Finding(Severity.FAIL, f"non-finite output at init: first at {where}"
                        f"{before}", "the signal overflows (or a NaN comes in): init each "
                        "layer with He (ReLU) or Glorot (tanh, linear) std for its fan-in, "
                        "and check the inputs are finite and standardised", location=where
                        if out is not None else "")]
    if not math.isfinite(loss):
        stds = [r["out_std"] for r in rows]
        peak = float(pred.detach().abs().max()) if pred.numel() else 0.0
        if len(rows) >= 2 and stds[0] > 0 and stds[-1] / stds[0] > 100 and peak > 1e6:
            at = _starts(stds, [r["layer"] for r in rows], shrinking=False)
            return [Finding(Severity.FAIL, f"the loss at init is {loss}: the output std grows "
                            f"x{stds[-1] / stds[0]:.3g} from {rows[0]['layer']} to "
                            f"{rows[-1]['layer']} (outputs up to {peak:.3g}), beyond 2x from "
                            f"{at} on", "the init is too large for this depth: He (ReLU) or "
                            "Glorot (tanh, linear) std for each layer's fan-in",
                            location=at)]
        return [Finding(Severity.FAIL, f"the loss at init is {loss}, though the outputs are "
                        "finite", "the loss overflows or divides by zero on these outputs: "
                        "unit-test it with diag loss-grad", location=rows[-1]["layer"])]
    grad = next((r for r in rows if not math.isfinite(r["grad_norm"])), None)
    if grad is not None:
        return [Finding(Severity.FAIL, f"non-finite gradient at init: first at "
                        f"{grad['layer']} (|grad| {grad['grad_norm']})",
                        "the backward pass overflows: He or Glorot init for each layer, "
                        "and a finite loss gradient (diag loss-grad)",
                        location=grad["layer"])]
    return []


DEPTH_LAYERS = 6
"""From this many layers on, the gradient is compared across depth by thirds (medians) and
without the output layer: at init a head's relative gradient is large (its weights are
small: BERT's classifier 0.41 against 2e-5 for attention's query projections, whose
gradient is small at init whatever the depth), so the first layer against the head misreads
a healthy Transformer."""


def _depth_ratio(grads: list[float], names: list[str]) -> tuple[float, str, str]:
    """(early / late relative gradient, what early is, what late is)."""
    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 else (float("inf") if a > 0 else float("nan"))

    if len(grads) < DEPTH_LAYERS:
        return (ratio(grads[0], grads[-1]), f"the first layer {names[0]}",
                f"the last layer's {names[-1]}")
    body, body_names = grads[:-1], names[:-1]
    k = max(1, len(body) // 3)
    early, late = statistics.median(body[:k]), statistics.median(body[-k:])
    return (ratio(early, late),
            f"the first third of the layers ({body_names[0]} .. {body_names[k - 1]}, median)",
            f"the last third's before the output layer ({body_names[-k]} .. "
            f"{body_names[-1]})")


def _judge(rows: list[dict[str, Any]], loss: float, uninformed: float, pred: Tensor,
           yb: Tensor, target: Any, skips: int, options: InitOptions,
           trainable: int = 1) -> CheckResult:
    names = [r["layer"] for r in rows]
    broken = _broken(rows, loss, pred, trainable)
    if broken:
        return CheckResult(NAME, Status.FAIL, broken[0].message, metrics={
            "layers": len(rows), "loss_at_init": _r(loss), "trainable_parameters": trainable,
            "layer_names": ",".join(names)}, findings=tuple(broken),
            series={key: [_r(float(r[key])) for r in rows]
                    for key in ("out_mean", "out_std", "grad_norm")})
    findings: list[Finding] = []
    stds = [r["out_std"] for r in rows]
    grads = [r["grad_ratio"] for r in rows]
    signal_change = stds[-1] / stds[0] if stds[0] > 0 else float("inf")
    grad_change, early, late = _depth_ratio(grads, names)
    credit = (f"; {skips} residual or dense connections did not prevent it" if skips else
              "; no residual or dense connections carry the signal past the stack")
    t, g = options.max_signal_change, options.max_grad_ratio
    deep = len(rows) >= 2
    if deep and math.isfinite(grad_change) and grad_change < 1 / g:
        at = _starts([1 / v if v > 0 else float("inf") for v in grads[::-1]],
                     names[::-1], shrinking=False)
        findings.append(Finding(
            Severity.FAIL, f"vanishing gradient: the relative gradient (|grad| / |weight|) "
            f"of {early} is {grad_change:.2g} times {late} (limit 1/{g:g}); it falls below "
            f"half from {at} down{credit}",
            "use ReLU (or ReLU-6) instead of sigmoid/tanh in the hidden layers, He or "
            "Glorot init, and residual or dense connections so gradients reach the early "
            "layers (the article's tips 3 and 4)", location=at))
    elif deep and (grad_change > g or math.isinf(grad_change)) and grads[0] > 0:
        findings.append(Finding(
            Severity.FAIL, f"exploding gradient: the relative gradient of {early} is "
            f"{grad_change:.3g} times {late} (limit {g:g}){credit}", "scale the init down "
            "(Glorot / He), or add "
            "normalisation", location=names[0]))
    grads_ok = not any(f.severity == Severity.FAIL for f in findings)
    if deep and (signal_change < 1 / t or signal_change > t):
        shrinking = signal_change < 1 / t
        at = _starts(stds, names, shrinking=shrinking)
        steps = [stds[k] / stds[k - 1] if stds[k - 1] > 0 else 1.0 for k in range(1, len(stds))]
        k = (min if shrinking else max)(range(len(steps)), key=steps.__getitem__)
        text = (f"{'vanishing' if shrinking else 'exploding'} signal: the output std "
                f"{'falls' if shrinking else 'grows'} from {stds[0]:.3g} at {names[0]} to "
                f"{stds[-1]:.3g} at {names[-1]} (x{signal_change:.2g}, limit "
                f"{'1/' if shrinking else ''}{t:g}) and stays beyond 2x from {at} on; the "
                f"largest step is x{steps[k]:.2g} at {names[k + 1]}")
        if grads_ok:
            findings.append(Finding(
                Severity.INFO, text + f"; the relative gradients stay within the limit (first/"
                f"last x{grad_change:.2g}), so the early layers still learn"
                + (f", helped by {skips} residual or dense connections" if skips else ""),
                "nothing to fix unless training is slow; He init (ReLU) or normalisation "
                "would keep the std flat", location=at))
        else:
            findings.append(Finding(
                Severity.WARN, text + credit, "use He init for ReLU layers (Glorot for "
                "linear / tanh), or add residual connections or normalisation", location=at))
    for r in rows:
        for key, word, fix in (
                ("dead_fraction", "dead (zero for every sample)",
                 "a large negative bias or a too-large learning rate kills ReLUs: init the "
                 "biases to zero (the article), or use LeakyReLU"),
                ("saturated_fraction", "saturated (the activation's derivative is near zero "
                 "for most samples)", "scale the inputs or the init down (Glorot for tanh "
                 "and sigmoid) so the activation starts in its linear range; prefer ReLU "
                 "(the article)")):
            if r is not rows[0]:
                continue
            hit = [q for q in rows if q[key] is not None and q[key] > DEAD_LIMIT]
            if not hit:
                continue
            # one finding per kind, at the first layer where it starts
            first, frac = hit[0], hit[0][key]
            worst = max(q[key] for q in hit)
            sev = Severity.FAIL if worst >= 1.0 else Severity.WARN
            bias = (f"; its bias averages {first['bias_mean_abs']:.3g} in magnitude"
                    if first["bias_mean_abs"] else "")
            more = (f"; so are {len(hit) - 1} more layers after it (up to {worst:.0%})"
                    if len(hit) > 1 else "")
            findings.append(Finding(
                sev, f"{frac:.0%} of the units after {first['layer']} "
                f"({first['activation']}) are {word}{bias}{more}"
                + ("; no gradient passes" if worst >= 1.0 and key == "dead_fraction" else ""),
                fix, location=first["layer"]))

    classify = bool(target.is_classification) and pred.dim() == 2
    classes = int(pred.shape[1]) if classify else 0
    expected = math.log(classes) if classify and classes > 1 else uninformed
    if math.isfinite(expected) and expected > 0 and loss > LOSS_FACTOR * expected:
        what = (f"ln({classes}) = {expected:.3g}, the loss of a uniform guess" if classify
                else f"{expected:.3g}, the loss of predicting zeros")
        grows = deep and signal_change > t  # the trouble starts early: the init, not the head
        at = _starts(stds, names, shrinking=False) if grows else rows[-1]["layer"]
        findings.append(Finding(
            Severity.WARN, f"loss at init is {loss:.4g}, {loss / expected:.3g}x the expected "
            f"{what}: the outputs are too large at init"
            + (" (the logits are confidently wrong)" if classify else "")
            + (f"; the signal grows x{signal_change:.3g} through the layers, from {at} on"
               if grows else ""),
            ("the init is too large for this depth: He (ReLU) or Glorot (tanh, linear) std "
             "for each layer's fan-in" if grows else
             "scale the last layer's weights down (e.g. x0.01 or zero init) and zero its "
             "bias"), location=at))
    far = [r for r in rows if r["weight_std"] > 0 and min(
        abs(math.log(r["weight_std"] / r["glorot_std"])),
        abs(math.log(r["weight_std"] / r["he_std"]))) > math.log(SCHEME_FACTOR)]
    if far:
        shown = "; ".join(f"{r['layer']} {r['weight_std']:.3g} (Glorot {r['glorot_std']:.3g}, "
                          f"He {r['he_std']:.3g}, closest: {r['closest_scheme']})"
                          for r in far[:3])
        findings.append(Finding(
            Severity.INFO, f"{len(far)} of {len(rows)} layers have a weight std over "
            f"{SCHEME_FACTOR:g}x from both Glorot and He: {shown}"
            + (f"; and {len(far) - 3} more" if len(far) > 3 else ""),
            "intended? PyTorch's default init is neither Glorot nor He, and that is fine; "
            "this flags stds far from all of them", location=far[0]["layer"]))
    bad = [f for f in findings if f.severity in (Severity.FAIL, Severity.WARN)]
    if not bad:
        findings.append(Finding(
            Severity.INFO, f"signal std x{signal_change:.2g} and relative gradient "
            f"x{grad_change:.2g} from {names[0]} to {names[-1]} over {len(rows)} layers"
            + (f"; {skips} residual or dense connections keep them flat" if skips else ""),
            ""))
    status = (Status.FAIL if any(f.severity == Severity.FAIL for f in findings) else
              Status.WARN if bad else Status.PASS)
    worst_dead = max((r["dead_fraction"] or 0.0 for r in rows), default=0.0)
    worst_sat = max((r["saturated_fraction"] or 0.0 for r in rows), default=0.0)
    summary = bad[0].message if bad else (
        f"healthy at step 0: {len(rows)} layers, signal x{signal_change:.2g}, gradient "
        f"x{grad_change:.2g}, loss {loss:.3g} (expected {expected:.3g})")
    metrics: dict[str, Any] = {
        "layers": len(rows), "signal_change": _r(signal_change), "grad_ratio": _r(grad_change),
        "worst_dead_fraction": _r(worst_dead), "worst_saturated_fraction": _r(worst_sat),
        "loss_at_init": _r(loss), "expected_loss": _r(expected),
        "uninformed_loss": _r(uninformed), "skip_connections": skips,
        "batch_size": int(pred.shape[0]) if pred.dim() else 0,
        "layer_names": ",".join(names)}
    series = {key: [_r(float("nan") if r[key] is None else float(r[key])) for r in rows]
              for key in ("out_mean", "out_std", "act_std", "dead_fraction",
                          "saturated_fraction", "weight_std", "glorot_std", "he_std",
                          "bias_mean_abs", "grad_norm", "grad_ratio")}
    return CheckResult(NAME, status, summary, metrics=metrics, findings=tuple(findings),
                       series=series, plot_data={"rows": rows})


def _r(v: float) -> float:
    return float(f"{v:.6g}") if isinstance(v, float) and math.isfinite(v) else v
