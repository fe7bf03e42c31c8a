"""A tf.memory() for PyTorch: live tensors, storages, bytes and autograd graph nodes.

PyTorch frees by reference counting, so its leaks are references held too long. A census of
Python tensor objects (gc) misses tensors held only inside autograd graphs; this one tracks
every tensor created by Python code while a step runs (a TorchFunctionMode, with the user's
file:line where it was made), walks the autograd graphs those tensors keep alive, and counts
the tensors saved inside them.
"""

from __future__ import annotations

import collections
import gc
import os
import sys
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any, TypeVar

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from diag.errors import is_library_file

T = TypeVar("T")
_SAVED_ATTRS: dict[type, tuple[str, ...]] = {}
_LIB_CACHE: dict[str, bool] = {}
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_ref = weakref.ref


def _is_lib(filename: str) -> bool:
    cached = _LIB_CACHE.get(filename)
    if cached is None:
        cached = _LIB_CACHE[filename] = is_library_file(filename)
    return cached


_CODE_IS_LIB: dict[CodeType, bool] = {}
_SITES: dict[tuple[CodeType, int], str] = {}


def user_site(depth: int = 2) -> str:
    """``file.py:42`` of the innermost calling frame outside torch, diag and the stdlib.

    Runs for every tensor a step creates, so both answers are cached per code object.
    """
    innermost = sys._getframe(depth)
    frame: FrameType | None = innermost
    while frame is not None:
        code = frame.f_code
        lib = _CODE_IS_LIB.get(code)
        if lib is None:
            lib = _CODE_IS_LIB[code] = _is_lib(code.co_filename)
        if not lib:
            break
        frame = frame.f_back
    found = frame or innermost
    key = (found.f_code, found.f_lineno)
    site = _SITES.get(key)
    if site is None:
        site = _SITES[key] = f"{os.path.basename(key[0].co_filename)}:{key[1]}"
    return site


@dataclass
class Record:
    """A tracked tensor: where and by which op it was made."""

    ref: weakref.ReferenceType[Tensor]
    site: str
    """``file.py:42`` in the user's code; empty while attribution is off."""
    op: str
    iteration: int
    order: int
    """Creation order across the run (newest roots are walked first)."""
    storage: tuple[int, int] | None = None
    """(storage key, nbytes), computed once."""
    seen: bool | None = True
    """True: made through the mode; False: found by a scan while the mode was on, so made
    where it cannot see (torch.from_numpy, C++, inside optimizer.step); None: found by a
    phase-one scan, while the mode was off."""


def _storage(t: Tensor) -> tuple[int, int]:
    try:
        s = t.untyped_storage()
        ptr = s.data_ptr()
        return (ptr if ptr else id(s), int(s.nbytes()))
    except (RuntimeError, NotImplementedError, TypeError):
        return (id(t), 0)


def _describe(t: Tensor) -> str:
    return f"{str(t.dtype).replace('torch.', '')}{list(t.shape)}"


def saved_tensors(node: Any) -> Iterable[Tensor]:
    """Tensors an autograd node still holds (freed ones, after backward, are skipped)."""
    names = _SAVED_ATTRS.get(type(node))
    if names is None:
        names = _SAVED_ATTRS[type(node)] = tuple(
            a for a in dir(node) if a.startswith("_saved_"))
    for name in names:
        try:
            value = getattr(node, name)
        except (RuntimeError, AttributeError):
            continue
        if isinstance(value, Tensor):
            yield value
        elif isinstance(value, tuple | list):
            yield from (v for v in value if isinstance(v, Tensor))


@dataclass
class SiteStats:
    """What one creation site holds alive at one census."""

    tensors: int = 0
    bytes: int = 0
    graph_nodes: int = 0
    with_grad_fn: int = 0
    saved_bytes: int = 0
    saved_activations: int = 0
    """Saved tensors with more than one element still held in graphs this site keeps alive:
    graphs that never ran backward (evaluation without no_grad)."""
    example: str = ""
    op: str = ""


@dataclass
class Snapshot:
    """One census."""

    tensors: int
    storages: int
    bytes: int
    graph_nodes: int
    rss_bytes: int | None
    cuda_bytes: int | None
    sites: dict[str, SiteStats] = field(default_factory=dict)


