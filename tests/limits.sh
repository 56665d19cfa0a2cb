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
err "a kernel of more than 5,000 nodes: refused before LLVM runs, located" 1 \
  "w13.dn:11:1: error: 'w10' is too large to compile: with its derivatives it has 8192 nodes, more than 5000" bounded "$DNC" compile "$tmp/w13.dn" -o "$tmp/w13.so"
t "... and no library written" test ! -e "$tmp/w13.so"

echo 'fn f(x; a = 1, b = 2) = sin(a*cos(b*sin(a*cos(b*x))))' >"$tmp/osc.dn"
err "16th derivatives past 100,000 nodes: refused, located" 1 \
  "osc.dn:1:1: error: a derivative of 'f' is too large: more than 100000 nodes" \
  bounded "$DNC" diff "$tmp/osc.dn" --order 16
t "... and nothing printed before the error" test ! -s "$tmp/out"
bounded "$DNC" diff "$tmp/osc.dn" --order 6 --stats >"$tmp/out"
t "the 6th derivatives are within the limits" grep -q '^# f__dx6: ' "$tmp/out"
# every 13th derivative of a one-line function of x and two parameters
# (105 of them, up to 40,000 nodes each) within 300 MB of address space:
# diff.c grew its tables by one node at a time, leaving copies quadratic
# in a derivative's size (436 MB here; --order 16, 2.5 GB and minutes)
echo 'fn f(x; a = 1, b = 2) = tanh(a * sin(exp(x / b)) + erf(x * a) / (1 + abs(x)^b))' >"$tmp/mixed.dn"
case "$B" in
*san*) timeout 120 "$DNC" diff "$tmp/mixed.dn" --order 13 --stats >"$tmp/out" ;;
*) (ulimit -v 300000; exec timeout 60 "$DNC" diff "$tmp/mixed.dn" --order 13 --stats) >"$tmp/out" ;;
esac
t "the 13th derivatives of three variables in bounded memory" grep -q '^# f__db13: ' "$tmp/out"
# Long lists are linear (the parser appended each let, parameter and named
# argument by walking the list; sema scanned every earlier name for each
# let): at 200,000 lets, quadratic work is minutes, and the bound fails.
awk 'BEGIN { print "fn chain(x) {"; print "let a0=x";
  for (i = 1; i < 200000; i++) printf "let a%d=a%d\n", i, i - 1;
  print "a199999 }" }' >"$tmp/lets.dn"
bounded "$DNC" check "$tmp/lets.dn" 2>"$tmp/err"
t "200,000 chained lets (4 MB): checked at once, no diagnostic" \
  sh -c "[ $? = 0 ] && test ! -s '$tmp/err'"
awk 'BEGIN { printf "fn far(x) {\nlet z0=x\n";
  for (i = 1; i < 200000; i++) printf "let z%d=z0\n", i;
  print "z199999 }" }' >"$tmp/near.dn"
bounded "$DNC" check "$tmp/near.dn" 2>"$tmp/err"
t "200,000 lets that name the first one: checked at once" test $? = 0
t "... each of the 199,998 unused ones warned about, located (last first)" sh -c "
  [ \$(grep -c ': warning: .* is never used' '$tmp/err') = 199998 ] &&
  grep -q '^.*near.dn:200000:5: warning: .z199998. is never used' '$tmp/err' &&
  tail -3 '$tmp/err' | grep -q 'near.dn:3:5: warning: .z1. is never used'"
awk 'BEGIN { printf "fn many(x; p0 = 1"; for (i = 1; i < 300000; i++)
  printf ", p%d = 1", i; print ") = x" }' >"$tmp/params.dn"
err "300,000 parameters: refused at once, located" 1 \
  "params.dn:1:.*error: .*parameters" bounded "$DNC" check "$tmp/params.dn"
awk 'BEGIN { print "fn g(x; a = 1) = a * x"; printf "fn h(x) = g(x; a = 1";
  for (i = 1; i < 300000; i++) printf ", a = %d", i; print ")" }' >"$tmp/named.dn"
err "300,000 named arguments: refused at once, located" 1 \
  "named.dn:2:.*error: parameter 'a' is given twice" bounded "$DNC" check "$tmp/named.dn"
t "... 50 errors on one 3 MB line: each shows 240 bytes of it around the caret" sh -c "
  [ \$(wc -c <'$tmp/err') -lt 40000 ] &&
  grep -q '^    2 | \\.\\.\\..*a = 3, a = 4.*\\.\\.\\.\$' '$tmp/err'"
# eval's values on stdin: a line is at most 1 MiB (docs/cli.md), so a
# stream that never ends a line is refused at once, not read whole
echo 'fn g(u; a = 2) = a * u' >"$tmp/g.dn"
err "eval: 3 GB on stdin and no newline: refused at once, located" 1 \
  "^<stdin>:1: error: line too long (more than 1048576 bytes)\$" \
  bounded sh -c "head -c 3G /dev/zero | \"$DNC\" eval '$tmp/g.dn'"
tap_done
