#!/usr/bin/env bash
# The GPU path for real, on a machine with an NVIDIA GPU, PyTorch and no podman:
# toolship's server finds the GPU, a --gpus 1 task multiplies matrices on it and
# reports GPU time and peak GPU memory, a --gpus 0 task sees no device.
#
#   scripts/gpu-check.sh          # from the repository root; uses .whl/ when present
#                                 # (scripts/device-wheels.sh: an offline machine)
# Tasks run with the process runtime as root (a throwaway machine); results print to
# stdout, the server's log last.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$repo/src
else
    export PYTHONPATH=$repo/src
fi
T=$(mktemp -d /tmp/toolship-gpu.XXXXXX)
cd "$T" || exit 1
export TOOLSHIP_HOME=$T/home TOOLSHIP_LOCAL__RUNTIME=process TOOLSHIP_LOCAL__TASK_USER=0:0 \
    TOOLSHIP_IMAGES__SBOMS_ON_USE=false TOOLSHIP_LOCAL__ACCOUNTING=false
ts() { python3 -m toolship "$@"; }

echo "== nvidia-smi -L"
nvidia-smi -L
python3 -m toolship serve --host 127.0.0.1 --port 0 >"$T/server.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null' EXIT
for _ in $(seq 600); do  # serving, and the backend has looked for GPUs
    url=$(sed -n 's/^toolship serving on \(http[^ ]*\) .*/\1/p' "$T/server.log")
    [ -n "$url" ] && grep -q "GPUs:" "$T/server.log" && break
    kill -0 $server 2>/dev/null || { echo "server exited"; cat "$T/server.log"; exit 1; }
    sleep 0.1
done
export TOOLSHIP_SERVER=$url
echo "== what the server found"
grep -h "GPUs:" "$T/server.log"

matmul='
import os, time, torch
print("CUDA_VISIBLE_DEVICES =", os.environ.get("CUDA_VISIBLE_DEVICES"))
print("device:", torch.cuda.get_device_name(0), "count:", torch.cuda.device_count())
held = torch.empty(4 << 30, dtype=torch.uint8, device="cuda")  # 4 GiB held throughout
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
torch.cuda.synchronize()
n, start = 0, time.perf_counter()
while time.perf_counter() - start < 4:
    for _ in range(50):
        c = a @ b
    torch.cuda.synchronize()
    n += 50
s = time.perf_counter() - start
print(f"{n} products of 8192x8192 bf16 in {s:.2f} s: {2 * 8192**3 * n / s / 1e12:.0f} TFLOP/s")
print("peak allocated by torch:", torch.cuda.max_memory_allocated() >> 20, "MiB")
'
nodevice='
import os, torch
print("CUDA_VISIBLE_DEVICES =", repr(os.environ.get("CUDA_VISIBLE_DEVICES")))
print("torch sees", torch.cuda.device_count(), "devices; available:", torch.cuda.is_available())
'
echo "== a --gpus 1 task"
one=$(ts run -d --gpus 1 --name gpu-matmul process -- python3 -c "$matmul")
ts wait "$one"
ts logs "$one"
ts logs --stderr "$one" | tail -5
ts show "$one"
echo "== a --gpus 0 task"
none=$(ts run -d --name no-gpu process -- python3 -c "$nodevice")
ts wait "$none"
ts logs "$none"
ts logs --stderr "$none" | tail -5
echo "== the attempt's metadata (TES)"
ts show --json "$one" | python3 -c '
import json, sys
print(json.dumps(json.load(sys.stdin)["task"]["logs"][-1]["metadata"], indent=1))'
echo "== the server's log"
cat "$T/server.log"
