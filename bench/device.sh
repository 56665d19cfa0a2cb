#!/bin/bash
# device.sh - `make bench` on a machine without LLVM 19 or the project's
# Debian packages (the 16-core benchmark machine with PyTorch 2.x): builds
# the benchmarks there against the self-contained library of `make bundle`
# (carried in build/bundle) and runs them, then the PyTorch comparison
# (eager, torch.jit.script, torch.compile, PointwiseNorm), the Python
# tests and the tiny transformer.
#   bash bench/device.sh OUTDIR
# Writes OUTDIR/kernels.json and OUTDIR/*.log.
set -u
out="${1:?usage: bench/device.sh OUTDIR}"
B=build/bundle
mkdir -p "$out"
python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('$B/libdnc.so.xz'), open('$B/libdnc.so', 'wb'))" || exit 1
ln -sf libdnc.so "$B/libdnc.so.$(sed -n 's/^#define DNC_ABI_VERSION \([0-9]*\)/\1/p' "$B/dnc.h")"
export DNC_LIBRARY="$PWD/$B/libdnc.so" LD_LIBRARY_PATH="$PWD/$B" PYTHONUNBUFFERED=1
{ nproc; lscpu | grep -E 'Model name|^CPU\(s\)|Thread|Socket|NUMA node|L2|L3|Flags' | cut -c1-400;
  python3 -c 'import torch, numpy; print("torch", torch.__version__, "numpy", numpy.__version__)'; gcc --version | head -1; } \
  2>&1 | tee "$out/machine.log"
CF="-O2 -std=c11 -D_GNU_SOURCE -I$B"
gcc -O3 -march=native -ffast-math -c -o $B/peer.o bench/peer.c &&
gcc $CF -Ibench -o $B/kernels bench/kernels.c $B/peer.o -L$B -l:libdnc.so -lm -lpthread &&
gcc -O3 -march=native -ffast-math -c -o $B/libmvec.o bench/libmvec.c &&
gcc $CF -march=native -o $B/incache bench/incache.c $B/libmvec.o -L$B -l:libdnc.so -l:libsleef.so.3 -lm &&
gcc -O2 -Itests -o $B/gen_corpus tests/gen_corpus.c || exit 1
mkdir -p build/tests && cp $B/gen_corpus build/tests/
$B/kernels "$out/kernels.json" 2>&1 | tee "$out/kernels.log"
$B/incache "$out/kernels.json" 2>&1 | tee "$out/incache.log"
python3 bench/torch_eager.py "$out/kernels.json" 2>&1 | tee "$out/torch.log"
for t in torch; do
  DNC_BUILD=build PYTHONPATH=python:tests/python python3 tests/python/test_$t.py >"$out/test_$t.log" 2>&1
  echo "test_$t: exit $? ($(grep -c '^not ok' "$out/test_$t.log") failed)"
done
# DNC_DEVICE_GPU=1: dnc.torch on the GPU (tools/gpu_check.sh: its tests
# against the CPU kernels, then bench/torch_cuda.py's figures)
if [ -n "${DNC_DEVICE_GPU:-}" ]; then
  sh tools/gpu_check.sh "$out/gpu.json" >"$out/gpu.log" 2>&1
  echo "gpu_check: exit $?"; tail -3 "$out/gpu.log"
fi
# DNC_DEVICE_TRAIN=1: the tiny transformer on two cores (pinned) and on all
if [ -n "${DNC_DEVICE_TRAIN:-}" ]; then
  { time taskset -c 0,1 python3 examples/train_tiny_transformer.py --threads 2 \
      --json "$out/train_t2.json"; } >"$out/train_t2.log" 2>&1
  tail -9 "$out/train_t2.log"
  python3 examples/train_tiny_transformer.py --json "$out/train_t16.json" \
    >"$out/train_t16.log" 2>&1
  tail -6 "$out/train_t16.log"
fi
