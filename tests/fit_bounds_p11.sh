#!/usr/bin/env bash
# fit_bounds_p11.sh - `dnc fit --bounds P=LO:HI`: a fit whose minimum
# without bounds is outside them ends on the bound (the other parameters
# those of the fit with it --fix'ed there), reported in text, JSON and CSV
# with no standard error; bounds not reached change nothing; every
# malformed or impossible bound is a usage error (status 2) naming it.
set -u
. "$(dirname "$0")/tap.bash"
DNC="$B/dnc"
PY="${DNC_PYTHON:-/usr/bin/python3}"

cat >"$tmp/f.dn" <<'DN'
fn dyisru(x; beta = 1) = x / sqrt(beta + x^2)
fn derf(x; alpha = 0.5, s = 0) = erf(alpha * x + s)
DN
# x / sqrt(x^2 - 0.3) for 1 <= |x| <= 4.9: DyISRU with beta = -0.3, NaN
# for |x| < 0.55
"$PY" -c '
import math
print("x,y")
for i in range(40):
    x = 1 + i * 0.1
    for s in (-1, 1):
        print("%r,%r" % (s * x, s * x / math.sqrt(x * x - 0.3)))' >"$tmp/steep.csv"
# erf(0.8 x - 0.3) on [-5, 5]
"$PY" -c '
import math
print("x,y")
for i in range(60):
    x = -5 + 10 * i / 59
    print("%r,%r" % (x, math.erf(0.8 * x - 0.3)))' >"$tmp/erf.csv"

"$DNC" fit "$tmp/f.dn" -f dyisru --data "$tmp/steep.csv" --format json \
  >"$tmp/free.json" 2>&1
t "without bounds beta walks below 0 (-0.3)" "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert abs(r["parameters"][0]["value"] + 0.3) < 1e-12, r
assert "at_bound" not in r["parameters"][0], r
' "$tmp/free.json"
"$DNC" fit "$tmp/f.dn" -f dyisru --data "$tmp/steep.csv" --bounds beta=0: \
  >"$tmp/out" 2>"$tmp/err"
t "--bounds beta=0: status 0" sh -c "[ $? = 0 ] && [ ! -s '$tmp/err' ]"
t "... the text says the bound and that beta ends at it, no standard error" \
  sh -c "grep -qx 'bounds: beta >= 0' '$tmp/out' &&
         grep -Eq '^  beta +0 +- \(at its lower bound\)$' '$tmp/out'"
"$DNC" fit "$tmp/f.dn" -f dyisru --data "$tmp/steep.csv" --bounds 'beta=0:inf' \
  --format json >"$tmp/b.json" 2>&1
t "... JSON: value 0, stderr null, lower 0, upper null, at_bound lower" \
  "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
p = r["parameters"][0]
assert p["value"] == 0 and p["stderr"] is None, p
assert p["lower"] == 0 and p["upper"] is None and p["at_bound"] == "lower", p
assert r["converged"], r
' "$tmp/b.json"
"$DNC" fit "$tmp/f.dn" -f dyisru --data "$tmp/steep.csv" --bounds beta=0: \
  --format csv >"$tmp/b.csv" 2>&1
t "... CSV: a beta_at_bound column, 'lower'" "$PY" -c '
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 1 and rows[0]["beta_at_bound"] == "lower", rows
assert float(rows[0]["beta"]) == 0, rows
' "$tmp/b.csv"

# Derf with s in [0, 1]: s at 0, alpha that of --fix s=0 and the
# constrained minimum 0.73409551823719597 (mpmath; scipy's least_squares
# with these bounds: within 2e-9, s on its lower bound too)
"$DNC" fit "$tmp/f.dn" -f derf --data "$tmp/erf.csv" --init s=0.5 \
  --bounds s=0:1 --format json >"$tmp/d.json" 2>&1
"$DNC" fit "$tmp/f.dn" -f derf --data "$tmp/erf.csv" --fix s=0 \
  --format json >"$tmp/dfix.json" 2>&1
t "derf, s in [0, 1]: s ends at 0, alpha as with --fix s=0 and the true minimum" \
  "$PY" -c '
import json, sys
b, f = (json.load(open(p)) for p in sys.argv[1:])
ab, sb = b["parameters"]
af, sf = f["parameters"]
assert sb["value"] == 0 and sb["at_bound"] == "lower" and sb["stderr"] is None, sb
assert ab["at_bound"] is None, ab
assert abs(ab["value"] - af["value"]) < 1e-13, (ab, af)
assert abs(ab["value"] - 0.73409551823719597) < 1e-14, ab
assert abs(ab["stderr"] - af["stderr"]) < 1e-9 * af["stderr"], (ab, af)
' "$tmp/d.json" "$tmp/dfix.json"

