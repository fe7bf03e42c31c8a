"""Weight files that round-trip: safetensors (no pickle: safe from untrusted sources) and
tfjs-style ``model.json`` with a weights manifest and binary shards of at most 4 MB, as tfjs
and face-api.js read them. Each file is loaded back and compared with the model in memory.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from diag.errors import DataError
from diag.inputs.safe import kind_of, read_json, read_regular
from diag.model.weights import decode_group, manifest_groups, quantize

SHARD_BYTES = 4 * 1024 * 1024
_NP = {"uint8": "<u1", "uint16": "<u2", "float32": "<f4"}


def _tensors(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The state dict with each storage once, and the names that alias a kept one (tied
    weights): safetensors refuses shared tensors, and saving them twice doubles the file."""
    from diag.checks.size.check import storage_key

    out: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[Any, str] = {}
    for k, v in model.state_dict().items():
        key = storage_key(v)
        if key in seen:
            aliases[k] = seen[key]
            continue
        seen[key] = k
        out[k] = v.detach().cpu().contiguous()
    return out, aliases


def with_aliases(tensors: dict[str, Tensor], aliases: Any, source: str) -> dict[str, Tensor]:
    """``tensors`` with every alias name pointing at its kept tensor again."""
    if not aliases:
        return tensors
    if not isinstance(aliases, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v in tensors
            for k, v in aliases.items()):
        raise DataError(f"{source}: diagAliases does not name kept tensors",
                        hint="export the weights again")
    return {**tensors, **{k: tensors[v] for k, v in aliases.items()}}


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
    path = next((c for c in candidates if os.path.lexists(c)), None)
    if path is None:
        raise DataError(f"--model {folder}: no model.json or model.safetensors in it",
                        hint="point --model at a folder written by diag size --export")
    if path.suffix == ".json":
        doc = read_json(path, base, "model file")
        if not isinstance(doc, dict):
            raise DataError(f"{path}: the document is {kind_of(doc)}, expected an object with "
                            "weightsManifest", hint="export the weights again")
        net = doc.get("diagNet")
        tensors = load_tfjs(path, base, doc)
    else:
        from safetensors import SafetensorError
        from safetensors.torch import load as load_bytes

        raw = read_regular(path, base, "weight file")
        try:
            meta = _safetensors_metadata(raw)
            net = meta.get("diagNet")
            tensors = with_aliases(load_bytes(raw), _json_or_none(meta.get("diagAliases")),
                                   str(path))
        except (SafetensorError, ValueError, OSError) as exc:
            raise DataError(f"cannot read {path}: {exc}", hint="export it again") from None
    if not isinstance(net, str) or net not in REFERENCE_NETS:
        raise DataError(f"{path}: diagNet is {str(net)[:60]!r}, not a reference net",
                        hint="only weights exported from a reference net (diag model) load "
                             "back by folder; pass your own model's factory instead")
    model = REFERENCE_NETS[net].build(input_size=input_size, seed=None)
    return load_into(model, tensors, str(path))


def save_tfjs(model: nn.Module, folder: Path, precision: str | None,
              writer: _Writer | None = None) -> Path:
    """``model.json`` (format, weightsManifest) and ``group1-shardNofM`` files of at most
    4 MB, tensors in state_dict order and layout, quantized with min and scale beside."""
    entries: list[dict[str, Any]] = []
    blob = bytearray()
    tensors, aliases = _tensors(model)
    for name, t in tensors.items():
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
    writer = writer or _Writer()
    for i, p in enumerate(paths):
        writer.write(folder / p, bytes(blob[i * SHARD_BYTES:(i + 1) * SHARD_BYTES]))
    doc: dict[str, Any] = {"format": "diag-weights", "generatedBy": "diag",
                           "weightsManifest": [{"paths": paths, "weights": entries}]}
    net = reference_name(model)
    if net is not None:
        doc["diagNet"] = net  # so `--model DIR` knows which net to build
    if aliases:
        doc["diagAliases"] = aliases  # tied weights: stored once, named again on load
    path = folder / "model.json"
    writer.write(path, json.dumps(doc, indent=1))
    return path


