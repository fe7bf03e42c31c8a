"""Overhead of diag.watch inside a training loop: the same loop with and without the watch,
interleaved (A B A' A B A' ...: A' is the plain loop again, an A/A comparison that shows
this machine's noise), median of 5 rounds each, on the browser net's loop and on a
ResNet-18 step on CPU (torchvision's layout, written out: its registry build does not load
here). The watch's curve diagnosis every K steps (every=50), its start (a scan of the live
objects) and its end (the final diagnosis) are inside the timed part, so each round is a
few hundred steps: a watch lives a whole training.

Run: python benchmarks/bench_watch.py [--quick]
     python benchmarks/bench_watch.py --long   (a 20,000-step loop that keeps a list a step)
     python benchmarks/bench_watch.py --parts  (the browser net's overhead taken apart)
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def resnet18(classes: int = 10) -> nn.Module:
    """torchvision's resnet18: a 7x7 stem, four stages of two BasicBlocks (64-512), with the
    tests' BasicBlock (written as torchvision's)."""
    from architectures import BasicBlock

    layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                               nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for i, cout in enumerate((64, 128, 256, 512)):
        layers += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes))


def browser_loop() -> tuple[Callable[[Any], None], Any, Any]:
    from diag.inputs.target import build_target

    target = build_target(input_size=48, samples=48)
    torch.manual_seed(0)
    model = target.make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = target.data.x, target.data.y

    def step(w: Any) -> None:
        for i in range(0, 48, 12):
            loss = target.loss_fn(model(x[i:i + 12]), y[i:i + 12])
            loss.backward()
            opt.step()
            opt.zero_grad()
            if w is not None:
                w.step(loss)

    return step, model, opt


def resnet_loop() -> tuple[Callable[[Any], None], Any, Any]:
    torch.manual_seed(0)
    model = resnet18()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(8, 3, 64, 64), torch.randint(0, 10, (8,))

    def step(w: Any) -> None:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if w is not None:
            w.step(loss)

    return step, model, opt


def measure(name: str, make: Callable[[], tuple[Callable[[Any], None], Any, Any]],
            steps: int, rounds: int) -> float:
    """The issue's measure: ``rounds`` rounds, each the plain loop, the watched one (a
    fresh watch: its start and end inside the timed part), then the plain loop again;
    median of each side. The second plain loop against the first (an A/A comparison: the
    same work on both sides) is the noise floor of this machine for this measure: a watched
    ratio within it is not told apart from 1."""
    import diag

    step, model, opt = make()
    step(None)  # warm-up: lazy optimizer state, allocator
    plain, watched, again, own = [], [], [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step(None)
        plain.append(time.perf_counter() - start)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = diag.watch(model, opt, out=None, every=50)
            start = time.perf_counter()
            with w:
                for _ in range(steps):
                    step(w)
            watched.append(time.perf_counter() - start)
            own.append(w.own_seconds / w.loop_seconds)
        start = time.perf_counter()
        for _ in range(steps):
            step(None)
        again.append(time.perf_counter() - start)
    a, b, c = statistics.median(plain), statistics.median(watched), statistics.median(again)
    print(f"{name:28} plain {a / steps * 1e3:8.2f} ms/loop, watched {b / steps * 1e3:8.2f} "
          f"ms/loop: {b / a:.3f}x (median of {rounds}, interleaved); the same plain loop "
          f"again {c / a:.3f}x (A/A: the noise); the watch's own time "
          f"{statistics.median(own):.1%} of the watched loop")
    return b / a


def paired(name: str, make: Callable[[], tuple[Callable[[Any], None], Any, Any]],
           block: int, pairs: int) -> None:
    """The same comparison, robust to a shared machine's drift: one watch lives through the
    whole run (as in a training); ``pairs`` times a block of plain loops then a block of
    watched loops right after it, the watch switched off between its blocks (hook removed,
    no step() calls: the loop is then the plain one). The ratio of each adjacent pair is
    taken, and their median; the watch's start and end are timed apart (paid once per
    training)."""
    import diag

    step, model, opt = make()
    step(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = diag.watch(model, opt, out=None, every=50)
        t0 = time.perf_counter()
        w.__enter__()
        entered = time.perf_counter() - t0
        hooks = list(w._handles)
        ratios, own0 = [], 0.0
        for _ in range(pairs):
            for h in hooks:
                h.remove()
            start = time.perf_counter()
            for _ in range(block):
                step(None)
            plain = time.perf_counter() - start
            w._handles = [opt.register_step_pre_hook(w._before_step)]
            hooks = w._handles
            own0 = w.own_seconds
            start = time.perf_counter()
            for _ in range(block):
                step(w)
            watched = time.perf_counter() - start
            ratios.append(watched / plain)
        t0 = time.perf_counter()
        w.__exit__(None, None, None)
        exited = time.perf_counter() - t0
    ratios.sort()
    q1, q3 = ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]
    whole = w.own_seconds / max(w.loop_seconds, 1e-9)
    last = (w.own_seconds - own0) / watched
    print(f"{name:28} paired blocks of {block} loops x {pairs}: median "
          f"{statistics.median(ratios):.3f}x (quartiles {q1:.3f}-{q3:.3f}); the watch's own "
          f"time {whole:.1%} of its loop time (last block {last:.1%}); start "
          f"{entered * 1e3:.0f} ms and end {exited * 1e3:.0f} ms, once per training")


def long_run(steps: int = 20_000, every: int = 5_000) -> None:
    """A long loop that keeps a Python list a step (a metrics log): the watch's own time per
    step, per segment of ``every`` steps, with the census's refreezing (diag's default) and
    with it off (REFREEZE_AT out of reach: every kept object is scanned again each step).
    The same loop both ways, one after the other; the figure is each segment's own time."""
    import diag
    from diag.checks.leaks.census import TensorCensus

    default = TensorCensus.REFREEZE_AT
    for label, at in (("refreezing (default)", default), ("no refreezing", 10**12)):
        TensorCensus.REFREEZE_AT = at
        torch.manual_seed(0)
        model = nn.Linear(8, 1)
        opt = torch.optim.SGD(model.parameters(), lr=1e-2)
        x, y = torch.randn(16, 8), torch.randn(16, 1)
        log: list[list[float]] = []
        seen, marks = 0.0, []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with diag.watch(model, opt, out=None, every=10**9) as w:
                for i in range(1, steps + 1):
                    loss = F.mse_loss(model(x), y)
                    loss.backward()
                    opt.step()
                    opt.zero_grad()
                    log.append([float(i), loss.item()])  # kept: a gc-tracked list a step
                    w.step(loss)
                    if i % every == 0:
                        marks.append(f"{(w.own_seconds - seen) / every * 1e3:.2f}")
                        seen = w.own_seconds
        print(f"long loop keeping a list a step, {label:22}: the watch's own ms/step per "
              f"{every} steps: {' '.join(marks)}")
    TensorCensus.REFREEZE_AT = default


