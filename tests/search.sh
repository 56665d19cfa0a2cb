#!/usr/bin/env bash
# search.sh - `dnc search` from the command line: the same spec gives the
# same tables (on 1 or 2 threads, run twice); a search interrupted midway
# (by the SIGINT that DNC_SEARCH_STOP_AFTER raises, and with a torn journal
# line as a kill leaves) resumes to the same tables; the ranked sources
# compile; plot draws the top rows; each spec error is located.
set -u
. "$(dirname "$0")/tap.bash"
case "$B" in /*) ;; *) B="$PWD/$B" ;; esac
DNC="$B/dnc"
PY="${DNC_PYTHON:-/usr/bin/python3}"

cat >"$tmp/s.dns" <<'DNS'
# a small space: 4 bases x 5 x 3 x 4 = 240 candidates
base T(x) = tanh(x)
base E(x) = erf(x)
base S(x) = sin(x)
base C(x) = x^3
stage scale: id | scale(0.5, 2) | shift(0.5, -1)
stage shape: id | mirror | clip(1)
stage outer: id | compose(T) | times(E) | mix(0.5)
set grid_points = 201
set ln_steps = 40
score near_tanh(x) = abs(f(x) - tanh(x))
rank props desc, near_tanh asc
DNS
cd "$tmp" || exit 1

"$DNC" search s.dns -o one --threads 1 --top 3 -q >top.txt 2>err.txt
t "a search runs on one thread, quietly" test ! -s err.txt
"$DNC" search s.dns -o two --threads 2 --top 0 -q
"$DNC" search s.dns -o again --threads 2 --top 0 -q
t "the same spec gives the same CSV on 1 and 2 threads, and again" \
  sh -c 'cmp one.csv two.csv && cmp two.csv again.csv'
t "... and the same JSON" sh -c 'cmp one.json two.json && cmp two.json again.json'
t "no journal is left after a finished search" test ! -e one.journal
t "--top prints the table's first rows" sh -c '[ $(wc -l <top.txt) = 4 ] && grep -q "^1 " top.txt'
"$DNC" search s.dns --top 0 -q
t "the default prefix is the spec's name" sh -c 'cmp s.csv one.csv && cmp s.json one.json'
t "the JSON: ranked by the spec's keys, each candidate once, 4 bases' worth" "$PY" -c '
import json
r = json.load(open("one.json"))
rows = r["ranked"]
assert r["candidates"] == 240 and r["distinct"] == len(rows) <= 240
assert sorted(x["id"] for x in rows) == sorted(set(x["id"] for x in rows))
keys = [(-x["props"], x["near_tanh"]) for x in rows]
assert keys == sorted(keys), "ranked by props desc, near_tanh asc"
assert [x["rank"] for x in rows] == list(range(1, len(rows) + 1))
top = rows[0]
assert top["zero_centred"] and top["bounded"] and top["monotonic"]
assert top["source"].startswith("fn c%d(x)" % top["id"])
'
"$PY" -c '
import json
for x in json.load(open("one.json"))["ranked"]:
    print(x["source"])
' >all.dn
t "every ranked candidate compiles again as dnc source" "$DNC" check all.dn

# interrupted and resumed
DNC_SEARCH_STOP_AFTER=64 "$DNC" search s.dns -o cut --threads 2 --top 0 -q 2>cut.err
t "DNC_SEARCH_STOP_AFTER: stops with status 130, the journal kept" \
  sh -c "[ $? = 130 ] && test -s cut.journal && test ! -e cut.csv"
t "... saying how far it got" grep -q "interrupted: .* of .* candidates measured, kept in cut.journal" cut.err
lines=$(wc -l <cut.journal)
t "... after whole batches" sh -c "[ $lines -ge 65 ] && [ $lines -lt 240 ]"
printf '17 0x1.8p' >>cut.journal # a torn line, as a kill leaves
"$DNC" search s.dns -o cut --threads 1 --top 0 -q
t "resumed, it gives the tables of an uninterrupted run" \
  sh -c 'cmp cut.csv one.csv && cmp cut.json one.json && test ! -e cut.journal'
DNC_SEARCH_STOP_AFTER=64 "$DNC" search s.dns -o cut2 --top 0 -q 2>/dev/null
DNC_SEARCH_STOP_AFTER=64 "$DNC" search s.dns -o cut2 --top 0 -q 2>/dev/null
"$DNC" search s.dns -o cut2 --top 0 -q
t "interrupted twice, resumed twice: still the same" cmp cut2.csv one.csv

# plot of the ranked CSV
"$DNC" plot one.csv --top 3 --deriv -o top.svg
t "plot draws the search's top 3 with their derivatives" "$PY" -c '
import xml.etree.ElementTree as ET
r = ET.parse("top.svg").getroot()
labels = {p.get("data-label") for p in r.iter("{http://www.w3.org/2000/svg}polyline")}
assert len(labels) == 6, labels
'

# the journal of another search
DNC_SEARCH_STOP_AFTER=64 "$DNC" search s.dns -o other --top 0 -q 2>/dev/null
sed 's/set ln_steps = 40/set ln_steps = 41/' s.dns >s2.dns
err "a journal of another spec: refused, located" 1 "other.journal:1:1: error: this journal is not of this search" \
  "$DNC" search s2.dns -o other --top 0 -q
printf 'dnc search journal 1 %s\n12 oops\n' "$(head -c 37 other.journal | tail -c 16)" >bad.journal
head -1 other.journal >bad.journal && printf '12 0x1p+0 oops\n' >>bad.journal
err "a journal line that is not one: located" 1 "bad.journal:2:1: error: not a line of this journal" \
  "$DNC" search s.dns -o bad --top 0 -q
err "an output directory that is missing" 1 "cannot write 'none/x.journal'" \
  "$DNC" search s.dns -o none/x --top 0 -q

# errors in the spec, located
spec() { printf '%s\n' "$@" >e.dns; }
spec 'base T(x) = tanh(x)' 'stag s: id'
err "an unknown directive" 1 "e.dns:2:1: error: unknown directive 'stag'; did you mean 'stage'?" \
  "$DNC" search e.dns
spec 'base T(x) = tanh(x)' 'stage s: id | scael(2)'
err "an unknown transformation" 1 "e.dns:2:15: error: unknown transformation 'scael'; did you mean 'scale'?" \
  "$DNC" search e.dns
spec 'base T(x) = tanh(x)' 'stage s: id | compose(U)'
err "an unknown base" 1 "e.dns:2:23: error: unknown base 'U'" "$DNC" search e.dns
spec 'base T(x) = tanh(x)' 'stage s: scale(2, x)'
err "not a number" 1 "e.dns:2:19: error: a number was expected here" "$DNC" search e.dns
spec 'base T(x) = tanh(x)' 'stage s: id | flat(1, -2)'
err "a negative flat width" 1 "e.dns:2:23: error: flat's width must be 0 or more, not -2" \
  "$DNC" search e.dns
spec 'base T(x) = tanh(x)' 'stage s: scale(2'
err "an unclosed list" 1 "e.dns:2:.*error: ',' or ')' expected" "$DNC" search e.dns
spec 'base T(x) = tanh(x)' 'stage s: id id'
err "alternatives without '|'" 1 "e.dns:2:13: error: '|' between alternatives expected here" \
  "$DNC" search e.dns
spec 'base T(x) = tanh(x)' 'set grid_point = 11'
err "an unknown setting" 1 "e.dns:2:5: error: unknown setting 'grid_point'; did you mean 'grid_points'?" \
  "$DNC" search e.dns
spec 'base T(x) = tanh(x)' 'set grid_points = 100'
err "a setting out of range" 1 "e.dns:2:19: error: grid_points is a whole number from 11 to 100001, odd" \
  "$DNC" search e.dns
spec 'base T(x) = tanh(x)' 'rank residul asc'
err "an unknown column to rank by" 1 "e.dns:2:6: error: unknown column 'residul'; did you mean 'residual'?" \
  "$DNC" search e.dns
spec 'base T(x) = tanh(x)' 'rank residual up'
err "a direction that is not asc or desc" 1 "e.dns:2:15: error: 'asc' or 'desc' expected, not 'up'" \
  "$DNC" search e.dns
spec 'base T(x) = tanh(y)'
err "an error in a base's expression: located in the spec" 1 "e.dns:1:18: error: unknown name 'y'" \
  "$DNC" search e.dns
t "... showing the spec's own line" grep -q '    1 | base T(x) = tanh(y)' "$tmp/err"
spec 'base T(x; a = 1) = tanh(a * x)'
err "a base with parameters" 1 "e.dns:1:6: error: a base takes x alone" "$DNC" search e.dns
spec 'base f(x) = tanh(x)' 'score s(x) = f(x)'
err "a base named f beside scores" 1 "e.dns:1:6: error: 'f' names the candidate in scores" \
  "$DNC" search e.dns
spec '# nothing' 'set decades = 4'
err "no base" 1 "e.dns: error: no base function" "$DNC" search e.dns
spec 'base T(x) = tanh(x)' 'base U(x) = erf(x)' 'base V(x) = sin(x)' 'base W(x) = cos(x)' 'base X(x) = x' \
  "stage a: id$(printf ' | scale(%d)' $(seq 1 99))" \
  "stage b: id$(printf ' | shift(%d)' $(seq 1 99))" \
  "stage c: id$(printf ' | gain(%d)' $(seq 1 99))"
err "a space over 4,000,000 candidates" 1 "e.dns: error: the space holds over 4000000 candidates by stage 'c'" \
  "$DNC" search e.dns
err "a spec that is missing" 1 "cannot open 'none.dns'" "$DNC" search none.dns
err "no spec" 2 "no search spec" "$DNC" search
err "--threads out of range" 2 "--threads needs a whole number from 1" "$DNC" search s.dns --threads 0
tap_done
