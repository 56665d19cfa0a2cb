#!/bin/sh
# demo.sh - the main job end to end on examples/: check the published
# functions, print them back as dnc source, evaluate them, differentiate
# them, and run their JIT-compiled kernels (from the shell and from C).
set -e
DNC=${1:-build/dnc}
N=examples/norms.dn
say() { printf '\n== %s\n' "$*"; }

say "dnc check -v $N   (each function's signature)"
"$DNC" check -v $N

say "dnc print $N   (the expression DAGs, printed back as dnc source)"
"$DNC" print $N

say "dnc eval $N -f dyt 0 1 -1"
"$DNC" eval $N -f dyt 0 1 -1

say "DyT, DyISRU and Derf at their papers' defaults"
"$DNC" eval $N -f dyt,dyisru,derf -100 -10 -3 -1 -0.1 0 0.1 1 3 10 100

say "the shapes the Derf paper compared"
"$DNC" eval $N -f tanh_plain,arctan,algebraic,satursin,asinh_clip,sine,linear -4 -2 -1 0 1 2 4

say "Derf with alpha = 1 and a shift of 0.5, values from stdin"
printf '%s\n' -2 -1 0 1 2 | "$DNC" eval $N -f derf --param alpha=1 --param shift=0.5

say "dnc diff $N -f dyt,dyisru,derf --stats   (derivatives, simplified)"
"$DNC" diff $N -f dyt,dyisru,derf --stats

say "dnc diff $N -f dyt --wrt x --order 2 --format latex"
"$DNC" diff $N -f dyt --wrt x --order 2 --format latex

say "the same values through the JIT's kernels: f64, then bf16"
"$DNC" eval $N -f dyt,dyisru,derf --jit -3 -1 0 1 3
"$DNC" eval $N -f dyt,dyisru,derf --dtype bf16 -3 -1 0 1 3

EMBED=$(dirname "$DNC")/examples/embed
if [ -x "$EMBED" ]; then
  say "examples/embed.c: libdnc from C, layer forward and fused backward"
  "$EMBED"
fi

AOT=$(dirname "$DNC")/examples/aot
if [ -x "$AOT" ]; then
  say "dnc compile $N -o libnorms.so -H norms.h; examples/aot.c: a plain C program over them"
  readelf -d "$(dirname "$DNC")/examples/libnorms.so" | grep NEEDED
  "$AOT"
fi

PY=${DNC_PYTHON:-/usr/bin/python3}
if "$PY" -c 'import torch' 2>/dev/null; then
  say "PyTorch: a tiny transformer, 20 steps each with LayerNorm and dnc's DyT, Derf, DyISRU (examples/train_tiny_transformer.py; the full run: docs/training.md)"
  DNC_BUILD=$(dirname "$DNC") PYTHONPATH=python "$PY" examples/train_tiny_transformer.py --steps 20
fi