def parts(rounds: int = 7, steps: int = 150, block: int = 25, turns: int = 12) -> None:
    """The browser net's overhead taken apart. (1) The issue's measure with the watch's
    start and end timed apart: the watched ratio, its own time, its end, and the watched
    loop less the watch's own time against the plain loop (what the watch's work costs the
    user's own code, such as the caches it evicts). (2) The same loop with one part of the
    watch switched off at a time, in turns (a fresh watch per block, its start and end
    untimed): each part's own time per step and the loop's ratio."""
    import logging

    import diag

    logging.getLogger("diag.watch").setLevel(logging.ERROR)
    step, model, opt = browser_loop()
    step(None)
    plain, watched, again, enter, leave, loop, own = [], [], [], [], [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(rounds):
            t = time.perf_counter()
            for _ in range(steps):
                step(None)
            plain.append(time.perf_counter() - t)
            w = diag.watch(model, opt, out=None, every=50)
            t0 = time.perf_counter()
            w.__enter__()
            t1 = time.perf_counter()
            for _ in range(steps):
                step(w)
            t2 = time.perf_counter()
            w.__exit__(None, None, None)
            t3 = time.perf_counter()
            watched.append(t3 - t0)
            enter.append(t1 - t0)
            loop.append(t2 - t1)
            leave.append(t3 - t2)
            own.append(w.own_seconds)
            t = time.perf_counter()
            for _ in range(steps):
                step(None)
            again.append(time.perf_counter() - t)
    m = statistics.median
    p = m(plain)
    print(f"browser net, {steps} loops of 4 steps, median of {rounds}: watched "
          f"{m(watched) / p:.3f}x (A/A {m(again) / p:.3f}x); its own time {m(own) / p:.1%}, "
          f"its start {m(enter) * 1e3:.1f} ms, its end {m(leave) * 1e3:.1f} ms "
          f"({m(leave) / p:.1%}); the watched loop less its own time "
          f"{(m(loop) - m(own)) / p:.3f}x")

    def variant(kind: str) -> tuple[float, float]:
        if kind == "plain":
            t = time.perf_counter()
            for _ in range(block):
                step(None)
            return time.perf_counter() - t, 0.0
        w = diag.watch(model, opt, out=None, every=10**9 if kind == "no curve checks" else 50,
                       census=kind != "no census")
        if kind in ("no gradient read", "hooks only"):
            w._read_gradients = lambda: None
        if kind == "hooks only":
            w._step = lambda loss: None
        with w:
            t = time.perf_counter()
            for _ in range(block):
                step(w)
            elapsed = time.perf_counter() - t
        return elapsed, w.own_seconds

    kinds = ["plain", "full watch", "no census", "no gradient read", "no curve checks",
             "hooks only"]
    times: dict[str, list[float]] = {k: [] for k in kinds}
    owns: dict[str, list[float]] = {k: [] for k in kinds}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for turn in range(turns):
            for kind in kinds[turn % len(kinds):] + kinds[:turn % len(kinds)]:
                elapsed, mine = variant(kind)
                times[kind].append(elapsed)
                owns[kind].append(mine)
    base = m(times["plain"])
    per_step = 4 * block
    print(f"one part off at a time ({turns} turns of {block} loops, a fresh watch a block):")
    for kind in kinds:
        print(f"  {kind:18} {m(times[kind]) / per_step * 1e3:7.3f} ms/step, "
              f"{m(times[kind]) / base:.3f}x; the watch's own "
              f"{m(owns[kind]) / per_step * 1e3:.3f} ms/step")
    full = m(owns["full watch"]) / per_step * 1e3
    for kind, part in (("no census", "the census"), ("no gradient read", "the gradient read"),
                       ("no curve checks", "the curve checks")):
        print(f"  {part}: {full - m(owns[kind]) / per_step * 1e3:.3f} ms/step")


def main() -> None:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    quick = "--quick" in sys.argv
    if "--long" in sys.argv:
        long_run()
        return
    if "--parts" in sys.argv:
        parts()
        return
    measure("browser net (4 steps/loop)", browser_loop, 25 if quick else 150, 5)
    measure("ResNet-18, 8x3x64x64, CPU", resnet_loop, 10 if quick else 60, 5)
    paired("browser net (4 steps/loop)", browser_loop, 10, 8 if quick else 30)
    paired("ResNet-18, 8x3x64x64, CPU", resnet_loop, 4, 6 if quick else 20)


if __name__ == "__main__":
    main()
