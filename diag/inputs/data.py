"""Data for the checks: the generated default set, and the user's (.npz file or spec)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from diag.errors import USER_ERRORS, DataError, UsageError, user_code_error
from diag.inputs.synthetic import EXPRESSIONS, NUM_POINTS, FaceSample, generate_faces

TASKS = ("landmarks", "classify")


@dataclass(frozen=True)
class TensorData:
    """Inputs and targets as tensors, ready for a training loop."""

    x: torch.Tensor
    y: torch.Tensor
    source: str
    """Where the data came from, for reports."""
    is_image: bool = True
    """True when ``x`` is (N, C, H, W) images (the prediction plot draws them)."""
    fields: tuple[str, ...] = ()
    """Dict samples: the model's argument names of ``x``'s packed fields (``x[:, i]`` is
    ``fields[i]``; see ``diag.inputs.batches``); empty: ``x`` is the model's one input."""

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, indices: torch.Tensor) -> TensorData:
        return TensorData(self.x[indices], self.y[indices], self.source, self.is_image,
                          self.fields)

    @property
    def is_classification(self) -> bool:
        return not torch.is_floating_point(self.y) and self.y.dim() == 1

    @property
    def is_sequence(self) -> bool:
        """Integer targets per position (B, T): next-token ids, tags, with -100 padding."""
        return not torch.is_floating_point(self.y) and self.y.dim() >= 2

    @property
    def is_tokens(self) -> bool:
        """Integer inputs: token ids for an embedding."""
        return not torch.is_floating_point(self.x) and self.x.dtype != torch.bool


def default_data(task: str = "landmarks", n: int = 64, size: int = 56, seed: int = 0
                 ) -> TensorData:
    """The generated faces, preprocessed by the browser pipeline at ``size`` pixels.

    landmarks: y is (N, 136), (x, y) pairs interleaved, in [0, 1] of the padded square.
    classify: y is (N,) int64 expression labels (see ``EXPRESSIONS``).
    """
    from diag.model.pipeline import BrowserPipeline

    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}", hint=f"use one of {', '.join(TASKS)}")
    pipeline = BrowserPipeline(size=size)
    samples = generate_faces(n, seed=seed)
    xs, ys = [], []
    for s in samples:
        tensor, rel = pipeline.preprocess(s.image, s.points)
        xs.append(tensor)
        ys.append(rel.reshape(-1))
    x = torch.stack(xs)
    if task == "landmarks":
        y = torch.from_numpy(np.stack(ys)).float()
    else:
        y = torch.tensor([s.label for s in samples], dtype=torch.int64)
    return TensorData(x, y, f"generated faces (seed {seed}, {n} samples, {size}px)")


def load_npz(path: str, check_finite: bool = True) -> TensorData:
    """A .npz with ``x`` (N,C,H,W float or N,H,W,C uint8) and ``y``. Never unpickles."""
    if not os.path.exists(path):
        raise DataError(f"--data file not found: {path}", hint="check the path")
    if os.path.isdir(path):
        raise DataError(f"--data {path} is a folder", hint="pass a .npz file or a SPEC")
    with open(path, "rb") as fh:
        if fh.read(4) != b"PK\x03\x04":
            raise DataError(f"--data {path} is not a readable .npz (not a zip archive)",
                            hint="write it with np.savez")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            if not {"x", "y"} <= names:
                raise DataError(
                    f"--data {path} holds arrays {sorted(names)}, expected 'x' and 'y'",
                    hint="save with np.savez(path, x=inputs, y=targets)")
            x, y = npz["x"], npz["y"]
    except DataError:
        raise
    except ValueError as exc:
        if "object arrays" in str(exc).lower() or "pickle" in str(exc).lower():
            raise DataError(f"--data {path} holds object arrays, which diag refuses to unpickle",
                            hint="save plain numeric arrays") from None
        raise DataError(f"--data {path} is not a readable .npz: {exc}",
                        hint="write it with np.savez") from None
    except (OSError, EOFError, Exception) as exc:  # zipfile.BadZipFile and friends
        raise DataError(f"--data {path} is not a readable .npz ({type(exc).__name__})",
                        hint="write it with np.savez") from None
    return arrays_to_data(x, y, source=path, check_finite=check_finite)


def _numeric(value: Any, name: str, source: str) -> torch.Tensor:
    """An array of numbers as a tensor; strings, objects and ragged lists are a DataError."""
    if isinstance(value, torch.Tensor):
        return value
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"--data {source}: {name} is not an array ({exc})",
                        hint=f"give {name} as one rectangular array of numbers") from None
    if arr.dtype.kind not in "biuf":
        raise DataError(f"--data {source}: {name} holds {arr.dtype} values, not numbers",
                        hint=f"convert {name} to float (inputs, regression targets) or int "
                             "(class indices)")
    return torch.as_tensor(arr)


def nonfinite_rows(t: torch.Tensor) -> list[int]:
    """Indices of the samples (first axis) holding a NaN or an Inf."""
    if not torch.is_floating_point(t):
        return []
    bad = ~torch.isfinite(t.reshape(t.shape[0], -1)).all(dim=1)
    return [int(i) for i in bad.nonzero().flatten()]


