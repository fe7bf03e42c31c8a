"""Figure of `diag speed`: throughput and memory against batch size."""

from __future__ import annotations

from matplotlib.figure import Figure

from diag.report.figures import new_figure
from diag.result import CheckResult


def throughput(rows: list[dict[str, float]], oom: int | None, title: str) -> Figure:
    fig = new_figure()
    ax = fig.add_subplot()
    b = [r["batch"] for r in rows]
    ax.plot(b, [r["samples_per_s"] for r in rows], marker="o", color="tab:blue",
            label="throughput")
    ax.set_xscale("log", base=2)
    ax.set_xticks(b, labels=[str(int(v)) for v in b])
    ax.set_xlabel("batch size (samples, log2 scale)")
    ax.set_ylabel("throughput (samples per second)", color="tab:blue")
    mem = ax.twinx()
    mem.plot(b, [r["saved_bytes"] / 1e6 for r in rows], marker="s", color="tab:red",
             label="activations saved for backward")
    mem.set_ylabel("activation memory (MB, 1 MB = 10^6 bytes)", color="tab:red")
    if oom:
        ax.axvline(oom, color="black", ls="--", lw=1)
        ax.text(oom, ax.get_ylim()[1], f" out of memory at {oom}", va="top", fontsize=8)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return fig


def figures(result: CheckResult) -> dict[str, Figure]:
    rows = result.plot_data.get("rows")
    if not rows:
        return {}
    return {"sweep": throughput(rows, result.plot_data.get("oom"),
                                "speed: throughput and memory per batch size")}
