#!/bin/sh
# gpu_check.sh - what a CUDA machine checks that CI's cannot: dnc.torch on
# the GPU against the CPU kernels (tests/python/test_cuda_p13.py) and the
# GPU figures (bench/torch_cuda.py, JSON to OUT.json, default gpu.json).
#   PYTHON=python3 sh tools/gpu_check.sh [OUT.json]
# PYTHON: an interpreter whose torch sees the GPU. The library: $DNC_LIBRARY,
# else build/bundle/libdnc.so.xz (`make bundle` here, for a machine
# without LLVM 19, as bench/device.sh takes it), else $DNC_BUILD (build).
# DNC_TEST_DEVICE=cpu-decomposed runs the tests' logic on the CPU and no
# bench (a check of this script where there is no GPU). Exit status:
# pytest's, or the bench's where the tests passed.
set -u
py=${PYTHON:-python3}
out=${1:-gpu.json}
B=build/bundle
export DNC_BUILD="${DNC_BUILD:-build}" DNC_CACHE="${DNC_CACHE:-0}"
if [ -z "${DNC_LIBRARY:-}" ] && [ -f "$B/libdnc.so.xz" ]; then
  "$py" -c "import lzma, shutil; shutil.copyfileobj(lzma.open('$B/libdnc.so.xz'), open('$B/libdnc.so', 'wb'))" || exit 1
  export DNC_LIBRARY="$PWD/$B/libdnc.so"
fi
if [ "${DNC_TEST_DEVICE:-cuda}" = cpu-decomposed ]; then
  exec "$py" -m pytest -q -rs tests/python/test_cuda_p13.py
fi
"$py" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' || {
    echo "gpu_check.sh: $py's torch sees no CUDA device" >&2; exit 2; }
"$py" -m pytest -q -rs tests/python/test_cuda_p13.py || exit $?
"$py" bench/torch_cuda.py > "$out" || exit $?
echo "gpu_check.sh: figures in $out"
