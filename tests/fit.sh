#!/usr/bin/env bash
# fit.sh - `dnc fit` from the command line: a fit to CSV points and to
# LayerNorm's reference points (DyISRU closer than DyT), the output
# formats, and each error the command reports, located in the CSV file
# where it lies, with its exit status (1 input, 2 usage).
set -u
. "$(dirname "$0")/tap.bash"
DNC="$B/dnc"
PY="${DNC_PYTHON:-/usr/bin/python3}"
N=examples/norms.dn

cat >"$tmp/f.dn" <<'DN'
fn line(x; a = 1, b = 0) = a * x + b
fn both(x; a = 1, b = 1) = a * b * x
fn logshift(x; a = 1) = log(x - a)
fn plain(x) = x
fn scaled(x; gamma = 1) = gamma * x
fn power(x; a = 1, b = 1) = sqrt(a * abs(x)) * b
fn grow(x; a = 1) = exp(a * x)
fn derf(x; alpha = 0.5, s = 0) = erf(alpha * x + s)
fn rational(x; a = 1, b = 0.1) = x * (1 + b * x^2) / (1 + a * x^2 + b * abs(x)^3)
DN
printf 'x,y\n0,1\n1,3\n2,5\n3,7\n' >"$tmp/line.csv"
printf 'time,value,note\n0,1,a\n1,3,b\n2,5,c\n3,7,"d, e"\n' >"$tmp/cols.csv"

"$DNC" fit "$tmp/f.dn" -f line --data "$tmp/line.csv" --format csv \
  >"$tmp/out" 2>"$tmp/err"
t "fit recovers a = 2, b = 1 from exact points" \
  grep -q '^line,.*,4,2,.*,1,.*,1,' "$tmp/out"
"$DNC" fit "$tmp/f.dn" -f line --data "$tmp/cols.csv" --x time --y 2 \
  --format csv >"$tmp/out" 2>&1
t "--x and --y choose columns by name and number; quoted fields" \
  grep -q '^line,.*,4,2,.*,1,' "$tmp/out"
"$DNC" fit "$tmp/f.dn" -f line --data "$tmp/line.csv" --fix a=2 --format json \
  >"$tmp/out.json" 2>&1
t "--format json parses, and --fix holds a parameter" "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
a, b = r["parameters"]
assert a["name"] == "a" and a["value"] == 2 and a["fixed"] and a["stderr"] is None
assert b["name"] == "b" and abs(b["value"] - 1) < 1e-12 and not b["fixed"]
assert r["converged"] and r["points"] == 4
' "$tmp/out.json"

# residuals at the rounding level that the polishing takes to exactly 0:
# it said "at the rounding level of the points (rms 0)"
printf 'fn r(x; a = 1, c = 0.3) = a * max(x - c, 0)\n' >"$tmp/relu.dn"
"$PY" -c '
print("x,y")
for i in range(11):
    x = -1 + 2 * i / 10
    print("%r,%r" % (x, 2 * max(x - 0.25, 0)))' >"$tmp/relu.csv"
t "every residual 0 after the polishing: said so, not 'rounding level (rms 0)'" \
  sh -c "'$DNC' fit '$tmp/relu.dn' -f r --data '$tmp/relu.csv' | grep -q 'iterations: exact fit: every residual is 0\$'"

# Points computed in double fit to rounding, where no step lowers the sum
# of squares and the gradient's cosine is noise: an exact fit, status 0
# (it was called stalled, status 1)
"$PY" -c '
import math
print("x,y")
for i in range(400):
    x = -4 + 8 * i / 399
    print("%r,%r" % (x, math.erf(0.8 * x + 0.1)))' >"$tmp/erf.csv"
"$PY" -c '
import math
print("x,y")
for i in range(400):
    x = -4 + 8 * i / 399
    print("%r,%r" % (x, math.tanh(0.8 * x)))' >"$tmp/tanh.csv"
"$DNC" fit "$tmp/f.dn" -f derf --data "$tmp/erf.csv" --format json \
  >"$tmp/erf.json" 2>"$tmp/err"
t "exact points of erf(0.8 x + 0.1): status 0, an exact fit" \
  sh -c "[ $? = 0 ] && [ ! -s '$tmp/err' ]"
"$DNC" fit $N -f dyt --data "$tmp/tanh.csv" --format json >"$tmp/tanh.json" \
  2>"$tmp/err"
t "exact points of tanh(0.8 x): status 0, an exact fit" \
  sh -c "[ $? = 0 ] && [ ! -s '$tmp/err' ]"
