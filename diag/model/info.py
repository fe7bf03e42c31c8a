"""`diag model`: the reference nets, layer by layer, with fp32 and uint8 sizes."""

from __future__ import annotations

from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from diag.errors import UsageError
from diag.model import REFERENCE_NETS
from diag.model.weights import encode


def list_nets() -> list[dict[str, Any]]:
    return [{"name": i.name, "description": i.description, "params": i.params}
            for i in REFERENCE_NETS.values()]


def describe(name: str, input_size: int = 112) -> dict[str, Any]:
    """Per-layer table (name, output shape, params), totals, fp32 and uint8 bytes."""
    if name not in REFERENCE_NETS:
        raise UsageError(f"no reference net named {name!r}",
                         hint=f"choose one of {', '.join(REFERENCE_NETS)}")
    model = REFERENCE_NETS[name].build(input_size=input_size, seed=0)
    layers: list[dict[str, Any]] = []
    handles = []
    for lname, module in model.named_modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            def hook(m: nn.Module, _i: Any, o: torch.Tensor, lname: str = lname) -> None:
                layers.append({"name": lname, "type": type(m).__name__,
                               "output_shape": list(o.shape[1:]),
                               "params": sum(p.numel() for p in m.parameters())})
            handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(torch.zeros(1, 3, input_size, input_size))
    for h in handles:
        h.remove()
    params = sum(p.numel() for p in model.parameters())
    _, shard8 = encode(model, "uint8")
    _, shard16 = encode(model, "uint16")
    return {
        "name": name,
        "description": REFERENCE_NETS[name].description,
        "input_shape": [3, input_size, input_size],
        "params": params,
        "fp32_bytes": 4 * params,
        "uint16_bytes": len(shard16),
        "uint8_bytes": len(shard8),
        "layers": layers,
    }


def render_list(nets: list[dict[str, Any]]) -> None:
    table = Table(title="reference nets (face-api.js, in PyTorch)", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("params", justify="right")
    table.add_column("description")
    for n in nets:
        table.add_row(n["name"], f"{n['params']:,}", n["description"])
    Console().print(table)


def render_net(info: dict[str, Any]) -> None:
    table = Table(title=f"{info['name']}: {info['description']}", title_justify="left")
    table.add_column("layer", style="bold")
    table.add_column("type")
    table.add_column("output shape", justify="right")
    table.add_column("params", justify="right")
    for layer in info["layers"]:
        table.add_row(layer["name"], layer["type"], "x".join(map(str, layer["output_shape"])),
                      f"{layer['params']:,}")
    console = Console()
    console.print(table)
    console.print(
        f"total params {info['params']:,}   fp32 {info['fp32_bytes']:,} B   "
        f"uint16 {info['uint16_bytes']:,} B   uint8 {info['uint8_bytes']:,} B "
        f"(input {'x'.join(map(str, info['input_shape']))})", soft_wrap=True)
