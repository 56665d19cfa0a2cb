#!/usr/bin/env bash
# limits.sh - work proportional to the DAG, and every size limit refused
# before the work, located (issue 20): a small source whose calls unfold to
# 2^30 calls compiles at once; a fn, a derivative or a kernel past its
# budget is an error within seconds, not minutes and gigabytes. Each run is
# bounded (timeout, ulimit -v) so that a regression fails instead of
# hanging the suite. The limits are those of docs/language.md, Limits.
set -u
. "$(dirname "$0")/tap.bash"
DNC="$B/dnc"
# bounded CMD...: at most 60 s and 3 GB of address space (ASan reserves
# much more, so not under the sanitizers: the time bound stays)
bounded() {
  case "$B" in
  *san*) timeout 60 "$@" ;;
  *) (ulimit -v 3000000; exec timeout 60 "$@") ;;
  esac
}

{
  echo 'fn g0(x; a = 1) = tanh(a * x)'
  for i in $(seq 1 30); do
    echo "fn g$i(x; a = 1) = g$((i - 1))(x; a = a) * g$((i - 1))(x; a = a + 1)"
  done
} >"$tmp/twice.dn"
bounded "$DNC" check "$tmp/twice.dn" 2>"$tmp/err"
t "30 fns each calling the previous twice (2^30 calls): checked at once" test $? = 0
bounded "$DNC" diff "$tmp/twice.dn" -f g15 --wrt x --stats >"$tmp/out"
t "... g15 is a DAG of 170 nodes" grep -qx '# g15: 170 nodes' "$tmp/out"
printf 'fn top(x) = g30(x)\n' >>"$tmp/twice.dn"
bounded "$DNC" eval "$tmp/twice.dn" -f top 0.5 >"$tmp/out"
t "... and g30 evaluates" test -s "$tmp/out"

{
  echo 'fn h0(x) = sin(x)'
  for i in $(seq 1 30); do
    echo "fn h$i(x) = h$((i - 1))(h$((i - 1))(x))"
  done
} >"$tmp/nested.dn"
err "nested calls 2^30 deep: 'too deep', at once" 1 \
  "nested.dn:15:1: error: 'h14' is too deep" bounded "$DNC" check "$tmp/nested.dn"

{
  echo 'fn w0(x) = sin(x)'
  for i in $(seq 1 17); do
    echo "fn w$i(x) = w$((i - 1))(x + 1) + w$((i - 1))(x + 2)"
  done
} >"$tmp/wide.dn"
err "a fn of 2^17 distinct calls: too large, located, at once" 1 \
  "wide.dn:17:1: error: 'w16' is too large: once lets and calls are resolved, it has more than 100000 nodes" \
  bounded "$DNC" check "$tmp/wide.dn"
head -11 "$tmp/wide.dn" >"$tmp/w13.dn"
err "a kernel of more than 5,000 nodes: refused before LLVM runs" 1 \
  "'w10' is too large to compile: with its derivatives it has 8192 nodes, more than 5000" bounded "$DNC" compile "$tmp/w13.dn" -o "$tmp/w13.so"
t "... and no library written" test ! -e "$tmp/w13.so"

echo 'fn f(x; a = 1, b = 2) = sin(a*cos(b*sin(a*cos(b*x))))' >"$tmp/osc.dn"
err "16th derivatives past 100,000 nodes: refused, located" 1 \
  "osc.dn:1:1: error: a derivative of 'f' is too large: more than 100000 nodes" \
  bounded "$DNC" diff "$tmp/osc.dn" --order 16
t "... and nothing printed before the error" test ! -s "$tmp/out"
bounded "$DNC" diff "$tmp/osc.dn" --order 6 --stats >"$tmp/out"
t "the 6th derivatives are within the limits" grep -q '^# f__dx6: ' "$tmp/out"
tap_done
