#!/bin/sh
# port_pressure.sh - the execution-port pressure of a kernel's vector loop,
# by llvm-mca (docs/performance.md, round twelve: on Zen 4 the busier of the
# two multiply-add pipes, FP0 and FP1, is the loop's time).
#
#   tools/port_pressure.sh FILE.dn FUNCTION [DTYPE [FORM [MCPU]]]
#
# DTYPE f32 (default), f64, bf16 or f16; FORM layer_bwd (default),
# layer_fwd, fwd or bwd; MCPU llvm-mca's CPU (default znver4; an Intel
# one, sapphirerapids, prints its ports busy a cycle or more). The kernel
# is compiled for this machine (`dnc compile -S --cpu native`), and the
# loop taken from its first prefetch (the first vector loop's body, the
# affine copy of a layer kernel) to the first backward branch or
# unconditional jump; forward conditional branches (the rare paths) are
# taken as not taken. That loop's turn may take several vectors (`dnc
# compile` unrolls a layer loop by two, codegen.c emit_turn): one
# prefetchw each. Prints the instruction count, the vectors a turn and
# the resource pressure per vector (cycles) of the floating-point pipes.
# Needs llvm-mca-19 (Debian's llvm-19) and $DNC_BUILD/dnc (build/dnc).
set -eu
if [ $# -lt 2 ] || [ $# -gt 5 ]; then
  echo "usage: tools/port_pressure.sh FILE.dn FUNCTION [DTYPE [FORM [MCPU]]]" >&2
  exit 2
fi
src=$1 fn=$2 dt=${3:-f32} form=${4:-layer_bwd} mcpu=${5:-znver4}
case $dt in f32|f64|bf16|f16) ;; *) echo "port_pressure: DTYPE must be f32, f64, bf16 or f16, not '$dt'" >&2; exit 2;; esac
case $form in layer_bwd|layer_fwd|fwd|bwd) ;; *) echo "port_pressure: FORM must be layer_bwd, layer_fwd, fwd or bwd, not '$form'" >&2; exit 2;; esac
mca=$(command -v llvm-mca-19 || command -v llvm-mca || true)
if [ -z "$mca" ]; then
  echo "port_pressure: no llvm-mca-19 or llvm-mca on PATH (Debian: apt install llvm-19)" >&2
  exit 1
fi
dnc=${DNC_BUILD:-build}/dnc
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$dnc" compile "$src" -S --cpu native -o "$tmp/k.s"
label="dnc_${fn}_${dt}_${form}:"
# the function's lines, then the loop: labels' line numbers first
awk -v L="$label" '$0 == L { on = 1; next } on && /^[A-Za-z_][A-Za-z0-9_]*:$/ { exit } on' \
  "$tmp/k.s" > "$tmp/f.s"
if [ ! -s "$tmp/f.s" ]; then
  echo "port_pressure: no kernel $label in $src" >&2
  exit 1
fi
awk '
  NR == FNR { if ($0 ~ /^\.LBB[0-9_]+:/) { sub(":.*", ""); at[$0] = NR } next }
  !on && /prefetch/ { on = 1 }
  !on { next }
  /^[ \t]*#/ || /^[ \t]*\./ { next }
  /^\tjmp\t/ { exit }
  /^\tj[a-z]+\t/ { t = $2; if ((t in at) && at[t] < FNR) exit; next }
  { print }
' "$tmp/f.s" "$tmp/f.s" > "$tmp/loop.s"
n=$(wc -l < "$tmp/loop.s")
# one prefetchw (the output's) a vector: a turn of an unrolled layer loop
# (codegen.c emit_turn) has as many as it takes vectors
v=$(grep -c prefetchw "$tmp/loop.s" || true)
[ "$v" -ge 1 ] || v=1
if [ "$n" -eq 0 ]; then
  echo "port_pressure: no vector loop found in $label" >&2
  exit 1
fi
"$mca" -mcpu="$mcpu" -iterations=100 "$tmp/loop.s" > "$tmp/mca.txt" 2>&1
# the resource names (the [k] - Name lines) and the pressure row after
awk -v n="$n" -v v="$v" -v what="$fn $dt $form" '
  /^\[[0-9.]+\][ \t]+- / { name[$1] = $3 }
  /^Resource pressure per iteration:/ { getline hdr; getline row; split(hdr, h); split(row, r) }
  END {
    printf "%s: %d instructions, %d vectors a turn;", what, n, v
    for (i = 1; i in h; i++)
      if (name[h[i]] ~ /FP[0-9]+$/ || (name[h[i]] ~ /Port[0-9]+$/ && r[i] / v >= 1))
        printf " %s %.2f", name[h[i]], r[i] / v
    printf " (cycles per vector, llvm-mca)\n"
  }
' "$tmp/mca.txt"