def load_tfjs(path: Path, root: Path | None = None, doc: Any = None) -> dict[str, Tensor]:
    """Read ``model.json`` and its shards back (regular files inside ``root``, default the
    file's folder); a missing shard, a short shard or a bad entry is a DataError (exit 2)
    naming the field, never a partly loaded model."""
    root = path.parent if root is None else root
    if doc is None:
        doc = read_json(path, root, "model file")
    if not isinstance(doc, dict):
        raise DataError(f"{path}: the document is {kind_of(doc)}, expected an object with "
                        "weightsManifest", hint="pass a tfjs model.json")
    groups = manifest_groups(doc.get("weightsManifest"), path, "weightsManifest")
    out: dict[str, Tensor] = {}
    for i, group in enumerate(groups):
        for name, arr in decode_group(group, path, root, f"weightsManifest[{i}]").items():
            out[name] = torch.from_numpy(np.ascontiguousarray(arr))
    return with_aliases(out, doc.get("diagAliases"), str(path))


def _json_or_none(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError("diagAliases is not JSON") from None


def _safetensors_metadata(raw: bytes) -> dict[str, Any]:
    """The ``__metadata__`` of a safetensors payload (its JSON header), without a file."""
    if len(raw) < 8:
        raise ValueError("the file is shorter than a safetensors header")
    size = int.from_bytes(raw[:8], "little")
    if size > len(raw) - 8:
        raise ValueError("the header runs past the end of the file")
    try:
        header = json.loads(raw[8:8 + size])
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"the header is not JSON ({type(exc).__name__})") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


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
    """Write both formats (fp32 and the quantized tfjs), load each back, compare outputs.
    Writes only inside ``folder``: every file goes to a temporary file there and is renamed
    into place (a planted symlink is replaced, never followed), and a write that fails
    removes what this export created (DataError, exit 2)."""
    from safetensors.torch import load as load_bytes
    from safetensors.torch import save as save_bytes

    from diag.checks.size.check import _outputs, _quantized_copy

    out = Path(folder)
    fp32_dir, q_dir = out / "tfjs-float32", out / f"tfjs-{precision}"
    st_path = out / "model.safetensors"
    for sub in (fp32_dir, q_dir):
        if os.path.lexists(sub) and (sub.is_symlink() or not sub.is_dir()):
            raise DataError(f"--export {folder}: {sub.name} is taken by a file or a link",
                            hint="remove it, or export to another folder")
    if st_path.is_dir():
        raise DataError(f"--export {folder}: model.safetensors is a folder",
                        hint="remove it, or export to another folder")
    net = reference_name(model)
    tensors, aliases = _tensors(model)
    meta = {**({"diagNet": net} if net else {}),
            **({"diagAliases": json.dumps(aliases)} if aliases else {})}
    writer = _Writer()
    try:
        for d in (out, fp32_dir, q_dir):
            writer.mkdir(d)
        writer.write(st_path, save_bytes(tensors, metadata=meta or None))
        fp32_json = save_tfjs(model, fp32_dir, None, writer)
        q_json = save_tfjs(model, q_dir, precision, writer)
    except OSError as exc:
        writer.undo()
        raise DataError(f"--export {folder}: cannot write ({exc.strerror or exc})",
                        hint="pick a writable folder") from None
    st_model = load_into(model, with_aliases(
        load_bytes(read_regular(st_path, out, "weight file")), aliases, str(st_path)),
        str(st_path))
    tf_fp32 = load_into(model, load_tfjs(fp32_json, out), "model.json")
    tf_q = load_into(model, load_tfjs(q_json, out), "model.json")
    in_memory_q = _outputs(_quantized_copy(model, precision), x)
    return {
        "safetensors_bitwise_equal": bool(torch.equal(_outputs(st_model, x), ref)),
        "tfjs_fp32_bitwise_equal": bool(torch.equal(_outputs(tf_fp32, x), ref)),
        "tfjs_quantized_equal": bool(torch.equal(_outputs(tf_q, x), in_memory_q)),
        f"tfjs_{precision}_bytes": sum(p.stat().st_size for p in q_dir.glob("group1-shard*")),
        "safetensors_bytes": st_path.stat().st_size,
    }


class _Writer:
    """Atomic writes that remember what they created, so a failed export leaves nothing."""

    def __init__(self) -> None:
        self.created: list[Path] = []

    def mkdir(self, path: Path) -> None:
        missing = [p for p in (path, *path.parents) if not os.path.lexists(p)]
        for p in reversed(missing):
            p.mkdir()
            self.created.append(p)

    def write(self, path: Path, data: bytes | str) -> None:
        from diag.report.files import atomic_write

        new = not os.path.lexists(path)
        atomic_write(path, data)
        if new:
            self.created.append(path)

    def undo(self) -> None:
        for p in reversed(self.created):
            with contextlib.suppress(OSError):
                p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink()
