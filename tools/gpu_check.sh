#!/bin/sh
# gpu_check.sh - what a CUDA machine checks that CI's cannot: dnc.torch on
# the GPU against the CPU kernels (tests/python/test_cuda_p13.py) and the
# GPU figures (bench/torch_cuda.py, JSON to $1 or gpu.json).
#   DNC_BUILD=build PYTHON=python3 sh tools/gpu_check.sh [OUT.json]
# PYTHON: an interpreter whose torch sees the GPU. Exit status: pytest's,
# or the bench's where the tests passed.
set -u
py=${PYTHON:-python3}
out=${1:-gpu.json}
export DNC_BUILD="${DNC_BUILD:-build}" DNC_CACHE="${DNC_CACHE:-0}"
"$py" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' || {
    echo "gpu_check.sh: $py's torch sees no CUDA device" >&2; exit 2; }
"$py" -m pytest -q -rs tests/python/test_cuda_p13.py || exit $?
"$py" bench/torch_cuda.py > "$out" || exit $?
echo "gpu_check.sh: figures in $out"
