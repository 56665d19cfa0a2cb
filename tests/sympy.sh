#!/usr/bin/env bash
# sympy.sh - dnc's derivatives against SymPy (Debian's python3-sympy) for the
# examples and the random corpus. A TAP skip, not a pass, without SymPy.
set -u
B="${DNC_BUILD:-build}"
PY="${DNC_PYTHON:-/usr/bin/python3}"
if ! "$PY" -c 'import sympy, mpmath' 2>/dev/null; then
  echo "1..0 # SKIP SymPy is not installed for $PY (apt-get install python3-sympy)"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -v '^fn derf_pc' examples/norms.dn >"$tmp/norms.dn"
"$B/dnc" diff -w "$tmp/norms.dn" >"$tmp/norms_d.dn" || exit 1
"$B/tests/gen_corpus" "${DNC_SYMPY_CORPUS:-1000}" 1 >"$tmp/corpus.dn"
"$B/dnc" diff -w "$tmp/corpus.dn" >"$tmp/corpus_d.dn" || exit 1
# the corpus in two halves, side by side (SymPy is slow; 2 cores here)
awk 'NR % 2 == 1' "$tmp/corpus.dn" >"$tmp/c1.dn"
awk 'NR % 2 == 0' "$tmp/corpus.dn" >"$tmp/c2.dn"
"$PY" tests/sympy_check.py "$tmp/c1.dn" "$tmp/corpus_d.dn" "corpus, odd lines" >"$tmp/b.tap" &
p1=$!
"$PY" tests/sympy_check.py "$tmp/c2.dn" "$tmp/corpus_d.dn" "corpus, even lines" >"$tmp/c.tap" &
p2=$!
"$PY" tests/sympy_check.py "$tmp/norms.dn" "$tmp/norms_d.dn" examples >"$tmp/a.tap"
ra=$?
wait $p1
rb=$?
wait $p2
rc=$?
# merge the two TAP streams into one plan
{ grep -hv '^1\.\.' "$tmp/a.tap" "$tmp/b.tap" "$tmp/c.tap"; } |
  awk '/^(not )?ok [0-9]+/ { n++; sub(/ok [0-9]+/, "ok " n) } { print } END { print "1.." n }'
[ "$ra" = 0 ] && [ "$rb" = 0 ] && [ "$rc" = 0 ]
