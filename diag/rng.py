"""Keep what the user owns as it was: the global RNG states (Python, NumPy, torch)."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np


@contextmanager
def isolated_rng(seed: int | None, *, torch_needed: bool = True) -> Iterator[None]:
    """Run a block with Python, NumPy and torch RNGs seeded, then put them back.

    The user's global random state is the same after a check as before it, and the check's
    own randomness (init, dropout, shuffling) depends only on ``seed``. With
    ``torch_needed=False`` torch is left alone unless it is already imported, so a check that
    needs no torch (reading a history file) never pays for importing it.
    """
    torch: Any = None
    if torch_needed or "torch" in sys.modules:
        import torch
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state() if torch is not None else None
    cuda_states = (torch.cuda.get_rng_state_all()
                   if torch is not None and torch.cuda.is_initialized() else None)
    try:
        if seed is not None:
            random.seed(seed)
            np.random.seed(seed % 2**32)
            if torch is not None:
                torch.default_generator.manual_seed(seed)
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        if torch is not None and torch_state is not None:
            torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
