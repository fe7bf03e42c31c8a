"""`diag leaks`: do live tensors, bytes or autograd graphs grow per iteration? Where from?

The article counted tf.memory().numTensors every iteration. PyTorch's leaks are references
held too long, often invisible to a count of Python tensor objects: ``total_loss += loss``
keeps every iteration's autograd graph alive through ``total_loss.grad_fn``. The census in
``census.py`` counts tensors, storages, bytes and graph nodes, graph-held ones included,
and remembers the user's file:line where each tensor was made.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from typing import Any, NamedTuple

from diag.checks.leaks import LeaksOptions
from diag.checks.leaks.census import (
    Snapshot,
    TensorCensus,
    describe_holder,
    holder_of,
    untracked_tensors,
)
from diag.checks.leaks.detect import Growth, persistent_growth
from diag.errors import USER_ERRORS, UsageError, make_step, user_code_error
from diag.inputs import Inputs
from diag.result import CheckResult, Finding, Severity, Status

NAME = "leaks"
Progress = Callable[[int, int], None]
StepFactory = Callable[[], Callable[[], object]]


def _defined_at(hook: object) -> str:
    """file:line where a hook function was written (a lambda: the registering line)."""
    code = getattr(hook, "__code__", None)
    return f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}" if code else ""


def _hook_counts(census: TensorCensus) -> dict[str, tuple[int, str]]:
    """Forward/backward hooks per live module (gc scan; taken twice per run, not per step)."""
    import torch
    from torch import nn

    counts: dict[str, tuple[int, str]] = {}
    for obj in census.live(nn.Module):
        hooks = [h for d in (obj._forward_hooks, obj._forward_pre_hooks, obj._backward_hooks,
                             getattr(obj, "_backward_pre_hooks", {}))
                 for h in d.values()]
        if hooks:
            counts[f"{type(obj).__name__}@{id(obj):x}"] = (len(hooks), _defined_at(hooks[-1]))
        # hooks on the module's own tensors: param.register_hook(...) and
        # register_post_accumulate_grad_hook(...) stay on the parameter for good
        for pname, t in list(obj.named_parameters(recurse=False)) + list(
                obj.named_buffers(recurse=False)):
            own = [h for d in (getattr(t, "_backward_hooks", None),
                               getattr(t, "_post_accumulate_grad_hooks", None)) if d
                   for h in d.values()]
            if own:
                counts[f"{type(obj).__name__}.{pname} (tensor)@{id(t):x}"] = (
                    len(own), _defined_at(own[-1]))
    module_mod = torch.nn.modules.module
    glob = sum(len(getattr(module_mod, n, {})) for n in (
        "_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks"))
    if glob:
        counts["global"] = (glob, "")
    return counts


def run(inputs: Inputs, options: LeaksOptions, progress: Progress | None = None
        ) -> CheckResult:
    """Call the step ``iterations`` times, census after each, and judge the trends."""
    if inputs.step is None:
        raise UsageError("leaks needs a step", hint="pass --step SPEC, or --model and --data")
    return _run(inputs.step, options, progress, inputs.step_source)


def _run(step_factory: StepFactory, options: LeaksOptions, progress: Progress | None,
         source: str) -> CheckResult:
    step = make_step(step_factory, "the step factory")
    census = TensorCensus(attribute=False, scan=True)  # phase one: counts, every iteration
    census.begin()
    try:
        run = _iterate(step, census, options, progress)
    finally:
        census.end()  # before describe_holder: gc.get_referrers skips frozen objects
    return _judge(run.snaps, run.site_snaps, options, run.hooks_start, run.hooks_end, source,
                  holder=lambda site: describe_holder(census, site),
                  unseen=_unseen_growth(run.untracked, run.untracked_start, run.post))


class _Run(NamedTuple):
    """What the iterations saw: both phases' snapshots, the hook counts after warm-up and at
    the end, and the tensors made out of the mode's sight (alive at the end, ids of those
    alive at the start, iterations between)."""

    snaps: list[Snapshot]
    site_snaps: list[Snapshot]
    hooks_start: dict[str, tuple[int, str]]
    hooks_end: dict[str, tuple[int, str]]
    untracked: list[Any]
    untracked_start: set[int]
    post: int


def _iterate(step: Callable[[], object], census: TensorCensus, options: LeaksOptions,
             progress: Progress | None) -> _Run:
    """Phase one, then phase two if the counts grow."""
    snaps: list[Snapshot] = []
    hooks_start: dict[str, tuple[int, str]] = {}
    untracked_start: set[int] = set()
    last = options.iterations - 1
    for i in range(options.iterations):
        census.iteration = i
        _call_step(step, census, i)
        if i == last:
            gc.collect()  # cycles awaiting collection are not leaks
        snaps.append(census.take(rss=i in (options.warmup - 1, last)))
        if i == options.warmup - 1:
            hooks_start = _hook_counts(census)
            if not census.scanning:
                untracked_start = {id(t) for t in untracked_tensors(census)}
        if progress is not None:
            progress(i + 1, options.iterations)
    hooks_end = _hook_counts(census)
    # Scanning, phase one counted every tensor; which ones the mode cannot see is known
    # only in phase two, from the scans' finds while it is on (first to last iteration).
    untracked = [] if census.scanning else untracked_tensors(census)
    post = 0 if census.scanning else options.iterations - options.warmup
    site_snaps: list[Snapshot] = []
    if _growing(snaps, options.warmup):
        # phase two: only now, a few more iterations with creation sites on
        census.attribute = True
        for j in range(ATTRIBUTION_ITERATIONS):
            census.iteration = options.iterations + j
            _call_step(step, census, options.iterations + j)
            if j == ATTRIBUTION_ITERATIONS - 1:
                gc.collect()
            site_snaps.append(census.take(with_sites=True))
            if census.scanning and j == 0:
                untracked_start = {id(t) for t in census.unseen()}
        if census.scanning:
            untracked, post = census.unseen(), ATTRIBUTION_ITERATIONS - 1
    return _Run(snaps, site_snaps, hooks_start, hooks_end, untracked, untracked_start, post)


ATTRIBUTION_ITERATIONS = 6
"""Extra iterations with creation sites on, run only when the counts grow."""


def _call_step(step: Callable[[], object], census: TensorCensus, i: int) -> None:
    try:
        with census:
            step()
    except USER_ERRORS as exc:
        raise user_code_error(exc, f"step() at iteration {i + 1}") from None


def _growing(snaps: list[Snapshot], warmup: int) -> bool:
    return any(persistent_growth([float(getattr(s, q) or 0) for s in snaps], warmup).growing
               for q in QUANTITIES + ("cuda_bytes",)
               if q != "cuda_bytes" or all(s.cuda_bytes is not None for s in snaps))


def _unseen_growth(untracked: list[Any], start: set[int], post: int
                   ) -> tuple[float, Finding | None]:
    """Tensors made out of the mode's sight, per iteration, and the finding when they keep
    coming (with an example and what holds it)."""
    added = len(untracked) - len(start)
    per_iter = round(added / max(post, 1), 4)
    if post == 0 or added < max(2, post // 2):
        return per_iter, None
    newest = next(t for t in reversed(untracked) if id(t) not in start)
    held = holder_of(newest, ignore=[untracked])
    return per_iter, Finding(
        Severity.FAIL, f"+{added / post:.3g} tensor/iter made where diag cannot see the call "
        f"(torch.from_numpy, a C++ extension, another thread), e.g. "
        f"{str(newest.dtype).replace('torch.', '')}{list(newest.shape)}"
        + (f", {held}" if held else ""),
        "a container keeps every iteration's tensors: bound it (collections.deque(maxlen=...)),"
        " store .item() / .cpu().numpy() summaries, or clear it", rule="untracked-tensor-growth")


QUANTITIES = ("tensors", "storages", "bytes", "graph_nodes")


def training_step_factory(target: Any, *, batch_size: int = 12, lr: float = 1e-3,
                          seed: int = 0) -> StepFactory:
    """A step from a model, data and loss: the one training loop (diag.train), one batch a
    call. Its model is a fresh copy, so the user's is never touched."""
    from diag.train import Trainer

    def factory() -> Callable[[], object]:
        model = target.make_model()
        trainer = Trainer(model, target.data, target.loss_fn, lr=lr, batch_size=batch_size,
                          seed=seed)
        batches = trainer.batches()

        def step() -> None:
            xb, yb = next(batches)
            trainer.step(xb, yb)

        return step

    return factory


