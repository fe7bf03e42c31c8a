"""Benchmark lr-schedule: the detectors on a 100,000-point history (budget 1 s), the LR
range test against the same number of plain training steps (budget +10%), and the range
test's candidate rules on nine tasks (benchmarks/lr_tasks.py) against each task's grid
search (benchmarks/lr_grid.py, committed in benchmarks/data/lr_grid.json), beside
torch-lr-finder on the same models and batches: median distance from the grid's best LR in
decades (target <= 0.5), spread over 5 seeds (target <= 0.3), and the rule chosen by
leave-one-task-out. Results are written to benchmarks/data/lr_bench.json.

Run: pip install -e '.[bench]' && python benchmarks/bench_lr.py [--quick] [--seeds N]
[--sweeps K]. ``--seeds 20`` scores the spread as the median over every draw of five of the
20 seeds (with the share of draws over 0.3); ``--sweeps 1`` runs diag's sweep once instead
of its default two (``SWEEPS``), for the comparison. ``--rescore FILE [--grid GRID]`` runs
nothing: it scores the answers recorded in FILE against another grid (default
data/lr_grid_steps100.json, a sensitivity check of the truth from lr_grid.py --min-steps).
``--only NAME[,NAME]`` sweeps those tasks only and merges them into the recorded runs of the
same seeds and sweeps before scoring them all (a task added later, without sweeping the
others again).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    from diag.checks.lr.detect import diagnose, reduce_on_plateau_steps

    rng = np.random.default_rng(0)
    x = np.exp(-np.arange(100_000) / 30_000) * (1 + 0.1 * rng.standard_normal(100_000))
    x[60_000:] = x[60_000] * (1 + 0.1 * rng.standard_normal(40_000))  # a plateau
    times = []
    for _ in range(3):
        start = time.perf_counter()
        d = diagnose(x)
        reduce_on_plateau_steps(x)
        times.append(time.perf_counter() - start)
    print(f"detectors + ReduceLROnPlateau replica on 100,000 points: "
          f"{statistics.median(times):.3f} s (budget 1 s); plateau_start={d.plateau_start}")

    import torch

    from diag.checks.lr.rangetest import range_test
    from diag.inputs.target import build_target
    from diag.train import Trainer

    torch.set_num_threads(min(2, torch.get_num_threads()))
    target = build_target(input_size=48, samples=48)
    steps = 100

    from diag.checks.lr.rangetest import SWEEPS

    def plain() -> float:  # the same number of steps as the range test's sweeps
        trainer = Trainer(target.make_model(), target.data, target.loss_fn, batch_size=12)
        batches = trainer.batches()
        start = time.perf_counter()
        for i in [i for _ in range(SWEEPS) for i in range(steps)]:
            trainer.set_lr(1e-7 * (1e6 ** (i / (steps - 1))))
            loss = trainer.step(*next(batches))
            loss.item()
        return time.perf_counter() - start

    def finder() -> tuple[float, int]:
        trainer = Trainer(target.make_model(), target.data, target.loss_fn, batch_size=12)
        start = time.perf_counter()
        rt = range_test(trainer.model, trainer.optimizer, trainer.batches(), target.loss_fn,
                        end_lr=0.1, num_iter=steps, diverge=1e12)  # same step count
        return time.perf_counter() - start, len(rt.lrs)

    plain()
    p_times, f_times = [], []
    for _ in range(3):
        p_times.append(plain())
        t, n = finder()
        assert n == steps
        f_times.append(t)
    p, f = statistics.median(p_times), statistics.median(f_times)
    print(f"range test, {SWEEPS} sweeps of {steps} steps (snapshot and restores included): "
          f"{f:.3f} s against {p:.3f} s of as many plain steps: {f / p:.3f}x (budget 1.10x)")


RULES = ("steepest", "valley", "min_tenth", "ensemble")
"""The candidate rules, few and principled: the steepest fall of the smoothed loss (per
decade of LR), where the smoothed loss enters its valley, a tenth of the LR at the smoothed
minimum, and the median of those three (declining when no two agree within a decade)."""


def rule_answers(lrs: list[float], losses: list[float]) -> dict[str, float | None]:
    """Each candidate rule's LR on one sweep (None: the rule declines); "ensemble" is
    diag's answer, the median of the other three (``suggest_range_lr``)."""
    from diag.checks.lr.detect import range_rules, suggest_range_lr

    rules = range_rules(lrs, losses)
    rules.pop("_valley")
    answers: dict[str, float | None] = {k: v if isinstance(v, float) else None
                                        for k, v in rules.items()}
    answers["ensemble"] = suggest_range_lr(lrs, losses).lr
    return answers