t "... the parameters recovered, said to be exact" "$PY" -c '
import json, sys
for path, truth in zip(sys.argv[1:], ([0.8, 0.1], [0.8])):
    r = json.load(open(path))
    assert r["converged"] and r["stopped"].startswith("exact fit"), r
    for p, v in zip(r["parameters"], truth):
        assert abs(p["value"] - v) < 1e-13 * v, (p, v)
    assert r["rms_residual"] < 1e-15, r
' "$tmp/erf.json" "$tmp/tanh.json"

# LayerNorm: one command per function; DyISRU's residual is the smaller
for f in dyt dyisru; do
  "$DNC" fit $N -f $f --target layernorm --format json >"$tmp/$f.json" 2>&1
done
t "fit to layernorm: DyISRU's residual is under a tenth of DyT's" "$PY" -c '
import json, sys
dyt, isru = (json.load(open(p)) for p in sys.argv[1:])
assert dyt["converged"] and isru["converged"]
assert dyt["points"] == isru["points"] == 400
assert isru["rms_residual"] * 10 < dyt["rms_residual"], (isru, dyt)
assert [p["name"] for p in isru["parameters"]] == ["beta", "gamma"]
' "$tmp/dyt.json" "$tmp/dyisru.json"
"$DNC" fit $N -f dyt --target rmsnorm --channels 64 --dist laplace --scale 2 \
  --steps 50 --seed 3 >"$tmp/out" 2>&1
t "target options are taken and reported" \
  grep -q '100 points of rmsnorm (C = 64, laplace, scale 2, seed 3' "$tmp/out"
"$DNC" fit $N -f dyisru --target layernorm --points "$tmp/pts.csv" >/dev/null 2>&1
t "--points writes x, y, fit, residual for every point" \
  sh -c "head -1 '$tmp/pts.csv' | grep -qx 'x,y,fit,residual' &&
         [ \$(wc -l <'$tmp/pts.csv') = 401 ]"

# a spreadsheet's "CSV UTF-8" starts with a byte order mark: not part of
# the first column's name
printf '\xef\xbb\xbfx,y\n0,1\n1,3\n2,5\n' >"$tmp/bom.csv"
"$DNC" fit "$tmp/f.dn" -f line --data "$tmp/bom.csv" --x x --format csv >"$tmp/out" 2>"$tmp/err"
t "a CSV file with a UTF-8 byte order mark: column 'x' found, the fit made" \
  sh -c "[ $? = 0 ] && grep -q '^line,' '$tmp/out'"
# errors in the CSV file, located
printf 'x,y\n0,1\n1,abc\n' >"$tmp/bad.csv"
err "not a number: located" 1 "bad.csv:3:3: error: not a number in column 'y': 'abc'" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/bad.csv"
printf 'x,y\n0,1\n1,\n' >"$tmp/blank.csv"
err "an empty field: located" 1 "blank.csv:3:3: error: empty field in column 'y'" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/blank.csv"
printf 'x,y\n0,1\nnan,2\n' >"$tmp/nan.csv"
err "NaN in the data: located" 1 "nan.csv:3:1: error: NaN in column 'x'" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/nan.csv"
printf 'x,y\n0,1\n1,-inf\n' >"$tmp/inf.csv"
err "an infinite value: located" 1 "inf.csv:3:3: error: an infinite value in column 'y'" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/inf.csv"
# a number too large for a double was "an infinite value"
printf 'x,y\n0,1\n1e309,1\n' >"$tmp/huge.csv"
err "a number beyond the double range: said so, located" 1 \
  "huge.csv:3:1: error: '1e309' in column 'x' is outside the range of a double (magnitude up to 1.8e308)" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/huge.csv"
printf 'x,y\n0,1\n1,-1e400\n' >"$tmp/huge.csv"
err "... negative too" 1 \
  "huge.csv:3:3: error: '-1e400' in column 'y' is outside the range of a double" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/huge.csv"
printf '0,1\n1,3\n2,5\n3,7\n' >"$tmp/nohead.csv"
err "a file without a header line: refused, not its first point dropped" 1 \
  "nohead.csv:1:1: error: the first line holds numbers, not column names" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/nohead.csv"