class TensorCensus(TorchFunctionMode):
    """Call ``begin()`` once, enter around each ``step()`` call, call ``take()`` after it,
    and ``end()`` when done.

    Two phases, to stay cheap enough to leave on: with ``attribute`` off (phase one) the
    census counts tensors, storages, bytes and graph nodes every iteration but records no
    creation sites (no frame walk per tensor); the leaks check turns ``attribute`` on for a
    few more iterations only when the counts grow, to find the user's file:line.

    With ``scan``, phase one does not intercept torch calls at all. ``begin()`` freezes the
    garbage collector's generations (``gc.freeze()``: what is alive then is the baseline),
    so ``gc.get_objects()`` returns only objects made since, and each ``take()`` finds the
    new tensors in that short list (about 0.05 ms on the browser net's loop, against about
    0.8 ms per step for the TorchFunctionMode's dispatch). It sees tensors the mode cannot
    (torch.from_numpy, C++ extensions, optimizer state). Where the freeze is not possible
    (already frozen by the caller, or an interpreter whose frozen objects still show in
    ``gc.get_objects()``), phase one falls back to the mode; ``scanning`` says which.
    ``end()`` unfreezes; call it before ``gc.get_referrers`` (``describe_holder``), which
    does not look at frozen objects.

    What the user's loop keeps (a list that gains an entry a step) stays young and would be
    scanned again every step, a cost that grows with the run (20,000 kept lists: 1.7 ms a
    step). So when the young objects reach ``REFREEZE_AT`` and twice what a scan right
    after the last freeze found (the loop's own transient objects), a scan collects the
    garbage among them (``gc.collect()``: only live objects are frozen) and freezes them.
    Their tensors keep their records and are still counted; only new objects are scanned.
    """

    REFREEZE_AT = 2_000
    """Young objects at which a scan freezes them (see the class docstring)."""

    def __init__(self, attribute: bool = True, scan: bool = False) -> None:
        super().__init__()
        self.scan = scan
        self.scanning = False
        """begin() froze the gc: phase one scans young objects instead of intercepting."""
        self._pushed = False
        self.records: dict[int, Record] = {}
        self.iteration = 0
        self.attribute = attribute
        self._order = 0
        self._popped = False
        self._hooks: list[Any] = []
        self.baseline: list[weakref.ReferenceType[Tensor]] = []
        self._new: list[tuple[weakref.ReferenceType[Tensor], Any]] = []
        """Phase one: tensors made since the last census, as (weakref, op); only those
        still alive at the census become records."""
        self._baseline_storage: list[tuple[weakref.ReferenceType[Tensor], int, int]] = []
        self.pause_in_optimizer = True
        """Step out of the mode inside optimizer.step() (cheaper). Off when the training
        step itself runs there: Lightning and others pass a closure to optimizer.step()."""
        self.young = 0
        """Objects the last scan looked at."""
        self.refreezes = 0
        """Times a scan froze the young objects."""
        self._transient: int | None = None
        """Young objects found by the first scan after a freeze (the loop's own)."""

    # The optimizer's step() is the busiest caller of torch functions (a dozen in-place ops
    # per parameter) and creates nothing but its lazy state, which the two gc scans of the
    # leaks check still see. Stepping out of the mode there keeps the census cheap. Only our
    # own mode is popped, and only when it is on top; other modes and tensor subclasses
    # keep working.
    def __enter__(self) -> TensorCensus:
        import torch.optim.optimizer as optim

        self._pushed = not (self.scanning and not self.attribute)
        if not self._pushed:  # phase one by scans: nothing to intercept
            return self
        self._popped = False
        hooks = (getattr(optim, "register_optimizer_step_pre_hook", None)
                 if self.pause_in_optimizer else None)
        self._hooks = [] if hooks is None else [
            optim.register_optimizer_step_pre_hook(self._pause),
            optim.register_optimizer_step_post_hook(self._resume)]
        super().__enter__()  # type: ignore[no-untyped-call]
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._pushed:
            return
        self._pushed = False
        self._resume()
        for handle in self._hooks:
            handle.remove()
        super().__exit__(*exc)  # type: ignore[no-untyped-call]

    def _pause(self, *_: Any) -> None:
        try:
            depth = torch._C._len_torch_function_stack()
            if depth and torch._C._get_function_stack_at(depth - 1) is self:
                torch._C._pop_torch_function_stack()
                self._popped = True
        except AttributeError:  # private API moved: keep tracking, just slower
            pass

    def _resume(self, *_: Any) -> None:
        if self._popped:
            torch._C._push_on_torch_function_stack(self)
            self._popped = False

    def begin(self, baseline: bool = True) -> None:
        """Call once before the first iteration. ``baseline=False`` skips the scan of the
        tensors alive before (a full gc walk, 80 ms in a process with torch loaded) for a
        census whose takes never count them (``take(baseline=False)``: a watched loop)."""
        if baseline:
            self.scan_baseline()
        if self.scan:
            self.scanning = _freeze()

    def end(self) -> None:
        """Call once after the last iteration: the gc's generations are as they were."""
        if self.scanning:
            gc.unfreeze()
            self.scanning = False

    def _scan_young(self) -> None:
        """Records for the live tensors made since ``begin()`` that have none (the gc's
        young generations, after the freeze). No reference outlives the call."""
        records = self.records
        seen = False if self.attribute else None
        young = gc.get_objects()
        try:
            for obj in young:
                # the object's own type (see _is): no warnings filter is needed, and none is
                # set (filters are process-wide: one set every step could hide another
                # thread's warnings while it is set)
                if not issubclass(type(obj), Tensor):
                    continue
                old = records.get(obj._cdata)
                if old is not None and old.ref() is obj:
                    continue
                self._order += 1
                records[obj._cdata] = Record(_ref(obj), "", "", self.iteration,
                                             self._order, seen=seen)
        finally:
            self.young = len(young)
            del young
        if self._transient is None:
            self._transient = self.young
        elif self.young >= max(self.REFREEZE_AT, 2 * self._transient):
            gc.collect()  # garbage is not frozen: only what is alive now
            gc.freeze()
            self.refreezes += 1
            self._transient = None

    def live(self, kind: type[T]) -> list[T]:
        """``live_objects(kind)``, frozen ones included: one full scan (a few per run)."""
        if not self.scanning:
            return live_objects(kind)
        gc.unfreeze()
        try:
            return live_objects(kind)
        finally:
            gc.freeze()  # what the scan saw is old now; every tensor in it has a record

    def unseen(self) -> list[Tensor]:
        """Live tensors a scan found while the mode was on (made where it cannot see). Those
        made in the current iteration come first, then those that outlived one, each oldest
        first: the last is the newest survivor, the likeliest leak (this iteration's
        gradients are unseen too, and replaced every iteration)."""
        found = sorted((r for r in self.records.values() if r.seen is False),
                       key=lambda r: (r.iteration < self.iteration, r.order))
        return [t for t in (r.ref() for r in found) if t is not None]

    def scan_baseline(self) -> None:
        """Tensors alive before the run (one gc scan, not repeated per iteration); their
        storages are read once here, not at every census."""
        tensors = live_objects(Tensor)
        self.baseline = [weakref.ref(t) for t in tensors]
        self._baseline_storage = [(ref, *_storage(t)) for ref, t in zip(
            self.baseline, tensors, strict=True)]

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None
                           ) -> Any:
        out = func(*args, **kwargs) if kwargs else func(*args)
        if not self.attribute:  # phase one: a weakref per new tensor, nothing else
            if isinstance(out, Tensor):
                if not (args and out is args[0]):
                    self._new.append((_ref(out), func))
            elif isinstance(out, tuple | list) and out and isinstance(out[0], Tensor):
                self._new.extend((_ref(o), func) for o in out if isinstance(o, Tensor))
            return out
        if isinstance(out, Tensor):
            if args and out is args[0]:
                # In place (add_, mul_, +=): no new tensor. Note that a tracked one was touched
                # now: a running total is the newest root of its graph.
                rec = self.records.get(out._cdata)
                if rec is not None:
                    self._order += 1
                    rec.order = self._order
                    if self.attribute and not rec.site:  # made before attribution was on
                        rec.site = user_site(2)
                        rec.op = rec.op or getattr(func, "__name__", str(func))
                return out
            self._track(out, func)
        elif isinstance(out, tuple | list) and out and isinstance(out[0], Tensor):
            for o in out:
                if isinstance(o, Tensor):
                    self._track(o, func)
        return out

    def _promote(self) -> None:
        """Phase one's new tensors that are still alive become records (no site)."""
        records = self.records
        for ref, func in self._new:
            t = ref()
            if t is None:
                continue
            old = records.get(t._cdata)
            if old is not None and old.ref() is t:
                continue
            self._order += 1
            records[t._cdata] = Record(ref, "", getattr(func, "__name__", str(func)),
                                       self.iteration, self._order)
        self._new.clear()

    def _track(self, t: Tensor, func: Any) -> None:
        key = t._cdata
        old = self.records.get(key)
        self._order += 1
        if old is not None and old.ref() is t:
            # An in-place op returned a tensor we already know: keep where it was made, but
            # note it was touched now (a running total is the newest root of its graph).
            old.order = self._order
            if self.attribute and not old.site:
                old.site = user_site(3)
                old.op = old.op or getattr(func, "__name__", str(func))
            return
        self.records[key] = Record(weakref.ref(t), user_site(3) if self.attribute else "",
                                   getattr(func, "__name__", str(func)), self.iteration,
                                   self._order)

    def take(self, with_sites: bool | None = None, rss: bool = False, graph: bool = True,
             baseline: bool = True, skip_root: Tensor | None = None) -> Snapshot:
        """Count what is alive now; per-site stats when ``with_sites`` (default: while
        attributing), the process RSS when ``rss`` (a file read: only a few times a run).
        ``graph=False`` skips the walk of the autograd graphs (graph nodes and saved tensors
        are not counted) and ``baseline=False`` the tensors alive before ``begin()`` (they
        cannot be a growth): the cheapest census, for every step of a watched loop.
        ``skip_root``: a tensor whose graph is not walked from it (a watched loop's current
        loss: its graph is this step's, the same size every step, and already backwarded;
        a graph that grows is reached from the older tensors that hold it)."""
        if with_sites is None:
            with_sites = self.attribute
        if self._new:
            self._promote()
        if self.scanning:
            self._scan_young()
        seen_tensors: set[int] = set()
        storages: dict[int, int] = {}
        sites: dict[str, SiteStats] = {}
        roots: list[tuple[Any, str, tuple[int, bool, int]]] = []
        dead = []
        late: list[tuple[Record, Tensor]] = []

        def count(rec: Record, t: Tensor) -> None:
            seen_tensors.add(t._cdata)
            if rec.storage is None:
                rec.storage = _storage(t)
            skey, nbytes = rec.storage
            new_bytes = 0 if skey in storages else nbytes
            storages.setdefault(skey, nbytes)
            if with_sites:
                label = rec.site
                st = sites.get(label)
                if st is None:
                    st = sites[label] = SiteStats(op=rec.op)
                st.tensors += 1
                st.bytes += new_bytes
                st.example = _describe(t)
                st.op = rec.op
                if t.grad_fn is not None:
                    st.with_grad_fn += 1

        for key, rec in self.records.items():
            t = rec.ref()
            if t is None:
                dead.append(key)
                continue
            if rec.seen is False:
                # Made out of the mode's sight; among them, the saved tensors the graph
                # walk itself brought to Python. Counted after the walk, which credits
                # those to the site whose graph holds them, and walked last.
                late.append((rec, t))
            else:
                count(rec, t)
            if t.grad_fn is not None and t is not skip_root:
                roots.append((t.grad_fn, rec.site,
                              (rec.iteration, rec.seen is not False, rec.order)))
        for key in dead:
            del self.records[key]
        for ref, skey, nbytes in self._baseline_storage if baseline else ():
            t = ref()
            if t is None or t._cdata in seen_tensors:
                continue
            seen_tensors.add(t._cdata)
            storages.setdefault(skey, nbytes)
            if t.grad_fn is not None:
                roots.append((t.grad_fn, "before the run", (-1, True, 0)))
        nodes = 0
        seen_nodes: set[int] = set()
        # node and saved-tensor wrappers stay alive during the walk: ids and addresses unique
        keep: list[Any] = []
        # Newest roots first: a graph is credited to the tensor that keeps it alive now
        # (the running total), not to the intermediates inside it.
        roots.sort(key=lambda r: r[2], reverse=True)
        for root, site, _ in roots if graph else ():
            stack = [root]
            credited = 0
            saved_new = 0
            activations = 0
            while stack:
                node = stack.pop()
                if id(node) in seen_nodes:
                    continue
                seen_nodes.add(id(node))
                keep.append(node)
                credited += 1
                for s in saved_tensors(node):
                    # an unpacked saved output is a new tensor object each time: kept alive
                    # for the walk, or its address is reused by the next one and the
                    # count by address then depends on the allocator (a process that has
                    # run hundreds of tests counted 20 to 40 more or fewer, step to step)
                    keep.append(s)
                    if s.numel() > 1:
                        activations += 1
                    if s._cdata in seen_tensors:
                        continue
                    seen_tensors.add(s._cdata)
                    skey, nbytes = _storage(s)
                    if skey not in storages:
                        storages[skey] = nbytes
                        saved_new += nbytes
                for nxt, _ in node.next_functions:
                    if nxt is not None and id(nxt) not in seen_nodes:
                        stack.append(nxt)
            nodes += credited
            if with_sites and site in sites:
                sites[site].graph_nodes += credited
                sites[site].saved_bytes += saved_new
                sites[site].saved_activations += activations
        for rec, t in late:
            if t._cdata not in seen_tensors:
                count(rec, t)
        cuda = (int(torch.cuda.memory_allocated())
                if torch.cuda.is_initialized() else None)  # type: ignore[no-untyped-call]
        return Snapshot(len(seen_tensors), len(storages), sum(storages.values()), nodes,
                        rss_bytes() if rss else None, cuda, sites)


