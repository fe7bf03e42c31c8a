"""How many intra-op threads should diag's own training runs use? The data behind
``diag/run/threads.py``: no rule on the model alone fits both a quiet and a busy machine.

For models from 5 k to 10 M parameters, one Adam step at 1 thread and at every thread count
up to the cores, quiet and beside CPU hogs (processes looping float32 matmuls, each with one
thread), interleaved, median of the rounds; and each step's work per op (FLOPs from
torch's FlopCounterMode over the aten ops a step dispatches).

Run: python benchmarks/bench_threads.py [--rounds 7] [--hogs 2]
Prints the table; asserts nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def hog(stop: object) -> None:
    """One busy process: float32 matmuls on one thread, until ``stop`` is set."""
    import torch

    torch.set_num_threads(1)
    a = torch.randn(256, 256)
    while not stop.is_set():  # type: ignore[attr-defined]
        a = (a @ a).clamp_(-1, 1)


def cases() -> dict[str, Callable[[], tuple[object, object, object]]]:
    import torch
    from torch import nn

    from diag.model import landmark_net, tiny_landmark_net

    def browser(size: int, batch: int, full: bool = False) -> Callable[[], tuple]:
        def make() -> tuple:
            g = torch.Generator().manual_seed(0)
            model = (landmark_net if full else tiny_landmark_net)(input_size=size)
            return model, torch.randn(batch, 3, size, size, generator=g), torch.rand(
                batch, 136, generator=g)
        return make

    def mlp() -> tuple:
        g = torch.Generator().manual_seed(0)
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
        return model, torch.randn(64, 784, generator=g), torch.randn(64, 10, generator=g)

    def cnn(width: int, size: int) -> Callable[[], tuple]:
        def make() -> tuple:
            g = torch.Generator().manual_seed(0)
            layers: list[nn.Module] = []
            cin = 3
            for cout in (width, 2 * width, 4 * width):
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                           nn.Conv2d(cout, cout, 3, padding=1, stride=2), nn.ReLU()]
                cin = cout
            model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(cin, 10))
            return model, torch.randn(32, 3, size, size, generator=g), torch.randn(
                32, 10, generator=g)
        return make

    return {"tiny browser net 48px b16 (overfit default)": browser(48, 16),
            "tiny browser net 112px b12": browser(112, 12),
            "MLP 784-256-10 b64": mlp,
            "landmark net 112px b12": browser(112, 12, full=True),
            "CNN w32 32px b32": cnn(32, 32),
            "CNN w64 64px b32": cnn(64, 64)}


def work_per_op(model: object, x: object, y: object) -> tuple[float, int, int]:
    """(work per aten op, work, ops) of one forward, MSE loss and backward: work is
    matmul/conv FLOPs (torch's FlopCounterMode) plus every op's output elements."""
    import torch
    import torch.nn.functional as F
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class Count(TorchDispatchMode):
        ops = elements = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            self.ops += 1
            for t in out if isinstance(out, tuple | list) else (out,):
                if isinstance(t, torch.Tensor):
                    self.elements += t.numel()
            return out

    counter, flops = Count(), FlopCounterMode(display=False)
    with flops, counter:
        F.mse_loss(model(x), y).backward()  # type: ignore[operator]
    work = int(flops.get_total_flops()) + counter.elements
    return work / max(counter.ops, 1), work, counter.ops


def step_time(model: object, x: object, y: object, threads: int) -> float:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)  # type: ignore[attr-defined]
    start = time.perf_counter()
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        F.mse_loss(model(x), y).backward()  # type: ignore[operator]
        opt.step()
    return (time.perf_counter() - start) / 3


def measure(rounds: int, cores: int) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for name, make in cases().items():
        model, x, y = make()
        counts = sorted({1, *range(2, cores + 1)})
        step_time(model, x, y, cores)  # warm-up
        times: dict[int, list[float]] = {t: [] for t in counts}
        for _ in range(rounds):
            for t in counts:
                times[t].append(step_time(model, x, y, t))
        out[name] = {t: statistics.median(v) for t, v in times.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--hogs", type=int, default=2)
    args = parser.parse_args()
    import torch

    cores = len(os.sched_getaffinity(0))
    work = {name: work_per_op(*make()) for name, make in cases().items()}
    quiet = measure(args.rounds, cores)
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    hogs = [ctx.Process(target=hog, args=(stop,)) for _ in range(args.hogs)]
    for h in hogs:
        h.start()
    time.sleep(2.0)  # the hogs import torch and start
    try:
        busy = measure(args.rounds, cores)
    finally:
        stop.set()
        for h in hogs:
            h.join(timeout=30)
    print(f"torch {torch.__version__}, {cores} cores, {args.rounds} interleaved rounds, "
          f"beside {args.hogs} hogs for 'busy'; ms per Adam step (median)")
    print(f"{'model':44} {'kFLOP/op':>9} {'ops':>5} " + " ".join(
        f"{'quiet ' + str(t) + 't':>9}" for t in quiet[next(iter(quiet))]) + " " + " ".join(
        f"{'busy ' + str(t) + 't':>9}" for t in busy[next(iter(busy))]))
    for name in quiet:
        per_op, _flops, ops = work[name]
        print(f"{name:44} {per_op / 1e3:9.1f} {ops:5d} "
              + " ".join(f"{1e3 * v:9.2f}" for v in quiet[name].values()) + " "
              + " ".join(f"{1e3 * v:9.2f}" for v in busy[name].values()))


if __name__ == "__main__":
    main()