err "a directory as --data: said so, not as a source file" 1 "is a directory, not a file" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp"
printf 'x,y\n\n' >"$tmp/empty.csv"
err "a header and no points" 1 "empty.csv:1:1: error: no data" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/empty.csv"
: >"$tmp/zero.csv"
err "an empty file" 1 "zero.csv: error: empty file" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/zero.csv"
printf 'x,y\n0,1\n1,2,3\n' >"$tmp/fields.csv"
err "a row with too many fields: located" 1 "fields.csv:3:1: error: 3 fields where the header has 2" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/fields.csv"
printf 'x,y\n"0,1\n' >"$tmp/quote.csv"
err "an unterminated quote: located" 1 "quote.csv:2:1: error: unterminated quoted field" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/quote.csv"
printf 'x,y\n"0"1,2\n' >"$tmp/quote2.csv"
err "text after a closing quote: located" 1 "quote2.csv:2:4: error: a quoted field must end" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/quote2.csv"
printf 'x,y\n0,\xff\n' >"$tmp/utf8.csv"
err "invalid UTF-8: located" 1 "utf8.csv:2:3: error: invalid UTF-8" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/utf8.csv"
err "no such column, with the columns there are" 1 \
  "cols.csv:1:1: error: no column 'vaule' for --y in the header (it has 'time', 'value', 'note'); did you mean 'value'?" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/cols.csv" --x time --y vaule
# --x 0 --y 0 printed one error twice, naming neither option
err "the same missing column for --x and --y: each error names its option" 1 \
  "line.csv:1:1: error: no column '0' for --y in the header" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/line.csv" --x 0 --y 0
t "... and the other --x" grep -q "line.csv:1:1: error: no column '0' for --x in the header" "$tmp/err"
printf 'x;y\n0;0\n1;0.7\n' >"$tmp/semi.csv"
err "a ';'-separated file: said so, with the way out" 1 \
  "semi.csv:1:1: error: no column 'x' in the header (it has 'x;y'); the file looks ';'-separated, and dnc reads commas (convert it, e.g. with tr ';' ',')" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/semi.csv"
# a two-column file with one of x and y named: the other column is the
# other one (it was the named column twice: y = x fitted, status 0)
printf 'target,x\n1,0\n3,1\n5,2\n7,3\n' >"$tmp/tx.csv"
"$DNC" fit "$tmp/f.dn" -f line --data "$tmp/tx.csv" --format csv >"$tmp/out" 2>&1
t "a two-column file 'target,x': y is the column not named x" \
  grep -q '^line,.*,4,2,.*,1,' "$tmp/out"
printf 'y,b\n1,0\n3,1\n5,2\n7,3\n' >"$tmp/yb.csv"
"$DNC" fit "$tmp/f.dn" -f line --data "$tmp/yb.csv" --format csv >"$tmp/out" 2>&1
t "... and 'y,b': x is the column not named y" grep -q '^line,.*,4,2,.*,1,' "$tmp/out"
err "x and y one column: refused, located" 1 \
  "line.csv:1:3: error: x and y would both be column 2, 'y'; choose them with --x and --y" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/line.csv" --x 2
printf 'x,x,y\n0,0,1\n1,1,3\n' >"$tmp/twox.csv"
err "a name two columns share: refused, located at the second" 1 \
  "twox.csv:1:3: error: 'x' names columns 1 and 2 of the header; choose one by its number" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/twox.csv"
# --points onto an input: refused, the input kept (it overwrote both)
cp "$tmp/line.csv" "$tmp/keep.csv"
cp "$tmp/f.dn" "$tmp/keep.dn"
err "--points onto the data file: refused" 1 \
  "the output '$tmp/keep.csv' is the input '$tmp/keep.csv': refusing to overwrite it" \
  "$DNC" fit "$tmp/keep.dn" -f line --data "$tmp/keep.csv" --points "$tmp/keep.csv"
t "... the data file kept" cmp "$tmp/line.csv" "$tmp/keep.csv"
err "--points onto the source file: refused" 1 \
  "the output '$tmp/keep.dn' is the input '$tmp/keep.dn': refusing to overwrite it" \
  "$DNC" fit "$tmp/keep.dn" -f line --data "$tmp/keep.csv" --points "$tmp/keep.dn"
t "... the source kept" cmp "$tmp/f.dn" "$tmp/keep.dn"
err "a missing data file" 1 "cannot open '$tmp/none.csv'" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/none.csv"

# the fit's own errors
err "ill-posed: two parameters with one effect" 1 "ill-posed fit: parameter '[ab]' of both" \
  "$DNC" fit "$tmp/f.dn" -f both --data "$tmp/line.csv"
err "ill-posed: gamma times a linear function" 1 "ill-posed fit: parameter 'gamma' of line" \
  "$DNC" fit "$tmp/f.dn" -f line --data "$tmp/line.csv" --gain
