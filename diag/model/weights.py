"""tfjs-converter weight files: manifest + shard, with uint8/uint16 affine quantization.

Plain formats only (JSON and raw little-endian bytes): loading never unpickles anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from diag.errors import DataError
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
    (folder / shard_name).write_bytes(shard)
    manifest = [{"paths": [shard_name], "weights": entries}]
    path = folder / "weights_manifest.json"
    path.write_text(json.dumps(manifest, indent=1))
    return path


def read_weights(manifest_path: str | Path) -> dict[str, np.ndarray]:
    """Decode a tfjs manifest and its shards into float32 arrays by tfjs name."""
    manifest_path = Path(manifest_path)
    try:
        groups = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read weight manifest {manifest_path}: {exc}",
                        hint="pass a tfjs weights_manifest.json") from None
    arrays: dict[str, np.ndarray] = {}
    for group in groups:
        arrays.update(decode_group(group, manifest_path))
    return arrays


def decode_group(group: dict[str, Any], manifest_path: Path) -> dict[str, np.ndarray]:
    """One manifest group: its shards (next to the manifest) decoded into float32 arrays
    by name. A missing or short shard, or an unknown dtype, is a DataError (exit 2), never a
    partly decoded group."""
    try:
        data = b"".join((manifest_path.parent / p).read_bytes() for p in group["paths"])
    except OSError as exc:
        raise DataError(f"{manifest_path}: a weight shard is missing ({exc.filename})",
                        hint="copy every shard file next to the manifest") from None
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for w in group["weights"]:
        shape = tuple(int(s) for s in w["shape"])
        count = int(np.prod(shape)) if shape else 1
        quant = w.get("quantization")
        dtype = quant["dtype"] if quant else w.get("dtype", "float32")
        if dtype not in _BYTES:
            raise DataError(f"{manifest_path}: {w['name']} has dtype {dtype!r}",
                            hint="use float32, uint16 or uint8")
        nbytes = count * _BYTES[dtype]
        if offset + nbytes > len(data):
            raise DataError(f"{manifest_path}: the shards end before {w['name']} "
                            f"({len(data)} bytes, {offset + nbytes} needed)",
                            hint="a shard is truncated: export the weights again")
        np_dtype = {"uint8": "<u1", "uint16": "<u2", "float32": "<f4"}[dtype]
        raw = np.frombuffer(data, dtype=np_dtype, count=count, offset=offset).reshape(shape)
        offset += nbytes
        arrays[w["name"]] = (
            Quantized(raw, float(quant["scale"]), float(quant["min"])).decode()
            if quant else raw.astype(np.float32)
        )
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
