"""How firm is the range-test benchmark's truth against the grid's own seeds? The grid
(benchmarks/lr_grid.py) takes the best LR from the mean loss of two seeds. This runs the same
grid (Adam, 10^-4 to 10^0 in quarter decades, 3 epochs) seed by seed for seeds 0-5 and keeps
every seed's loss (benchmarks/data/lr_grid_seeds.json), then asks how far the best LR moves
when the two seeds behind it are another pair: the pairs (0, 1), (2, 3), (4, 5), and the
median over all 15 pairs of six seeds. A distance target of 0.5 decades is only meaningful
where the truth itself moves less than that.

The six seeds' mean is also written as a grid (data/lr_grid_6seeds.json, lr_grid.py's
format): ``python benchmarks/bench_lr.py --rescore benchmarks/data/lr_bench_20seeds_2sweeps.json
--grid benchmarks/data/lr_grid_6seeds.json`` scores the recorded answers against it.

``--fresh``: the tasks added after the candidates were fixed (lr_tasks.fresh_tasks), written
to lr_grid_seeds_fresh.json and lr_grid_6seeds_fresh.json; ``--fresh2``: the second batch
(lr_tasks.fresh_tasks_2), to lr_grid_seeds_fresh2.json and lr_grid_6seeds_fresh2.json;
``--fresh3``: the third (lr_tasks.fresh_tasks_3), likewise.

Run: python benchmarks/lr_grid_seeds.py [--report] [--fresh | --fresh2 | --fresh3]
(``--report``: train nothing, use the recorded file; it also scores the range-test answers
recorded in data/lr_sweeps.json against each pair's truth).
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lr_tasks import group_suffix  # noqa: E402

HERE = Path(__file__).resolve().parent / "data"
SUFFIX = group_suffix(sys.argv)
FRESH = bool(SUFFIX)
OUT = HERE / f"lr_grid_seeds{SUFFIX}.json"
GRID6 = HERE / f"lr_grid_6seeds{SUFFIX}.json"
SEEDS = tuple(range(6))
EPOCHS = 3
EXPONENTS = np.arange(-4, 0.01, 0.25)


def record() -> None:
    import torch
    from lr_tasks import GROUPS, train_loss_after

    torch.set_num_threads(min(2, torch.get_num_threads()))
    result: dict[str, object] = {"epochs": EPOCHS, "seeds": list(SEEDS), "optimizer": "Adam",
                                 "tasks": {}}
    for task in GROUPS[SUFFIX]():
        start = time.perf_counter()
        losses = {f"{float(10 ** e):.6g}": [train_loss_after(task, float(10 ** e), s, EPOCHS)
                                            for s in SEEDS] for e in EXPONENTS}
        result["tasks"][task.name] = {  # type: ignore[index]
            "loss_by_lr_and_seed": {k: [v if math.isfinite(v) else None for v in vs]
                                    for k, vs in losses.items()}}
        print(f"{task.name:22} [{time.perf_counter() - start:.0f} s]", flush=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")


def best_of(losses: dict[str, list[float | None]], seeds: tuple[int, ...]) -> float:
    """The grid's best LR from the mean loss of ``seeds`` (as lr_grid.py takes it)."""
    means = {}
    for lr, vs in losses.items():
        picked = [vs[s] for s in seeds]
        if all(v is not None for v in picked):
            means[float(lr)] = statistics.mean(picked)  # type: ignore[arg-type]
    return min(means, key=means.__getitem__)


def write_grid() -> None:
    """The six seeds' mean loss as a grid in lr_grid.py's format (data/lr_grid_6seeds.json),
    for ``bench_lr.py --rescore FILE --grid`` it: a loss that blew up on any seed is inf, as
    in lr_grid.py's mean."""
    from lr_grid import summary
    from lr_tasks import GROUPS

    recorded = json.loads(OUT.read_text())
    steps = {t.name: t.batches_per_epoch for t in GROUPS[SUFFIX]()}
    result: dict[str, object] = {"epochs": EPOCHS, "seeds": list(SEEDS), "optimizer": "Adam",
                                 "tasks": {}}
    for name, row in recorded["tasks"].items():
        grid = {lr: (statistics.mean(vs) if all(v is not None for v in vs) else math.inf)
                for lr, vs in row["loss_by_lr_and_seed"].items()}
        result["tasks"][name] = summary(grid, steps[name], EPOCHS)  # type: ignore[index]
    GRID6.write_text(json.dumps(result, indent=1) + "\n")


def report() -> None:
    from bench_lr import rule_answers

    grid = json.loads(OUT.read_text())["tasks"]
    committed = {} if FRESH else json.loads((HERE / "lr_grid.json").read_text())["tasks"]
    recorded = HERE / f"lr_sweeps{SUFFIX}.json"
    sweeps = json.loads(recorded.read_text())["runs"] if recorded.exists() else {}
    pairs = list(itertools.combinations(SEEDS, 2))
    print("the grid's best LR from each pair of seeds' mean loss; how far it moves (decades); "
          "diag's and torch-lr-finder's median distance (20 seeds' sweeps) against each truth")
    print(f"  {'task':22} {'committed':>9} {'(0,1)':>7} {'(2,3)':>7} {'(4,5)':>7} "
          f"{'all 6':>7} {'pairs: median move / max':>25}   diag vs pair truths   "
          "torch-lr-finder vs pair truths")
    for name, row in grid.items():
        losses = row["loss_by_lr_and_seed"]
        bests = {p: best_of(losses, p) for p in pairs}
        all_pairs = [abs(math.log10(a / b)) for a, b in itertools.combinations(bests.values(), 2)]
        line = (f"  {name:22} {committed[name]['best_lr'] if committed else math.nan:9.3g} "
                + " ".join(f"{bests[p]:7.3g}" for p in ((0, 1), (2, 3), (4, 5)))
                + f" {best_of(losses, SEEDS):7.3g} {statistics.median(all_pairs):12.2f} / "
                  f"{max(all_pairs):.2f}  ")
        if name in sweeps:
            ours = []
            theirs = []
            for r in sweeps[name]:
                n = min(len(s) for s in r["sweeps"])
                mean = [sum(s[i] for s in r["sweeps"]) / len(r["sweeps"]) for i in range(n)]
                ours.append(rule_answers(r["lrs"][:n], mean)["ensemble"])
                theirs.append(r["torch_lr_finder"])

            def dist(answers: list[float | None], truth: float) -> float:
                found = [a for a in answers if a]
                if not found:  # declined on every seed
                    return math.nan
                return statistics.median(abs(math.log10(a / truth)) for a in found)

            d_ours = [dist(ours, bests[p]) for p in ((0, 1), (2, 3), (4, 5))]
            d_tlf = [dist(theirs, bests[p]) for p in ((0, 1), (2, 3), (4, 5))]
            line += (" ".join(f"{d:.2f}" for d in d_ours) + "       "
                     + " ".join(f"{d:.2f}" for d in d_tlf))
        print(line)


if __name__ == "__main__":
    if "--report" not in sys.argv:
        record()
    write_grid()
    report()
