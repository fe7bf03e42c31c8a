"""Overhead of diag.watch inside a training loop: the same loop with and without the watch,
on the browser net's loop and on a ResNet-18 step on CPU (torchvision's layout, written out:
its registry build does not load here). The watch's curve diagnosis every K steps
(every=50), its start (a scan of the live objects) and its end (the final diagnosis) are
inside the timed part, so each round is a few hundred steps: a watch lives a whole training.
Two forms of the issue's measure (interleaved with the plain loop, median of 5 rounds):

- ``measure``: whole runs alternating (A B A' A B A' ...: A' is the plain loop again, an A/A
  comparison that shows this machine's noise); a run is 10 s here, and this shared
  machine's speed drifts by 5-10 % over that, more than the effect;
- ``interleaved``: each round's watched and plain loops alternate in blocks of a fraction
  of a second, so the drift cancels within the round (the steadier figure).

Run: python benchmarks/bench_watch.py [--quick]
     python benchmarks/bench_watch.py --long   (a 20,000-step loop that keeps a list a step)
     python benchmarks/bench_watch.py --parts  (the browser net's overhead taken apart)
"""

from __future__ import annotations

import gc
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
    fresh watch: its start and end inside the timed part), then the plain loop again.

    Two readings of "median of 5". (1) Each round's watched time against the mean of the
    plain loops right before and after it (A B A: a drift of the machine's speed that is
    steady over the round cancels), median over the rounds; still drift-prone, since this
    machine's speed drifts by more than the effect over a few minutes (the same 600 steps
    took 8.7-11.5 s in one run, 2026-12-01). (2) The median of each side, then their ratio
    (what earlier stops reported): drift between rounds enters it. The noise floor of each:
    a plain loop against the plain loop right after it (the next round's first; an A/A
    comparison, the same work on both sides): a watched ratio within it is not told apart
    from 1."""
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
    m = statistics.median
    a, b = m(plain), m(watched)
    bracketed = sorted(w / ((p + q) / 2) for p, w, q in zip(plain, watched, again, strict=True))
    aa = sorted(nxt / cur for cur, nxt in zip(again[:-1], plain[1:], strict=True))
    print(f"{name:28} plain {a / steps * 1e3:8.2f} ms/loop, watched {b / steps * 1e3:8.2f} "
          f"ms/loop; each watched round against the plain loops around it: "
          f"{m(bracketed):.3f}x (median of {rounds}, rounds {bracketed[0]:.3f}-"
          f"{bracketed[-1]:.3f}); A/A, a plain loop against the next: {m(aa):.3f}x (rounds "
          f"{aa[0]:.3f}-{aa[-1]:.3f}); median of each side: {b / a:.3f}x (A/A "
          f"{m(again) / a:.3f}x); the watch's own time {m(own):.1%} of the watched loop")
    return m(bracketed)


def interleaved(name: str, make: Callable[[], tuple[Callable[[Any], None], Any, Any]],
                loops: int, block: int, rounds: int) -> None:
    """The issue's measure, interleaved finely enough for a shared machine: ``rounds``
    rounds, each a fresh watch over ``loops`` loops (its start, its curve checks every 50
    steps and its end all counted) taken in blocks of ``block`` loops, each block next to a
    block of the plain loop (the order alternating block by block, so a steady drift
    cancels); while a plain block runs the watch is set aside (its optimizer hook removed,
    no step() calls). A round's ratio is its watched time, start and end included, over
    its plain time; the median of the rounds is the figure. The A/A comparison, the noise
    floor: each round's odd plain blocks against its even ones. The gc stays frozen by the
    watch's census through the plain blocks too (a frozen gc alone: 1.002x, 2026-12-01)."""
    import diag

    step, model, opt = make()
    step(None)
    m = statistics.median
    ratios, floors, owns = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(rounds):
            w = diag.watch(model, opt, out=None, every=50)
            t0 = time.perf_counter()
            w.__enter__()
            watched = time.perf_counter() - t0
            hooked = True  # the watch's optimizer hook is on (w._handles)
            plain: list[float] = []
            for b in range(loops // block):
                for turn in ((False, True) if b % 2 == 0 else (True, False)):
                    if turn and not hooked:
                        w._handles = [opt.register_step_pre_hook(w._before_step)]
                    elif not turn and hooked:
                        for h in w._handles:
                            h.remove()
                    hooked = turn
                    start = time.perf_counter()
                    for _ in range(block):
                        step(w if turn else None)
                    elapsed = time.perf_counter() - start
                    if turn:
                        watched += elapsed
                    else:
                        plain.append(elapsed)
            t0 = time.perf_counter()
            w.__exit__(None, None, None)
            watched += time.perf_counter() - t0
            ratios.append(watched / sum(plain))
            odd, even = plain[1::2], plain[0::2]
            floors.append((sum(odd) / len(odd)) / (sum(even) / len(even)))
            owns.append(w.own_seconds / watched)
    ratios.sort()
    floors.sort()
    print(f"{name:28} interleaved in blocks of {block} loops, {loops} loops a round: median "
          f"{m(ratios):.3f}x (median of {rounds}, rounds {ratios[0]:.3f}-{ratios[-1]:.3f}); "
          f"A/A {m(floors):.3f}x (rounds {floors[0]:.3f}-{floors[-1]:.3f}); the watch's own "
          f"time {m(owns):.1%} of the watched loop, start and end included")


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


def parts(rounds: int = 7, steps: int = 150, block: int = 40, turns: int = 12) -> None:
    """The browser net's overhead taken apart. (1) The issue's measure with the watch's
    start and end timed apart: the watched ratio, its own time, its end, and the watched
    loop less the watch's own time against the plain loop (what the watch's work costs the
    user's own code, such as the caches it evicts). (2) The same loop with one part of the
    watch switched off at a time, or the gc frozen alone (as the census's start leaves it),
    in turns (a fresh watch per block, its start and end untimed), each block between two
    plain ones: its ratio to them, its own time, and the rest (what the part costs the
    user's code beyond its own time)."""
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
        if kind in ("plain", "gc frozen"):
            if kind == "gc frozen":  # as the census's start leaves it
                gc.collect()
                gc.freeze()
            t = time.perf_counter()
            for _ in range(block):
                step(None)
            elapsed = time.perf_counter() - t
            if kind == "gc frozen":
                gc.unfreeze()
            return elapsed, 0.0
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

    # each variant's block between two plain blocks (A B A), its ratio to their mean
    kinds = ["full watch", "no census", "no gradient read", "no curve checks", "hooks only",
             "gc frozen"]
    ratios: dict[str, list[float]] = {k: [] for k in kinds}
    owns: dict[str, list[float]] = {k: [] for k in kinds}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = variant("plain")[0]
        for turn in range(turns):
            for kind in kinds[turn % len(kinds):] + kinds[:turn % len(kinds)]:
                elapsed, mine = variant(kind)
                after = variant("plain")[0]
                ratios[kind].append(elapsed / ((before + after) / 2))
                owns[kind].append(mine / elapsed)
                before = after
    print(f"one part off at a time ({turns} turns of {block} loops, a fresh watch a block, "
          "each block against the plain blocks around it):")
    for kind in kinds:
        r = sorted(ratios[kind])
        print(f"  {kind:18} {m(r):.3f}x (quartiles {r[len(r) // 4]:.3f}-"
              f"{r[(3 * len(r)) // 4]:.3f}); the watch's own time {m(owns[kind]):.1%}; "
              f"the rest {m(r) - 1 - m(owns[kind]):+.1%}")
    full = m(owns["full watch"])
    for kind, part in (("no census", "the census"), ("no gradient read", "the gradient read"),
                       ("no curve checks", "the curve checks")):
        print(f"  {part}: {full - m(owns[kind]):.1%} of the loop")


def main() -> None:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    quick = "--quick" in sys.argv
    if "--long" in sys.argv:
        long_run()
        return
    if "--parts" in sys.argv:
        parts()
        return
    interleaved("browser net (4 steps/loop)", browser_loop, 25 if quick else 150, 5, 5)
    interleaved("ResNet-18, 8x3x64x64, CPU", resnet_loop, 10 if quick else 60, 2, 5)
    print("the same, whole runs alternating (this machine's drift between runs enters):")
    measure("browser net (4 steps/loop)", browser_loop, 25 if quick else 150, 5)
    measure("ResNet-18, 8x3x64x64, CPU", resnet_loop, 10 if quick else 60, 5)


if __name__ == "__main__":
    main()
