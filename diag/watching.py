"""``diag.watch``: the article's checks inside the user's own training loop.

    with diag.watch(model, optimizer, out="reports") as w:
        for x, y in loader:
            loss = loss_fn(model(x), y)
            loss.backward(); optimizer.step(); optimizer.zero_grad()
            w.step(loss)                     # once per optimizer step

Each step it counts live tensors (the leak census's cheap phase one: a scan of the objects
made since the watch began), and when the counts keep growing it records creation sites for
a few steps and reports them with file:line. An optimizer step pre-hook reads the gradients
just before each real step (after AMP's GradScaler has unscaled them; the steps it skips
never call the hook, so they are no findings): a non-finite gradient names its first
parameter, and per-layer norms give vanishing, exploding and dead layers. The LR is read from
the optimizer; the loss curve goes through lr-schedule's detectors every ``every`` steps and
at exit. With ``loader=``, the time spent waiting for the next batch is measured.

A finding is reported once, when first seen, as a ``diag.DiagWarning`` and on the
``diag.watch`` logger; training goes on unless ``raise_on`` says otherwise. A curve warning
(plateau, oscillation) of a mid-run check is reported when the next check sees it too; at
exit the whole curve's verdict replaces the mid-run ones, and a mid-run finding it no longer
shows is kept as INFO. At exit the same report files as the CLI are written
(``watch.json``, ``watch_curve.png``, ``summary.md``); ``w.findings`` and ``w.result`` hold
them in code.

It never changes training: it reads gradients, never writes them; it touches no parameter,
optimizer state or RNG stream (tests/test_watch.py compares weights bitwise with and without
it).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from diag.errors import DiagWarning, UsageError, WatchFailure
from diag.result import CheckResult, Finding, Severity, Status

NAME = "watch"
LOG = logging.getLogger("diag.watch")
ATTRIBUTION_STEPS = 6
"""Steps with creation sites recorded, once the tensor counts grow."""
DEAD_STEPS = 20
"""A parameter whose gradient stays exactly zero this many optimizer steps is dead."""
GROUP_ELEMENTS = 1_000_000
"""Gradient values read per step at most (about): a bigger model is read in turns."""
MAX_GROUPS = 16
SPIKE = 100.0
"""A total gradient norm this many times its recent median is an explosion."""
VANISH = 1e-6
"""A layer whose relative gradient is this far below the largest layer's is vanishing."""
MAX_CENSUS = 300
"""Census counts kept for the growth test (the warm-up's and the most recent ones)."""
MID_RUN_POINTS = 64
"""The curve checks between exits see at most this many bucket means of the loss."""
MIN_RATE = 0.5
"""Live tensors must grow by this many per step (on average) to be a leak of the loop."""
MIN_BYTES = 1024.0
"""...or live bytes by this many per step."""
RECENT = 60
"""Census counts in the recent window that a leak beginning mid-run is judged on."""
GRAPH_EVERY = 10
"""The census walks the autograd graphs every this many steps (tensors: every step)."""
WAIT_WARN = 0.5
"""Waiting for data more than this share of the loop's time is a finding."""


def _value(loss: Any) -> float | None:
    if loss is None:
        return None
    if isinstance(loss, Tensor):
        if loss.numel() != 1:
            raise UsageError(f"w.step() got a tensor of shape {tuple(loss.shape)}",
                             hint="pass the scalar loss of the step (or its .item())")
        return float(loss.detach())
    try:
        return float(loss)
    except (TypeError, ValueError):
        raise UsageError(f"w.step() got a {type(loss).__name__}, not a number",
                         hint="pass the step's loss: a scalar tensor or a float") from None