def _freeze() -> bool:
    """Freeze the gc's generations if that makes ``gc.get_objects()`` return only what is
    made from now on; False (and nothing changed) where it does not."""
    if gc.get_freeze_count():
        return False  # the caller froze objects: unfreezing at the end would free theirs
    gc.freeze()
    if len(gc.get_objects()) > 1000:  # frozen objects still listed: no gain here
        gc.unfreeze()
        return False
    return True


def untracked_tensors(census: TensorCensus) -> list[Tensor]:
    """Live Python tensors the census neither tracked nor saw before the run: made where
    the TorchFunctionMode cannot see (torch.from_numpy, C++ extensions, other threads).
    One gc scan; taken twice per run, not per iteration."""
    known = {rec.ref() for rec in census.records.values()}
    known |= {ref() for ref in census.baseline}
    known_ids = {id(t) for t in known if t is not None}
    return [t for t in live_objects(Tensor) if id(t) not in known_ids]


def holder_of(t: Tensor, ignore: Iterable[object] = ()) -> str:
    """'held in a list of 30 items', from one gc.get_referrers call."""
    skip = {id(x) for x in ignore}
    containers = (list, dict, set, tuple, collections.deque)
    for holder in gc.get_referrers(t):
        if isinstance(holder, containers) and id(holder) not in skip:
            if isinstance(holder, dict) and ("__builtins__" in holder or "__name__" in holder):
                continue  # a module's globals
            return f"held in a {type(holder).__name__} of {len(holder)} items"
    return ""