def _judge(snaps: list[Snapshot], site_snaps: list[Snapshot], options: LeaksOptions,
           hooks_start: dict[str, tuple[int, str]], hooks_end: dict[str, tuple[int, str]],
           source: str, holder: Callable[[str], str] = lambda site: "",
           unseen: tuple[float, Finding | None] = (0.0, None)) -> CheckResult:
    """The verdict. ``unseen``: tensors per iteration made out of the mode's sight, and
    their finding when they keep coming (it then stands for the growth with no site)."""
    w = options.warmup
    unseen_per_iter, unseen_finding = unseen
    series: dict[str, list[float]] = {q: [float(getattr(s, q)) for s in snaps]
                                      for q in QUANTITIES}
    # RSS is a secondary signal, and not deterministic: it stays out of the JSON series.
    rss = [s.rss_bytes for s in snaps if s.rss_bytes is not None]
    rss_per_iter = ((rss[-1] - rss[0]) / max(len(snaps) - w, 1)) if len(rss) == 2 else 0.0
    if all(s.cuda_bytes is not None for s in snaps):
        series["cuda_bytes"] = [float(s.cuda_bytes or 0) for s in snaps]
    growth = {q: persistent_growth(v, w) for q, v in series.items()}
    leaking = [q for q in QUANTITIES + ("cuda_bytes",) if q in growth and growth[q].growing]

    findings: list[Finding] = []
    rows, site_findings = _attribute(site_snaps, 0, holder) if site_snaps else ([], [])
    findings.extend(site_findings)
    findings.extend(_hook_findings(hooks_start, hooks_end, options.iterations - w))
    if rss_per_iter > 256 * 1024 and not leaking:
        findings.append(Finding(
            Severity.INFO, "process RSS kept growing while tensors did not (allocator "
            "caching, or objects that are not tensors)",
            "RSS alone is not a leak verdict; watch it over a longer run"))
    if leaking and not site_findings and unseen_finding is None:
        findings.append(Finding(
            Severity.FAIL, "growth with no single creation site in your code: "
            + ", ".join(f"{q} +{growth[q].per_iter:.3g}/iter" for q in leaking),
            "look for tensors kept across iterations (lists, dicts, attributes, closures)"))
    if unseen_finding is not None:
        findings.append(unseen_finding)

    hooks = [f for f in findings if f.message.startswith(HOOKS_ADDED)]
    leak = bool(leaking) or unseen_finding is not None or bool(hooks)
    metrics: dict[str, Any] = {"leak": leak, "iterations": options.iterations,
                               "warmup": w, "attribution_iterations": len(site_snaps)}
    for q in QUANTITIES:
        metrics[f"{q}_per_iter"] = round(growth[q].per_iter, 4)
        metrics[f"{q}_final"] = int(series[q][-1])
    metrics["growing"] = ",".join(leaking)
    if source:
        metrics["step"] = source
    metrics["untracked_tensors_per_iter"] = unseen_per_iter
    if unseen_finding is not None and not (leaking and site_findings):
        summary = (f"leak: +{unseen_per_iter:.3g} tensors/iter after warm-up, made outside "
                   "Python torch calls")
    elif leaking:
        rates = ", ".join(_rate(q, growth[q]) for q in leaking if q != "storages")
        where = f", biggest from {rows[0]['created_at']}" if rows else ""
        summary = f"leak: {rates} after warm-up{where}"
    elif hooks:
        summary = "leak: " + hooks[0].message + (f" at {hooks[0].location}"
                                                 if hooks[0].location else "")
    else:
        summary = (f"no growth in tensors, storages, bytes or graph nodes over "
                   f"{options.iterations - w} iterations after {w} of warm-up "
                   f"({int(series['tensors'][-1])} tensors, "
                   f"{int(series['bytes'][-1]) / 1e6:.2f} MB live)")
    status = Status.FAIL if leak else Status.PASS
    return CheckResult(NAME, status, summary, metrics=metrics, findings=tuple(findings),
                       series=series, plot_data={"warmup": w, "attribution": rows})