# undetermined where the fit is, not by the points: DyISRU from beta =
# 1e12 (the advice had been only to hold gamma fixed)
printf 'fn dyisru(x; beta = 301.1) = x / sqrt(beta + x^2)\n' >"$tmp/isru.dn"
err "ill-posed where the fit is: says to start elsewhere too" 1 \
  "hold it with --fix gamma=V, or, where it should matter, start elsewhere with --init" \
  "$DNC" fit "$tmp/isru.dn" --target layernorm --init beta=1e12
err "not finite at the start: the point named" 1 "logshift is not finite at x = 0 (point 1)" \
  "$DNC" fit "$tmp/f.dn" -f logshift --data "$tmp/line.csv"
err "f finite, a derivative not: the parameter named" 1 \
  "the derivative of power with respect to 'a' is not finite at x = 0 (point 1) with the starting parameters; choose others with --init, hold it with --fix a=V" \
  "$DNC" fit "$tmp/f.dn" -f power --data "$tmp/line.csv"
"$PY" -c 'print("x,y"); [print("%d,1e300" % i) for i in range(10)]' >"$tmp/far.csv"
err "a stalled fit, in words" 1 \
  "^dnc: error: the fit of grow stalled: no step lowers the sum of squares, yet the gradient is not small" \
  "$DNC" fit "$tmp/f.dn" -f grow --data "$tmp/far.csv"
err "no free parameter" 1 "cannot fit plain: no free parameter" \
  "$DNC" fit "$tmp/f.dn" -f plain --data "$tmp/line.csv"
err "fewer points than parameters" 1 "cannot fit line: 1 point for 2 free parameters" \
  sh -c "printf 'x,y\n1,2\n' >'$tmp/one.csv' && '$DNC' fit '$tmp/f.dn' -f line --data '$tmp/one.csv'"
err "non-convergence: the iteration limit, and advice" 1 "did not converge in 1 iteration; allow more with --max-iter" \
  "$DNC" fit $N -f dyt --target layernorm --max-iter 1
t "... with the result so far on stdout" grep -q "^residual: mean" "$tmp/out"
# it converges at iteration 14, and the polishing steps after it were
# counted beyond the limit: "stopped after 19 iterations"
for mi in 14 16; do
  t "--max-iter $mi: the polishing steps are within it" sh -c \
    "'$DNC' fit $N -f dyt --target layernorm --max-iter $mi | grep -q '^stopped after $mi iterations: the sum of squares changed'"
done
# a and b grow together without bound (their limit fits best): it was
# "ill-posed fit: parameter 'b' ... is not determined by the points"
err "a fit that runs off names the parameters that grew, and their values" 1 \
  "^dnc: error: the fit of rational ran off after [0-9]* iterations: the parameters grew without bound: a = [0-9.]*e+10, b = [0-9.]*e+09 (the points are fitted best in their limit); hold one with --fix b=V, or keep them within --bounds\$" \
  "$DNC" fit "$tmp/f.dn" -f rational --target layernorm
# alpha and shift grow from this start while S falls by 0.014% (rms 18.885
# to 18.884; the fit is at 0.514): it was "the points are fitted best in
# their limit"
err "a fit that drifts along a flat direction is not said to fit best in the limit" 1 \
  "^dnc: error: the fit of derf drifted off after [0-9]* iterations: the parameters drifted without bound along a flat direction: alpha = [0-9.]*e+[0-9]*, shift = [0-9.]*e+[0-9]* (the sum of squares fell by only 0.014% from the start); the start is on a plateau, not near a fit: start elsewhere with --init" \
  "$DNC" fit $N -f derf --target layernorm --init alpha=0.01 --init shift=3
err "a parameter named gamma clashes with the gain" 1 "scaled has a parameter named 'gamma'" \
  "$DNC" fit "$tmp/f.dn" -f scaled --target layernorm
err "--reach below the largest channel value" 1 "--reach 1 is not beyond the largest channel value" \
  "$DNC" fit $N -f dyt --target layernorm --reach 1
# (reach - start) k overflowed for a reach near the largest double: the
# point -inf, and "dyt is not finite at x = -inf (point 1)"
"$DNC" fit $N -f dyt --target layernorm --reach 1e308 --points "$tmp/far_pts.csv" \
  >"$tmp/out" 2>&1
