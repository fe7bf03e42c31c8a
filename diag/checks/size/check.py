"""`diag size`: the size table, the separable-conv savings, quantization measured on data,
the layer that hurts most, the verdict, and (with ``export``) weight files that round-trip.

Quantization follows the tfjs converter (per-tensor affine uint8 / uint16 with min and
scale stored beside the data; see ``diag.model.weights``): each weight tensor is quantized,
dequantized, and the model is run on the data in fp32 and in each precision.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from diag.checks.size import SizeOptions, parse_size
from diag.errors import USER_ERRORS, UsageError, user_code_error
from diag.inputs import Inputs
from diag.model.weights import quantize
from diag.report.units import human_bytes
from diag.result import CheckResult, Finding, Severity, Status

NAME = "size"
LAYER_SAMPLES = 8
"""Samples the per-layer quantization error (which layer hurts most) is measured on."""
QUANT_HEADER = 8
"""Bytes stored beside each quantized tensor: its min and scale (two float32)."""
DEFAULT_MAX_ERROR = {"landmarks": 0.5, "classify": 0.01, "regression": 0.01}
def layer_table(model: nn.Module) -> list[dict[str, Any]]:
    """One row per module that owns parameters or persistent buffers: what is saved, each
    storage once (a weight tied to another layer's is counted at the first, and named as
    shared at the second); buffers at their own dtype, never quantized."""
    rows = []
    seen: dict[tuple[int, int, tuple[int, ...], tuple[int, ...]], str] = {}
    for name, module in model.named_modules():
        label = name or type(module).__name__
        own, shared = [], []
        for p in module.parameters(recurse=False):
            key = storage_key(p)
            if key in seen:
                shared.append(seen[key])
            else:
                seen[key] = label
                own.append(p)
        buffers = []
        for bname, b in module.named_buffers(recurse=False):
            if bname in module._non_persistent_buffers_set or b is None:
                continue
            key = storage_key(b)
            if key not in seen:
                seen[key] = label
                buffers.append(b)
        if not own and not buffers and not shared:
            continue
        params = sum(p.numel() for p in own)
        buffer_bytes = sum(b.numel() * b.element_size() for b in buffers)
        rows.append({"layer": label, "type": type(module).__name__,
                     "params": params, "tensors": len(own), "buffer_bytes": buffer_bytes,
                     "fp32_bytes": 4 * params + buffer_bytes,
                     "uint16_bytes": 2 * params + QUANT_HEADER * len(own) + buffer_bytes,
                     "uint8_bytes": params + QUANT_HEADER * len(own) + buffer_bytes,
                     "shared_with": ", ".join(shared)})
    total = sum(r["params"] for r in rows) or 1
    for r in rows:
        r["share"] = r["params"] / total
    return rows


def storage_key(t: Tensor) -> tuple[int, int, tuple[int, ...], tuple[int, ...]]:
    """The same key for tensors that are one storage viewed alike (tied weights)."""
    return (t.untyped_storage().data_ptr(), int(t.storage_offset()), tuple(t.shape),
            tuple(t.stride()))


def untied_heads(model: nn.Module) -> list[tuple[str, str, int]]:
    """(head, embedding, bytes) for each Linear whose weight has an Embedding's shape but
    its own storage: an output head that could share the input embedding's weights."""
    embeddings = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Embedding)]
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    out = []
    for name, m in linears[-1:]:  # the output head: the last Linear
        for ename, emb in embeddings:
            if (tuple(m.weight.shape) == tuple(emb.weight.shape)
                    and storage_key(m.weight) != storage_key(emb.weight)):
                out.append((name, ename, 4 * m.weight.numel()))
    return out


def non_persistent_buffers(model: nn.Module) -> list[tuple[str, int]]:
    """Buffers that are not saved (``register_buffer(..., persistent=False)``), with bytes."""
    out = []
    for mname, module in model.named_modules():
        for bname, b in module.named_buffers(recurse=False):
            if bname in module._non_persistent_buffers_set and b is not None:
                out.append((f"{mname}.{bname}" if mname else bname,
                            b.numel() * b.element_size()))
    return out


