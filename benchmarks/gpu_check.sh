#!/usr/bin/env bash
# The GPU check, for a machine with one CUDA GPU (budget: 8 minutes): one `segrade grade` batch
# measures the `full` bands of the reference (3 seeds, all 10 variants, several jobs sharing
# the GPU) and grades one example submission against them; prints per-variant mIoU, seconds
# and peak GPU memory (benchmarks/gpu_check.py). Exit 0 when the bands were measured within
# the budget. Extra arguments go to gpu_check.py (e.g. --vgg16-weights FILE, --jobs 2).
#
#   bash benchmarks/gpu_check.sh [--vgg16-weights vgg16-397923af.pth]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || bash .ci/setup
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
else
    echo "gpu_check: nvidia-smi not found; torch decides whether CUDA is usable" >&2
fi
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
exec "$PY" benchmarks/gpu_check.py "$@"
