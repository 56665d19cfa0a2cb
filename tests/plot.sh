#!/usr/bin/env bash
# plot.sh - `dnc plot`: the SVG it writes is well-formed XML (checked with
# Python's xml.etree) with one polyline per curve, dashed derivatives,
# ticks and a legend naming each curve; the curves' points are the
# values of f and f' (read back through the ticks' coordinates and
# compared with `dnc eval` of f and of `dnc diff`'s derivative, -p
# included); a pole breaks a curve; errors.
set -u
. "$(dirname "$0")/tap.bash"
DNC="$B/dnc"
PY="${DNC_PYTHON:-/usr/bin/python3}"
N=examples/norms.dn

# svg_check FILE LABELS... : well-formed SVG whose curves carry LABELS
svg_check() {
  "$PY" - "$@" <<'PYEOF'
import math, sys
import xml.etree.ElementTree as ET
path, labels = sys.argv[1], sys.argv[2:]
ns = "{http://www.w3.org/2000/svg}"
root = ET.parse(path).getroot()
assert root.tag == ns + "svg", root.tag
assert root.get("viewBox") == "0 0 820 500"
lines = root.iter(ns + "polyline")
seen = []
for pl in lines:
    lab = pl.get("data-label")
    if lab not in seen:
        seen.append(lab)
    pts = [tuple(map(float, p.split(","))) for p in pl.get("points").split()]
    assert len(pts) >= 1 and all(math.isfinite(a) and math.isfinite(b) for a, b in pts)
    xs = [a for a, _ in pts]
    assert xs == sorted(xs), "x increases along a curve"
    assert (pl.get("stroke-dasharray") is not None) == lab.startswith("d/dx ")
assert seen == labels, (seen, labels)
legend = [t.text for g in root.iter(ns + "g") if g.get("class") == "legend"
          for t in g.iter(ns + "text")]
assert legend == labels, legend
for cls in ("xticks", "yticks"):
    ticks = [t.text for g in root.iter(ns + "g") if g.get("class") == cls
             for t in g.iter(ns + "text")]
    assert len(ticks) >= 4, (cls, ticks)
    [float(t) for t in ticks]
PYEOF
}