def describe_holder(census: TensorCensus, site: str) -> str:
    """What keeps the newest live tensor made at ``site`` alive: 'a list of 30 items'.

    One gc.get_referrers call, made only for sites already judged to leak.
    """
    newest = None
    for rec in census.records.values():
        if rec.site == site and rec.ref() is not None and (
                newest is None or rec.order > newest.order):
            newest = rec
    t = newest.ref() if newest else None
    if t is None:
        return ""
    held = holder_of(t, ignore=[census.records])
    if held:
        return held
    if t.grad_fn is not None:
        return "held by a variable whose autograd graph keeps growing"
    return ""


def rss_bytes() -> int | None:
    """Resident set size of this process (Linux /proc), or None where unavailable."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def live_objects(kind: type[T]) -> list[T]:
    """Every gc-tracked object of ``kind``: one full scan, for use a few times per run."""
    return [o for o in gc.get_objects() if _is(o, kind)]


def _is(obj: object, kind: type) -> bool:
    """Whether the object's own type is ``kind`` or a subclass. Not isinstance(), which reads
    ``obj.__class__``: on deprecated torch module attributes that warns
    (``torch.distributed.reduce_op``), and a ``weakref.proxy`` (torch.compile keeps some)
    passes for the tensor it points to (a second count of it), or raises ReferenceError once
    that tensor is dead."""
    return issubclass(type(obj), kind)


def naive_tensor_count() -> int:
    """What a gc census sees: Python tensor objects. Misses graph-held tensors."""
    return len(live_objects(Tensor))
