#!/usr/bin/env bash
# examples.sh - the example programs run and check themselves: examples/embed
# (libdnc inside a C program, `make examples`) exits 0 and says that its
# kernels match its C reference, with the same errors for 1 thread and for
# 3 (the kernels' results do not depend on the number of threads);
# examples/aot (a program over a library `dnc compile` wrote) exits 0 and
# says its kernels match the formulas.
set -u
. "$(dirname "$0")/tap.bash"
EMBED="$B/examples/embed"

# run_embed THREADS: stdout in $tmp/out.THREADS, the status in $tmp/rc.THREADS
run_embed() {
  DNC_NUM_THREADS=$1 "$EMBED" >"$tmp/out.$1" 2>"$tmp/err.$1"
  echo $? >"$tmp/rc.$1"
  sed 's/^/# /' "$tmp/out.$1" "$tmp/err.$1"
}
run_embed 1
run_embed 3

exits_0() { [ "$(cat "$tmp/rc.$1")" = 0 ]; }
# the line without its thread count, which must be all that differs
same_line() {
  local a b
  a=$(sed 's/, [0-9]* threads*:/:/' "$tmp/out.1")
  b=$(sed 's/, [0-9]* threads*:/:/' "$tmp/out.3")
  [ -n "$a" ] && [ "$a" = "$b" ]
}

t "embed exits 0" exits_0 3
t "embed says forward and backward match the C reference" \
  grep -q "^embed: dyt \[4096 x 1024\] f32, 3 threads: forward and backward match the C reference" "$tmp/out.3"
t "with 1 thread too" exits_0 1
t "and the same errors as with 3 threads" same_line

# examples/aot: a plain C program over the library and header that
# `dnc compile` wrote; it needs neither LLVM nor libdnc
AOT="$B/examples/aot"
"$AOT" >"$tmp/aot.out" 2>&1
echo $? >"$tmp/aot.rc"
sed 's/^/# /' "$tmp/aot.out"
t "aot exits 0" grep -qx 0 "$tmp/aot.rc"
t "aot says the library's kernels match the formulas" \
  grep -q "^the library's kernels match the formulas" "$tmp/aot.out"
t "its library needs neither LLVM nor libdnc" \
  sh -c "! readelf -d '$B/examples/libnorms.so' | grep -Eq 'NEEDED.*(LLVM|dnc)'"
tap_done
