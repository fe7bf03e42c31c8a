"""Keep what the user owns as it was: the global RNG states."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


@contextmanager
def isolated_rng(seed: int | None) -> Iterator[None]:
    """Run a block with Python, NumPy and torch CPU RNGs seeded, then put them back.

    The user's global random state is the same after a check as before it, and the check's
    own randomness (init, dropout, shuffling) depends only on ``seed``.
    """
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    cuda_states = (torch.cuda.get_rng_state_all()
                   if torch.cuda.is_initialized() else None)  # type: ignore[no-untyped-call]
    try:
        if seed is not None:
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.default_generator.manual_seed(seed)
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
