"""`diag data`: read two epochs the way the training loop will (the user's loader, or
diag's trainer batching ``--data``), then judge the order, the alignment and the values.

Order statistics are compared with the same labels in random orders (200 seeded
shuffles), so the verdict does not depend on the number of classes or the batch size: an
order is "not shuffled" when its statistic is more than 5 standard deviations from what
shuffles give (a random order gets there about once in 3.5 million runs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from diag.checks.calls import CallWatch
from diag.checks.data import DataOptions
from diag.errors import USER_ERRORS, UsageError, user_code_error
from diag.inputs import Inputs
from diag.inputs.data import TensorData, nonfinite_rows
from diag.result import CheckResult, Finding, Severity, Status
from diag.train import batch_indices

NAME = "data"
SHUFFLES = 200
ORDER_Z = 5.0
IMBALANCE_WARN = 10.0
_X_KEYS = ("x", "input", "inputs", "input_ids", "image", "images", "pixel_values", "data",
           "features")
_Y_KEYS = ("y", "target", "targets", "label", "labels")


@dataclass
class _Epoch:
    x: Tensor
    y: Tensor
    batch_sizes: list[int]
    ids: list[int] | None
    """Dataset indices when diag batches the data itself; None for a user's loader."""


# --- reading batches ------------------------------------------------------------------------
def _a(obj: Any) -> str:
    """'an int', 'a list': the type of ``obj`` with its article."""
    kind = type(obj).__name__
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _as_tensor(v: Any, what: str, source: str) -> Tensor:
    if isinstance(v, Tensor):
        return v.detach().cpu()
    if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
        return torch.from_numpy(v)
    if isinstance(v, list | tuple) and v and all(isinstance(e, int | float) for e in v):
        return torch.tensor(v)
    raise UsageError(f"{source} yields batches whose {what} is a {type(v).__name__}",
                     hint="yield (inputs, targets) pairs of tensors or numpy arrays")


def split_batch(batch: Any, source: str) -> tuple[Tensor, Tensor]:
    """(inputs, targets) of one batch: a pair (or longer tuple), or a dict with x/input/
    image and y/target/label keys. Anything else is a UsageError."""
    if isinstance(batch, dict):
        xk = next((k for k in _X_KEYS if k in batch), None)
        yk = next((k for k in _Y_KEYS if k in batch), None)
        if xk is None or yk is None:
            raise UsageError(f"{source} yields dicts with keys {sorted(map(str, batch))}",
                             hint=f"name the inputs one of {', '.join(_X_KEYS)} and the "
                                  f"targets one of {', '.join(_Y_KEYS)}")
        x, y = batch[xk], batch[yk]
    elif isinstance(batch, tuple | list) and len(batch) >= 2:
        x, y = batch[0], batch[1]
    else:
        raise UsageError(f"{source} yields a {type(batch).__name__}, not an (inputs, "
                         "targets) batch", hint="yield (inputs, targets) pairs, as a "
                                                "DataLoader over (x, y) items does")
    xt, yt = _as_tensor(x, "inputs", source), _as_tensor(y, "targets", source)
    check_bytes(tensor_bytes(xt) + tensor_bytes(yt), f"{source} yields a batch that")
    if xt.dim() < 1 or yt.dim() < 1 or xt.shape[0] != yt.shape[0]:
        raise UsageError(f"{source} yields inputs of shape {tuple(xt.shape)} with targets of "
                         f"shape {tuple(yt.shape)}",
                         hint="inputs and targets need the same batch (first) dimension")
    return xt, yt


def tensor_bytes(t: Tensor) -> int:
    """Bytes ``t`` takes once materialised (a stride-0 view is tiny until copied)."""
    return int(t.numel()) * int(t.element_size())


