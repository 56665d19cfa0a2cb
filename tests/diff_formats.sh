#!/usr/bin/env bash
# diff_formats.sh - dnc diff: golden outputs in the four formats for DyT,
# DyISRU, Derf and ISRU; the dsl output checks again and evaluates the same
# as the C output compiled with the system compiler; usage errors.
set -u
DNC="${DNC_BUILD:-build}/dnc"
CC="${CC:-cc}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fail=0
pass() { n=$((n + 1)); echo "ok $n - $1"; }
flunk() { n=$((n + 1)); echo "not ok $n - $1"; fail=$((fail + 1)); }

golden() { # golden FILE ARGS...
  local want=$1
  shift
  if "$DNC" diff "$@" >"$tmp/out" 2>"$tmp/err" && cmp -s "$tmp/out" "$want"; then
    pass "dnc diff $* matches $want"
  else
    flunk "dnc diff $* matches $want"
    diff "$want" "$tmp/out" | head -40 | sed 's/^/#   /'
    sed 's/^/#   stderr: /' "$tmp/err"
  fi
}
N=examples/norms.dn
golden tests/golden/diff_norms.dsl $N -f dyt,dyisru,derf,isru --format dsl
golden tests/golden/diff_norms.latex $N -f dyt,dyisru,derf,isru --format latex
golden tests/golden/diff_norms.c $N -f dyt,dyisru,derf,isru --format c
golden tests/golden/diff_norms.torch $N -f dyt,dyisru,derf,isru --format torch
golden tests/golden/diff_norms_order2.dsl $N -f dyt,derf --order 2

# every derivative of every example, to order 2, checks again as dnc source
"$DNC" diff $N --order 2 >"$tmp/d2.dn" 2>"$tmp/err"
if "$DNC" check -w "$tmp/d2.dn" 2>"$tmp/err2" && [ -s "$tmp/d2.dn" ]; then
  pass "the order-2 derivatives of every example are valid dnc source"
else
  flunk "the order-2 derivatives of every example are valid dnc source"
  grep error "$tmp/err2" | head -5 | sed 's/^/#   /'
fi
if grep -q '^fn satursin__dx_dalpha(' "$tmp/d2.dn" && grep -q '^fn derf__dalpha_dshift(' "$tmp/d2.dn"; then
  pass "mixed second derivatives are named f__dx_dalpha"
else
  flunk "mixed second derivatives are named f__dx_dalpha"
fi

# the C output compiles cleanly and agrees with the interpreter on the dsl
names=$(grep -o '^fn [a-z_0-9]*' "$tmp/d2.dn" | cut -c4- | grep -v derf_pc)
"$DNC" diff $N --order 2 --format c >"$tmp/d.c"
{
  echo '#include <stdio.h>'
  echo '#include "d.c"'
  echo 'int main(void) {'
  echo '  static const double xs[] = {-3.5, -1.25, -0.5, 0.25, 0.75, 2.5, 6.0};'
  echo '  for (int i = 0; i < 7; i++) {'
  for f in $names; do
    base=${f%%__*}
    params=$("$DNC" check -v $N | grep "^$base(" | sed -E 's/^[^;]*;? ?//; s/\)$//; s/[a-z_]+(\[\])? = //g')
    [ -n "$params" ] && params=", $params"
    echo "    printf(\"%.17g\\n\", $f(xs[i]$params));"
  done
  echo '  }'
  echo '  return 0;'
  echo '}'
} >"$tmp/main.c"
if "$CC" -std=c99 -Wall -Wextra -Werror -o "$tmp/d" "$tmp/main.c" -lm 2>"$tmp/cc"; then
  pass "the C output of every order-2 derivative compiles with -std=c99 -Wall -Wextra -Werror"
else
  flunk "the C output of every order-2 derivative compiles with -std=c99 -Wall -Wextra -Werror"
  head -20 "$tmp/cc" | sed 's/^/#   /'
fi
# clang counts unused static inline functions of a .c file, gcc does not:
# the prelude's helpers must not fail clang -Wall -Werror
if command -v clang-19 >/dev/null; then
  if clang-19 -std=c99 -Wall -Wextra -Werror -c -o "$tmp/d.o" "$tmp/d.c" 2>"$tmp/cc"; then
    pass "the C output compiles with clang -Wall -Wextra -Werror (helpers unused)"
  else
    flunk "the C output compiles with clang -Wall -Wextra -Werror (helpers unused)"
    head -20 "$tmp/cc" | sed 's/^/#   /'
  fi
fi
"$tmp/d" >"$tmp/c_vals" 2>/dev/null
# one table: a row per x, a column per function, in the order printed by C
"$DNC" eval -w "$tmp/d2.dn" -f "$(echo $names | tr ' ' ',')" -3.5 -1.25 -0.5 0.25 0.75 2.5 6.0 |
  tail -n +2 | cut -f2- | tr '\t' '\n' >"$tmp/i_vals"
if [ -s "$tmp/c_vals" ] && paste "$tmp/c_vals" "$tmp/i_vals" | awk '
    { a = $1; b = $2
      if (a == b) next
      if ((a == "nan" || a == "-nan") && (b == "nan" || b == "-nan")) next
      d = a - b; if (d < 0) d = -d
      m = (a < 0 ? -a : a); if (m < 1) m = 1
      if (d > 1e-12 * m) { print "# mismatch: C " a " interpreter " b; bad = 1 } }
    END { exit bad }'; then
  pass "the C output agrees with the interpreter on the dsl output ($(wc -l <"$tmp/c_vals") values, 1e-12)"