def torch_lr_finder_answer(history: dict[str, list[float]]) -> float | None:
    """torch-lr-finder's own suggestion (its plot(suggest_lr=True)): the steepest gradient of
    its smoothed loss per step, skipping the first 10 and last 5 points."""
    lrs, losses = history["lr"][10:-5], history["loss"][10:-5]
    if len(lrs) < 2:
        return None
    return float(lrs[int(np.argmin(np.gradient(np.asarray(losses))))])


def sweeps(seeds: int = 5, num_iter: int = 100, repeats: int | None = None,
           only: list[str] | None = None) -> dict[str, Any]:
    """diag's range test (``repeats`` sweeps averaged: diag's default when None) and
    torch-lr-finder's sweep on every task and seed (same model init, same first batches),
    interleaved; each rule's answer, torch-lr-finder's, and the wall times."""
    import torch
    from lr_tasks import tasks
    from torch_lr_finder import LRFinder

    from diag.checks.lr.rangetest import range_test

    out: dict[str, Any] = {}
    for task in tasks(only):
        rows = []
        for seed in range(seeds):
            model = task.make(seed)
            opt = torch.optim.Adam(model.parameters(), lr=1e-7)
            start = time.perf_counter()
            more = {} if repeats is None else {"sweeps": repeats}
            rt = range_test(model, opt, task.batches(seed), task.loss, start_lr=1e-7,
                            end_lr=10.0, num_iter=num_iter, **more)
            diag_time = time.perf_counter() - start
            model = task.make(seed)
            opt = torch.optim.Adam(model.parameters(), lr=1e-7)
            finder = LRFinder(model, opt, task.loss, device="cpu")
            start = time.perf_counter()
            import contextlib
            import io

            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                finder.range_test(task.loader(seed), start_lr=1e-7, end_lr=10.0,
                                  num_iter=num_iter)
                finder.reset()
            tlf_time = time.perf_counter() - start
            rows.append({"seed": seed, "rules": rule_answers(rt.lrs, rt.losses),
                         "torch_lr_finder": torch_lr_finder_answer(finder.history),
                         "diag_steps": sum(len(r) for r in rt.sweeps), "diag_s": diag_time,
                         "tlf_steps": len(finder.history["lr"]), "tlf_s": tlf_time})
        out[task.name] = rows
    return out


SPREAD_SEEDS = 5
"""The issue's spread: max/min over five seeds' answers."""


def score(answers: list[float | None], best: float) -> tuple[float, float, int, float]:
    """(median distance from the grid's best in decades, spread over five seeds in decades,
    seeds with an answer, share of five-seed draws whose spread is over 0.3); inf when a
    rule gave none. With more than five seeds the spread is the median over every draw of
    five of them (a max/min of five answers is itself noisy: one run of five seeds says
    little), and the share over 0.3 says how often five seeds would miss the target."""
    import itertools
    import math

    found = [a for a in answers if a]
    if not found:
        return math.inf, math.inf, 0, 1.0
    dist = statistics.median(abs(math.log10(a / best)) for a in found)
    spreads = []
    for draw in itertools.combinations(answers, min(SPREAD_SEEDS, len(answers))):
        got = [a for a in draw if a]
        spreads.append(math.log10(max(got) / min(got)) if got else 0.0)
    over = sum(s > 0.3 for s in spreads) / len(spreads)
    return dist, statistics.median(spreads), len(found), over


