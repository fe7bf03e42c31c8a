"""What `diag ddp` sends between ranks, for a 1 B-parameter model on 64 ranks, computed
from the message sizes (no cluster needed).

A GPT-2-shaped model of 1.07 B parameters is built on the meta device (no memory), and a
rank's record is filled the way ``diag.checks.ddp.worker`` fills it: a digest per parameter
and buffer at four checkpoints, per-step lists (unused parameters, generator digests, the
census), and one epoch's sample indices. Its pickled size is what ``gather_object`` sends
to rank 0; the verdict comes back by ``broadcast_object_list``. The digests' local cost is
a copy to the host and blake2b over every byte, timed here on 256 MB.

    python benchmarks/ddp_messages.py [--ranks 64] [--samples 1000000] [--steps 10]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import time

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.fc_proj = nn.Linear(4 * d, d)


class GPT(nn.Module):
    """GPT-2 layout (12 d^2 per layer): d=2048, 20 layers, 32k vocabulary, tied head."""

    def __init__(self, d: int = 2048, layers: int = 20, vocab: int = 32000,
                 context: int = 2048) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(context, d)
        self.h = nn.ModuleList(Block(d) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)


def record(model: nn.Module, steps: int, indices: int) -> dict[str, object]:
    names = [n for n, _ in model.named_parameters()]
    buffers = [n for n, _ in model.named_buffers()]
    tensors = len(names) + len(buffers)
    fake = "0123456789abcdef"  # a digest: 8 bytes as 16 hex characters
    return {
        "rank": 63, "world_size": 64, "phase": "done", "step": steps, "steps_done": steps,
        "names": names, "buffer_names": buffers, "bn_buffers": [], "syncbn": False,
        "digests": {k: [fake] * tensors for k in ("built", "0", "1", str(steps))},
        "unused": [[] for _ in range(steps)], "rng": [fake] * steps,
        "dropout": [fake] * steps, "census": [[1500, 600, 4_300_000_000, 4000]] * steps,
        "epochs": [{"batches": indices // 8, "samples": indices, "order": fake,
                    "indices": list(range(1_000_000, 1_000_000 + indices)),
                    "sampler_epoch": 0, "shuffle": True}],
        "error": None, "stuck": None, "backend": "nccl", "mode": "loop",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ranks", type=int, default=64)
    parser.add_argument("--samples", type=int, default=1_000_000,
                        help="samples in the data set (each rank draws samples / ranks)")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    with torch.device("meta"):
        model = GPT()
    params = sum(p.numel() for p in model.parameters())
    tensors = len(list(model.parameters())) + len(list(model.buffers()))
    from diag.checks.ddp.worker import MAX_INDICES

    per_rank_indices = min(args.samples // args.ranks, MAX_INDICES)
    rec = record(model, args.steps, per_rank_indices)
    full = len(pickle.dumps(rec))
    no_data = len(pickle.dumps({**rec, "epochs": []}))
    gathered = (args.ranks - 1) * full
    verdict = 20_000  # a CheckResult as a dict: a few findings and metrics
    fp32 = params * 4
    ring = 2 * (args.ranks - 1) / args.ranks * fp32  # DDP's all-reduce per step, per rank

    block = os.urandom(256 * 2**20)
    started = time.perf_counter()
    hashlib.blake2b(block, digest_size=8).digest()
    rate = len(block) / (time.perf_counter() - started)
    print(f"model: {params / 1e9:.2f} B parameters in {tensors} tensors ({fp32 / 2**30:.1f} GiB "
          "fp32)")
    print(f"record per rank: {full / 2**10:.0f} KiB ({no_data / 2**10:.0f} KiB without the "
          f"{per_rank_indices} sample indices of one epoch)")
    print(f"rank 0 receives {gathered / 2**20:.1f} MiB from {args.ranks - 1} ranks (gather), "
          f"and sends ~{verdict / 2**10:.0f} KiB back to each (broadcast)")
    print(f"probe before wrapping: an all_gather of unused names, {args.ranks} x a few bytes")
    print(f"for scale, DDP's own all-reduce sends {ring / 2**30:.1f} GiB per rank per step")
    print(f"local cost per checkpoint: blake2b over {fp32 / 2**30:.1f} GiB at "
          f"{rate / 2**30:.2f} GiB/s here = {fp32 / rate:.1f} s (4 checkpoints per run), plus "
          "the device-to-host copy")


if __name__ == "__main__":
    main()
