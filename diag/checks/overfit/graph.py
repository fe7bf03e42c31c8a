"""Walking autograd graphs: what a loss depends on, and what a live tensor keeps alive."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from torch import Tensor


def walk(roots: Iterable[Any], seen: set[int] | None = None) -> Iterator[Any]:
    """Every autograd node reachable from ``roots`` (grad_fn objects), each once.

    ``seen`` (ids) may be shared between calls to count a union of graphs.
    """
    seen = set() if seen is None else seen
    stack = [r for r in roots if r is not None]
    while stack:
        node = stack.pop()
        key = id(node)
        if key in seen:
            continue
        seen.add(key)
        yield node
        for nxt, _ in getattr(node, "next_functions", ()):
            if nxt is not None and id(nxt) not in seen:
                stack.append(nxt)


def leaf_tensors(output: Tensor) -> list[Tensor]:
    """Leaf tensors that require grad and that ``output`` depends on (AccumulateGrad nodes)."""
    leaves = []
    for node in walk([output.grad_fn]):
        variable = getattr(node, "variable", None)
        if isinstance(variable, Tensor):
            leaves.append(variable)
    return leaves
