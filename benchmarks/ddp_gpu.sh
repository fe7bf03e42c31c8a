#!/usr/bin/env bash
# `diag ddp` on one GPU (NCCL): run from the repo root on a CUDA machine, reports to $OUT.
# One GPU allows one NCCL rank (two ranks on one device are refused by NCCL: diag must
# say so per rank and end); the 1 B-parameter digest is timed on the device.
set -u
OUT=${OUT:-/tmp/ddp-gpu}; mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
C=tests/ddp_cases.py
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
run() { name=$1; shift; start=$(date +%s.%N)
  python3 -m diag ddp "$@" --format json --no-plots --out "$OUT/$name" > "$OUT/$name.json" \
    2> "$OUT/$name.err"; rc=$?
  python3 - "$OUT/$name.json" "$name" "$rc" "$start" <<'PY'
import json, sys, time
doc = json.load(open(sys.argv[1]))["checks"][0]
m = doc["metrics"]
print(f"{sys.argv[2]}: rc={sys.argv[3]} {doc['status']}: {doc['summary'][:160]} | backend="
      f"{m.get('backend')} steps={m.get('steps_run')} ({time.time() - float(sys.argv[4]):.1f} s)")
for f in doc["findings"]:
    print("   ", f["severity"], f.get("rule", ""), f["message"][:160], f["location"])
PY
}
run browser --nproc 1
run syncbn --nproc 1 --model $C:syncbn_net --data $C:data
run bn --nproc 1 --model $C:bn_net --data $C:data
run unused --nproc 1 --model $C:UnusedHead --data $C:data
run step-gpu --nproc 1 --step $C:step_gpu_dropout
run two-ranks-one-gpu --nproc 2 --backend nccl --timeout 60
python3 - <<'PY'
import time, torch
from diag.checks.ddp.worker import state_digests
from benchmarks.ddp_messages import GPT
model = GPT().cuda()
torch.cuda.synchronize()
for i in range(2):
    t = time.perf_counter(); d = state_digests(model); s = time.perf_counter() - t
    print(f"digest of {sum(p.numel() for p in model.parameters())/1e9:.2f} B params on the GPU: {s:.2f} s ({len(d)} tensors)")
PY
