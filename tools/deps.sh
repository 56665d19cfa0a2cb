#!/bin/sh
# deps.sh - install what dnc needs when it is missing:
#  1. Debian's packages (as root it runs apt-get; otherwise it prints the
#     exact command and fails);
#  2. the virtualenv .venv over Debian's /usr/bin/python3 with the PyPI
#     packages of tools/requirements-venv.txt (PyTorch 2 and the rest),
#     remade only when that file changes (its digest is kept in the venv).
# g++ and libpython3-dev are for dnc.torch's C++ layer call (make torch-ext,
# tools/torch_ext.sh, part of make test) and tests/install.sh's C++ program;
# g++ and xz-utils for make bundle / make wheel (tests/python/test_wheel.py).
# clang-19 and libclang-rt-19-dev (libFuzzer) are for `make fuzz` and the
# short fuzz run of tests/fuzz.sh in `make test`. DNC_DEPS_VENV=0 skips step 2,
# DNC_DEPS_SKIP_DEBIAN=1 step 1 (tests/deps.sh). With everything installed
# it needs no network and no root: it runs neither apt-get nor pip.
set -e
pkgs="gcc g++ make pkg-config llvm-19-dev flex bison perl python3 python3-numpy python3-sympy python3-mpmath python3-torch python3-pytest python3-venv libsleef-dev clang-19 libclang-rt-19-dev zlib1g-dev libzstd-dev libpython3-dev xz-utils"
missing=""
[ "${DNC_DEPS_SKIP_DEBIAN:-0}" = 1 ] && pkgs=""
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
if [ -n "$missing" ]; then
  cmd="apt-get install -y --no-install-recommends$missing"
  if [ "$(id -u)" = 0 ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    $cmd
  else
    echo "deps: missing Debian packages:$missing" >&2
    echo "deps: run as root:  apt-get update && $cmd" >&2
    exit 1
  fi
fi

[ "${DNC_DEPS_VENV:-1}" = 0 ] && exit 0
root=$(cd "$(dirname "$0")/.." && pwd)
venv="${DNC_VENV:-$root/.venv}"
req="$root/tools/requirements-venv.txt"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.dnc-requirements" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "deps: making $venv (PyPI: $(grep -v '^#' "$req" | tr '\n' ' '))"
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r "$req"
echo "$want" > "$venv/.dnc-requirements"