def separable_savings(model: nn.Module) -> list[dict[str, Any]]:
    """Every standard k x k convolution (k >= 3) past the first as a depthwise-separable
    pair: 9*cin + cin*cout + cout parameters instead of 9*cin*cout + cout (for k = 3)."""
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    out = []
    for i, (name, conv) in enumerate(convs):
        k = conv.kernel_size[0] * conv.kernel_size[1]
        if i == 0 or conv.groups != 1 or min(conv.kernel_size) < 3:
            continue  # the article keeps a standard conv for the first layer only
        cin, cout = conv.in_channels, conv.out_channels
        bias = cout if conv.bias is not None else 0
        now = conv.weight.numel() + bias
        separable = k * cin + cin * cout + bias
        if separable < now:
            out.append({"layer": name, "params": now, "separable_params": separable,
                        "saving_bytes": 4 * (now - separable)})
    return out


def _quantize_(params: Any, dtype: str) -> None:
    """Quantize and dequantize these parameters in place (each storage once)."""
    with torch.no_grad():
        for p in params:
            arr = p.detach().cpu().numpy()
            p.copy_(torch.from_numpy(quantize(arr, dtype).decode().reshape(arr.shape)))


def _quantized_copy(model: nn.Module, dtype: str) -> nn.Module:
    """A copy with its weight tensors quantized and dequantized."""
    q = copy.deepcopy(model)
    _quantize_(q.parameters(), dtype)
    return q


def _outputs_with_layer_quantized(model: nn.Module, layer: str, x: Tensor) -> Tensor:
    """The outputs with one layer's own weights quantized to uint8 in place, then put back
    bit for bit: no copy of the whole model per layer (25 M parameters: 20 copies of
    100 MB were most of the check's time)."""
    module = model.get_submodule(layer)
    saved = [(p, p.detach().clone()) for p in module.parameters(recurse=False)]
    try:
        _quantize_([p for p, _ in saved], "uint8")
        return _outputs(model, x)
    finally:
        with torch.no_grad():
            for p, original in saved:
                p.copy_(original)


def _outputs(model: nn.Module, x: Tensor) -> Tensor:
    model.eval()
    with torch.no_grad():
        try:
            out = model(x)
        except USER_ERRORS as exc:
            raise user_code_error(exc, "the model's forward") from None
    if not isinstance(out, Tensor):
        raise UsageError(f"the model returned a {type(out).__name__}, not a tensor",
                         hint="return the prediction tensor from forward()")
    return out.detach().float()


def _error(kind: str, ref: Tensor, out: Tensor, px: int) -> dict[str, float]:
    """What a user cares about, per kind of model."""
    if kind == "landmarks":
        err = ((out - ref).reshape(len(ref), -1, 2) * px).norm(dim=-1)
        return {"error": float(err.mean()), "max_px": float(err.max())}
    if kind == "classify":  # classes on the last axis: (N, C) or per token (N, T, V)
        agree = float((out.argmax(-1) == ref.argmax(-1)).float().mean())
        prob = float((out.softmax(-1) - ref.softmax(-1)).abs().max())
        return {"error": 1.0 - agree, "top1_agreement": agree, "max_prob_change": prob}
    diff = (out - ref).abs()
    rel = float(diff.max() / ref.abs().max().clamp_min(1e-12))
    return {"error": rel, "max_abs_change": float(diff.max())}