# svg_values SVG LABEL FILE FN [P=V...]: 40 points of the curve LABEL,
# read back as (x, y) through the tick labels' positions, are FN's values
# by `dnc eval FILE -f FN -p P=V...`, within what the coordinates' two
# decimals allow (0.02 px, plus the local slope times 0.01 px)
svg_values() {
  DNC="$DNC" "$PY" - "$@" <<'PYEOF'
import subprocess, sys, os
import xml.etree.ElementTree as ET
path, label, src, fn, sets = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
ns = "{http://www.w3.org/2000/svg}"
root = ET.parse(path).getroot()

def axis(cls, attr):
    """pixel -> value for an axis, from its first and last tick"""
    g = [g for g in root.iter(ns + "g") if g.get("class") == cls][0]
    lines = list(g.iter(ns + "line"))
    texts = list(g.iter(ns + "text"))
    (p0, v0), (p1, v1) = [(float(lines[i].get(attr)), float(texts[i].text))
                          for i in (0, -1)]
    return lambda p: v0 + (p - p0) * (v1 - v0) / (p1 - p0), (p1 - p0) / (v1 - v0)

xval, _ = axis("xticks", "x1")
yval, ypx_per = axis("yticks", "y1")
pts = []
for pl in root.iter(ns + "polyline"):
    if pl.get("data-label") == label:
        pts += [tuple(map(float, q.split(","))) for q in pl.get("points").split()]
assert len(pts) > 100, (label, len(pts))
pick = [pts[i] for i in range(2, len(pts) - 2, (len(pts) - 4) // 40)]
cmd = [os.environ["DNC"], "eval", src, "-f", fn] + sum((["-p", s] for s in sets), [])
xs = [xval(px) for px, _ in pick]
out = subprocess.run(cmd, input="\n".join(repr(x) for x in xs), text=True,
                     capture_output=True, check=True).stdout.split()
assert len(out) == len(xs), out
bad = []
for (px, py), x, f in zip(pick, xs, map(float, out)):
    i = pts.index((px, py))
    slope = abs(pts[i + 1][1] - pts[i - 1][1]) / (pts[i + 1][0] - pts[i - 1][0])
    want = py - (yval(py) - f) * ypx_per   # f's pixel row
    if not abs(want - py) <= 0.02 + 0.01 * slope:
        bad.append((x, yval(py), f, want - py))
assert not bad, ("%s: points off the values of %s: (x, plotted, dnc eval, px)" % (label, fn), bad[:5])
PYEOF
}

"$DNC" plot $N -f dyt,derf,dyisru --deriv -o "$tmp/norms.svg" 2>"$tmp/err"
t "DyT, Derf and DyISRU with their derivatives: valid SVG, 6 curves" \
  svg_check "$tmp/norms.svg" dyt "d/dx dyt" derf "d/dx derf" dyisru "d/dx dyisru"
t "nothing on stderr" test ! -s "$tmp/err"
printf 'fn dyt(x) = tanh(x)\nfn isru(x; c = 1) = x / sqrt(c + x^2)\n' >"$tmp/two.dn"
"$DNC" plot "$tmp/two.dn" -o "$tmp/two.svg"
t "without -f, every function of FILE (as --help says)" svg_check "$tmp/two.svg" dyt isru
t "... and the usage shows -f as optional" \
  sh -c "'$DNC' plot --help | head -1 | grep -qF 'dnc plot FILE [-f NAME[,NAME...]]'"
"$DNC" diff $N -f dyt,derf,dyisru --wrt x >"$tmp/d.dn"
for f in dyt derf dyisru; do
  t "$f's curve: its values (dnc eval)" svg_values "$tmp/norms.svg" $f $N $f
  t "d/dx $f's curve: the derivative's values (dnc diff, dnc eval)" \
    svg_values "$tmp/norms.svg" "d/dx $f" "$tmp/d.dn" ${f}__dx
done
"$DNC" plot $N -f dyt -p alpha=2 --range -3:3 --deriv --title 'tanh & <co>' -o "$tmp/t.svg"
t "--range, --param, and a title with XML's special characters" \
  sh -c "grep -q '>tanh &amp; &lt;co&gt;</text>' '$tmp/t.svg' &&
         grep -q '>-3</text>' '$tmp/t.svg' && grep -q '>3</text>' '$tmp/t.svg'"
t "... and still valid" svg_check "$tmp/t.svg" dyt "d/dx dyt"
t "-p alpha=2: the curve is tanh(2x)" svg_values "$tmp/t.svg" dyt $N dyt alpha=2
t "... and its derivative 2 (1 - tanh(2x)^2)" \
  svg_values "$tmp/t.svg" "d/dx dyt" "$tmp/d.dn" dyt__dx alpha=2
# fails: a command that must fail, its stderr dropped
fails() { ! "$@" 2>/dev/null; }
t "... which the default alpha's values are not (the check can fail)" \
  fails svg_values "$tmp/t.svg" dyt $N dyt
t "... nor f's values the derivative's (the check tells f from f')" \
  fails svg_values "$tmp/t.svg" "d/dx dyt" $N dyt alpha=2
echo 'fn inv(x) = 1 / x' >"$tmp/inv.dn"
"$DNC" plot "$tmp/inv.dn" --range -1:1 -o "$tmp/inv.svg"
t "a pole: the curve is broken in two, still valid" \
  sh -c "svg_check_ok=\$('$PY' -c \"
import xml.etree.ElementTree as ET
r = ET.parse('$tmp/inv.svg').getroot()
print(len(list(r.iter('{http://www.w3.org/2000/svg}polyline'))))\") && [ \"\$svg_check_ok\" = 2 ]"
echo 'fn nowhere(x) = sqrt(-1 - x^2)' >"$tmp/nowhere.dn"
err "a curve with no finite point: a warning, status 0" 0 \
  "^dnc: warning: 'nowhere' is NaN or infinite at every point of -2:2; it has no line\$" \
  "$DNC" plot "$tmp/nowhere.dn" --range -2:2 -o "$tmp/nowhere.svg"
t "... the SVG written all the same" grep -q '</svg>' "$tmp/nowhere.svg"
"$DNC" plot "$tmp/nowhere.dn" -w -o "$tmp/nowhere.svg" 2>"$tmp/err"
t "... and -w hides the warning" test ! -s "$tmp/err"

err "no -o" 2 "no output file" "$DNC" plot $N -f dyt
err "a bad --range" 2 "--range needs A:B with finite A < B, not '3:1'" \
  "$DNC" plot $N -f dyt --range 3:1 -o "$tmp/x.svg"
# --top with a source file was passed over: every function was drawn,
# not the first K, with status 0
err "--top with a source file: refused" 2 \
  "^dnc: --top chooses rows of a search's CSV; with a source file, -f chooses functions\$" \
  "$DNC" plot $N --top 2 -o "$tmp/top_dn.svg"
t "--top with a source file: nothing written" test ! -e "$tmp/top_dn.svg"
err "no such function: a usage error, as -f elsewhere" 2 "no function 'dty'" "$DNC" plot $N -f dty -o "$tmp/x.svg"
err "a parameter no function has" 2 "no function plotted has a parameter 'beta'" \
  "$DNC" plot $N -f dyt -p beta=2 -o "$tmp/x.svg"
t "... and no file written" test ! -e "$tmp/x.svg"
# -p and -f as eval's: two values for one parameter refused (the last was
# taken, silently), the same value twice is once; -f lists checked alike
err "two values for one parameter: refused, as eval's" 2 \
  "two values for 'alpha' in --param (1 and 2); give one" \
  "$DNC" plot $N -f dyt -p alpha=1 -p alpha=2 -o "$tmp/x.svg"
t "... and no file written" test ! -e "$tmp/x.svg"
"$DNC" plot $N -f dyt -p alpha=2 -o "$tmp/once.svg"
"$DNC" plot $N -f dyt -p alpha=2 -p alpha=2 -o "$tmp/twice.svg"
t "the same value twice is once" cmp -s "$tmp/once.svg" "$tmp/twice.svg"
err "-f with an empty name: refused, as elsewhere" 2 \
  "the list of functions 'dyt,' has an empty name" \
  "$DNC" plot $N -f dyt, -o "$tmp/x.svg"
err "-f , : a usage error, as elsewhere" 2 "^dnc: -f needs function names\$" \
  "$DNC" plot $N -f , -o "$tmp/x.svg"
t "... with the usage" grep -q "^usage: dnc plot" "$tmp/err"
err "an output in a missing directory" 1 "cannot write '$tmp/none/x.svg'" \
  "$DNC" plot $N -f dyt -o "$tmp/none/x.svg"
printf 'rank,name\n1,a\n' >"$tmp/r.csv"
err "a ranked CSV without a source column: located" 1 "r.csv:1:1: error: no column 'source'" \
  "$DNC" plot "$tmp/r.csv" -o "$tmp/x.svg"
printf 'rank,name,source\n1,a,fn c1(x) = tanh(y)\n' >"$tmp/r2.csv"
err "a candidate that does not compile: located in the CSV" 1 \
  "r2.csv:2:21: error: this candidate's source does not compile: unknown name 'y'" \
  "$DNC" plot "$tmp/r2.csv" -o "$tmp/x.svg"
printf 'rank,name,source\n1,a,fn c1(x) = tanh(x)\n2,b,fn c2(x) = x / (1 + abs(x))\n3,c,fn c3(x) = erf(x)\n' >"$tmp/r3.csv"
"$DNC" plot "$tmp/r3.csv" --top 2 --deriv -o "$tmp/top.svg"
t "a ranked CSV: the top K rows with their derivatives" \
  svg_check "$tmp/top.svg" a "d/dx a" b "d/dx b"
# a training search's results.csv ranks the LayerNorm baseline among the
# candidates, with no source: not drawn (a note), the next row drawn instead
printf 'place,name,source\n1,c1,fn c1(x) = tanh(x)\n2,LayerNorm,\n3,c3,fn c3(x) = erf(x)\n4,c4,fn c4(x) = x\n' >"$tmp/ln.csv"
"$DNC" plot "$tmp/ln.csv" --top 3 -o "$tmp/ln.svg" 2>"$tmp/err"
t "a row without a source (results.csv's LayerNorm) is passed over" \
  svg_check "$tmp/ln.svg" c1 c3 c4
t "  with a located note" grep -qF "ln.csv:3:13: note: 'LayerNorm' has no source" "$tmp/err"
printf 'place,name,source\n1,LayerNorm,\n' >"$tmp/ln1.csv"
err "only rows without a source: refused" 1 "error: no candidates to draw: none of the 1 row read has a source" \
  "$DNC" plot "$tmp/ln1.csv" -o "$tmp/x.svg"
# a search's CSV holds every candidate (several MB): plot reads the header
# and the first K rows only, quoted fields across lines included
{
  printf 'rank,name,source\n1,a,"fn c1(x) =\n  tanh(x)"\n2,"b, quoted ""b""",fn c2(x) = erf(x)\n'
  seq 3 90000 | awk '{ print $1 ",z" $1 ",\"fn z" $1 "(x) = x / (1 + abs(x)) * " $1 "\"" }'
} >"$tmp/big.csv"
t "(the CSV is larger than a source file may be: $(wc -c <"$tmp/big.csv") bytes)" \
  test "$(wc -c <"$tmp/big.csv")" -gt 4194304
"$DNC" plot "$tmp/big.csv" --top 2 -o "$tmp/big.svg"
t "a search's CSV of any size: its top 2 drawn" svg_check "$tmp/big.svg" a 'b, quoted "b"'
"$DNC" plot "$tmp/big.csv" -o "$tmp/big5.svg"
t "... and its top 5 by default" svg_check "$tmp/big5.svg" a 'b, quoted "b"' z3 z4 z5
{
  printf 'rank,name,source\n1,a,"fn c1(x) = x'
  head -c 4200000 /dev/zero | tr '\0' ' '
  printf '"\n'
} >"$tmp/wide.csv"
err "rows drawn that pass the limit: refused" 1 \
  "'$tmp/wide.csv' is too large: its header and first 5 rows take more than 4194304 bytes" \
  "$DNC" plot "$tmp/wide.csv" -o "$tmp/x.svg"
# issue 20: ranges at the ends of the doubles end quickly with an error or
# a valid plot (the tick loop once stalled below one ulp and filled the disk;
# a width past DBL_MAX gave NaN coordinates)
# (at most 20 MB written, 20 s, should it loop again)
err "a range narrower than the ticks can tell apart: refused, at once" 2 \
  "--range 1:1.0000000000000002 is too narrow to plot" \
  bash -c 'ulimit -f 20000; exec timeout 20 "$@"' - "$DNC" plot $N -f dyt --range 1:1.0000000000000002 -o "$tmp/x.svg"
t "... and no file written" test ! -e "$tmp/x.svg"
timeout 20 "$DNC" plot $N -f dyt --range=-1e308:1e308 -o "$tmp/wide.svg"
t "--range=-1e308:1e308: valid, finite coordinates" svg_check "$tmp/wide.svg" dyt
t "... ticks from -1e+308 to 1e+308" \
  sh -c "grep -q '>-1e+308</text>' '$tmp/wide.svg' && grep -q '>1e+308</text>' '$tmp/wide.svg'"
timeout 20 "$DNC" plot $N -f dyt --range 1:1.000000001 -o "$tmp/narrow.svg"
t "the narrowest range allowed: 11 distinct x ticks" \
  sh -c "[ \$('$PY' -c \"
import xml.etree.ElementTree as ET
r = ET.parse('$tmp/narrow.svg').getroot()
ts = [t.text for g in r.iter('{http://www.w3.org/2000/svg}g') if g.get('class') == 'xticks' for t in g.iter('{http://www.w3.org/2000/svg}text')]
print(len(set(ts)))\") = 11 ]"
t "... and valid" svg_check "$tmp/narrow.svg" dyt
# large values with a small step: %g's 6 digits gave eleven '1e+07' y
# labels (1e7 + x on 0:1) and repeated x labels (1e6:1.00001e6)
echo 'fn big(x) = 1e7 + x' >"$tmp/big.dn"
distinct_ticks() {
  "$PY" -c '
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
for cls in ("xticks", "yticks"):
    ts = [t.text for g in r.iter("{http://www.w3.org/2000/svg}g")
          if g.get("class") == cls for t in g.iter("{http://www.w3.org/2000/svg}text")]
    assert len(ts) >= 4 and len(set(ts)) == len(ts), (cls, ts)
    vs = [float(t) for t in ts]
    assert vs == sorted(vs), (cls, ts)
' "$1"
}
"$DNC" plot "$tmp/big.dn" --range 0:1 -o "$tmp/big1.svg"
t "1e7 + x on 0:1: every y tick label differs (10000000.1, ...)" distinct_ticks "$tmp/big1.svg"
"$DNC" plot "$tmp/big.dn" --range 1e6:1.00001e6 -o "$tmp/big2.svg"
t "1e7 + x on 1e6:1.00001e6: every x and y tick label differs" distinct_ticks "$tmp/big2.svg"
err "a subnormal range, whose points cannot differ: refused" 2 \
  "--range -5e-324:5e-324 is too narrow to plot: .* and at least 1e-300" \
  "$DNC" plot $N -f dyt --range=-5e-324:5e-324 -o "$tmp/sub.svg"
t "... and no file written" test ! -e "$tmp/sub.svg"
timeout 20 "$DNC" plot $N -f dyt --range=-5e-301:5e-301 -o "$tmp/tiny.svg"
t "the narrowest range near 0 allowed (1e-300 wide): valid" svg_check "$tmp/tiny.svg" dyt
t "... no NaN anywhere in the file" sh -c "! grep -qi nan '$tmp/tiny.svg'"
echo 'fn huge(x) = 1e308 * x * x' >"$tmp/huge.dn"
timeout 20 "$DNC" plot "$tmp/huge.dn" -o "$tmp/huge.svg"
t "values near DBL_MAX (1e308*x*x): valid, finite coordinates" svg_check "$tmp/huge.svg" huge
t "... no NaN anywhere in the file" sh -c "! grep -qi nan '$tmp/huge.svg'"
tap_done
