#!/usr/bin/env bash
# torch_ext.sh - tools/torch_ext.sh, which builds dnc.torch's C++ layer
# call per PyTorch install: it refuses bad arguments; an interpreter that
# is missing, has no PyTorch, or has one older than 2.4 (Debian's 1.13, whose
# package has no C++ headers) gets no extension, with a message and
# status 0 (dnc.torch then calls its kernels from Python); a failed
# compile is status 1 and leaves nothing behind. (`make tests` builds the
# real one for the virtualenv; tests/python/test_torch_ext.py checks that
# it loads and gives the Python path's bits.)
set -u
. "$(dirname "$0")/tap.bash"
TE=tools/torch_ext.sh
err "usage" 2 "usage: tools/torch_ext.sh" sh "$TE" python3

sh "$TE" "$tmp/no-such-python" "$tmp/out1" >"$tmp/o1" 2>&1
t "a missing interpreter: status 0" test $? = 0
t "... says it is not built" grep -q "no $tmp/no-such-python; not built" "$tmp/o1"
t "... and makes nothing" test ! -e "$tmp/out1"

printf '#!/bin/sh\nexec /usr/bin/python3 -I -S "$@"\n' >"$tmp/bare-python"
chmod +x "$tmp/bare-python"
sh "$TE" "$tmp/bare-python" "$tmp/out2" >"$tmp/o2" 2>&1
t "no PyTorch: status 0" test $? = 0
t "... says PyTorch does not import" grep -q "PyTorch does not import" "$tmp/o2"
t "... and makes nothing" test ! -e "$tmp/out2"

if /usr/bin/python3 -c 'import torch, sys; sys.exit(torch.__version__ >= "2")' 2>/dev/null; then
  sh "$TE" /usr/bin/python3 "$tmp/out3" >"$tmp/o3" 2>&1
  t "PyTorch 1: status 0" test $? = 0
  t "... says it is older than 2.4" grep -q "is older than 2.4" "$tmp/o3"
  t "... and makes nothing" test ! -e "$tmp/out3"
else
  for i in 1 2 3; do n=$((n + 1)); echo "ok $n # skip Debian's python3 has no PyTorch 1"; done
fi

VP=${DNC_VENV_PYTHON:-.venv/bin/python}
if "$VP" -c 'import torch' 2>/dev/null; then
  err "a failed compile: status 1" 1 "torch_ext: compiling .* failed" \
    env CXX=false sh "$TE" "$VP" "$tmp/out4"
  t "... leaves no file behind" test -z "$(find "$tmp/out4" -type f 2>/dev/null)"
else
  for i in 1 2; do n=$((n + 1)); echo "ok $n # skip no virtualenv PyTorch ($VP)"; done
fi
tap_done
