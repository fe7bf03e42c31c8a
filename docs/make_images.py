"""Regenerate the README's pictures: the terminal report of `diag check` on the defaults
(SVG, rendered by rich) and two of its plots.

Run: python docs/make_images.py
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from diag.report import Report
from diag.report.console import ConsoleReporter
from diag.result import CheckResult

HERE = Path(__file__).resolve().parent / "images"


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "diag", "check", "--out", tmp, "--quiet"],
                       check=False, capture_output=True)
        doc = json.loads((Path(tmp) / "report.json").read_text())
        results = [CheckResult.from_dict(c) for c in doc["checks"]]
        console = Console(record=True, width=118, file=io.StringIO(), force_terminal=True)
        console.print(ConsoleReporter().renderable(Report(results)))
        console.save_svg(str(HERE / "terminal.svg"), title="diag check")
        for name in ("lr-schedule_curve.png", "overfit_predictions.png"):
            shutil.copy(Path(tmp) / name, HERE / name)
    print(f"wrote {', '.join(sorted(p.name for p in HERE.iterdir()))}")


if __name__ == "__main__":
    main()