def _rate(q: str, g: Growth) -> str:
    if q in ("bytes", "cuda_bytes"):
        return f"+{_human(g.per_iter)}{' CUDA' if q == 'cuda_bytes' else ''}/iter"
    unit = {"tensors": "tensors", "storages": "storages", "graph_nodes": "graph nodes"}[q]
    return f"+{g.per_iter:.3g} {unit}/iter"


def _attribute(snaps: list[Snapshot], warmup: int, holder: Callable[[str], str]
               ) -> tuple[list[dict[str, Any]], list[Finding]]:
    """Creation sites whose live tensors, bytes or graphs keep growing, biggest first."""
    # "": tensors with no site (made before attribution and never touched since, or where
    # the mode cannot see: those are the untracked finding's)
    sites = {name for s in snaps[warmup:] for name in s.sites if name}
    rows = []
    for name in sites:
        stats = [s.sites.get(name) for s in snaps]
        tensors = persistent_growth([st.tensors if st else 0 for st in stats], warmup)
        nbytes = persistent_growth([(st.bytes + st.saved_bytes) if st else 0 for st in stats],
                                   warmup)
        nodes = persistent_growth([st.graph_nodes if st else 0 for st in stats], warmup)
        if not (tensors.growing or nbytes.growing or nodes.growing):
            continue
        last = next(st for st in reversed(stats) if st is not None)
        rows.append((nbytes.per_iter, nodes.per_iter, tensors.per_iter, name, last,
                     tensors, nbytes, nodes))
    rows.sort(key=lambda r: (r[0], r[1], r[2]), reverse=True)
    findings = []
    table: list[dict[str, Any]] = []
    for _b, _n, _t, name, last, tensors, nbytes, nodes in rows[:5]:
        parts = []
        if tensors.growing:
            parts.append(f"+{tensors.per_iter:.3g} tensor/iter")
        if nbytes.growing:
            parts.append(f"+{_human(nbytes.per_iter)}/iter")
        if nodes.growing:
            parts.append(f"+{nodes.per_iter:.3g} graph nodes/iter")
        held = holder(name)
        message = (f"{', '.join(parts)}, {last.example}{f' ({last.op})' if last.op else ''}"
                   f" created at {name}"
                   + (f", {held}" if held else ""))
        hint = _hint(last, tensors, nbytes, nodes)
        findings.append(Finding(Severity.FAIL, message, hint, location=name,
                                rule="tensor-growth"))
        table.append({"created_at": name, "tensor": last.example, "op": last.op,
                      "held": held,
                      "tensors_per_iter": tensors.per_iter if tensors.growing else 0.0,
                      "bytes_per_iter": nbytes.per_iter if nbytes.growing else 0.0,
                      "graph_nodes_per_iter": nodes.per_iter if nodes.growing else 0.0,
                      "hint": hint})
    return table, findings


