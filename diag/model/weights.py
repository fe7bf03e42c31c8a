"""tfjs-converter weight files: manifest + shard, with uint8/uint16 affine quantization.

Plain formats only (JSON and raw little-endian bytes): loading never unpickles anything.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from diag.errors import DataError
from diag.inputs.safe import kind_of, plain_name, read_json, read_regular
from diag.model.layers import Conv, SeparableConv

QUANT_LEVELS = {"uint8": 255, "uint16": 65535}
_BYTES = {"uint8": 1, "uint16": 2, "float32": 4}


@dataclass(frozen=True)
class Quantized:
    """One tensor in the tfjs converter's per-tensor affine scheme."""

    values: np.ndarray
    """Unsigned integer codes."""
    scale: float
    minimum: float

    def decode(self) -> np.ndarray:
        return (self.values.astype(np.float32) * np.float32(self.scale) + np.float32(
            self.minimum)).astype(np.float32)


def quantize(x: np.ndarray, dtype: str = "uint8") -> Quantized:
    """Quantize like the tfjs converter: 0 stays exact when it lies in [min, max]."""
    if dtype not in QUANT_LEVELS:
        raise ValueError(f"quantization dtype must be uint8 or uint16, not {dtype!r}")
    levels = QUANT_LEVELS[dtype]
    x = np.asarray(x, dtype=np.float32)
    lo, hi = float(x.min()), float(x.max())
    if lo == hi:
        # A constant tensor becomes all zeros with scale 1 (then min restores the value).
        return Quantized(np.zeros(x.shape, dtype=dtype), 1.0, lo)
    scale = (hi - lo) / levels
    if lo <= 0 <= hi:
        zero_point = round(-lo / scale)
        lo = -zero_point * scale
        hi = lo + levels * scale
    # in float64: a scale under float32's smallest number (a range of 1e-44) would be 0
    q = np.round((np.clip(x.astype(np.float64), lo, hi) - lo) / scale)
    return Quantized(np.clip(q, 0, levels).astype(dtype), scale, lo)


# tfjs kind -> (PyTorch -> tfjs permutation, tfjs -> PyTorch permutation)
_LAYOUTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "filters": ((2, 3, 1, 0), (3, 2, 0, 1)),  # (out, in, 3, 3) <-> [3, 3, in, out]
    "depthwise_filter": ((2, 3, 0, 1), (2, 3, 0, 1)),  # (C, 1, 3, 3) <-> [3, 3, C, 1]
    "pointwise_filter": ((2, 3, 1, 0), (3, 2, 0, 1)),  # (out, in, 1, 1) <-> [1, 1, in, out]
    "weights": ((1, 0), (1, 0)),  # Linear (out, in) <-> [in, out]
}


def tfjs_tensors(model: nn.Module) -> list[tuple[str, np.ndarray]]:
    """The model's tensors under tfjs names and HWIO layouts, in manifest order."""
    out: list[tuple[str, np.ndarray]] = []
    for name, param in _tfjs_params(model).items():
        value = param.detach().cpu()
        kind = name.rsplit("/", 1)[1]
        if kind in _LAYOUTS:
            value = value.permute(*_LAYOUTS[kind][0])
        out.append((name, value.contiguous().numpy()))
    return out


def encode(model: nn.Module, quantization: str | None = "uint8"
           ) -> tuple[list[dict[str, Any]], bytes]:
    """Manifest entries and the shard bytes for a model."""
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, array in tfjs_tensors(model):
        entry: dict[str, Any] = {"name": name, "shape": list(array.shape), "dtype": "float32"}
        if quantization is None or quantization == "float32":
            chunks.append(np.ascontiguousarray(array, dtype="<f4").tobytes())
        else:
            q = quantize(array, quantization)
            entry["quantization"] = {"dtype": quantization, "scale": q.scale, "min": q.minimum}
            chunks.append(np.ascontiguousarray(q.values).astype(f"<{q.values.dtype.str[1:]}")
                          .tobytes())
        entries.append(entry)
    return entries, b"".join(chunks)


