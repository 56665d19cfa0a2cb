#!/bin/sh
# fit_layernorm.sh - which of DyT and DyISRU resembles LayerNorm better?
#
# The DyISRU paper's experiment as two commands: dnc makes LayerNorm's
# reference points (C channel values from a seeded normal distribution,
# the largest moved out in steps, its normalized output as the target,
# mirrored; docs/fit.md) and fits gamma * f(x) to them by least squares.
# The smaller residual answers the question; DyISRU's beta comes out near
# the sum of the other channels' squares (about C - 1 for unit variance).
#
#   sh examples/fit_layernorm.sh [DNC] [extra fit options...]
set -eu
DNC=${1:-build/dnc}
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/.."
for f in dyt dyisru derf; do
  "$DNC" fit examples/norms.dn -f "$f" --target layernorm "$@"
  echo
done
# one line each, to compare at a glance
for f in dyt dyisru derf; do
  "$DNC" fit examples/norms.dn -f "$f" --target layernorm "$@" |
    sed -n "s/^residual: /$f: /p"
done
