#!/usr/bin/env bash
# cli_p10.sh - the command line under sloppy and hostile input: every error
# located, a non-zero status, nothing half-written on standard output.
set -u
. "$(dirname "$0")/tap.bash"
DNC="$B/dnc"

# eval --jit of a function too large for a kernel: refused at its
# definition (as dnc compile refuses it), before the table's header
{
  echo 'fn small(x) = x'
  echo 'fn big(x) {'
  echo '  let x0 = x'
  for i in $(seq 1 3000); do echo "  let x$i = sin(x$((i - 1))) + x$((i - 1))"; done
  echo '  x3000'
  echo '}'
} >"$tmp/big.dn"
err "eval --jit: a kernel too large is a located error" 1 \
  "big.dn:2:1: error: 'big' is too large to compile" \
  "$DNC" eval --jit "$tmp/big.dn" -f small,big 1 2
t "eval --jit: nothing printed before the error" test ! -s "$tmp/out"

tap_done