def suggestion_against_grid(seeds: int = 5, repeats: int | None = None,
                            only: list[str] | None = None) -> None:
    """Each rule on each task against the committed grid truth, torch-lr-finder beside it,
    and the rule chosen by leave-one-task-out (``only``: those tasks swept, the others'
    recorded runs kept)."""
    import json

    import torch

    from diag.checks.lr.rangetest import SWEEPS

    torch.set_num_threads(min(2, torch.get_num_threads()))
    grid = json.loads((Path(__file__).resolve().parent / "data" / "lr_grid.json").read_text())
    new = sweeps(seeds, repeats=repeats, only=only)
    repeats = repeats or SWEEPS
    suffix = "" if (seeds, repeats) == (5, SWEEPS) else f"_{seeds}seeds_{repeats}sweeps"
    out = Path(__file__).resolve().parent / "data" / f"lr_bench{suffix}.json"
    runs = json.loads(out.read_text())["runs"] if only and out.exists() else {}
    runs.update(new)
    table, held = report(runs, grid, seeds, repeats)
    out.write_text(json.dumps({"table": {n: {r: list(v) for r, v in row.items()}
                                         for n, row in table.items()},
                               "leave_one_task_out": held, "runs": runs}, indent=1,
                              default=float) + "\n")


def rescore(runs_file: str, grid_file: str) -> None:
    """The answers recorded in a bench file, scored against another grid (a sensitivity
    check of the truth: benchmarks/lr_grid.py --min-steps N); no sweep is run again."""
    import json

    runs = json.loads(Path(runs_file).read_text())["runs"]
    grid = json.loads(Path(grid_file).read_text())
    seeds = len(next(iter(runs.values())))
    print(f"the answers recorded in {runs_file}, against {grid_file}")
    report(runs, grid, seeds, None)


def report(runs: dict[str, Any], grid: dict[str, Any], seeds: int, repeats: int | None
           ) -> tuple[dict[str, dict[str, tuple[float, float, int, float]]],
                      list[tuple[str, str, float, float]]]:
    """Print the table, leave-one-task-out and the times; return the table and the
    held-out rows."""
    import math

    table: dict[str, dict[str, tuple[float, float, int, float]]] = {}
    for name, rows in runs.items():
        best = grid["tasks"][name]["best_lr"]
        table[name] = {rule: score([r["rules"][rule] for r in rows], best) for rule in RULES}
        table[name]["torch-lr-finder"] = score([r["torch_lr_finder"] for r in rows], best)
    print(f"diag's range test: {repeats or 'the recorded'} sweep(s) of 100 steps averaged; "
          "torch-lr-finder: one sweep of 100 steps")
    trained = (f"at least {grid['min_steps']} steps" if grid.get("min_steps")
               else f"{grid['epochs']} epochs")
    print(f"range-test rules against the grid's best LR (Adam, {trained}, "
          f"{len(grid['seeds'])} seeds), {seeds} seeds each: median distance / spread of "
          f"{SPREAD_SEEDS} seeds (decades)" + ("; the spread is the median over every draw "
                                            f"of {SPREAD_SEEDS} seeds, [the share of draws "
                                            "over 0.3]" if seeds > SPREAD_SEEDS else ""))
    print(f"  {'task':22} {'grid best':>9} " + " ".join(f"{r:>16}" for r in
                                                        (*RULES, "torch-lr-finder")))
    for name, row in table.items():
        best = grid["tasks"][name]["best_lr"]
        cells = " ".join((f"{d:7.2f} / {s:5.2f} " + (f"[{o:.2f}]" if seeds > SPREAD_SEEDS
                                                        else ""))
                         if math.isfinite(d) else f"{'none':>16}"
                         for d, s, _, o in row.values())
        print(f"  {name:22} {best:9.3g} {cells}")

    def cost(rule: str, names: list[str]) -> float:
        return statistics.mean(min(table[n][rule][0] + table[n][rule][1], 10.0) for n in names)

    names = list(table)
    held: list[tuple[str, str, float, float]] = []
    for out_task in names:
        rest = [n for n in names if n != out_task]
        chosen = min(RULES, key=lambda r: cost(r, rest))
        d, s, _, _ = table[out_task][chosen]
        held.append((out_task, chosen, d, s))
    print("leave-one-task-out: the rule chosen on the other tasks, scored on the one left out")
    for out_task, chosen, d, s in held:
        tlf = table[out_task]["torch-lr-finder"]
        print(f"  {out_task:22} chose {chosen:10} distance {d:.2f}, spread {s:.2f} "
              f"(torch-lr-finder {tlf[0]:.2f} / {tlf[1]:.2f})")
    print(f"  mean over held-out tasks: distance "
          f"{statistics.mean(min(h[2], 10) for h in held):.2f}, spread "
          f"{statistics.mean(min(h[3], 10) for h in held):.2f} decades; chosen on all of them: "
          f"{min(RULES, key=lambda r: cost(r, names))}")
    per_step_diag = [r["diag_s"] / r["diag_steps"] for rows in runs.values() for r in rows]
    per_step_tlf = [r["tlf_s"] / r["tlf_steps"] for rows in runs.values() for r in rows]
    ours, theirs = statistics.median(per_step_diag), statistics.median(per_step_tlf)
    print(f"time per sweep step, median over all sweeps (interleaved, same models and "
          f"batches): diag {ours * 1e3:.2f} ms, torch-lr-finder {theirs * 1e3:.2f} ms "
          f"({ours / theirs:.2f}x; budget 2x)")
    whole_diag = statistics.median(r["diag_s"] for rows in runs.values() for r in rows)
    whole_tlf = statistics.median(r["tlf_s"] for rows in runs.values() for r in rows)
    print(f"a whole range test, median: diag {whole_diag:.2f} s "
          f"({repeats or 'the recorded'} x 100 steps), torch-lr-finder {whole_tlf:.2f} s "
          f"(100 steps): {whole_diag / whole_tlf:.2f}x")
    worse = [n for n in names if table[n]["ensemble"][0] > table[n]["torch-lr-finder"][0]]
    print("further from the best than torch-lr-finder on: " + (", ".join(worse) or "none"))
    paired(runs, grid)
    return table, held