def save_weights(model: nn.Module, folder: str | Path, name: str = "model",
                 quantization: str | None = "uint8") -> Path:
    """Write ``weights_manifest.json`` and ``<name>-shard1`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries, shard = encode(model, quantization)
    shard_name = f"{name}-shard1"
    from diag.report.files import atomic_write  # never through a planted symlink

    atomic_write(folder / plain_name(shard_name, "name", folder), shard)
    manifest = [{"paths": [shard_name], "weights": entries}]
    path = folder / "weights_manifest.json"
    atomic_write(path, json.dumps(manifest, indent=1))
    return path


def read_weights(manifest_path: str | Path) -> dict[str, np.ndarray]:
    """Decode a tfjs manifest and its shards into float32 arrays by tfjs name. Only regular
    files inside the manifest's folder are read; a malformed entry is a DataError naming the
    field and the file."""
    manifest_path = Path(manifest_path)
    groups = read_json(manifest_path, manifest_path.parent, "weight manifest")
    arrays: dict[str, np.ndarray] = {}
    for i, group in enumerate(manifest_groups(groups, manifest_path, "the manifest")):
        arrays.update(decode_group(group, manifest_path, field=f"[{i}]"))
    return arrays


def manifest_groups(groups: Any, source: Path, field: str) -> list[dict[str, Any]]:
    """``groups`` as a list of manifest groups, or a DataError naming ``field``."""
    if not isinstance(groups, list):
        raise DataError(f"{source}: {field} is {kind_of(groups)}, expected a list of weight "
                        "groups", hint="export the weights again")
    for i, group in enumerate(groups):
        if not isinstance(group, dict):
            raise DataError(f"{source}: {field}[{i}] is {kind_of(group)}, expected an object "
                            "with paths and weights", hint="export the weights again")
        for key in ("paths", "weights"):
            if not isinstance(group.get(key), list):
                raise DataError(f"{source}: {field}[{i}].{key} is {kind_of(group.get(key))}, "
                                "expected a list", hint="export the weights again")
    return groups


def _entry(w: Any, source: Path, field: str) -> tuple[str, tuple[int, ...], str,
                                                       dict[str, float] | None]:
    """One manifest entry checked field by field: (name, shape, stored dtype, quantization)."""
    if not isinstance(w, dict):
        raise DataError(f"{source}: {field} is {kind_of(w)}, expected an object",
                        hint="export the weights again")
    name = w.get("name")
    if not isinstance(name, str):
        raise DataError(f"{source}: {field}.name is {kind_of(name)}, expected a string",
                        hint="export the weights again")
    shape = w.get("shape")
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in shape):
        raise DataError(f"{source}: {field}.shape of {name} is {str(shape)[:60]}, expected a "
                        "list of non-negative integers", hint="export the weights again")
    quant = w.get("quantization")
    if quant is not None:
        if not isinstance(quant, dict) or not isinstance(quant.get("dtype"), str) or (
                quant["dtype"] not in QUANT_LEVELS):
            raise DataError(f"{source}: {field}.quantization of {name} needs a dtype of uint8 "
                            "or uint16", hint="export the weights again")
        numbers: dict[str, float] = {}
        for key in ("scale", "min"):
            value = quant.get(key)
            if (not isinstance(value, int | float) or isinstance(value, bool)
                    or not math.isfinite(value)):
                raise DataError(f"{source}: {field}.quantization.{key} of {name} is "
                                f"{kind_of(value)}"
                                ", expected a finite number", hint="export the weights again")
            numbers[key] = float(value)
        return name, tuple(shape), str(quant["dtype"]), numbers
    dtype = w.get("dtype", "float32")
    if not isinstance(dtype, str) or dtype not in _BYTES:
        raise DataError(f"{source}: {name} has dtype {str(dtype)[:40]!r}",
                        hint="use float32, uint16 or uint8")
    return name, tuple(shape), str(dtype), None


def decode_group(group: dict[str, Any], manifest_path: Path, root: Path | None = None,
                 field: str = "group") -> dict[str, np.ndarray]:
    """One manifest group: its shards (plain file names next to the manifest, regular files
    inside ``root``, default the manifest's folder) decoded into float32 arrays by name. A
    missing or short shard, a malformed entry or an unknown dtype is a DataError (exit 2),
    never a partly decoded group."""
    root = manifest_path.parent if root is None else root
    entries = [_entry(w, manifest_path, f"{field}.weights[{i}]")
               for i, w in enumerate(group["weights"])]
    names = [plain_name(p, f"{field}.paths[{i}]", manifest_path)
             for i, p in enumerate(group["paths"])]
    needed = sum(math.prod(shape) * _BYTES[dtype] for _, shape, dtype, _ in entries)
    data = bytearray()
    for name in names:
        data += read_regular(manifest_path.parent / name, root, "weight shard")
        if len(data) > needed:
            break  # trailing bytes are harmless; a shard larger than the entries is not read
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for name, shape, dtype, quant in entries:
        count = math.prod(shape)
        nbytes = count * _BYTES[dtype]
        if offset + nbytes > len(data):
            raise DataError(f"{manifest_path}: the shards end before {name} "
                            f"({len(data)} bytes, {offset + nbytes} needed)",
                            hint="a shard is truncated or missing: export the weights again")
        np_dtype = {"uint8": "<u1", "uint16": "<u2", "float32": "<f4"}[dtype]
        raw = np.frombuffer(data, dtype=np_dtype, count=count, offset=offset).reshape(shape)
        offset += nbytes
        arrays[name] = (Quantized(raw, quant["scale"], quant["min"]).decode() if quant
                        else raw.astype(np.float32))
    return arrays


def load_weights(model: nn.Module, manifest_path: str | Path) -> nn.Module:
    """Load tfjs weights into a reference net in place (layouts converted to PyTorch)."""
    arrays = read_weights(manifest_path)
    params = _tfjs_params(model)
    missing = sorted(set(params) - set(arrays))
    if missing:
        raise DataError(f"weight file lacks {len(missing)} tensors, e.g. {missing[0]}",
                        hint="the file was saved from a different net")
    with torch.no_grad():
        for name, param in params.items():
            kind = name.rsplit("/", 1)[1]
            value = torch.from_numpy(np.ascontiguousarray(arrays[name]))
            if kind in _LAYOUTS:
                value = value.permute(*_LAYOUTS[kind][1])
            param.copy_(value.reshape(param.shape))
    return model


def _tfjs_params(model: nn.Module) -> dict[str, torch.Tensor]:
    params: dict[str, torch.Tensor] = {}
    for path, module in model.named_modules():
        name = "/".join(p for p in path.split(".") if p != "features")
        if isinstance(module, Conv):
            params[f"{name}/filters"] = module.conv.weight
            assert module.conv.bias is not None
            params[f"{name}/bias"] = module.conv.bias
        elif isinstance(module, SeparableConv):
            params[f"{name}/depthwise_filter"] = module.depthwise.weight
            params[f"{name}/pointwise_filter"] = module.pointwise.weight
            assert module.pointwise.bias is not None
            params[f"{name}/bias"] = module.pointwise.bias
        elif isinstance(module, nn.Linear) and name:
            params[f"{name}/weights"] = module.weight
            assert module.bias is not None
            params[f"{name}/bias"] = module.bias
    return params