class Watch:
    """See the module docstring. Create it with ``diag.watch(...)``."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, *,
                 out: str | Path | None = "reports", loader: Any = None, every: int = 50,
                 raise_on: str | None = None, warmup: int = 5, plots: bool = True,
                 census: bool = True) -> None:
        if not isinstance(model, nn.Module):
            raise UsageError(f"diag.watch() needs the model (an nn.Module), got a "
                             f"{type(model).__name__}", hint="diag.watch(model, optimizer)")
        optimizer = _unwrap(optimizer)
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise UsageError(f"diag.watch(): optimizer is a {type(optimizer).__name__}",
                             hint="pass the torch.optim.Optimizer the loop steps, or None")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise UsageError(f"diag.watch(): every={every!r}",
                             hint="a whole number of steps, 1 or more (default 50)")
        if raise_on not in (None, "fail", "warn"):
            raise UsageError(f"diag.watch(): raise_on={raise_on!r}",
                             hint="None (never interrupt), 'fail' or 'warn'")
        self.model, self.optimizer, self.loader = model, optimizer, loader
        self.out = Path(out) if out is not None else None
        self.every, self.raise_on, self.warmup, self.plots = every, raise_on, warmup, plots
        self.findings: list[Finding] = []
        self.result: CheckResult | None = None
        self.steps = 0
        """Calls of step(): optimizer steps of the user's loop."""
        self.loss_steps: list[int] = []
        self.losses: list[float] = []
        self.lrs: list[float | None] = []
        self.val_steps: list[int] = []
        self.val_losses: list[float] = []
        self.tensors: list[int] = []
        self.optimizer_steps = 0
        """Real optimizer steps seen by the pre-hook (AMP's skipped steps are not)."""
        self._use_census = census
        self._census: Any = None
        self._counts: list[float] = []
        self._bytes: list[float] = []
        self._graph_nodes: list[float] = []
        self._site_snaps: list[Any] = []
        self._attributing = 0
        self._leak_reported = False
        self._pending: set[str] = set()
        """Curve warnings the last mid-run check saw first (reported if the next sees them)."""
        self._at: dict[str, tuple[int, int]] = {}
        """Each reported finding's key (a finding is reported once): its index in
        ``findings`` and the step it was seen at."""
        self._params = list(model.named_parameters())
        """Taken once: walking the modules every step costs more than the read itself."""
        self._all_key = tuple(n for n, _ in self._params)
        self._frozen_seen = False
        """A parameter without a gradient was seen: the trained ones are listed each read."""
        self._zero_run: dict[str, int] = {}
        self._norm_history: dict[int, list[float]] = {}
        self._group_key: tuple[str, ...] = ()
        self._group_list: list[list[int]] = []
        self._reads = 0
        self._relative: dict[str, float] = {}
        self._handles: list[Any] = []
        self._loader_class: type | None = None
        self._wait = 0.0
        self._started = 0.0
        self._ended = 0.0
        self._open = False
        self._sparse = False
        """A sparse gradient was seen: norms are read through coalesced values."""
        self._broken: str | None = None
        """The watch's own error that stopped it (training went on unwatched)."""
        self._resumed = False
        """The optimizer had state when the watch began: training was resumed, so a loss
        that starts flat is where training had left it, not a model that cannot learn."""
        self._leak_since = ""
        """Where the reported growth was measured from (the finding says it)."""
        self._leak_growth: Any = None
        """The tensor count's growth that started the site recording (None: bytes or graph
        nodes grew, not the count)."""
        self.own_seconds = 0.0
        """The watch's own time inside the loop (step(), the optimizer hook, the mid-run
        curve checks): with ``loop_seconds``, what watching costs this loop. Timings stay out
        of the JSON report (the same seed gives the same report)."""

    # --- the context ----------------------------------------------------------------------
    def __enter__(self) -> Watch:
        if self._open:
            raise UsageError("this diag.watch is already running", hint="enter it once")
        self._open = True
        # import now what the steps will use: modules imported after the census's start
        # would be young objects that every step's scan walks again
        import numpy.ma  # noqa: F401  (numpy imports it lazily: 1,300 objects)

        import diag.checks.leaks.check
        import diag.checks.leaks.detect
        import diag.checks.lr.check
        import diag.checks.lr.trend
        import diag.report.files  # noqa: F401

        if self._use_census:
            from diag.checks.leaks.census import TensorCensus

            self._census = TensorCensus(attribute=False, scan=True)
            self._census.begin(baseline=False)  # its takes never count what was alive before
            if not self._census.scanning:  # no gc freeze here: phase one by the mode
                self._census.__enter__()
        if self.optimizer is not None:
            # an optimizer with state has stepped before: a resumed run (or fine-tuning)
            self._resumed = any(bool(st) for st in self.optimizer.state.values())
            self._handles.append(self.optimizer.register_step_pre_hook(self._before_step))
        if self.loader is not None:
            self._time_loader(self.loader)
        self._started = time.perf_counter()  # the loop's time, without the census's start
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self.close()
        except WatchFailure:
            if exc_type is None:
                raise

    def close(self) -> CheckResult:
        """Stop watching, run the detectors one last time and write the report files."""
        if not self._open:
            return self.result if self.result is not None else self._build()
        self._open = False
        self._ended = time.perf_counter()
        self._take_down()
        if self._loader_class is not None:
            self.loader.__class__ = self._loader_class
            self._loader_class = None
        try:
            self._analyse_curve(final=True)
        except WatchFailure:
            raise
        except Exception as exc:
            self._stop_watching(exc, "the final curve check")
        self.result = self._build()
        if self.out is not None:
            self._write(self.result)
        return self.result

    # --- what the loop calls --------------------------------------------------------------
    def step(self, loss: Any = None) -> None:
        """Once per optimizer step, with that step's loss (a scalar tensor or a float;
        None when the loss is recorded otherwise, e.g. from a framework's logs)."""
        if not self._open:
            raise UsageError("w.step() outside the watch", hint="call it inside the with block")
        if self._broken:
            self.steps += 1
            return
        start = time.perf_counter()
        try:
            self._step(loss)
        except (UsageError, WatchFailure):
            raise
        except Exception as exc:  # a bug of the watch must not stop the user's training
            self._stop_watching(exc, "w.step()")
        finally:
            self.own_seconds += time.perf_counter() - start

    @property
    def loop_seconds(self) -> float:
        """The loop's time inside the watch so far (or until it closed)."""
        return ((self._ended or time.perf_counter()) - self._started if self._started
                else 0.0)

    def _step(self, loss: Any) -> None:
        self.steps += 1
        if self.optimizer is None:
            self._read_gradients()
        value = _value(loss)
        if value is not None:
            self.record_loss(value)
        if self._census is not None:
            self._take_census(loss if isinstance(loss, Tensor) else None)
        if self.steps % self.every == 0:
            self._analyse_curve(final=False)

    def record_loss(self, value: float, step: int | None = None) -> None:
        """A point of the training curve (``step`` defaults to the current step)."""
        at = self.steps if step is None else int(step)
        self.loss_steps.append(at)
        self.losses.append(float(value))
        self.lrs.append(self._lr())
        if not math.isfinite(value):
            self._report("nonfinite_loss", Finding(
                Severity.FAIL, f"non-finite loss at step {at}: {value}",
                "lower the LR 10x, add gradient clipping (clip_grad_norm_), and look for "
                "log(0), division by zero or sqrt of a negative in the loss",
                location=f"step {at}"))

    def val(self, loss: Any, step: int | None = None) -> None:
        """A point of the validation curve (judged for overfitting at exit)."""
        value = _value(loss)
        if value is not None:
            self.val_steps.append(self.steps if step is None else int(step))
            self.val_losses.append(value)

    # --- gradients, through the optimizer's step pre-hook ---------------------------------
    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._broken:
            return
        start = time.perf_counter()
        try:
            self.optimizer_steps += 1
            self._read_gradients()
        except WatchFailure:
            raise
        except Exception as exc:  # ... nor the optimizer's step
            self._stop_watching(exc, "the optimizer hook")
        finally:
            self.own_seconds += time.perf_counter() - start

    def _stop_watching(self, exc: Exception, where: str) -> None:
        """An error of the watch itself: reported once (ERROR, with the traceback on the
        logger at debug level), the hook and the census taken down, and training goes on
        unwatched; the report covers the steps before it."""
        first = (str(exc).strip().splitlines() or [""])[0]  # (torch's can run to pages)
        self._broken = f"{type(exc).__name__}: {first[:200]}"
        LOG.debug("diag.watch: internal error in %s", where, exc_info=exc)
        try:
            self._take_down()
        except Exception:  # noqa: BLE001  (already broken: the gc state is what matters)
            import gc

            gc.unfreeze()
        self._report("internal", Finding(
            Severity.ERROR, f"stopped watching at step {self.steps} after an "
            f"error of its own in {where}: {self._broken}",
            "training went on unwatched and the report covers the steps before it; please "
            "report this to diag with the traceback (logger 'diag.watch', level DEBUG)"))

    def _take_down(self) -> None:
        """The optimizer hook removed, the census's mode off (when on) and the gc
        unfrozen, once."""
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()
        census, self._census = self._census, None
        self._attributing, attributing = 0, self._attributing
        if census is not None:
            if attributing or not census.scanning:  # the mode is on: off once
                census.__exit__(None, None, None)
            census.end()

    def _groups(self, named: list[tuple[str, nn.Parameter]]) -> list[list[int]]:
        """Parameters split into groups of about GROUP_ELEMENTS values (largest first, each
        to the lightest group): one group is read per step, so a big model's gradients
        cost a fraction of a step. A small model is one group, read every step."""
        total = sum(p.numel() for _, p in named)
        count = max(1, min(MAX_GROUPS, -(-total // GROUP_ELEMENTS)))
        groups: list[list[int]] = [[] for _ in range(count)]
        sizes = [0] * count
        for i in sorted(range(len(named)), key=lambda i: -named[i][1].numel()):
            k = sizes.index(min(sizes))
            groups[k].append(i)
            sizes[k] += named[i][1].numel()
        return [sorted(g) for g in groups if g]

    def _read_gradients(self) -> None:
        params = self._params
        grads = [p.grad for _, p in params]
        if (not self._frozen_seen and len(self._group_list) <= 1
                and all(g is not None for g in grads) and all(p.requires_grad for _, p in params)):
            named = params  # every parameter trained and with a gradient: the usual step
        else:
            named = [(n, p) for n, p in params if p.grad is not None and p.requires_grad]
            self._frozen_seen = self._frozen_seen or len(named) != len(params)
        if not named:
            return
        at = self.steps + 1 if self.optimizer is not None else self.steps
        if named is not self._params:
            key = tuple(n for n, _ in named)
        else:
            key = self._all_key
        if key != self._group_key:
            self._group_key, self._group_list = key, self._groups(named)
        group = self._group_list[self._reads % len(self._group_list)]
        self._reads += 1
        if named is self._params and len(group) == len(named):
            part, part_grads = named, grads
        else:
            part = [named[i] for i in group]
            part_grads = [p.grad for _, p in part]
        with torch.no_grad():  # (no graph is recorded: no detach() needed)
            norms = self._norms(part_grads)
            weights = (_floats(torch._foreach_norm([p for _, p in part]))
                       if (self._reads - 1) // len(self._group_list) % 10 == 0 else None)
        total = math.hypot(*norms)  # inf or NaN when any layer's is
        if not math.isfinite(total):  # name the first one, over all of them
            with torch.no_grad():
                every = self._norms([p.grad for _, p in named])
            bad = next(n for (n, _), v in zip(named, every, strict=True)
                       if not math.isfinite(v))
            self._report("nonfinite_grad", Finding(
                Severity.FAIL, f"non-finite gradient at step {at}, first at {bad}",
                "lower the LR, clip gradients, or use AMP's GradScaler (it skips such "
                "steps); check the loss for log(0) or division by zero", location=bad))
            return
        history = self._norm_history.setdefault(group[0], [])
        if len(history) >= 10 and total > SPIKE * max(recent := statistics.median(history), 1e-30):
            self._report("exploding", Finding(
                Severity.WARN, f"exploding gradient at step {at}: the norm is "
                f"{total:.3g}, {total / recent:.3g}x its recent median",
                "clip gradients (torch.nn.utils.clip_grad_norm_) or lower the LR",
                location=f"step {at}"))
        history.append(total)
        del history[:-20]
        zero_run = self._zero_run
        checks = max(3, -(-DEAD_STEPS // len(self._group_list)))
        # the common case, no all-zero gradient now or before, skips the per-layer loop
        for (name, _), g in (zip(part, norms, strict=True) if zero_run or 0.0 in norms
                             else ()):
            if g != 0:
                zero_run.pop(name, None)
                continue
            run = zero_run[name] = zero_run.get(name, 0) + 1
            if run == checks:
                self._report(f"dead:{name}", Finding(
                    Severity.WARN, f"dead layer: {name} has had an all-zero gradient for "
                    f"{checks * len(self._group_list)} optimizer steps (to step {at})",
                    "dead ReLUs or a detached / unused branch: look at its inputs, or use "
                    "LeakyReLU; if it is frozen on purpose, set requires_grad=False",
                    location=name))
        if weights is None:
            return
        for (name, _), g, w in zip(part, norms, weights, strict=True):
            if w > 0:
                old = self._relative.get(name)
                rel = g / w
                self._relative[name] = rel if old is None else 0.5 * old + 0.5 * rel
        if at >= 20 and len(self._relative) == len(named):
            live = {n: v for n, v in self._relative.items() if v > 0}
            if len(live) >= 2:
                top = max(live.values())
                low = min(live, key=live.__getitem__)
                if live[low] < VANISH * top:
                    self._report("vanishing", Finding(
                        Severity.WARN, f"vanishing gradient: {low}'s relative gradient "
                        f"(|grad| / |weight|, averaged) is {live[low] / top:.2g} of the "
                        "largest layer's", "He or Glorot init, normalisation or residual "
                        "connections; ReLU rather than sigmoid/tanh", location=low))

    def _norms(self, grads: list[Any]) -> list[float]:
        """Each gradient's norm, one fused call; a sparse gradient (an nn.Embedding with
        sparse=True), which the fused norm cannot take, is read through its coalesced
        values (from the first one seen on, every read takes that path)."""
        if not self._sparse:
            try:
                return _floats(torch._foreach_norm(grads))
            except (NotImplementedError, RuntimeError):
                if not any(g.is_sparse for g in grads):
                    raise
                self._sparse = True
        return _floats(torch._foreach_norm(
            [g.coalesce().values() if g.is_sparse else g for g in grads]))

    def _lr(self) -> float | None:
        if self.optimizer is None or not self.optimizer.param_groups:
            return None
        lr: Any = self.optimizer.param_groups[0].get("lr")
        try:
            return float(lr)
        except (TypeError, ValueError):
            return None

    # --- the tensor census ----------------------------------------------------------------
    def _take_census(self, loss: Tensor | None = None) -> None:
        from diag.checks.leaks.detect import persistent_growth

        census = self._census
        census.iteration = self.steps
        if self._attributing:
            self._site_snaps.append(census.take(with_sites=True, baseline=False))
            self._attributing -= 1
            if not self._attributing:
                if census.scanning:  # without the gc freeze the mode was on all along
                    census.__exit__(None, None, None)
                census.attribute = False
                self._attribution_done()
            return
        if self._leak_reported:  # found and named: the census has done its job
            return
        # every step: tensors and bytes; every GRAPH_EVERY steps also the autograd graphs
        # (a running `total += loss` grows the graph, not the tensor count)
        graph = self.steps % GRAPH_EVERY == 0
        # what was alive before cannot grow; the current loss's graph is this step's own
        snap = census.take(graph=graph, baseline=False, skip_root=loss)
        # plain floats: nothing the gc tracks, so the next census scan stays short
        self._counts.append(float(snap.tensors))
        self._bytes.append(float(snap.bytes))
        if len(self._counts) > MAX_CENSUS:  # O(1) memory: the warm-up and the recent past
            cut = slice(self.warmup, self.warmup + len(self._counts) - MAX_CENSUS)
            del self._counts[cut], self._bytes[cut]
        self.tensors.append(int(snap.tensors))
        graph_warmup = -(-self.warmup // GRAPH_EVERY)
        if graph:
            self._graph_nodes.append(float(snap.graph_nodes))
            if len(self._graph_nodes) > graph_warmup + MAX_CENSUS // GRAPH_EVERY:
                # the same span of steps as the counts: a check's cost must not grow with
                # the run (a whole run's points cost 5 ms a check at 100,000 steps)
                del self._graph_nodes[graph_warmup]
        if len(self._counts) < self.warmup + 6 or not graph:
            return  # judged every GRAPH_EVERY steps, on the last MAX_CENSUS counts
        counts, nbytes = self._counts, self._bytes
        tensors, recent = _growth(counts, self.warmup, MIN_RATE)
        size, recent_bytes = _growth(nbytes, self.warmup, MIN_BYTES)
        nodes = (persistent_growth(self._graph_nodes, graph_warmup)
                 if len(self._graph_nodes) >= graph_warmup + 4 else None)
        grows = tensors.growing and tensors.per_iter >= MIN_RATE
        # a leak of the loop grows every step; a framework's cache that gains a tensor now
        # and then (an epoch's metric state) is no such thing
        if not (grows or (size.growing and size.per_iter >= MIN_BYTES)
                or (nodes is not None and nodes.growing
                    and nodes.per_iter >= MIN_RATE * GRAPH_EVERY)):
            return
        if _compiled(self.model):  # the mode must not run under dynamo: no sites then
            self._leak_reported = True
            self._report("leak", Finding(
                Severity.FAIL, f"leak: live tensors grow +{tensors.per_iter:.3g}/step, "
                f"+{size.per_iter:.3g} B/step (creation sites are not recorded around a "
                "torch.compile'd model: watch the uncompiled model to get file:line)",
                "look for tensors kept across steps (lists, dicts, attributes, closures)",
                rule="tensor-growth"))
            return
        # the counts stand still while sites are recorded: the finding uses this growth
        self._leak_growth = tensors if grows else None
        # what the finding says the growth started from: the watch's warm-up, or the recent
        # window's start for a leak that began mid-run
        self._leak_since = (f"over the last {RECENT} steps" if (recent if grows else recent_bytes)
                            else f"since step {self.warmup}")
        census.attribute = True  # phase two: creation sites for a few steps
        census.pause_in_optimizer = False  # a closure may run the forward in step()
        if census.scanning:  # without the gc freeze the mode is already on
            census.__enter__()
        self._attributing = ATTRIBUTION_STEPS

    def _attribution_done(self) -> None:
        from diag.checks.leaks.check import _attribute

        self._leak_reported = True
        rows, found = _attribute(self._site_snaps, 0, lambda site: "")
        growth = self._leak_growth
        if found:
            for f in found:
                self._report(f"leak:{f.location}", Finding(
                    Severity.FAIL, f"leak: {f.message} ({self._leak_since})", f.hint,
                    location=f.location, rule="tensor-growth"))
        elif growth is not None:
            self._report("leak", Finding(
                Severity.FAIL, f"leak: live tensors grow +{growth.per_iter:.3g}/step "
                f"({self._leak_since}) with no single creation site in your code",
                "look for tensors kept across steps (lists, dicts, attributes, closures)",
                rule="tensor-growth"))

    # --- the loss curve -------------------------------------------------------------------
    def _analyse_curve(self, final: bool) -> None:
        from diag.checks.lr.check import analyse

        if len(self.losses) < 5:
            return
        final_keys: set[str] = set()
        seen_now: set[str] = set()
        steps, losses, lrs_seen = (list(self.loss_steps), list(self.losses), list(self.lrs))
        if not final:
            steps, losses, lrs_seen = _coarse(steps, losses, lrs_seen, MID_RUN_POINTS)
        lrs = lrs_seen if all(v is not None for v in lrs_seen) else None
        result = analyse(losses, steps, "step", lrs, None, metric="loss",  # type: ignore[arg-type]
                         kind="train")
        for f in result.findings:
            if self._resumed and f.message.startswith("no learning"):
                f = Finding(
                    Severity.WARN, f"plateau: no progress over the {self.steps} steps "
                    f"watched, at {losses[-1]:.4g} (the optimizer already had state: a "
                    "resumed run, so the loss started where training had left it)",
                    "lower the LR 10x (the article: 0.01 -> 0.001 bought ~0.3 of loss); if a "
                    "validation loss plateaus too, stop training", f.location, rule=f.rule)
            if f.severity in (Severity.FAIL, Severity.WARN):
                key = "curve:" + f.message.split(":", 1)[0]
                finding = Finding(f.severity, f.message, f.hint, f.location, rule=f.rule)
                if not final and f.severity == Severity.WARN and key not in self._at:
                    # a warning of a mid-run check is reported when the next check sees it
                    # too: a short curve's chance verdict (the last 5 steps "flat" at step
                    # 50) does not last; a failure (divergence) is reported at once
                    seen_now.add(key)
                    if key not in self._pending:
                        continue
                if final and key in self._at:  # seen mid-run: the whole run's words now (a
                    # plateau seen at step 300 may be one from step 541 at exit)
                    self.findings[self._at[key][0]] = finding
                final_keys.add(key)
                self._report(key, finding)
        if not final:
            self._pending = seen_now
        if final:  # a curve finding of a mid-run check that the whole curve no longer shows
            # (a plateau the loss left, a rise it recovered from) is history, not advice
            for key, (index, seen) in self._at.items():
                old = self.findings[index]
                if key.startswith("curve:") and key not in final_keys and old.severity in (
                        Severity.FAIL, Severity.WARN):
                    self.findings[index] = dataclasses.replace(
                        old, severity=Severity.INFO,
                        message=f"{old.message} (seen at step {seen}; the whole run's curve "
                                "at exit no longer shows it)")
        if final and len(self.val_losses) >= 5:
            val = analyse(list(self.val_losses), list(self.val_steps), "step",
                          None, None, metric="val_loss", kind="val")
            for f in val.findings:
                if f.severity in (Severity.FAIL, Severity.WARN):
                    self._report("val:" + f.message.split(":", 1)[0], f)
        if final and self.loader is not None:
            elapsed = (self._ended or time.perf_counter()) - self._started
            share = self._wait / elapsed if elapsed > 0 else 0.0
            if share > WAIT_WARN:
                self._report("data_wait", Finding(
                    Severity.WARN, f"the loop waits for data {share:.0%} of the time",
                    "more DataLoader workers (num_workers), pin_memory, or lighter "
                    "augmentation; `diag speed` measures each of them"))

    # --- data waits -----------------------------------------------------------------------
    def _time_loader(self, loader: Any) -> None:
        base = type(loader)
        watch = self

        def __iter__(self: Any) -> Iterator[Any]:  # noqa: N807
            it = base.__iter__(self)
            while True:
                start = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    watch._wait += time.perf_counter() - start
                    return
                watch._wait += time.perf_counter() - start
                yield item

        try:
            timed = type(f"Timed{base.__name__}", (base,), {"__iter__": __iter__})
            loader.__class__ = timed
        except TypeError:  # a loader whose class cannot be swapped: no wait times
            return
        self._loader_class = base

    # --- reporting ------------------------------------------------------------------------
    def _report(self, key: str, finding: Finding) -> None:
        if key in self._at:
            return
        self._at[key] = (len(self.findings), self.steps)
        self.findings.append(finding)
        text = f"diag.watch: {finding.message}" + (f" ({finding.hint})" if finding.hint else "")
        level = logging.ERROR if finding.severity == Severity.FAIL else logging.WARNING
        LOG.log(level, text)
        warnings.warn(text, DiagWarning, stacklevel=4)
        stop = (self.raise_on == "fail" and finding.severity == Severity.FAIL) or (
            self.raise_on == "warn" and finding.severity in (Severity.FAIL, Severity.WARN))
        if stop:
            raise WatchFailure(finding.message)

    def _build(self) -> CheckResult:
        from diag.checks.lr.detect import envelope

        order = {Severity.FAIL: 0, Severity.WARN: 1, Severity.INFO: 2, Severity.ERROR: -1}
        findings = sorted(self.findings, key=lambda f: order.get(f.severity, 3))
        elapsed = ((self._ended or time.perf_counter()) - self._started
                   if self._started else 0.0)
        metrics: dict[str, Any] = {
            "steps": self.steps, "optimizer_steps": self.optimizer_steps,
            "loss_points": len(self.losses), "val_points": len(self.val_losses),
            "first_loss": _round(self.losses[0]) if self.losses else None,
            "final_loss": _round(self.losses[-1]) if self.losses else None,
            "tensors_first": self.tensors[0] if self.tensors else None,
            "tensors_last": self.tensors[-1] if self.tensors else None,
            "lr_first": _round(self.lrs[0]) if self.lrs and self.lrs[0] is not None else None,
            "lr_last": (_round(self.lrs[-1]) if self.lrs and self.lrs[-1] is not None
                        else None),
            "leak": any(f.rule == "tensor-growth" or f.message.startswith("leak")
                        for f in self.findings),
        }
        if self.loader is not None and elapsed > 0:
            metrics["data_wait_fraction"] = round(self._wait / elapsed, 3)
        bad = [f for f in findings
               if f.severity in (Severity.FAIL, Severity.WARN, Severity.ERROR)]
        status = (Status.FAIL if any(f.severity == Severity.FAIL for f in bad) else
                  Status.ERROR if any(f.severity == Severity.ERROR for f in bad) else
                  Status.WARN if bad else Status.PASS)
        if bad:  # the finding that sets the status (a failure of training before an error)
            summary = next(f.message for f in bad if f.severity.value == status.value)
        elif self.losses:
            summary = (f"healthy: {self.steps} steps, loss {self.losses[0]:.4g} -> "
                       f"{self.losses[-1]:.4g}; no leak, no non-finite value, no dead or "
                       "exploding layer")
        else:
            summary = f"{self.steps} steps watched, no loss recorded; nothing found"
        keep = envelope(self.losses, 2000)
        series = {"loss": [_round(self.losses[i]) for i in keep],
                  "loss_step": [float(self.loss_steps[i]) for i in keep],
                  "tensors": [float(v) for v in self.tensors]}
        if self.val_losses:
            series["val_loss"] = [_round(v) for v in self.val_losses]
            series["val_step"] = [float(s) for s in self.val_steps]
        return CheckResult(NAME, status, summary, metrics=metrics, findings=tuple(findings),
                           series=series, duration_s=round(elapsed, 3))

    def _write(self, result: CheckResult) -> None:
        from diag.report.files import write_check, write_summary

        assert self.out is not None
        self.out.mkdir(parents=True, exist_ok=True)
        if self.plots and result.series.get("loss"):
            path = self.out / f"{NAME}_curve.png"
            _figure(result).savefig(path, format="png")
            result = result.replace(artifacts=(str(path),))
        self.result = write_check(result, self.out, plots=False)
        write_summary([self.result], self.out)


def _coarse(steps: list[int], values: list[float], lrs: list[float | None], points: int
            ) -> tuple[list[int], list[float], list[float | None]]:
    """At most ``points`` bucket means of the curve (each bucket's last step and LR; a
    NaN stays a NaN), for the cheap checks between the full ones."""
    n = len(values)
    if n <= points:
        return steps, values, lrs
    edges = [round(i * n / points) for i in range(points + 1)]
    out_s, out_v, out_l = [], [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b <= a:
            continue
        chunk = values[a:b]
        out_s.append(steps[b - 1])
        out_v.append(sum(chunk) / len(chunk))
        out_l.append(lrs[b - 1])
    return out_s, out_v, out_l


def _growth(values: list[float], warmup: int, rate: float) -> tuple[Any, bool]:
    """``persistent_growth`` over the census's window, or, when that is not growth of
    ``rate`` a step, over its last RECENT counts: a leak that begins mid-run is otherwise
    judged only once it fills half the window (its flat start holds the robust slope
    down)."""
    from diag.checks.leaks.detect import Growth, persistent_growth

    post = values[warmup:]
    if post and max(post) - min(post) < rate:
        # a least-squares slope is at most the range of the values per step: no growth of
        # ``rate`` a step, in the whole window or any part (a clean loop's flat counts)
        return Growth(False, 0.0, post[-1] - post[0]), False
    whole = persistent_growth(values, warmup)
    if (whole.growing and whole.per_iter >= rate) or len(values) - warmup <= RECENT:
        return whole, False
    recent = persistent_growth(values[-RECENT:])
    return (recent, True) if recent.growing and recent.per_iter >= rate else (whole, False)


def _floats(norms: Any) -> list[float]:
    """One float per norm. On the CPU read one by one (cheaper than a stack and a list);
    on an accelerator stacked first, so that the read is one device sync, not one each."""
    if not norms or norms[0].device.type == "cpu":
        return [n.item() for n in norms]
    return torch.stack([n.float().to(norms[0].device) for n in norms]).tolist()


def _compiled(model: nn.Module) -> bool:
    """A torch.compile'd module (or one holding one): dynamo must not meet our mode."""
    return any(hasattr(m, "_orig_mod") for m in model.modules()) or hasattr(model, "_orig_mod")


def _unwrap(optimizer: Any) -> Any:
    """The torch optimizer inside a framework's wrapper (accelerate's AcceleratedOptimizer,
    Lightning's LightningOptimizer): the one whose step() and param_groups are real."""
    for _ in range(4):
        inner = getattr(optimizer, "optimizer", None) or getattr(optimizer, "_optimizer", None)
        if not isinstance(inner, torch.optim.Optimizer) or inner is optimizer:
            break
        optimizer = inner
    return optimizer


def _round(v: float) -> float:
    return v if not math.isfinite(v) or v == 0 else float(f"{v:.6g}")


def _figure(result: CheckResult) -> Any:
    from diag.report.figures import new_figure

    fig = new_figure(8.0, 4.5)
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(result.series["loss_step"], result.series["loss"], label="training loss")
    if result.series.get("val_loss"):
        ax.plot(result.series["val_step"], result.series["val_loss"], "o-", label="validation")
        ax.legend()
    ax.set_title("Loss during the watched run")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (the loop's own units)")
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.plot(range(1, len(result.series["tensors"]) + 1), result.series["tensors"])
    ax2.set_title("Live tensors (census)")
    ax2.set_xlabel("optimizer step")
    ax2.set_ylabel("tensors alive (count)")
    fig.tight_layout()
    return fig
