#!/usr/bin/env bash
# deps.sh - tools/deps.sh (what `make test` runs first) needs no network
# and no root when everything is installed: with every Debian package
# present and a virtualenv made from this requirements file, it runs
# neither apt-get nor pip. apt-get, sudo and the virtualenv's python are
# replaced by scripts that record being run; a virtualenv made from other
# requirements must be remade (the record shows the check is real).
set -u
. "$(dirname "$0")/tap.bash"

mkdir -p "$tmp/bin" "$tmp/venv/bin"
for c in apt-get sudo; do
  printf '#!/bin/sh\necho "%s $*" >>"%s/ran"\nexit 1\n' "$c" "$tmp" >"$tmp/bin/$c"
  chmod +x "$tmp/bin/$c"
done
printf '#!/bin/sh\necho "python $*" >>"%s/ran"\nexit 1\n' "$tmp" >"$tmp/venv/bin/python"
chmod +x "$tmp/venv/bin/python"
sha256sum tools/requirements-venv.txt | cut -d' ' -f1 >"$tmp/venv/.dnc-requirements"

pkgs=$(sed -n 's/^pkgs="\(.*\)"$/\1/p' tools/deps.sh)
t "deps.sh lists its Debian packages" test -n "$pkgs"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $p"
done

if [ -z "$missing" ]; then
  PATH="$tmp/bin:$PATH" DNC_VENV="$tmp/venv" sh tools/deps.sh >"$tmp/out" 2>&1
  rc=$?
  t "everything installed: deps.sh succeeds" test "$rc" = 0
  t "... running neither apt-get, sudo nor pip" test ! -e "$tmp/ran"
  sed 's/^/# /' "$tmp/out"
else
  echo "ok 2 # skip Debian packages missing here:$missing"
  echo "ok 3 # skip Debian packages missing here:$missing"
  n=$((n + 2))
fi

echo stale >"$tmp/venv/.dnc-requirements"
PATH="$tmp/bin:$PATH" DNC_VENV="$tmp/venv" DNC_DEPS_SKIP_DEBIAN=1 \
  sh tools/deps.sh >"$tmp/out" 2>&1
t "a virtualenv from other requirements is remade (pip runs)" \
  grep -q "python -m pip" "$tmp/ran"
t "DNC_DEPS_VENV=0: the virtualenv is not looked at" \
  sh -c "rm -f '$tmp/ran'; PATH='$tmp/bin:$PATH' DNC_VENV='$tmp/venv' \
         DNC_DEPS_VENV=0 DNC_DEPS_SKIP_DEBIAN=1 sh tools/deps.sh && test ! -e '$tmp/ran'"
tap_done
