#!/bin/sh
# torch_version.sh VERSION [PYTEST ARGS...] - the Python suite under
# another PyTorch 2 release from PyPI, as users run many (round fourteen
# found a silent zero gradient that only PyTorch 2.11 showed): a
# virtualenv .venv-torch-VERSION over Debian's /usr/bin/python3 (made
# once, ignored by git) with torch==VERSION.* and what the suite needs,
# then dnc.torch's C++ layer call built for it (tools/torch_ext.sh) and
# tools/pytest.sh under it, on both cores. VERSION is a minor
# release, such as 2.11. Not part of `make test` (each release is about 3
# GB from PyPI); its tests that need packages this venv does not install
# (Ray, JAX, onnxruntime) skip or fail as they say.
set -eu
usage() {
  echo "usage: tools/torch_version.sh VERSION [PYTEST ARGS...]  (VERSION: a PyTorch 2 minor release, e.g. 2.11)" >&2
  exit 2
}
[ $# -ge 1 ] || usage
v=$1
shift
case $v in
  2.[0-9]|2.[0-9][0-9]) ;;
  *) echo "torch_version: VERSION must be a PyTorch 2 minor release such as 2.11, not '$v'" >&2; usage ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-torch-$v"
if ! [ -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, pytest, xdist" 2>/dev/null; then
  echo "torch_version: making $venv (PyPI: torch==$v.* numpy pytest pytest-xdist)"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q "torch==$v.*" numpy pytest pytest-xdist
fi
echo "torch_version: PyTorch $("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
# dnc.torch's C++ layer call for this PyTorch, beside the build's libdnc
# (the suite then checks that it loaded)
build=${DNC_BUILD:-build}
case $build in /*) ;; *) build="$root/$build" ;; esac
sh "$root/tools/torch_ext.sh" "$venv/bin/python" "$build/torch"
DNC_TORCH_EXT_BUILT=1 exec bash "$root/tools/pytest.sh" "$venv/bin/python" -n 2 "$@"