def run(inputs: Inputs, options: SizeOptions, progress: Any = None) -> CheckResult:
    target = inputs.target
    budget = parse_size(options.max_size)  # validated with the options: a size > 0
    model = target.make_model()
    model.eval()
    rows = layer_table(model)
    params = sum(r["params"] for r in rows)
    tensors = sum(r["tensors"] for r in rows)
    sizes = {k: sum(r[k] for r in rows) for k in ("fp32_bytes", "uint16_bytes", "uint8_bytes")}
    buffer_bytes = sum(r["buffer_bytes"] for r in rows)
    unsaved = non_persistent_buffers(model)
    tied = [r for r in rows if r["shared_with"]]
    data = target.data
    x = data.x[:48]
    kind = ("landmarks" if target.task == "landmarks" else
            "classify" if data.is_classification or data.is_sequence else "regression")
    px = int(x.shape[-1]) if x.dim() == 4 else 1
    # a forward may keep state (an LSTM LM's carried hidden state): every comparison starts
    # from this copy of the model as built, never from one that has already run
    snapshot = copy.deepcopy(model)
    ref = _outputs(model, x)  # its first run: the same start as the snapshot's
    if kind == "classify" and ref.dim() != 2 and not data.is_sequence:
        kind = "regression"
    max_error = options.max_error if options.max_error is not None else DEFAULT_MAX_ERROR[kind]
    errors = {dt: _error(kind, ref, _outputs(_quantized_copy(snapshot, dt), x), px)
              for dt in ("uint16", "uint8")}
    # which layer hurts most when it alone is quantized (uint8): one pass per layer
    # the ranking of layers needs fewer samples than the verdict: a forward per layer on 8
    # (a 25 M ResNet: 25 forwards of 32 samples were 14 of the check's 17 s)
    few = x[:LAYER_SAMPLES]
    stateful = not torch.equal(_outputs(model, few), _outputs(model, few))
    ref_few = _outputs(copy.deepcopy(snapshot), few) if stateful else ref[:LAYER_SAMPLES]
    per_layer = {r["layer"]: _error(kind, ref_few, _outputs_with_layer_quantized(
        # a stateful model is copied per layer (slower); else quantized in place and restored
        copy.deepcopy(snapshot) if stateful else model,
        r["layer"] if r["layer"] != type(model).__name__ else "", few), px)["error"]
        for r in rows}
    worst = max(per_layer, key=per_layer.__getitem__) if per_layer else ""
    savings = separable_savings(model)

    unit = {"landmarks": "px", "classify": "(1 - top-1 agreement)",
            "regression": "(relative change)"}[kind]
    findings: list[Finding] = []
    over = sizes["fp32_bytes"] > budget
    err = errors[options.precision]["error"]
    if over:
        findings.append(Finding(
            Severity.FAIL, f"the fp32 weights are {human_bytes(sizes['fp32_bytes'])}, over the "
            f"{human_bytes(budget)} budget (uint8 would be {human_bytes(sizes['uint8_bytes'])})",
            "quantize the weights, use depthwise-separable convolutions, or shrink the "
            "largest layers",
            location=str(max(rows, key=lambda r: r["params"])["layer"]) if rows else ""))
    if err > max_error:
        findings.append(Finding(
            Severity.FAIL if not (options.precision == "uint8"
                                  and errors["uint16"]["error"] <= max_error)
            else Severity.WARN,
            f"{options.precision} quantization costs {err:.3g} {unit} on the data (budget "
            f"{max_error:g}); uint16 costs {errors['uint16']['error']:.3g}",
            f"keep {worst} at higher precision (it alone costs {per_layer[worst]:.3g} "
            f"{unit} in uint8)" + ("; ship uint16" if errors["uint16"]["error"] <= max_error
                                  else ""), location=worst))
    if stateful:
        findings.append(Finding(
            Severity.INFO, "the forward keeps state between calls (two eval calls on the same "
            "input differ): each comparison here starts from a copy of the model as built",
            "if it should not carry state in eval (a hidden state kept on self), reset it"))
    largest = sorted(rows, key=lambda r: r["params"], reverse=True)[:3]
    findings.append(Finding(
        Severity.INFO, "largest layers: " + ", ".join(
            f"{r['layer']} ({r['params']:,} params, {r['share']:.0%})" for r in largest), ""))
    if savings:
        total_saving = sum(s["saving_bytes"] for s in savings)
        findings.append(Finding(
            Severity.INFO, f"{len(savings)} standard convolutions past the first could be "
            f"depthwise-separable, saving {human_bytes(total_saving)} in fp32 (e.g. "
            f"{savings[0]['layer']}: {savings[0]['params']:,} -> "
            f"{savings[0]['separable_params']:,} params)",
            "the article keeps a standard conv for the first layer only"))
    untied = untied_heads(model)
    if untied:
        head, emb, nbytes = untied[0]
        findings.append(Finding(
            Severity.INFO, f"{head} has the shape of the embedding {emb} but weights of its "
            f"own ({human_bytes(nbytes)} in fp32): language models usually tie them",
            f"tie them ({head}.weight = {emb}.weight) unless you mean them apart; it saves "
            f"{human_bytes(nbytes)}", location=head))
    if tied:
        findings.append(Finding(
            Severity.INFO, "shared weights counted once: " + ", ".join(
                f"{r['layer']} uses {r['shared_with']}'s" for r in tied[:4]), ""))
    if buffer_bytes or unsaved:
        findings.append(Finding(
            Severity.INFO, f"persistent buffers: {human_bytes(buffer_bytes)} (saved, counted "
            "in the size, never quantized)" + (
                "; not saved (persistent=False): " + ", ".join(
                    f"{n} ({human_bytes(b)})" for n, b in unsaved[:4]) if unsaved else ""),
            ""))
    metrics: dict[str, Any] = {"params": params, "tensors": tensors, **sizes,
                               "buffer_bytes": buffer_bytes,
                               "non_persistent_buffer_bytes": sum(b for _, b in unsaved),
                               "max_size_bytes": budget, "precision": options.precision,
                               "error_kind": kind, "max_error": max_error,
                               "stateful_forward": stateful,
                               "uint16_error": round(errors["uint16"]["error"], 6),
                               "uint8_error": round(errors["uint8"]["error"], 6),
                               "worst_layer": worst,
                               "worst_layer_uint8_error": round(per_layer.get(worst, 0.0), 6),
                               "separable_saving_bytes": sum(s["saving_bytes"]
                                                             for s in savings)}
    for dt in ("uint16", "uint8"):
        for k, v in errors[dt].items():
            if k != "error":
                metrics[f"{dt}_{k}"] = round(v, 6)
    if options.export:
        from diag.checks.size.export import export_and_verify

        try:
            metrics.update(export_and_verify(snapshot, options.export, x, ref, kind,
                                             options.precision))
        except OSError as exc:
            raise UsageError(f"--export {options.export}: cannot write ({exc.strerror})",
                             hint="pick a writable folder") from None
        if not (metrics["safetensors_bitwise_equal"] and metrics["tfjs_fp32_bitwise_equal"]
                and metrics["tfjs_quantized_equal"]):
            findings.insert(0, Finding(Severity.FAIL, "the exported weights do not load back "
                                       "to the same outputs", "please report this"))
        else:
            findings.append(Finding(
                Severity.INFO, f"exported to {options.export}: safetensors and tfjs "
                f"(fp32 and {options.precision}) load back to the same outputs (fp32 "
                "bitwise, quantized equal to the quantization in memory)", ""))

    failed = any(f.severity == Severity.FAIL for f in findings)
    status = Status.FAIL if failed else (
        Status.WARN if any(f.severity == Severity.WARN for f in findings) else Status.PASS)
    top = next((f for f in findings if f.severity in (Severity.FAIL, Severity.WARN)), None)
    summary = top.message if top else (
        f"{params:,} params: {human_bytes(sizes['fp32_bytes'])} fp32, "
        f"{human_bytes(sizes['uint8_bytes'])} uint8 (budget {human_bytes(budget)}); "
        f"{options.precision} costs {err:.3g} {unit}")
    faces: dict[str, Any] = {}
    if kind == "landmarks" and x.dim() == 4 and ref.shape[-1] % 2 == 0:
        from diag.model.pipeline import display_images

        shown = min(4, len(x))
        images = display_images(x[:shown], target.default_model)
        q8 = _outputs(_quantized_copy(model, "uint8"), x[:shown])
        if images is not None:
            faces = {"images": images,
                     "points_fp32": (ref[:shown].reshape(shown, -1, 2) * px).numpy(),
                     "points_uint8": (q8.reshape(shown, -1, 2) * px).numpy()}
    plot_data = {"rows": rows, "errors": errors, "per_layer": per_layer, "faces": faces,
                 "largest": _histogram(model, largest[0]["layer"]) if largest else None}
    return CheckResult(NAME, status, summary, metrics=metrics, findings=tuple(findings),
                       plot_data=plot_data)


def _histogram(model: nn.Module, layer: str) -> dict[str, Any]:
    module = model.get_submodule(layer) if layer and layer != type(model).__name__ else model
    weights = np.concatenate([p.detach().cpu().numpy().ravel()
                              for p in module.parameters(recurse=False)])
    q = quantize(weights, "uint8")
    levels = q.minimum + q.scale * np.arange(256)
    return {"layer": layer, "weights": weights, "levels": levels}

