from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
# The thread count is the tests' own (the fixture below), so diag respects it rather than
# measuring the load: the same seed gives the same numbers however busy the machine is.
# tests/checks/test_threads.py lifts it to test diag's own choice.
os.environ.setdefault("OMP_NUM_THREADS", str(min(2, os.cpu_count() or 1)))
os.environ.setdefault("COLUMNS", "120")

import pytest  # noqa: E402
from hypothesis import settings as _hypothesis  # noqa: E402

# The same examples every run (no database, no fresh random draws): a property that fails
# fails every time, on every machine, and CI never turns red by the luck of a draw.
_hypothesis.register_profile("diag", derandomize=True, database=None, deadline=None)
_hypothesis.load_profile("diag")

pytest_plugins = ["pytester"]  # tests/report/test_ci.py runs pytest with diag's plugin

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(autouse=True)
def _torch_threads() -> None:
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def planted_path() -> str:
    return str(ROOT / "tests" / "planted.py")