def memory_budget() -> int:
    """The most bytes of batches diag will hold at once: a quarter of physical memory."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 4
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 4 * 1024**3


def check_bytes(nbytes: int, what: str) -> None:
    """A UsageError, before any allocation, when ``nbytes`` is over ``memory_budget()``."""
    budget = memory_budget()
    if nbytes > budget:
        raise UsageError(f"{what} takes {nbytes / 1e9:.1f} GB once copied, over diag's "
                         f"{budget / 1e9:.1f} GB limit (a quarter of this machine's memory)",
                         hint="yield smaller batches, or lower --max-batches")


def _concat(parts: list[Tensor], what: str, source: str) -> Tensor:
    """One tensor from the batches' ``what``: same shape per sample, and small enough to
    hold, or a UsageError naming the first batch that differs."""
    first = tuple(parts[0].shape[1:])
    for i, t in enumerate(parts[1:], start=2):
        if tuple(t.shape[1:]) != first:
            raise UsageError(f"{source} yields {what} of shape {tuple(t.shape)} in batch {i}, "
                             f"but {tuple(parts[0].shape)} in batch 1",
                             hint="diag data needs samples of one shape (pad or crop them in "
                                  "the loader)")
    check_bytes(sum(tensor_bytes(t) for t in parts), f"{source}: {len(parts)} batches of {what}")
    return torch.cat(parts)


class _Loader:
    """The user's loader factory: one iterable per epoch (a DataLoader is iterated again;
    a generator is made again)."""

    def __init__(self, factory: Any, source: str) -> None:
        self.factory, self.source = factory, source
        self.iterable: Any = None

    def epoch(self) -> Iterator[Any]:
        try:
            if self.iterable is None or iter(self.iterable) is self.iterable:
                made = self.factory() if callable(self.factory) else self.factory
                self.iterable = made
            return iter(self.iterable)
        except TypeError as exc:
            if "not iterable" in str(exc):
                raise UsageError(f"{self.source} returned {_a(self.iterable)}, not an "
                                 "iterable of batches",
                                 hint="return a DataLoader, a list or a generator of "
                                      "(inputs, targets) batches") from None
            raise user_code_error(exc, self.source) from None
        except USER_ERRORS as exc:
            raise user_code_error(exc, self.source) from None


def _read(loader: _Loader, max_batches: int) -> _Epoch:
    xs: list[Tensor] = []
    ys: list[Tensor] = []
    sizes: list[int] = []
    it = loader.epoch()
    while len(sizes) < max_batches:
        try:
            batch = next(it)
        except StopIteration:
            break
        except USER_ERRORS as exc:
            raise user_code_error(exc, loader.source) from None
        x, y = split_batch(batch, loader.source)
        xs.append(x)
        ys.append(y)
        sizes.append(int(x.shape[0]))
    if not sizes:
        raise UsageError(f"{loader.source} yields no batches",
                         hint="is the data set empty, or the loader a spent generator?")
    return _Epoch(_concat(xs, "inputs", loader.source), _concat(ys, "targets", loader.source),
                  sizes, None)


def _trainer_epochs(data: TensorData, batch_size: int, seed: int, max_batches: int
                    ) -> list[_Epoch]:
    gen = torch.Generator().manual_seed(seed)
    epochs = []
    for _ in range(2):
        batches = list(batch_indices(len(data), min(batch_size, len(data)), gen))[:max_batches]
        order = torch.cat(batches)
        epochs.append(_Epoch(data.x[order], data.y[order], [len(b) for b in batches],
                             [int(i) for i in order]))
    return epochs


def prepare(inputs: Inputs, options: DataOptions,
            resolve: Callable[[str, str], Any]) -> DataOptions:
    """Resolve ``loader`` and read its first batch now: a loader that yields the wrong
    structure is bad input (exit 2). One that raises is the check's error (exit 3)."""
    if options.loader is None:
        return options
    loader = options.loader
    source = "--loader" + (f" {loader}" if isinstance(loader, str) else "")
    if isinstance(loader, str):
        loader = resolve(loader, "--loader")
    if not callable(loader) and not isinstance(loader, Iterable):
        raise UsageError(f"{source} is {_a(loader)}",
                         hint="give a zero-argument factory returning an iterable of "
                              "(inputs, targets) batches, e.g. your DataLoader")
    if isinstance(loader, Iterator):  # a generator object: one pass, then empty
        raise UsageError(f"{source} is {_a(loader)}, which can be read only once",
                         hint="give a zero-argument factory that makes a new one per epoch "
                              "(the generator function itself, not its result), or a "
                              "DataLoader")
    probe = _Loader(loader, source)
    try:
        first = next(probe.epoch())
    except StopIteration:
        raise UsageError(f"{source} yields no batches", hint="is the data set empty?"
                         ) from None
    except UsageError:
        raise
    except USER_ERRORS:
        return dataclasses.replace(options, loader=loader)  # reported by the check
    split_batch(first, source)
    return dataclasses.replace(options, loader=loader)