# bounds that are not reached: the fit without them
"$DNC" fit "$tmp/f.dn" -f derf --data "$tmp/erf.csv" --format json \
  >"$tmp/u.json" 2>&1
"$DNC" fit "$tmp/f.dn" -f derf --data "$tmp/erf.csv" --bounds alpha=0:5 \
  --bounds s=-1:1 --format json >"$tmp/i.json" 2>&1
t "bounds not reached: the values and standard errors of the fit without" \
  "$PY" -c '
import json, sys
u, i = (json.load(open(p)) for p in sys.argv[1:])
for pu, pi in zip(u["parameters"], i["parameters"]):
    assert abs(pu["value"] - pi["value"]) < 1e-13, (pu, pi)
    assert abs(pu["stderr"] - pi["stderr"]) <= 1e-9 * abs(pu["stderr"]), (pu, pi)
    assert pi["at_bound"] is None, pi
' "$tmp/u.json" "$tmp/i.json"

# the gain's bound, with --gain
"$PY" -c '
import math
print("x,y")
for i in range(60):
    x = -5 + 10 * i / 59
    print("%r,%r" % (x, 3 * x / math.sqrt(2 + x * x)))' >"$tmp/g.csv"
"$DNC" fit "$tmp/f.dn" -f dyisru --data "$tmp/g.csv" --gain \
  --bounds gamma=:2.5 >"$tmp/out" 2>&1
t "--gain --bounds gamma=:2.5: gamma ends at its upper bound" \
  sh -c "grep -qx 'bounds: gamma <= 2.5' '$tmp/out' &&
         grep -Eq '^  gamma +2.5 +- \(at its upper bound\)$' '$tmp/out'"

# refused, status 2, the parameter named
D="$tmp/steep.csv"
err "LO > HI" 2 "dnc: --bounds: the lower bound of 'beta' (2) is above its upper bound (1)" \
  "$DNC" fit "$tmp/f.dn" -f dyisru --data "$D" --bounds beta=2:1
err "LO == HI" 2 "the bounds of 'beta' are equal (1): to hold it at a value, fix it there" \
  "$DNC" fit "$tmp/f.dn" -f dyisru --data "$D" --bounds beta=1:1
err "a NaN bound" 2 "the lower bound of 'beta' is NaN" \
  "$DNC" fit "$tmp/f.dn" -f dyisru --data "$D" --bounds beta=nan:
err "a lower bound of inf" 2 "the lower bound of 'beta' is inf: no value is above it" \
  "$DNC" fit "$tmp/f.dn" -f dyisru --data "$D" --bounds beta=inf:
err "an upper bound of -inf" 2 "the upper bound of 'beta' is -inf" \
  "$DNC" fit "$tmp/f.dn" -f dyisru --data "$D" --bounds beta=:-inf
err "an unknown parameter, with a suggestion" 2 "'dyisru' has no parameter 'bta'; did you mean 'beta'?" \
  "$DNC" fit "$tmp/f.dn" -f dyisru --data "$D" --bounds bta=0:
err "gamma without --gain" 2 "no parameter 'gamma'; the gain gamma is fitted with --gain" \
  "$DNC" fit "$tmp/f.dn" -f dyisru --data "$D" --bounds gamma=0:
err "a --fix'ed parameter" 2 "'beta' is bounded but not fitted (it is held fixed)" \
  "$DNC" fit "$tmp/f.dn" -f dyisru --data "$D" --fix beta=1 --bounds beta=0:
err "the start (the default 1) outside the bounds" 2 \
  "the start of 'beta', 1, is outside its bounds \[2, inf\]; start it within them" \
  "$DNC" fit "$tmp/f.dn" -f dyisru --data "$D" --bounds beta=2:
err "the start (--init) outside the bounds" 2 \
  "the start of 'beta', 301.1, is outside its bounds \[0, 100\]" \
  "$DNC" fit "$tmp/f.dn" -f dyisru --data "$D" --init beta=301.1 --bounds beta=0:100
err "one parameter bounded twice" 2 "two --bounds for 'beta'; give one" \
  "$DNC" fit "$tmp/f.dn" -f dyisru --data "$D" --bounds beta=0: --bounds beta=1:
for bad in beta=0 beta=0:x =0:1 beta=:1:2 beta; do
  err "malformed: --bounds $bad" 2 "--bounds needs NAME=LOW:HIGH" \
    "$DNC" fit "$tmp/f.dn" -f dyisru --data "$D" --bounds "$bad"
done
t "... the refused fits print nothing on stdout" sh -c "[ ! -s '$tmp/out' ]"
tap_done