else
  flunk "the C output agrees with the interpreter on the dsl output"
fi

# names C or <math.h> reserves, as parameters: prefixed v_, so the C
# compiles and computes the same (HUGE_VAL was a pointer-to-function
# parameter, _Bool and FP_NAN did not compile)
printf 'fn f(x; HUGE_VAL = 2, _Bool = 3, M_LN2 = 5, FP_NAN = 7) = HUGE_VAL * x^2 + _Bool * M_LN2 * FP_NAN * x\n' >"$tmp/names.dn"
"$DNC" diff "$tmp/names.dn" --wrt x --format c >"$tmp/names.c" 2>"$tmp/err"
printf '#include <stdio.h>\n#include "names.c"\nint main(void) { printf("%%.17g\\n", f__dx(3.0, 2.0, 3.0, 5.0, 7.0)); return 0; }\n' >"$tmp/names_main.c"
if "$CC" -std=c99 -Wall -Wextra -Werror -o "$tmp/names" "$tmp/names_main.c" -lm 2>"$tmp/cc" &&
   [ "$("$tmp/names")" = 117 ]; then
  pass "C: parameters named HUGE_VAL, _Bool, M_LN2, FP_NAN compile and compute (117)"
else
  flunk "C: parameters named HUGE_VAL, _Bool, M_LN2, FP_NAN compile and compute (117)"
  head -5 "$tmp/cc" | sed 's/^/#   /'
fi
# the PyTorch form prints the functions too: a function named like a
# derivative (f__dx) had been printed as a second def, replacing it
printf 'fn f(x) = x^3\nfn f__dx(x) = 100 + x\n' >"$tmp/clash.dn"
if ! "$DNC" diff "$tmp/clash.dn" --format torch >"$tmp/clash.py" 2>"$tmp/err" &&
   grep -q "'f__dx' would be printed twice, for 'f' and for 'f__dx'" "$tmp/err" &&
   [ ! -s "$tmp/clash.py" ] && "$DNC" diff "$tmp/clash.dn" >/dev/null 2>&1; then
  pass "torch: a function named as a derivative is refused, nothing printed (dsl takes it)"
else
  flunk "torch: a function named as a derivative is refused, nothing printed (dsl takes it)"
  sed 's/^/#   /' "$tmp/err"
fi
# LaTeX: not's operand in parentheses (\lnot x < c read as (not x) < c)
printf 'fn p(x; a = 1, c = 1) = if not (x < c) then a * x else x^2\n' >"$tmp/not.dn"
if "$DNC" diff "$tmp/not.dn" --format latex --wrt a 2>"$tmp/err" | grep -qF '\lnot \left(x < c\right)'; then
  pass "LaTeX: not (x < c) is written with its parentheses"
else
  flunk "LaTeX: not (x < c) is written with its parentheses"
fi
# LaTeX: a name '_' is escaped
printf 'fn f(x; _ = 2) = _ * x^2\n' >"$tmp/us.dn"
if "$DNC" diff "$tmp/us.dn" --format latex 2>"$tmp/err" >"$tmp/us.tex" &&
   grep -q '\\_' "$tmp/us.tex" && ! grep -qE '(^|[^\\])_[^{]' "$tmp/us.tex"; then
  pass "LaTeX: a parameter named _ is written \\_"
else
  flunk "LaTeX: a parameter named _ is written \\_"
  sed 's/^/#   /' "$tmp/us.tex"
fi

# usage errors
usage() { # usage PATTERN ARGS...
  local pat=$1
  shift
  "$DNC" diff "$@" >/dev/null 2>"$tmp/err"
  local rc=$?
  if [ "$rc" = 2 ] && grep -q -- "$pat" "$tmp/err"; then
    pass "dnc diff $*: usage error"
  else
    flunk "dnc diff $*: usage error (status $rc)"
    sed 's/^/#   /' "$tmp/err"
  fi
}
usage "has no variable 'beta'" $N -f dyt --wrt beta
usage "from 1 to 16" $N -f dyt --order 0
usage "dsl, latex, c or torch" $N -f dyt --format tex
usage "--format needs a value: dsl, latex, c or torch" $N -f dyt --format
usage "takes no --order" $N -f derf --wrt x,alpha --order 2
usage "no input files" --wrt x
for w in x, ,x x,,alpha; do
  usage "the list of variables '$w' has an empty name" $N -f derf --wrt $w
done
echo 'fn h(x; a = 1, b = 2, c = 3, d = 4, g = 5) = a * x + b + c + d + g' >"$tmp/h.dn"
usage "'h' has 20349 derivatives of order 16; name the variables (--wrt)" "$tmp/h.dn" --order 16

# docs/language.md: a nested constant folds one operation at a time, each
# rounded to a double: (1 + 1e-17) - 1 is 0 (the docs said rounded once)
echo 'fn h(x; a = 1) = a * (x + ((1 + 1e-17) - 1))' >"$tmp/fold.dn"
if [ "$("$DNC" diff --wrt a "$tmp/fold.dn")" = "fn h__da(x; a = 1) = 0 + x" ]; then
  pass "a nested constant is rounded at every step, as documented"
else
  flunk "a nested constant is rounded at every step, as documented"
fi

echo "1..$n"
[ "$fail" = 0 ]