# --- values ---------------------------------------------------------------------------------
PADDING_ROWS = 0.5
"""Sequence targets look padded when at least half the sequences end in a run (2 or more)
of the same id ..."""
PADDING_SHARE = 0.1
"""... that makes up a tenth of all target positions or more."""


def trailing_padding(y: Tensor) -> tuple[int, float, float] | None:
    """(id, share of sequences, share of positions) when integer sequence targets end in
    runs of one id, as padding does when its targets were not set to -100."""
    if torch.is_floating_point(y) or y.dim() != 2 or y.shape[1] < 4 or y.shape[0] < 2:
        return None
    last = y[:, -1]
    ids, counts = torch.unique(last, return_counts=True)
    token = int(ids[counts.argmax()])
    if token < 0:  # -100: already ignored
        return None
    runs = torch.zeros(y.shape[0], dtype=torch.long)
    for j in range(y.shape[1] - 1, -1, -1):
        still = (y[:, j] == token) & (runs == y.shape[1] - 1 - j)
        if not bool(still.any()):
            break
        runs += still.long()
    rows = float((runs >= 2).float().mean())
    share = float((y == token).float().mean())
    if rows >= PADDING_ROWS and share >= PADDING_SHARE:
        return token, rows, share
    return None


def looks_like_points(y: Tensor) -> bool:
    """Targets that can be landmark points: float (N, K, 2) or (N, 2K) with K >= 2. A
    regression target of shape (N, 1) or (N,) never is."""
    if not torch.is_floating_point(y) or y.dim() not in (2, 3):
        return False
    if y.dim() == 3:
        return int(y.shape[2]) == 2 and int(y.shape[1]) >= 2
    return int(y.shape[1]) >= 4 and int(y.shape[1]) % 2 == 0


MEAN_LIMIT = 3.0
"""Inputs are off-centre when the typical unit's |mean| is over this many of its stds."""
STD_LIMITS = (0.1, 10.0)
"""... or badly scaled when the typical unit's std is more than a decade from 1."""
SPREAD_LIMIT = 10.0
"""... or when one unit's std is over this many times the typical unit's (one column left in
raw units among standardised ones)."""


def _units(x: Tensor) -> tuple[Tensor, str] | None:
    """The inputs as (units, samples) with the unit's name: channels of images (N, C, H, W),
    features of tables (N, F) and of sequences (N, T, F). None for anything else."""
    xf = x.float()
    if x.dim() == 4:
        return xf.transpose(0, 1).reshape(x.shape[1], -1), "channel"
    if x.dim() == 2:
        return xf.T, "feature"
    if x.dim() == 3:
        return xf.reshape(-1, x.shape[2]).T, "feature"
    return None