def _hint(last: Any, tensors: Growth, nbytes: Growth, nodes: Growth) -> str:
    if nodes.growing and last.saved_activations > 0:
        return ("graphs that never ran backward keep their activations alive: wrap "
                "evaluation in torch.no_grad() (or torch.inference_mode()) and accumulate "
                "loss.item()")
    if nodes.growing and last.with_grad_fn and not tensors.growing:
        return ("a tensor accumulated across iterations keeps every iteration's graph alive: "
                "accumulate loss.item() or float(loss), or .detach() it")
    if last.with_grad_fn:
        return ("tensors kept with their autograd graphs: .detach() what you keep, or store "
                "loss.item() / float(loss) for logging")
    return ("a container keeps every iteration's tensors: bound it (collections.deque("
            "maxlen=...)), store .item() / .cpu().numpy() summaries, or clear it")


HOOKS_ADDED = "hooks pile up:"


def _hook_findings(start: dict[str, tuple[int, str]], end: dict[str, tuple[int, str]],
                   post_iters: int) -> list[Finding]:
    """Hooks counted per module and per parameter after warm-up and at the end: a count
    that grows every iteration is a leak even when the hooks hold no tensor (each forward
    or backward then runs one more hook, and gets slower)."""
    findings = []
    for key, (count, where) in end.items():
        before = start.get(key, (0, ""))[0]
        added = count - before
        if post_iters > 0 and added >= max(2, post_iters // 2):
            owner = key.split("@", 1)[0]
            findings.append(Finding(
                Severity.FAIL, f"{HOOKS_ADDED} {added} hooks were added to {owner} during "
                f"{post_iters} iterations ({added / post_iters:.2g}/iter; {count} now): "
                "every forward or backward runs them all, so each step gets slower",
                "register hooks once, or keep the handle and call handle.remove()",
                location=where or owner))
    return findings


def _human(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(nbytes) < 1024 or unit == "GiB":
            return f"{nbytes:.3g} {unit}" if unit != "B" else f"{nbytes:.0f} B"
        nbytes /= 1024
    return f"{nbytes:.3g} GiB"
