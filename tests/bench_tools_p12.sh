#!/usr/bin/env bash
# bench_tools_p12.sh - the tools that measure a change (bench/README.md):
# build/bench/ab times two libdnc.so builds alternately (here the same
# one twice: each side prints its times, and the ratios are positive), a
# function with a per-channel parameter and bf16 included, and refuses
# bad arguments; tools/port_pressure.sh prints llvm-mca's pipe pressure
# for a kernel's loop (skipped where llvm-mca is not installed) and
# refuses an unknown function, dtype or form; build/bench/fma_rate prints
# the FMA pipes' rate; build/bench/phases times DyT's backward in C in four
# orders and from a table; build/bench/floor the floor's backward in dnc
# and in C; tools/torch_version.sh refuses a bad VERSION.
set -u
. "$(dirname "$0")/tap.bash"
AB="$B/bench/ab"
LIB="$B/libdnc.so"
export AB_ROUNDS=2

if [ ! -x "$AB" ]; then
  echo "Bail out! $AB is not built (make tests builds it)"
  exit 1
fi
"$AB" "$LIB" "$LIB" "fn dyisru(x; beta = 301.1) = x / sqrt(beta + x^2)" 4 64 >"$tmp/ab" 2>&1
t "ab: two sides timed" grep -Eq '^  OLD forward [0-9.]+ backward [0-9.]+$' "$tmp/ab"
t "ab: their ratio" grep -Eq '^  NEW/OLD forward [0-9.]+ backward [0-9.]+$' "$tmp/ab"
AB_DTYPE=bf16 "$AB" "$LIB" "$LIB" "fn derf_pc(x; alpha = 0.5, s[] = 0) = erf(alpha * x + s)" 3 40 >"$tmp/ab2" 2>&1
t "ab: bf16, a per-channel parameter" grep -Eq '^bf16, \[3 x 40\].*' "$tmp/ab2"
err "ab: usage" 2 "usage: ab" "$AB" "$LIB"
err "ab: a bad shape" 2 "ROWS must be" "$AB" "$LIB" "$LIB" "fn f(x) = x" 0 4
err "ab: a bad dtype" 2 "AB_DTYPE must be" env AB_DTYPE=f8 "$AB" "$LIB" "$LIB"
err "ab: a missing library" 1 "cannot open" "$AB" "$tmp/none.so" "$LIB"
err "ab: a source that does not compile" 1 "ab: " "$AB" "$LIB" "$LIB" "fn f(x) = y"

# bench/fma_rate (make tests builds it): nanoseconds per FMA and a ratio,
# or that the CPU has no AVX-512
FR="$B/bench/fma_rate"
"$FR" >"$tmp/fr" 2>&1
t "fma_rate: the FMAs' rate and latency, or no AVX-512" \
  grep -Eq '^(512-bit FMA: [0-9.]+ ns each over 12 chains, [0-9.]+ ns each in one chain \(ratio [0-9.]+\); 4 vpermd \+ 8 FMA: [0-9.]+ ns an instruction|fma_rate: no AVX-512 on this CPU)$' "$tmp/fr"

# bench/phases (make tests builds it): DyT's backward in C in four orders,
# the same sums in each, and a table loop checked against tanh and sech^2, or that the CPU has no AVX-512; bad shapes refused
PH="$B/bench/phases"
"$PH" 2 64 >"$tmp/ph" 2>&1
t "phases: the straight loop's time and the other orders' over it" \
  grep -Eq '^(phases \[2 x 64\]: straight [0-9.]+ ns an element; over it: blocks of 4 [0-9.]+, of 8 [0-9.]+, of 16 [0-9.]+, pipelined [0-9.]+; table [0-9.]+, in blocks of 4 [0-9.]+|phases: no AVX-512 on this CPU)$' "$tmp/ph"
err "phases: usage" 2 "usage: phases" "$PH" 4
err "phases: COLS not a multiple of 16" 2 "COLS must be a multiple of 16" "$PH" 4 17
err "phases: a bad ROWS" 2 "ROWS must be a whole number" "$PH" x 16

# bench/floor (make tests builds it): the floor's backward in dnc and in
# C loops whose dx it checks against dnc's bits first; bad shapes refused
FL="$B/bench/floor"
"$FL" "$LIB" 3 64 >"$tmp/fl" 2>&1
t "floor: dnc's time and the C loops'" \
  grep -Eq '^(floor \[3 x 64\], ns an element: dnc [0-9.]+; C: tile [0-9.]+, tile/8 [0-9.]+, tile/32 [0-9.]+, no sums [0-9.]+|floor: no AVX-512 on this CPU)$' "$tmp/fl"
err "floor: usage" 2 "usage: floor" "$FL"
err "floor: COLS not a multiple of 16" 2 "COLS must be a multiple of 16" "$FL" "$LIB" 4 17
err "floor: a bad ROWS" 2 "ROWS must be a whole number" "$FL" "$LIB" x 16
err "floor: a missing library" 1 "cannot open" "$FL" "$tmp/none.so"

# tools/torch_version.sh refuses what is not a PyTorch 2 minor release
# before it makes anything
TV=tools/torch_version.sh
err "torch_version: usage" 2 "usage: tools/torch_version.sh" sh "$TV"
err "torch_version: a patch release" 2 "VERSION must be a PyTorch 2 minor" sh "$TV" 2.11.0
err "torch_version: PyTorch 1" 2 "VERSION must be a PyTorch 2 minor" sh "$TV" 1.13
t "torch_version: nothing made for a refused version" test ! -e .venv-torch-2.11.0

PP=tools/port_pressure.sh
if command -v llvm-mca-19 >/dev/null || command -v llvm-mca >/dev/null; then
  DNC_BUILD="$B" "$PP" examples/norms.dn dyt f32 layer_bwd >"$tmp/pp" 2>&1
  t "port_pressure: FP0 and FP1 of DyT's backward" \
    grep -Eq '^dyt f32 layer_bwd: [0-9]+ instructions, 2 vectors a turn;.* Zn4FP0 [0-9.]+ Zn4FP1 [0-9.]+' "$tmp/pp"
  err "port_pressure: an unknown function" 1 "no kernel dnc_nope_f32_layer_bwd" \
    env DNC_BUILD="$B" "$PP" examples/norms.dn nope
else
  echo "ok $((n + 1)) # skip llvm-mca is not installed"
  echo "ok $((n + 2)) # skip llvm-mca is not installed"
  n=$((n + 2))
fi
err "port_pressure: a bad dtype" 2 "DTYPE must be" "$PP" examples/norms.dn dyt f8
err "port_pressure: a bad form" 2 "FORM must be" "$PP" examples/norms.dn dyt f32 layer
err "port_pressure: usage" 2 "usage:" "$PP" examples/norms.dn
tap_done