def _unstandardised(x: Tensor) -> tuple[str, str] | None:
    """(message, fix) when float inputs are far from standardised. Judged on the typical
    (median) channel or feature, so that a few near-constant pixels of a [0, 1] image do not
    count: its |mean| over ``MEAN_LIMIT`` stds, or its std more than a decade from 1; or one
    unit's std over ``SPREAD_LIMIT`` times the typical one. Binary (0/1) and constant
    units, and integer inputs (token ids), are left alone."""
    if not torch.is_floating_point(x) or x.shape[0] < 2:
        return None
    found = _units(x)
    if found is None:
        return None
    per, unit = found
    per = per[:, torch.isfinite(per).all(0)]
    if per.shape[1] < 2:
        return None
    mean, std = per.mean(1), per.std(1)
    judged = (std > 0) & ~((per == 0) | (per == 1)).all(1)
    if not bool(judged.any()):
        return None
    idx = judged.nonzero().flatten()
    offset = (mean.abs() / std.clamp_min(1e-30))[idx]
    typical_offset = float(torch.quantile(offset.double(), 0.5))
    typical_std = float(torch.quantile(std[idx].double(), 0.5))
    names = [int(i) for i in idx]

    def show(ks: list[int]) -> str:
        return ", ".join(f"{unit} {k} (mean {float(mean[k]):.3g}, std {float(std[k]):.3g})"
                         for k in ks[:3]) + (" ..." if len(ks) > 3 else "")

    fix = (f"standardise each {unit} with the training set's mean and std ((x - mean) / std: "
           "transforms.Normalize, sklearn's StandardScaler), so the first layer starts in its "
           "working range at the article's LR")
    lo, hi = STD_LIMITS
    if typical_offset > MEAN_LIMIT or not lo <= typical_std <= hi:
        order = sorted(range(len(names)), key=lambda j: -max(
            float(offset[j]) / MEAN_LIMIT, abs(math.log10(float(std[names[j]])))))
        return (f"inputs are not standardised: the typical {unit} has a mean "
                f"{typical_offset:.3g} stds from 0 and a std of {typical_std:.3g} (standardised: "
                f"0 and 1); e.g. {show([names[j] for j in order])}", fix)
    wide = [k for k in names if float(std[k]) > SPREAD_LIMIT * typical_std]
    if wide:
        wide.sort(key=lambda k: -float(std[k]))
        return (f"inputs are not standardised alike: {len(wide)} {unit}"
                f"{'s have' if len(wide) > 1 else ' has'} a std over {SPREAD_LIMIT:g}x the "
                f"typical {typical_std:.3g}: {show(wide)}", fix)
    return None


def _standardised_twice(xf: Tensor, is_image: bool) -> bool:
    """Images whose every channel has a std over 2 and goes negative (reported apart)."""
    if not (is_image and xf.shape[1] <= 4):
        return False
    per = xf.transpose(0, 1).reshape(xf.shape[1], -1)
    per = per[:, torch.isfinite(per).all(0)]
    return per.shape[1] > 1 and bool((per.std(1) > 2).all()) and bool(
        (per.min(1).values < 0).all())


# --- order ----------------------------------------------------------------------------------
def _class_labels(y: Tensor) -> Tensor | None:
    """Class indices from index targets or one-hot rows; None for regression."""
    if not torch.is_floating_point(y) and y.dim() == 1:
        return y.long()
    if y.dim() == 2 and y.shape[1] > 1 and torch.is_floating_point(y) and bool(
            ((y == 0) | (y == 1)).all()) and bool((y.sum(1) == 1).all()):
        return y.argmax(1)
    return None


def _runs(labels: np.ndarray) -> float:
    return float(1 + np.count_nonzero(labels[1:] != labels[:-1]))


def _batch_chi2(labels: np.ndarray, sizes: list[int], classes: np.ndarray) -> float:
    """Chi-square of the per-batch class counts against the overall class shares (one
    bincount, so 1,000 classes over 64 batches cost no more than 4)."""
    codes = np.searchsorted(classes, labels)
    k = len(classes)
    batch = np.repeat(np.arange(len(sizes)), sizes)[: len(codes)]
    counts = np.bincount(batch * k + codes, minlength=len(sizes) * k).reshape(len(sizes), k)
    p = np.bincount(codes, minlength=k) / len(codes)
    expected = np.asarray(sizes, dtype=float)[:, None] * p[None, :]
    return float(np.sum((counts - expected) ** 2 / np.maximum(expected, 1e-12)))


def _lag1(targets: np.ndarray) -> float:
    t = targets.reshape(len(targets), -1).astype(np.float64)
    t = t[:, t.std(0) > 0]
    if t.shape[1] == 0 or len(t) < 3:
        return 0.0
    t = (t - t.mean(0)) / t.std(0)
    return float(np.mean(np.sum(t[1:] * t[:-1], 0) / len(t)))


def _z(observed: float, stat: Callable[[np.ndarray], float], values: np.ndarray, seed: int,
       larger_is_ordered: bool) -> tuple[float, float, float]:
    """(z, mean, std) of ``observed`` against ``stat`` on seeded shuffles of ``values``."""
    rng = np.random.default_rng(seed)
    ref = np.array([stat(rng.permutation(values)) for _ in range(SHUFFLES)])
    mean, std = float(ref.mean()), float(ref.std())
    if std == 0:
        return 0.0, mean, std
    z = (observed - mean) / std
    return (z if larger_is_ordered else -z), mean, std


