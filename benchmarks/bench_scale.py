"""Cost as the model grows: the wall time and peak RSS of `diag init`, `diag size` (with the
quantization error on 32 samples), `diag speed` (the default sweep) and `diag leaks` on
ResNets of about 0.1 M, 1 M, 10 M and 25 M parameters (tests/architectures.py's layout at
four widths), beside a plain training step of the same model, same data and batch size.
Whole processes (peak RSS is the process's own), the runs of each size interleaved, median
of the repeats.

Run: python benchmarks/bench_scale.py [--repeats 3] [--sizes 0.1M,1M,10M,25M] [--checks speed]
Prints the table and the targets; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = {"0.1M": 9, "1M": 29, "10M": 92, "25M": 146}
"""ResNet widths (first stage's channels) giving about these parameter counts."""

MODELS = '''
import sys
sys.path.insert(0, {tests!r})
import torch
from architectures import ResNet


def model():
    return ResNet(classes=10, width={width})


def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 3, 32, 32, generator=g), torch.randint(0, 10, (32,), generator=g)
'''

PLAIN = '''
import resource, sys, time
sys.path.insert(0, {folder!r})
import torch
import models
m, (x, y) = models.model(), models.data()
opt = torch.optim.Adam(m.parameters(), 1e-3)
for _ in range({steps}):
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(m(x), y).backward()
    opt.step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
'''

DIAG = '''
import resource, runpy, sys
sys.argv = ["diag", *{argv!r}]
try:
    runpy.run_module("diag", run_name="__main__")
except SystemExit:
    pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
'''


def run(code: str) -> tuple[float, float, float]:
    """(seconds, peak RSS in MB, the check's own seconds from its JSON, else NaN) of a fresh
    process running ``code``."""
    import json

    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)
    wall = time.perf_counter() - start
    try:
        rss = int(proc.stderr.strip().splitlines()[-1]) / 1024
    except (ValueError, IndexError):
        print(proc.stderr[-2000:], file=sys.stderr)
        rss = float("nan")
    try:
        check = float(json.loads(proc.stdout)["checks"][0]["duration_s"])
    except (ValueError, KeyError, IndexError):
        check = float("nan")
    return wall, rss, check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default=",".join(WIDTHS))
    parser.add_argument("--checks", default="init,size,speed,leaks",
                        help="which of init, size, speed, leaks (the plain step always runs)")
    args = parser.parse_args()
    wanted = set(args.checks.split(","))
    sizes = [s for s in args.sizes.split(",") if s in WIDTHS]
    sys.path.insert(0, str(ROOT / "tests"))
    from architectures import ResNet

    table: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            folder = Path(tmp) / size
            folder.mkdir()
            (folder / "models.py").write_text(MODELS.format(tests=str(ROOT / "tests"),
                                                            width=WIDTHS[size]))
            params = sum(p.numel() for p in ResNet(10, WIDTHS[size]).parameters())
            spec = ["--model", f"{folder}/models.py:model", "--data",
                    f"{folder}/models.py:data", "--no-plots", "--quiet", "--format", "json",
                    "--out", str(folder / "out")]
            runs = {
                "plain step x30": PLAIN.format(folder=str(folder), steps=30),
                "init": DIAG.format(argv=["init", *spec]),
                "size": DIAG.format(argv=["size", "--max-size", "1GB", *spec]),
                "speed": DIAG.format(argv=["speed", *spec]),
                "leaks (30 iterations)": DIAG.format(argv=["leaks", *spec]),
            }
            runs = {k: v for k, v in runs.items() if k == "plain step x30"
                    or k.split(" ")[0] in wanted}
            table[f"{size} ({params / 1e6:.2f} M)"] = results = {k: [] for k in runs}
            for _ in range(args.repeats):
                for name, code in runs.items():
                    results[name].append(run(code))
    print(f"median of {args.repeats} interleaved rounds; whole process seconds (the check's "
          "own seconds) / peak RSS (MB)")
    names = list(next(iter(table.values())))
    print(f"{'model':18}" + "".join(f"{n:>30}" for n in names))
    for model, results in table.items():
        cells = []
        for n in names:
            wall = statistics.median(r[0] for r in results[n])
            rss = statistics.median(r[1] for r in results[n])
            own = statistics.median(r[2] for r in results[n])
            cells.append(f"{wall:7.1f} s ({own:5.1f}) {rss:6.0f} MB" if own == own
                         else f"{wall:7.1f} s         {rss:6.0f} MB")
        print(f"{model:18}" + "".join(f"{c:>30}" for c in cells))
        plain_rss = statistics.median(r[1] for r in results["plain step x30"])
        worst = max(statistics.median(r[1] for r in results[n]) for n in names[1:])
        print(f"{'':18}peak RSS: diag's worst {worst / plain_rss:.2f}x the plain step's "
              "(target <= 2x)")
    print("targets: size on 25 M < 10 s, init < 5 s, speed's sweep < 60 s; the leak census's "
          "own overhead is bench_leaks.py's (<= 1.10x)")


if __name__ == "__main__":
    main()
