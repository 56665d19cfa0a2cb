#!/bin/sh
# torch_ext.sh PYTHON OUTDIR - builds dnc.torch's C++ layer call
# (python/dnc/_torch_ext.cpp) for the PyTorch that PYTHON imports, into
# OUTDIR/torch-<torch.__version__>/_dnc_torch<EXT_SUFFIX>, where dnc.torch
# looks for it beside the libdnc.so it loaded (OUTDIR is that build
# folder's torch/). Up to date: nothing to do. A PyTorch older than 2.4
# (dnc.torch's PyTorch 2 path), or without the headers of its C++
# extensions (Debian's python3-torch 1.13 has neither), gets no
# extension: dnc.torch then makes every call in Python, which gives the
# same results more slowly; this says so and exits 0. A failed compile
# is an error (exit 1), and leaves nothing half-written. CXX: the C++
# compiler (g++).
set -eu
if [ $# -ne 2 ]; then
  echo "usage: tools/torch_ext.sh PYTHON OUTDIR" >&2
  exit 2
fi
py=$1
out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/python/dnc/_torch_ext.cpp"
hdr="$root/runtime/dnc.h"
if ! [ -x "$py" ] && ! command -v "$py" >/dev/null 2>&1; then
  echo "torch_ext: no $py; not built"
  exit 0
fi
# one line: version, C++11 ABI, EXT_SUFFIX, Python's include folder, the
# torch library folder, then the include folders; or "no REASON"
info=$("$py" - <<'EOF' 2>/dev/null
import os, sys, sysconfig
try:
    import torch
    from torch.utils import cpp_extension
except Exception as e:
    print("no PyTorch does not import (%s)" % str(e).split("\n")[0]); sys.exit()
v = torch.__version__
major, minor = (int(p) for p in v.split("+")[0].split(".")[:2])
if (major, minor) < (2, 4):
    print("no PyTorch %s is older than 2.4" % v); sys.exit()
inc = cpp_extension.include_paths()
if not any(os.path.exists(os.path.join(
        d, "torch/csrc/autograd/custom_function.h")) for d in inc):
    print("no PyTorch %s has no C++ extension headers" % v); sys.exit()
print(v, int(torch._C._GLIBCXX_USE_CXX11_ABI),
      sysconfig.get_config_var("EXT_SUFFIX"), sysconfig.get_paths()["include"],
      cpp_extension.library_paths()[0], *inc)
EOF
) || info="no $py failed"
case $info in
  no\ *) echo "torch_ext: ${info#no } under $py: no C++ layer call (dnc.torch calls its kernels from Python)"; exit 0 ;;
  "") echo "torch_ext: $py printed nothing; not built"; exit 0 ;;
esac
set -- $info
ver=$1 abi=$2 suffix=$3 pyinc=$4 lib=$5
shift 5
dir="$out/torch-$ver"
so="$dir/_dnc_torch$suffix"
if [ -f "$so" ] && [ "$so" -nt "$src" ] && [ "$so" -nt "$hdr" ] && \
   [ "$so" -nt "$lib/libtorch_cpu.so" ]; then
  exit 0
fi
incs="-I$root/runtime -I$pyinc"
for d in "$@"; do incs="$incs -I$d"; done
mkdir -p "$dir"
tmp="$dir/.tmp.$$$suffix"
trap 'rm -f "$tmp"' EXIT
echo "torch_ext: building $so for PyTorch $ver (about 30 s)"
# shellcheck disable=SC2086
if ! ${CXX:-g++} -O2 -std=c++20 -fPIC -shared -fvisibility=hidden \
  -D_GLIBCXX_USE_CXX11_ABI="$abi" -DTORCH_EXTENSION_NAME=_dnc_torch \
  -DTORCH_API_INCLUDE_EXTENSION_H -DDNC_TORCH_VERSION="\"$ver\"" \
  $incs "$src" -o "$tmp" -L"$lib" -Wl,-rpath,"$lib" \
  -lc10 -ltorch -ltorch_cpu -ltorch_python; then
  echo "torch_ext: compiling $src for PyTorch $ver with ${CXX:-g++} failed" >&2
  exit 1
fi
mv -f "$tmp" "$so"
trap - EXIT
