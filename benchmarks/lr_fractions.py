"""Would another fraction of the LR at the sweep's minimum do better? Offline, from the
answers recorded by bench_lr.py (no sweep is run again): the recorded "a tenth of the LR at
the smoothed minimum" gives that LR, so a third and a thirtieth of it are exact too, and so
is the median of three (steepest, valley entry, the fraction: diag's own
``median_of_rules``; the recorded ensemble is reproduced exactly).
Each candidate is scored per task against the grid's best (median distance / spread of five
seeds, in decades: bench_lr.py's ``score``) and chosen by leave-one-task-out as bench_lr.py
chooses.

Run: python benchmarks/lr_fractions.py [benchmarks/data/lr_bench.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_lr import score  # noqa: E402
from lr_readings import leave_one_out  # noqa: E402

from diag.checks.lr.detect import median_of_rules  # noqa: E402

HERE = Path(__file__).resolve().parent / "data"


def candidates(rules: dict[str, float | None]) -> dict[str, float | None]:
    steepest, valley, tenth = rules["steepest"], rules["valley"], rules["min_tenth"]
    out: dict[str, float | None] = {"steepest": steepest, "valley": valley}
    for fraction, name in ((1 / 3, "min/3"), (1 / 10, "min/10"), (1 / 30, "min/30")):
        value = tenth * 10 * fraction if tenth else None
        out[name] = value
        out[f"median(..., {name})"] = median_of_rules((steepest, valley, value))[0]
    return out


def main() -> None:
    runs = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else HERE / "lr_bench.json")
                      .read_text())["runs"]
    grid = json.loads((HERE / "lr_grid.json").read_text())["tasks"]
    table: dict[str, dict[str, tuple]] = {}
    for task, rows in runs.items():
        per_seed = [candidates(r["rules"]) for r in rows]
        recorded = [r["rules"]["ensemble"] for r in rows]
        mine = [c["median(..., min/10)"] for c in per_seed]
        assert all((a is None and b is None) or (a and b and abs(a / b - 1) < 1e-9)
                   for a, b in zip(recorded, mine, strict=True)), task
        table[task] = {k: score([c[k] for c in per_seed], grid[task]["best_lr"])
                       for k in per_seed[0]}
        table[task]["_seeds"] = (len(rows),)
    rules = [k for k in next(iter(table.values())) if k != "_seeds"]
    print("median distance / spread (decades)")
    for task, row in table.items():
        print(f"  {task:22} " + "  ".join(f"{k} {row[k][0]:.2f}/{row[k][1]:.2f}" for k in rules))

    leave_one_out(table, tuple(rules))
    names = list(table)
    for rule in rules:
        over = [n for n in names if table[n][rule][0] > 0.5]
        print(f"  {rule:20} over 0.5 decades on: {', '.join(over) or 'none'}")


if __name__ == "__main__":
    main()