def paired(runs: dict[str, Any], grid: dict[str, Any]) -> list[str]:
    """diag against torch-lr-finder seed by seed (the same model, batches and seed): the
    median of diag's distance less torch-lr-finder's, with a bootstrap 95 % interval (4,000
    resamples of the seeds, a fixed generator), over the seeds both answered. Returns the
    tasks where diag is further beyond chance (the interval above 0). A seed where diag
    said it could not tell is left out (it printed no number)."""
    import math

    rng = np.random.default_rng(0)
    print("seed by seed, diag's distance less torch-lr-finder's (decades; below 0: diag "
          "closer): median [95 % bootstrap interval], seeds where each was closer")
    further = []
    for name, rows in runs.items():
        best = grid["tasks"][name]["best_lr"]
        diff = np.array([abs(math.log10(r["rules"]["ensemble"] / best))
                         - abs(math.log10(r["torch_lr_finder"] / best)) for r in rows
                         if r["rules"]["ensemble"] and r["torch_lr_finder"]])
        if diff.size == 0:
            print(f"  {name:22} no seed where both answered")
            continue
        boots = np.median(rng.choice(diff, (4000, diff.size)), axis=1)
        lo, hi = np.percentile(boots, [2.5, 97.5])
        if lo > 0:
            further.append(name)
        closer, farther = int((diff < -1e-9).sum()), int((diff > 1e-9).sum())  # (the same
        # grid point reached two ways differs in the last digits: a tie)
        print(f"  {name:22} {np.median(diff):+.2f} [{lo:+.2f}, {hi:+.2f}] over {diff.size} "
              f"seeds; diag closer on {closer}, torch-lr-finder on {farther}, the same "
              f"LR on {diff.size - closer - farther}")
    print("further than torch-lr-finder beyond chance on: " + (", ".join(further) or "none"))
    return further


if __name__ == "__main__":
    import sys

    def _arg(flag: str, default: int | None) -> int | None:
        return int(sys.argv[sys.argv.index(flag) + 1]) if flag in sys.argv else default

    if "--rescore" in sys.argv:
        here = Path(__file__).resolve().parent / "data"
        rescore(sys.argv[sys.argv.index("--rescore") + 1],
                sys.argv[sys.argv.index("--grid") + 1] if "--grid" in sys.argv
                else str(here / "lr_grid_steps100.json"))
        sys.exit(0)
    if "--quick" not in sys.argv:
        main()
    suggestion_against_grid(_arg("--seeds", 5) or 5, _arg("--sweeps", None),
                            sys.argv[sys.argv.index("--only") + 1].split(",")
                            if "--only" in sys.argv else None)