def arrays_to_data(x: Any, y: Any, source: str, check_finite: bool = True) -> TensorData:
    """Validate shapes and dtypes; uint8 NHWC images become float NCHW in [0, 1].
    ``check_finite``: a NaN or Inf is a DataError naming the samples (`diag data` reports
    them as a finding instead)."""
    xt = _numeric(x, "x", source)
    yt = _numeric(y, "y", source)
    if xt.dim() < 2:
        raise DataError(f"--data {source}: x has shape {tuple(xt.shape)}, expected (N, ...)",
                        hint="put samples along the first axis")
    if yt.dim() < 1 or yt.shape[0] != xt.shape[0]:
        raise DataError(
            f"--data {source}: x has {xt.shape[0]} samples but y has shape {tuple(yt.shape)}",
            hint="x and y need the same first dimension")
    if xt.shape[0] < 1:
        raise DataError(f"--data {source}: no samples", hint="pass at least one sample")
    is_image = xt.dim() == 4
    if xt.dtype == torch.uint8:
        if xt.dim() != 4 or xt.shape[-1] not in (1, 3, 4):
            raise DataError(f"--data {source}: uint8 x has shape {tuple(xt.shape)}, "
                            "expected (N, H, W, C) images",
                            hint="store uint8 images as NHWC, or floats as NCHW")
        xt = xt.permute(0, 3, 1, 2).float().div(255.0).contiguous()
    elif torch.is_floating_point(xt):
        xt = xt.float()
    elif xt.dtype in (torch.int16, torch.int32, torch.int64, torch.int8):
        xt = xt.long()  # token ids (an nn.Embedding's input)
        if int(xt.min()) < 0:
            raise DataError(f"--data {source}: x holds integers below 0 (min {int(xt.min())})",
                            hint="integer inputs are token ids for an embedding: 0 .. V-1")
    else:
        raise DataError(f"--data {source}: x has dtype {xt.dtype}, expected float, uint8 "
                        "images or integer token ids", hint="convert the inputs to float32")
    if torch.is_floating_point(yt):
        yt = yt.float()
    elif yt.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        yt = yt.long()
    else:
        raise DataError(f"--data {source}: y has dtype {yt.dtype}",
                        hint="use float targets for regression or integer class indices")
    for name, t in (("x", xt), ("y", yt)) if check_finite else ():
        rows = nonfinite_rows(t)
        if rows:
            shown = ", ".join(map(str, rows[:8])) + (" ..." if len(rows) > 8 else "")
            raise DataError(f"--data {source}: {name} holds NaN or Inf in {len(rows)} "
                            f"sample{'s' if len(rows) > 1 else ''} (index {shown})",
                            hint="clean those samples before training (diag data lists "
                                 "every value problem)")
    return TensorData(xt, yt, source, is_image)


def load_data(spec: str | None, task: str = "landmarks", size: int = 56, n: int = 64,
              seed: int = 0, check_finite: bool = True) -> TensorData:
    """``--data``: None (generated), a .npz path, or a SPEC giving a Dataset or (x, y)."""
    if spec is None:
        return default_data(task, n=n, size=size, seed=seed)
    if spec.endswith(".npz") or (os.path.exists(spec) and ":" not in os.path.basename(spec)):
        return load_npz(spec, check_finite)
    from diag.inputs.spec import resolve

    obj = resolve(spec, "--data")
    if callable(obj) and not isinstance(obj, torch.utils.data.Dataset | tuple):
        try:
            obj = obj()
        except USER_ERRORS as exc:
            raise user_code_error(exc, f"--data {spec}") from None
    if isinstance(obj, tuple) and len(obj) == 2:
        return arrays_to_data(obj[0], obj[1], source=spec, check_finite=check_finite)
    if isinstance(obj, torch.utils.data.Dataset):
        return _dataset_to_data(obj, spec, check_finite)
    raise UsageError(f"--data {spec} is a {type(obj).__name__}",
                     hint="give a torch Dataset, a tuple (x, y) of tensors, or a .npz file")


def _dataset_to_data(ds: Any, spec: str, check_finite: bool = True) -> TensorData:
    try:
        n = len(ds)
    except TypeError:
        raise UsageError(f"--data {spec}: the Dataset has no len()",
                         hint="implement __len__ (iterable datasets are not supported)") from None
    xs, ys = [], []
    try:
        if n and isinstance(ds[0], dict):  # Hugging Face style samples
            from dataclasses import replace

            from diag.inputs.batches import pack

            x, y, fields = pack([ds[i] for i in range(n)], f"--data {spec}")
            return replace(arrays_to_data(x, y, source=spec, check_finite=check_finite),
                           is_image=False, fields=fields)
        for i in range(n):
            item = ds[i]
            if not isinstance(item, tuple | list) or len(item) < 2:
                raise UsageError(f"--data {spec}: item {i} is not an (x, y) pair",
                                 hint="make __getitem__ return (input, target)")
            xs.append(torch.as_tensor(item[0]))
            ys.append(torch.as_tensor(item[1]))
    except UsageError:
        raise
    except USER_ERRORS as exc:
        raise user_code_error(exc, f"--data {spec} __getitem__") from None
    try:
        x, y = torch.stack(xs), torch.stack(ys)
    except RuntimeError as exc:
        raise DataError(f"--data {spec}: items differ in shape ({exc})",
                        hint="every sample needs the same shape") from None
    return arrays_to_data(x, y, source=spec, check_finite=check_finite)


__all__ = [
    "EXPRESSIONS",
    "NUM_POINTS",
    "TASKS",
    "FaceSample",
    "TensorData",
    "arrays_to_data",
    "default_data",
    "generate_faces",
    "load_data",
    "load_npz",
]
