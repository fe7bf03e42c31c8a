"""Weight files that round-trip: safetensors (no pickle: safe from untrusted sources) and
tfjs-style ``model.json`` with a weights manifest and binary shards of at most 4 MB, as tfjs
and face-api.js read them. Each file is loaded back and compared with the model in memory.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from diag.errors import DataError
from diag.model.weights import decode_group, quantize

SHARD_BYTES = 4 * 1024 * 1024
_NP = {"uint8": "<u1", "uint16": "<u2", "float32": "<f4"}


def _tensors(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def reference_name(model: nn.Module) -> str | None:
    """The reference net (``diag model``) this model's architecture is, if any: the same
    tensor names and shapes."""
    from diag.model import REFERENCE_NETS

    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for name, info in REFERENCE_NETS.items():
        ref = info.build(seed=None).state_dict()
        if shapes == {k: tuple(v.shape) for k, v in ref.items()}:
            return name
    return None


def load_folder(folder: str, input_size: int = 112) -> nn.Module:
    """A reference net with the weights ``diag size --export`` wrote into ``folder``:
    ``model.json`` (tfjs, fp32 or quantized) or ``model.safetensors``, whichever is there
    first (tfjs-float32/, tfjs-uint8/, the folder itself). Anything missing, short or of the
    wrong shape is a DataError (exit 2), never a partly loaded model."""
    from diag.model import REFERENCE_NETS

    base = Path(folder)
    candidates = [base / "model.json", base / "tfjs-float32" / "model.json",
                  base / "tfjs-uint8" / "model.json", base / "tfjs-uint16" / "model.json",
                  base / "model.safetensors"]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        raise DataError(f"--model {folder}: no model.json or model.safetensors in it",
                        hint="point --model at a folder written by diag size --export")
    if path.suffix == ".json":
        try:
            net = json.loads(path.read_text()).get("diagNet")
        except (OSError, ValueError, AttributeError) as exc:
            raise DataError(f"cannot read {path}: {exc}", hint="export it again") from None
        tensors = load_tfjs(path)
    else:
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as fh:
                net = (fh.metadata() or {}).get("diagNet")
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise DataError(f"cannot read {path}: {exc}", hint="export it again") from None
    if net not in REFERENCE_NETS:
        raise DataError(f"{path} does not say which reference net it holds ({net!r})",
                        hint="only weights exported from a reference net (diag model) load "
                             "back by folder; pass your own model's factory instead")
    model = REFERENCE_NETS[net].build(input_size=input_size, seed=None)
    return load_into(model, tensors, str(path))


def save_tfjs(model: nn.Module, folder: Path, precision: str | None) -> Path:
    """``model.json`` (format, weightsManifest) and ``group1-shardNofM`` files of at most
    4 MB, tensors in state_dict order and layout, quantized with min and scale beside."""
    entries: list[dict[str, Any]] = []
    blob = bytearray()
    for name, t in _tensors(model).items():
        arr = t.numpy().astype(np.float32)
        entry: dict[str, Any] = {"name": name, "shape": list(arr.shape), "dtype": "float32"}
        if precision in (None, "float32"):
            blob += np.ascontiguousarray(arr, dtype="<f4").tobytes()
        else:
            q = quantize(arr, precision)
            entry["quantization"] = {"dtype": precision, "scale": q.scale, "min": q.minimum}
            blob += np.ascontiguousarray(q.values).astype(_NP[precision]).tobytes()
        entries.append(entry)
    count = max(1, -(-len(blob) // SHARD_BYTES))
    paths = [f"group1-shard{i + 1}of{count}.bin" for i in range(count)]
    for i, p in enumerate(paths):
        (folder / p).write_bytes(bytes(blob[i * SHARD_BYTES:(i + 1) * SHARD_BYTES]))
    doc: dict[str, Any] = {"format": "diag-weights", "generatedBy": "diag",
                           "weightsManifest": [{"paths": paths, "weights": entries}]}
    net = reference_name(model)
    if net is not None:
        doc["diagNet"] = net  # so `--model DIR` knows which net to build
    path = folder / "model.json"
    path.write_text(json.dumps(doc, indent=1))
    return path


def load_tfjs(path: Path) -> dict[str, Tensor]:
    """Read ``model.json`` and its shards back; a missing shard, a short shard or a bad
    entry is a DataError (exit 2), never a partly loaded model."""
    try:
        doc = json.loads(path.read_text())
        groups = doc["weightsManifest"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read {path}: {exc}", hint="pass a tfjs model.json") from None
    out: dict[str, Tensor] = {}
    for group in groups:
        for name, arr in decode_group(group, path).items():
            out[name] = torch.from_numpy(np.ascontiguousarray(arr))
    return out


def load_into(model: nn.Module, tensors: dict[str, Tensor], source: str) -> nn.Module:
    """Load by name into a copy; every name and shape must match (else DataError)."""
    state = model.state_dict()
    missing = sorted(set(state) - set(tensors))
    extra = sorted(set(tensors) - set(state))
    if missing or extra:
        raise DataError(f"{source} does not fit the model: "
                        + (f"missing {missing[0]}" if missing else f"unknown name {extra[0]}"),
                        hint="export the weights from the same architecture")
    for k, v in tensors.items():
        if tuple(v.shape) != tuple(state[k].shape):
            raise DataError(f"{source}: {k} has shape {tuple(v.shape)}, the model has "
                            f"{tuple(state[k].shape)}", hint="export from the same net")
    new = copy.deepcopy(model)
    new.load_state_dict({k: v.to(state[k].dtype) for k, v in tensors.items()})
    return new


def export_and_verify(model: nn.Module, folder: str, x: Tensor, ref: Tensor, kind: str,
                      precision: str = "uint8") -> dict[str, Any]:
    """Write both formats (fp32 and the quantized tfjs), load each back, compare outputs."""
    from safetensors.torch import load_file, save_file

    from diag.checks.size.check import _outputs, _quantized_copy

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    st_path = out / "model.safetensors"
    net = reference_name(model)
    save_file(_tensors(model), str(st_path), metadata={"diagNet": net} if net else None)
    st_model = load_into(model, load_file(str(st_path)), str(st_path))
    fp32_dir, q_dir = out / "tfjs-float32", out / f"tfjs-{precision}"
    fp32_dir.mkdir(exist_ok=True)
    q_dir.mkdir(exist_ok=True)
    tf_fp32 = load_into(model, load_tfjs(save_tfjs(model, fp32_dir, None)), "model.json")
    tf_q = load_into(model, load_tfjs(save_tfjs(model, q_dir, precision)), "model.json")
    in_memory_q = _outputs(_quantized_copy(model, precision), x)
    return {
        "safetensors_bitwise_equal": bool(torch.equal(_outputs(st_model, x), ref)),
        "tfjs_fp32_bitwise_equal": bool(torch.equal(_outputs(tf_fp32, x), ref)),
        "tfjs_quantized_equal": bool(torch.equal(_outputs(tf_q, x), in_memory_q)),
        f"tfjs_{precision}_bytes": sum(p.stat().st_size for p in q_dir.glob("group1-shard*")),
        "safetensors_bytes": st_path.stat().st_size,
    }