def _counts(chunk: np.ndarray) -> str:
    c = Counter(int(v) for v in chunk)
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(c.items())) + "}"


# --- values ---------------------------------------------------------------------------------
def _row_hashes(x: Tensor) -> list[bytes]:
    flat = x.reshape(x.shape[0], -1).contiguous().numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=12).digest() for row in flat]


def _output_kind(make_model: Callable[[], Any], x: Tensor) -> tuple[str, Tensor | None]:
    """The function whose result the model returns (sigmoid, softmax, tanh, relu ...), or
    '' for a plain affine output; and that output on two samples."""
    seen: list[tuple[str, Tensor]] = []
    names = {"sigmoid", "tanh", "softmax", "relu", "relu6", "hardtanh", "log_softmax",
             "hardsigmoid", "softplus"}

    def on_call(name: str, _args: tuple[Any, ...], _kwargs: dict[str, Any],
                out: Any) -> None:
        if isinstance(out, Tensor):
            seen.append((name.rstrip("_"), out))

    model = make_model()
    model.eval()
    try:
        with torch.no_grad(), CallWatch(names | {f"{n}_" for n in names}, on_call):
            out = model(x)
    except USER_ERRORS as exc:
        raise user_code_error(exc, "the model's forward") from None
    if not isinstance(out, Tensor):
        return "", None
    kind = next((n for n, t in reversed(seen) if t is out), "")
    return kind, out


def _indices(rows: list[int], ids: list[int] | None, sizes: list[int]) -> str:
    def one(i: int) -> str:
        if ids is not None:
            return str(ids[i])
        b, r = 0, i
        while b < len(sizes) and r >= sizes[b]:
            r -= sizes[b]
            b += 1
        return f"{i} (batch {b + 1}, row {r})"

    shown = ", ".join(one(i) for i in rows[:6])
    return shown + (f" and {len(rows) - 6} more" if len(rows) > 6 else "")


