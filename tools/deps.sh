#!/bin/sh
# deps.sh - install what dnc needs from Debian's packages when it is missing.
# As root it runs apt-get; otherwise it prints the exact command and fails.
# DNC_DEPS_FUZZ=1 adds what `make fuzz` needs.
set -e
pkgs="gcc make pkg-config llvm-19-dev flex bison perl python3 python3-numpy python3-sympy python3-mpmath python3-torch libsleef-dev"
if [ -n "$DNC_DEPS_FUZZ" ]; then
  pkgs="$pkgs clang-19 libclang-rt-19-dev"
fi
missing=""
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
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
