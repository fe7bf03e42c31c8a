"""Score `diag lr-schedule` on the labelled published logs (tests/data/curves/), the tuning
part, the held-out part and the logs that diverge (part "added") separately.

    python benchmarks/score_curves.py [--verbose]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from curve_labels import keys, problems, run  # noqa: E402


def main() -> None:
    verbose = "--verbose" in sys.argv
    for part in ("tune", "heldout", "added", "round5", "round6", "round7"):
        cases = keys(part)
        right = 0
        for key in cases:
            try:
                result = run(key)
            except Exception as exc:  # a refused log is a wrong answer, not a crash
                print(f"  BAD {key}: {type(exc).__name__}: {exc}")
                continue
            wrong = problems(key, result)
            right += not wrong
            if wrong or verbose:
                print(f"  {'ok ' if not wrong else 'BAD'} {key}: {result.status.value}: "
                      f"{result.summary[:110]}" + (f"\n      {'; '.join(wrong)}" if wrong else ""))
        print(f"{part}: {right}/{len(cases)} = {right / len(cases):.0%}")


if __name__ == "__main__":
    main()