def run(inputs: Inputs, options: DataOptions, progress: Any = None) -> CheckResult:
    target = inputs.target
    data: TensorData = target.data if target is not None else inputs.data
    loader = options.loader
    use_model = target is not None and (loader is None or not target.default_model)
    if loader is None:
        epochs = _trainer_epochs(data, options.batch_size, options.seed, options.max_batches)
        source = (f"diag's trainer batching {data.source} (batch "
                  f"{min(options.batch_size, len(data))}, reshuffled every epoch)")
    else:
        name = getattr(loader, "__qualname__", type(loader).__name__)
        src = f"--loader {name}"
        reader = _Loader(loader, src)
        epochs = [_read(reader, options.max_batches), _read(reader, options.max_batches)]
        source = src
    loc = source if loader is not None else ""
    first = epochs[0]
    x, y = first.x, first.y
    n = int(x.shape[0])
    findings: list[Finding] = []
    metrics: dict[str, Any] = {"samples_seen": n, "batches_seen": len(first.batch_sizes),
                               "source": source}
    labels = _class_labels(y)
    classes = 0

    # --- order ---
    hashes = _row_hashes(x.float() if x.dtype == torch.bfloat16 else x)
    if labels is not None:
        lab = labels.numpy()
        uniq = np.unique(lab)
        classes = int(uniq.size)
        z_runs, mean_runs, sd_runs = _z(_runs(lab), _runs, lab, options.seed, False)
        sizes = first.batch_sizes
        z_chi, _, _ = _z(_batch_chi2(lab, sizes, uniq),
                         lambda v: _batch_chi2(v, sizes, uniq), lab, options.seed + 1, True)
        z = max(z_runs, z_chi)
        metrics.update(order_statistic="label runs and per-batch class counts",
                       label_runs=int(_runs(lab)), label_runs_random=round(mean_runs, 2))
        if z > ORDER_Z and classes > 1:
            starts = np.cumsum([0] + sizes[:-1])
            shown = "; ".join(f"batch {i + 1}: {_counts(lab[s:s + sizes[i]])}"
                              for i, s in enumerate(starts[:3]))
            findings.append(Finding(
                Severity.FAIL, f"the batches are not shuffled: labels come in {int(_runs(lab))}"
                f" runs where a random order gives {mean_runs:.0f} +- {sd_runs:.1f} "
                f"(z = {z:.1f}); first batches' class counts: {shown}",
                "shuffle every epoch (DataLoader(shuffle=True)); the article's tip 8",
                location=loc))
    else:
        yv = y.float().numpy() if torch.is_floating_point(y) else y.numpy()
        ac = _lag1(yv)
        z, mean_ac, _ = _z(ac, _lag1, yv, options.seed, True)
        metrics.update(order_statistic="lag-1 autocorrelation of the targets",
                       target_autocorrelation=round(ac, 4))
        if z > ORDER_Z and ac > 0.2:
            findings.append(Finding(
                Severity.FAIL, f"the batches are not shuffled: neighbouring targets are "
                f"correlated (lag-1 autocorrelation {ac:.2f}, random orders give "
                f"{mean_ac:.2f}; z = {z:.1f})", "shuffle every epoch "
                "(DataLoader(shuffle=True)); the article's tip 8", location=loc))
    metrics["order_z"] = round(float(z), 2)
    second = epochs[1]
    k = min(n, int(second.x.shape[0]))
    same = k > 1 and _row_hashes(second.x[:k]) == hashes[:k] and len(set(hashes[:k])) > 1
    metrics["same_order_each_epoch"] = bool(same)
    if same:
        shuffled = not any(f.message.startswith("the batches are not shuffled")
                           for f in findings)
        findings.append(Finding(
            Severity.WARN if shuffled else Severity.FAIL,
            f"the same order every epoch: the first {k} samples of epoch 2 come exactly as in"
            f" epoch 1" + ("" if shuffled else ", unshuffled"),
            "reshuffle every epoch: DataLoader(shuffle=True) does; a fixed permutation or a "
            "seeded generator re-created per epoch does not", location=loc))
    if loader is None and labels is not None and len(data) > 2:
        stored = _class_labels(data.y)
        if stored is not None:
            st = stored.numpy()
            zs, _, _ = _z(_runs(st), _runs, st, options.seed + 2, False)
            if zs > ORDER_Z:
                findings.append(Finding(
                    Severity.INFO, f"{data.source} is stored in class order "
                    f"({int(_runs(st))} label runs): diag's trainer shuffles it; make sure "
                    "your own loader does", "DataLoader(shuffle=True)"))

    # --- alignment ---
    finite_x = nonfinite_rows(x)  # none in integer inputs
    finite_y = nonfinite_rows(y)
    if options.probe and n >= 8 and not finite_x and not finite_y:
        from diag.checks.data.probe import probe

        pr = probe(x, labels if labels is not None else y, classes if labels
                   is not None else 0, options.seed)
        metrics.update(alignment_ratio=round(pr.ratio, 3), probe_samples=pr.samples)
        if pr.aligned:
            findings.append(Finding(
                Severity.INFO, f"inputs and targets are aligned: a linear probe fits the "
                f"real pairing {1 / pr.ratio:.1f}x faster than shuffled labels "
                f"({pr.samples} samples)", ""))
        else:
            findings.append(Finding(
                Severity.WARN, f"the targets carry no signal this probe can find: a linear "
                f"probe on {pr.samples} samples fits them no faster than shuffled labels "
                f"(real/shuffled {pr.ratio:.2f}; aligned data gives under 0.7)",
                "check that inputs and targets are paired (shuffled together, same "
                "indices, not off by one); if they are, the signal is beyond a linear "
                "probe on pooled pixels and diag cannot tell", location=loc))

    # --- values ---
    for what, rows in (("inputs", finite_x), ("targets", finite_y)):
        if rows:
            where = _indices(rows, first.ids, first.batch_sizes)
            findings.append(Finding(
                Severity.FAIL, f"{what} hold NaN or Inf in {len(rows)} "
                f"sample{'s' if len(rows) > 1 else ''}: {where}",
                "fix or drop those samples (a division by zero in preprocessing? a missing "
                "value?)", location=loc))
    metrics["nonfinite_samples"] = len(set(finite_x) | set(finite_y))
    xf = x.float()
    fin = xf[torch.isfinite(xf)]
    is_image = x.dim() == 4
    if fin.numel():
        lo, hi = float(fin.min()), float(fin.max())
        whole = float((fin == fin.round()).float().mean())
        metrics.update(input_min=round(lo, 6), input_max=round(hi, 6))
        if lo >= 0 and whole > 0.99 and ((is_image and 2 < hi <= 255) or
                                        (not is_image and 128 <= hi <= 255)):
            findings.append(Finding(
                Severity.WARN, f"inputs look like raw 0-255 pixels (min {lo:g}, max {hi:g}, "
                f"{whole:.0%} whole numbers)", "divide by 255 before the model (the browser "
                "pipeline does), unless your model normalises inside", location=loc))
        elif is_image and 0 < hi <= 1.01 / 255 and lo >= 0:
            findings.append(Finding(
                Severity.WARN, f"inputs are at most {hi:.3g}: divided by 255 twice?",
                "normalise once", location=loc))
        elif not _standardised_twice(xf, is_image) and (off := _unstandardised(x)):
            findings.append(Finding(Severity.WARN, off[0], off[1], location=loc))
        elif is_image and x.shape[1] <= 4:
            per = xf.transpose(0, 1).reshape(x.shape[1], -1)
            per = per[:, torch.isfinite(per).all(0)]
            cm, cs = per.mean(1), per.std(1)
            if per.shape[1] > 1 and bool((cs > 2).all()) and bool((per.min(1).values < 0).all()):
                findings.append(Finding(
                    Severity.WARN, "inputs look standardised twice: every channel has a std "
                    f"above 2 ({', '.join(f'{v:.2f}' for v in cs.tolist())}; means "
                    f"{', '.join(f'{v:.2f}' for v in cm.tolist())}) where standardised "
                    "images have about 1", "apply (x - mean) / std once (or, for raw units, "
                    "scale the inputs)", location=loc))
    if n > 1:
        if is_image:
            per = xf.transpose(0, 1).reshape(x.shape[1], -1)
            const = [int(c) for c in (per.std(1) == 0).nonzero().flatten()]
            if const and x.shape[1] > 0:
                findings.append(Finding(
                    Severity.WARN, f"{len(const)} of {x.shape[1]} input channels are constant "
                    f"(channel {', '.join(map(str, const[:8]))}, value "
                    f"{float(per[const[0], 0]):g})", "a channel lost in loading or "
                    "normalisation? a constant channel carries nothing", location=loc))
        else:
            per = xf.reshape(n, -1)
            const = [int(c) for c in (per.std(0) == 0).nonzero().flatten()]
            if const:
                findings.append(Finding(
                    Severity.INFO, f"{len(const)} of {per.shape[1]} input features are "
                    f"constant over the samples seen (feature {', '.join(map(str, const[:8]))}"
                    + (" ..." if len(const) > 8 else "") + ")",
                    "they carry nothing: harmless, or a column lost in loading"))
    groups: dict[bytes, list[int]] = {}
    for i, h in enumerate(hashes):
        groups.setdefault(h, []).append(i)
    dups = [g for g in groups.values() if len(g) > 1]
    yhash = _row_hashes(y.reshape(n, -1) if y.dim() else y.reshape(n, 1))
    conflicts = [g for g in dups if len({yhash[i] for i in g}) > 1]
    metrics.update(duplicate_samples=sum(len(g) - 1 for g in dups),
                   conflicting_duplicates=len(conflicts))
    if conflicts:
        g = conflicts[0]

        def show(i: int) -> str:
            v = y[i]
            return str(int(v)) if v.numel() == 1 and not torch.is_floating_point(v) else (
                f"{float(v):.4g}" if v.numel() == 1 else "a different target")

        findings.append(Finding(
            Severity.WARN, f"{len(conflicts)} groups of identical inputs carry different "
            f"labels, e.g. samples {_indices(g[:2], first.ids, first.batch_sizes)} with "
            f"labels {show(g[0])} and {show(g[1])}", "no model can fit both: fix the labels "
            "or drop the duplicates", location=loc))
    elif dups:
        findings.append(Finding(
            Severity.INFO, f"{sum(len(g) - 1 for g in dups)} exact duplicate samples (same "
            f"labels), e.g. samples {_indices(dups[0][:2], first.ids, first.batch_sizes)}",
            "duplicates weigh those samples more, and leak between train and test splits"))
    if labels is not None and classes > 1:
        counts = Counter(int(v) for v in labels)
        ratio = max(counts.values()) / min(counts.values())
        metrics.update(classes=classes, imbalance=round(ratio, 3))
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())[:12])
        if ratio >= IMBALANCE_WARN:
            findings.append(Finding(
                Severity.WARN, f"class imbalance: the largest class has {ratio:.0f}x the "
                f"samples of the smallest ({shown})", "weight the loss or resample; judge "
                "with per-class metrics, not accuracy", location=loc))
        elif ratio >= 3:
            findings.append(Finding(Severity.INFO, f"classes are imbalanced {ratio:.1f}:1 "
                                    f"({shown})", ""))
    else:
        metrics["classes"] = 0

    padding = trailing_padding(y)
    if padding is not None:
        token, padded, share = padding
        metrics["padding_token_trained"] = token
        findings.append(Finding(
            Severity.WARN, f"sequence targets end in runs of id {token} in {padded:.0%} of "
            f"sequences ({share:.0%} of all target positions): padding trained on as a real "
            "token?", "set padding's targets to -100 (cross_entropy's ignore_index), or pass "
            "ignore_index to your loss", location=loc))

    # --- targets the output layer can produce ---
    if target is not None and target.task == "landmarks" and looks_like_points(y):
        out_rows = [int(i) for i in ((y < 0) | (y > 1)).reshape(n, -1).any(1).nonzero()
                    .flatten()]
        if out_rows:
            findings.append(Finding(
                Severity.WARN, f"points outside the image (normalised coordinates outside 0..1)"
                f" in {len(out_rows)} samples: {_indices(out_rows, first.ids, first.batch_sizes)}",
                "clip or drop them, or check the preprocessing's coordinate transform",
                location=loc))
    if use_model and torch.is_floating_point(y) and n and not finite_x:
        kind, out = _output_kind(target.make_model, x[:2].float())
        if out is not None and tuple(out.shape[1:]) == tuple(y.shape[1:]):
            yf = y.reshape(n, -1)
            ranges = {"sigmoid": (0.0, 1.0), "hardsigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0),
                      "hardtanh": (-1.0, 1.0), "relu": (0.0, math.inf), "relu6": (0.0, 6.0),
                      "softplus": (0.0, math.inf), "softmax": (0.0, 1.0)}
            metrics["output_function"] = kind or "none"
            if kind in ranges:
                low, high = ranges[kind]
                bad = ((yf < low) | (yf > high)).any(1).nonzero().flatten().tolist()
                if bad:
                    findings.append(Finding(
                        Severity.FAIL, f"targets outside what the output layer ({kind}) can "
                        f"produce ({low:g}..{high:g}) in {len(bad)} samples: "
                        f"{_indices(bad, first.ids, first.batch_sizes)}",
                        "rescale the targets into that range, or change the output layer",
                        location=loc))
            soft = kind == "softmax" or target.loss_name.endswith("cross_entropy")
            if soft and y.dim() == 2 and y.shape[1] > 1:
                sums = y.sum(1)
                bad = ((sums - 1).abs() > 1e-3).nonzero().flatten().tolist()
                if bad:
                    findings.append(Finding(
                        Severity.FAIL, f"probability targets that do not sum to 1 in "
                        f"{len(bad)} samples (e.g. {float(sums[bad[0]]):.4g}): "
                        f"{_indices(bad, first.ids, first.batch_sizes)}",
                        "normalise each target row (softmax targets are distributions)",
                        location=loc))

    order = {Severity.FAIL: 0, Severity.WARN: 1, Severity.INFO: 2, Severity.ERROR: -1}
    findings.sort(key=lambda f: order[f.severity])
    bad = [f for f in findings if f.severity in (Severity.FAIL, Severity.WARN)]
    status = (Status.FAIL if any(f.severity == Severity.FAIL for f in findings) else
              Status.WARN if bad else Status.PASS)
    summary = bad[0].message if bad else (
        f"{n} samples in {len(first.batch_sizes)} batches: shuffled, reshuffled each epoch, "
        "aligned, clean values")
    return CheckResult(NAME, status, summary, metrics=metrics, findings=tuple(findings))