t "--reach 1e308: the points are finite and end at the reach" "$PY" -c '
import csv, math, sys
xs = [float(r["x"]) for r in csv.DictReader(open(sys.argv[1]))]
assert len(xs) == 400 and all(math.isfinite(x) for x in xs), xs[:3]
assert xs[0] == -1e308 and xs[-1] == 1e308, (xs[0], xs[-1])
' "$tmp/far_pts.csv"
"$DNC" fit $N -f dyt --target layernorm --reach 1.7976931348623157e308 >"$tmp/out" 2>&1
t "--reach the largest double fits" grep -q "^residual: mean" "$tmp/out"
mkdir "$tmp/ro" && chmod 555 "$tmp/ro"
if [ -w "$tmp/ro" ]; then
  t "--points into a directory that cannot be written # SKIP running as root" true
else
  err "--points into a directory that cannot be written" 1 "cannot write '$tmp/ro/p.csv'" \
    "$DNC" fit $N -f dyt --target layernorm --points "$tmp/ro/p.csv"
fi
err "--points into a missing directory: nothing written" 1 "cannot write '$tmp/no/p.csv'" \
  "$DNC" fit $N -f dyt --target layernorm --points "$tmp/no/p.csv"

# usage errors
err "a parameter the function lacks" 2 "'dyt' has no parameter 'alpah'; did you mean 'alpha'?" \
  "$DNC" fit $N -f dyt --target layernorm --init alpah=1
err "--fix needs NAME=NUMBER" 2 "--fix needs NAME=NUMBER" \
  "$DNC" fit $N -f dyt --target layernorm --fix alpha
err "--init takes no NaN" 2 "--init needs NAME=NUMBER (a finite number), not 'alpha=nan'" \
  "$DNC" fit $N -f dyt --target layernorm --init alpha=nan
err "--data and --target together" 2 "give one" \
  "$DNC" fit $N -f dyt --target layernorm --data "$tmp/line.csv"
err "no points at all" 2 "no points to fit" "$DNC" fit $N -f dyt
err "the source and --data both standard input" 2 \
  "the source and --data cannot both be standard input ('-')" \
  sh -c "\"\$0\" fit - -f dyt --data - <'$N'" "$DNC"
err "target options without --target" 2 "go with --target" \
  "$DNC" fit $N -f dyt --data "$tmp/line.csv" --channels 8
err "an unknown target" 2 "--target is layernorm or rmsnorm, not 'batchnorm'" \
  "$DNC" fit $N -f dyt --target batchnorm
err "--channels out of range" 2 "--channels needs a whole number from 2" \
  "$DNC" fit $N -f dyt --target layernorm --channels 1
err "--dist unknown" 2 "--dist is normal, uniform or laplace" \
  "$DNC" fit $N -f dyt --target layernorm --dist cauchy
err "--format unknown" 2 "--format is text, json or csv" \
  "$DNC" fit $N -f dyt --target layernorm --format xml
err "several functions and no -f" 2 "defines [0-9]* functions; choose one with -f" \
  "$DNC" fit $N --target layernorm
err "no such function: a usage error, as -f elsewhere" 2 "no function 'dty' in '$N'; did you mean 'dyt'?" \
  "$DNC" fit $N -f dty --target layernorm
err "errors in the source file" 1 "error: unknown name" \
  sh -c "echo 'fn f(x; a = 1) = b * x' >'$tmp/bad.dn' && '$DNC' fit '$tmp/bad.dn' --target layernorm"
# Data at the top of the double range (issue 20: J'J overflowed double, and
# a fit through x = 1e308 was called ill-posed)
echo 'fn lin(x; a = 2, b = 1) = a * x + b' >"$tmp/lin.dn"
printf 'x,y\n1e308,1e308\n-1e308,-1e308\n5e307,5e307\n1,1\n' >"$tmp/huge.csv"
"$DNC" fit "$tmp/lin.dn" --data "$tmp/huge.csv" >"$tmp/out" 2>"$tmp/err"
t "a line through x = 1e308: fitted, not ill-posed" sh -c "[ $? = 0 ] && ! grep -q ill-posed '$tmp/err'"
t "... the slope 1 (b is known to about 1e308 ulp only)" grep -q '^  a  *1  ' "$tmp/out"
printf 'x,y\n-2,-0.76\n-1,-0.46\n0,0\n1,0.46\n2,0.76\n1e308,1\n-1e308,-1\n' >"$tmp/dh.csv"
"$DNC" fit $N -f dyt --data "$tmp/dh.csv" >"$tmp/out" 2>"$tmp/err"
t "dyt through points at +-1e308: fitted" sh -c "[ $? = 0 ] && grep -q '^  alpha  *0\.49' '$tmp/out'"
tap_done
