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

printf '\xef\xbb\xbfbase T(x) = tanh(x)\nstage s: id | scale(2)\n' >bom.dns
"$DNC" search bom.dns -o bom -q >/dev/null 2>err.txt
t "a spec that starts with a UTF-8 byte order mark is read" \
  sh -c "[ $? = 0 ] && [ -s bom.csv ] && [ ! -s err.txt ]"

"$DNC" search s.dns -o one --threads 1 --top 3 -q >top.txt 2>err.txt
t "a search runs on one thread, quietly" test ! -s err.txt
t "--help names -q, the short form of --quiet used above" \
  sh -c "'$DNC' search --help | grep -q -- '-q, --quiet'"
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
# NaNs whose sign bit is set (log and sqrt of negative numbers): the
# journal keeps them as nan, and the CSV of the resumed run had nan where
# the uninterrupted one had -nan
cat >nans.dns <<'DNS'
base L(x) = log(x)
base N(x) = sqrt(x)
base T(x) = tanh(x)
stage s: id | shift(-1, -2, -3, -4, -5, -6, -7, -8, -9)
stage k: id | scale(2, 3, 4, 5, 6, 7, 8)
set grid_points = 101
set ln_steps = 10
DNS
"$DNC" search nans.dns -o nans1 --top 0 -q
DNC_SEARCH_STOP_AFTER=64 "$DNC" search nans.dns -o nans2 --threads 1 --top 0 -q 2>/dev/null
"$DNC" search nans.dns -o nans2 --top 0 -q
t "a search of NaNs, resumed, gives the tables of an uninterrupted run" \
  sh -c 'cmp nans1.csv nans2.csv && cmp nans1.json nans2.json'
t "... every NaN spelled nan" sh -c '! grep -q -- "-nan" nans1.csv && grep -q ",nan," nans1.csv'
DNC_SEARCH_STOP_AFTER=64 "$DNC" search s.dns -o cut2 --top 0 -q 2>/dev/null
DNC_SEARCH_STOP_AFTER=64 "$DNC" search s.dns -o cut2 --top 0 -q 2>/dev/null
"$DNC" search s.dns -o cut2 --top 0 -q
t "interrupted twice, resumed twice: still the same" cmp cut2.csv one.csv

# two searches of one -o: the second is refused while the first holds
# the journal (here flock(1) holds it), not interleaved with it
rm -f lock.held
flock lock.journal sh -c 'touch lock.held; sleep 5' &
holder=$!
for i in $(seq 100); do test -e lock.held && break; sleep 0.1; done
"$DNC" search s.dns -o lock --top 0 -q 2>lock.err
t "a journal another search holds: status 1" sh -c "[ $? = 1 ] && test ! -e lock.csv"
t "... saying so" grep -q "error: 'lock.journal' is being written by another dnc search of the same -o" lock.err
wait $holder
"$DNC" search s.dns -o lock --top 0 -q
t "... and once it is free, the search runs (the empty journal taken as new)" \
  sh -c 'cmp lock.csv one.csv && test ! -e lock.journal'

# A journal past the 4 MiB a source file may have (the example
# spec's, cut at 16448 of 16683, was refused as too large): 18,225 cheap
# candidates, cut near the end and while writing the tables
cat >big.dns <<'DNS'
base T(x) = tanh(x)
base E(x) = erf(x)
base S(x) = sin(x)
base C(x) = x^3
base A(x) = atan(x)
stage scale: id | scale(0.25, 0.5, 2, 3, 4, 5, 6, 7)
stage shift: id | shift(-3, -2, -1, -0.5, 0.5, 1, 2, 3)
stage gain: id | gain(2, 3, 4, 5, 6, 7, 8, 9)
stage outer: id | compose(T) | times(E) | mix(0.25, 0.5)
set grid_points = 11
set ln_steps = 2
set decades = 1
set per_decade = 1
DNS
"$DNC" search big.dns -o big --top 0 -q
DNC_SEARCH_STOP_AFTER=17900 "$DNC" search big.dns -o bigcut --top 0 -q 2>/dev/null
t "a search cut near its end leaves a journal over 4 MiB" \
  sh -c "[ $? = 130 ] && [ \$(wc -c <bigcut.journal) -gt 4194304 ]"
cp bigcut.journal bigdamaged.journal
last=$(wc -l <bigdamaged.journal)
sed -i "${last}s/ 0x/ 0X/" bigdamaged.journal
err "... a damaged record at its end is reported on its line" 1 \
  "bigdamaged.journal:$last:1: error: a damaged record" \
  "$DNC" search big.dns -o bigdamaged --top 0 -q
"$DNC" search big.dns -o bigcut --top 0 -q
t "... and resumes to the tables of an uninterrupted run" \
  sh -c 'cmp bigcut.csv big.csv && cmp bigcut.json big.json && test ! -e bigcut.journal'
DNC_SEARCH_STOP_AFTER=tables "$DNC" search big.dns -o bigtab --top 0 -q 2>/dev/null
t "cut while writing the tables, all of it in the journal, over 4 MiB" \
  sh -c "[ $? = 130 ] && [ \$(wc -c <bigtab.journal) -gt 4194304 ]"
"$DNC" search big.dns -o bigtab --top 0 -q
t "... resumes to the same tables" \
  sh -c 'cmp bigtab.csv big.csv && cmp bigtab.json big.json && test ! -e bigtab.journal'
rm -f big*.csv big*.json big*.journal

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
head -1 other.journal >bad.journal && printf '12 0x1p+0 oops\n' >>bad.journal
err "a journal line without its checksum: located" 1 "bad.journal:2:1: error: a damaged record: its checksum does not match" \
  "$DNC" search s.dns -o bad --top 0 -q
t "... and nothing written" sh -c 'test ! -e bad.csv && test ! -e bad.json'
# a journal of this search by another build of dnc (a rebuilt dnc may
# measure otherwise: resumed, the table mixed the two builds' measures)
sed '1s/ build [0-9a-f]*$/ build 0123456789abcdef/' other.journal >rebuilt.journal
err "a journal of another build: a note, measured again" 0 \
  "note: 'rebuilt.journal' was written by another build of dnc" \
  "$DNC" search s.dns -o rebuilt --top 0 -q
t "... to the tables of an uninterrupted run" \
  sh -c 'cmp rebuilt.csv one.csv && test ! -e rebuilt.journal'
sed '1s/ \([0-9]*\) build / \19 build /' other.journal >more.journal
err "... but one of another count of candidates: refused, not measured again" 1 \
  "more.journal:1:1: error: this journal is not of this search" \
  "$DNC" search s.dns -o more --top 0 -q
sed 's/^dnc search journal 2 /dnc search journal 1 /' other.journal >old.journal
err "a journal of the format before checksums: refused" 1 "old.journal:1:1: error: this journal is of an older dnc (format 1" \
  "$DNC" search s.dns -o old --top 0 -q

# Bit flips in a journal (issue 20: 11 of 40 changed the tables, exit 0):
# each is either reported on its line (a record) or the header's, with
# nothing used, or cut off as a torn last line (the last newline) and the
# tables come out right; never other tables with status 0.
DNC_SEARCH_STOP_AFTER=128 "$DNC" search s.dns -o flip --threads 1 --top 0 -q 2>/dev/null
cp flip.journal flip.good
"$PY" - flip.good 60 >flips.txt <<'PY'
import random, sys
data = open(sys.argv[1], "rb").read()
head = data.index(b"\n") + 1
rng = random.Random(20)
for _ in range(int(sys.argv[2])):
    pos = rng.randrange(len(data)) if rng.random() < 0.1 else rng.randrange(head, len(data))
    print(pos, rng.randrange(8), data[:pos].count(b"\n") + 1)
PY
flip_bad=0
flip_reported=0
while read -r pos bit line; do
  "$PY" -c '
import sys
p, b = int(sys.argv[1]), int(sys.argv[2])
d = bytearray(open("flip.good", "rb").read())
d[p] ^= 1 << b
open("flip.journal", "wb").write(d)' "$pos" "$bit"
  rm -f flip.csv flip.json
  "$DNC" search s.dns -o flip --threads 1 --top 0 -q 2>flip.err
  rc=$?
  if [ $rc = 0 ]; then
    # only a flip of the last newline makes a torn line, cut off and measured
    cmp -s flip.csv one.csv && cmp -s flip.json one.json || {
      echo "# flip at $pos bit $bit: other tables, status 0"; flip_bad=$((flip_bad + 1)); }
  elif [ $rc = 1 ] && { grep -q "^flip.journal:$line:1: error: a damaged record" flip.err ||
    { [ $line = 1 ] && grep -q "^flip.journal:1:1: error: this journal" flip.err; }; } &&
    test ! -e flip.csv; then
    flip_reported=$((flip_reported + 1))
  else
    echo "# flip at $pos bit $bit (line $line): status $rc"; sed 's/^/#   /' flip.err | head -3
    flip_bad=$((flip_bad + 1))
  fi
done <flips.txt
t "60 random bit flips in a journal: each reported on its line or harmless ($flip_reported reported)" \
  sh -c "[ $flip_bad = 0 ] && [ $flip_reported -ge 55 ]"
cp flip.good flip.journal
"$DNC" search s.dns -o flip --threads 2 --top 0 -q
t "... the undamaged journal resumes to the tables of an uninterrupted run" \
  sh -c 'cmp flip.csv one.csv && cmp flip.json one.json && test ! -e flip.journal'

# Signals: 128 + the signal at every stage, no partial table, the journal
# kept; killed outright while writing the tables, the next run removes
# the temporaries it left
DNC_SEARCH_STOP_AFTER=expand DNC_SEARCH_STOP_SIGNAL=15 "$DNC" search s.dns -o sig --top 0 -q 2>sig.err
t "SIGTERM before measuring: status 143, nothing written" \
  sh -c "[ $? = 143 ] && test ! -e sig.journal && test ! -e sig.csv && grep -q 'interrupted before measuring' sig.err"
DNC_SEARCH_STOP_AFTER=expand DNC_SEARCH_STOP_SIGNAL=2 "$DNC" search s.dns -o sig --top 0 -q 2>/dev/null
t "SIGINT before measuring: status 130" test $? = 130
DNC_SEARCH_STOP_AFTER=64 DNC_SEARCH_STOP_SIGNAL=15 "$DNC" search s.dns -o sig --top 0 -q 2>/dev/null
t "SIGTERM while measuring: status 143, the journal kept" sh -c "[ $? = 143 ] && test -s sig.journal"
printf 'old csv\n' >sig.csv
printf 'old json\n' >sig.json
DNC_SEARCH_STOP_AFTER=tables DNC_SEARCH_STOP_SIGNAL=15 "$DNC" search s.dns -o sig --top 0 -q 2>/dev/null
t "SIGTERM while writing the tables: status 143" test $? = 143
t "... the old tables untouched, the journal kept, no temporary left" sh -c '
  [ "$(cat sig.csv)" = "old csv" ] && [ "$(cat sig.json)" = "old json" ] &&
  test -s sig.journal && [ -z "$(ls -A | grep "^\.sig\.")" ]'
DNC_SEARCH_STOP_AFTER=tables DNC_SEARCH_STOP_SIGNAL=2 "$DNC" search s.dns -o sig --top 0 -q 2>/dev/null
t "SIGINT while writing the tables: status 130, no temporary left" \
  sh -c "[ $? = 130 ] && [ -z \"\$(ls -A | grep '^\.sig\.')\" ]"
DNC_SEARCH_STOP_AFTER=tables DNC_SEARCH_STOP_SIGNAL=9 "$DNC" search s.dns -o sig --top 0 -q 2>/dev/null
t "SIGKILL while writing the tables leaves a temporary ..." \
  sh -c "[ $? = 137 ] && ls -A | grep -q '^\.sig\.csv\.[0-9]*\.'"
"$DNC" search s.dns -o sig --top 0 -q
t "... which the next run removes, writing the tables of an uninterrupted run" sh -c '
  [ -z "$(ls -A | grep "^\.sig\.")" ] && cmp sig.csv one.csv && cmp sig.json one.json &&
  test ! -e sig.journal'
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
spec 'base T(x) = tanh(x)' 'stage a: id | scale(2)' 'stage a: id | shift(1)'
err "two stages of one name" 1 "e.dns:3:7: error: a second stage named 'a'; each stage has a name of its own" \
  "$DNC" search e.dns
spec 'base T(x) = tanh(x)' 'stage s: id | compose(U)'
err "an unknown base" 1 "e.dns:2:23: error: unknown base 'U'" "$DNC" search e.dns
spec 'base T(x) = tanh(x)' 'stage s: scale(2, x)'
err "not a number" 1 "e.dns:2:19: error: a number was expected here" "$DNC" search e.dns
spec 'base T(x) = tanh(x)' 'stage s: id | flat(1, -2)'
err "a negative flat width" 1 "e.dns:2:23: error: flat's width must be 0 or more, not -2" \
  "$DNC" search e.dns
spec 'base T(x) = tanh(x)' 'stage s: id | clip(1, -0.5)'
err "a negative clip bound (it was taken as 0.5, named -0.5)" 1 \
  "e.dns:2:23: error: clip's bound must be more than 0, not -0.5" \
  "$DNC" search e.dns
spec 'base T(x) = tanh(x)' 'rank props desc, props asc'
err "a column ranked by twice" 1 \
  "e.dns:2:18: error: 'props' is ranked by already, earlier in this line" \
  "$DNC" search e.dns
# a second rank line replaced the first: `rank props desc` then `rank
# residual asc` ranked by the residual alone, silently
spec 'base T(x) = tanh(x)' 'base L(x) = x' 'rank props desc' 'rank residual asc'
err "a second rank line: refused, located" 1 \
  "e.dns:4:1: error: a second 'rank' line; one line lists every key" \
  "$DNC" search e.dns
t "... with a note at the first" grep -q "e.dns:3:1: note: the first 'rank' line" "$tmp/err"
spec 'base T(x) = tanh(x)' 'set grid_points = 101' 'set grid_points = 201'
err "a setting set twice (the last one won, silently): refused" 1 \
  "e.dns:3:5: error: grid_points is set already; a setting is set once" \
  "$DNC" search e.dns
t "... with a note at the first" grep -q "e.dns:2:5: note: 'grid_points' was set here" "$tmp/err"
# 65 stages (of one alternative each: a space of one candidate) was an
# internal error, an assertion, after the spec was read
{ echo 'base T(x) = tanh(x)'; for i in $(seq 65); do echo "stage s$i: compose(T)"; done; } >e.dns
err "a 65th stage: refused, located" 1 \
  "e.dns:66:7: error: a stage beyond the 64 a spec may have" "$DNC" search e.dns -o deep
t "... 64 are measured" sh -c "head -65 e.dns >e64.dns && '$DNC' search e64.dns -o deep -q --top 0 && test -s deep.csv"
# -o - (standard output, elsewhere) wrote -.csv and -.json
spec 'base T(x) = tanh(x)'
err "-o -: a usage error" 2 "dnc: -o takes a prefix of the tables' files (PREFIX.csv, PREFIX.json), which are not standard output" \
  "$DNC" search e.dns -o - --top 0
t "... writing nothing" sh -c '! ls -- -.csv -.json 2>/dev/null'
# -o with its prefix forgotten took the next option for it: --quiet.csv
spec 'base T(x) = tanh(x)'
err "-o followed by an option: a usage error" 2 \
  "dnc: -o needs a prefix for the output files, not the option '--quiet'" \
  "$DNC" search e.dns -o --quiet --top 0
t "... writing nothing" sh -c '! ls -- --quiet.* 2>/dev/null'
"$DNC" search e.dns --output=--quiet --top 0 -q
t "... but --output=--quiet means that prefix" test -s ./--quiet.csv
# a spec whose file name is not UTF-8 (Latin-1's e acute): PREFIX.json
# names it, and had that byte raw, which no JSON reader takes
spec 'base T(x) = tanh(x)'
cp e.dns "$(printf 'l\351.dns')"
"$DNC" search "$(printf 'l\351.dns')" -o latin --top 0 -q
t "a spec's name that is not UTF-8: PREFIX.json is UTF-8 (U+FFFD for the byte)" \
  "$PY" -c 'import json, sys; d = json.load(open("latin.json", encoding="utf-8")); sys.exit(d["spec"] != "l\ufffd.dns")'
cp e.dns 'ü€😀.dns'
"$DNC" search 'ü€😀.dns' -o utf --top 0 -q
t "... and one that is, as it is" \
  "$PY" -c 'import json, sys; d = json.load(open("utf.json", encoding="utf-8")); sys.exit(d["spec"] != "\u00fc\u20ac\U0001f600.dns")'
spec 'base T(x) = tanh(x)'
# the default prefix of the spec '-' was '-': it wrote -.csv and -.json
err "a spec from standard input without -o: a usage error" 2 \
  "^dnc: the spec is read from standard input ('-'), so the tables need a prefix: give -o PREFIX\$" \
  sh -c "\"$DNC\" search - <e.dns"
t "... nothing written" sh -c '[ ! -e ./-.csv ] && [ ! -e ./-.json ] && [ ! -e ./-.journal ]'
sh -c "\"$DNC\" search - -o stdin_spec -q <e.dns" >/dev/null 2>&1
t "... and with -o it runs" test -s stdin_spec.csv
mkdir -p odir
err "-o naming a directory (it wrote odir/.csv and odir/.json)" 2 \
  "-o takes a prefix of the tables' files (PREFIX.csv, PREFIX.json), not the directory 'odir/'" \
  "$DNC" search e.dns -o odir/
t "... nothing written there" sh -c '[ -z "$(ls -A odir)" ]'
err "-o naming a directory without its slash" 2 "not the directory 'odir'" \
  "$DNC" search e.dns -o odir
# PREFIX.csv or PREFIX.json a directory: refused after measuring, with
# PREFIX.journal left behind
mkdir -p tbl.csv tbj.json
err "PREFIX.csv a directory: refused before anything runs" 1 \
  "^dnc: error: cannot write 'tbl.csv': it is a directory\$" "$DNC" search e.dns -o tbl
t "... no journal left" test ! -e tbl.journal
err "PREFIX.json a directory: refused before anything runs" 1 \
  "^dnc: error: cannot write 'tbj.json': it is a directory\$" "$DNC" search e.dns -o tbj
t "... nothing left" sh -c '[ ! -e tbj.journal ] && [ ! -e tbj.csv ]'
spec 'base T(x) = tanh(x)' 'stage s: scale(2'
err "an unclosed list" 1 "e.dns:2:.*error: ',' or ')' expected" "$DNC" search e.dns
# the caret was under the 2, not at the end of the line the message names
t "... the caret at the end of the line, after the 2" sh -c \
  "grep -q '^e.dns:2:17: error: .*expected at the end of the line\$' '$tmp/err' &&
   grep -q '^      |                 ^\$' '$tmp/err'"
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
spec 'base T(x) = tanh(x)' 'score residual(x) = f(x)' 'rank residual asc'
err "a score named as a column of the table" 1 "e.dns:2:7: error: 'residual' is a column of the table; call this score something else" \
  "$DNC" search e.dns
t "... and no tables written" test ! -e e.csv -a ! -e e.json
spec 'base T(x) = tanh(x)' 'score source(x) = f(x)'
err "a score named source" 1 "e.dns:2:7: error: 'source' is a column of the table" "$DNC" search e.dns
# a spec whose name is an output's: it wrote its table over the spec
printf 'base T(x) = tanh(x)\n' >t.csv
cp t.csv t.keep
err "a spec named t.csv, default prefix t: refused" 1 \
  "the output 't.csv' is the input 't.csv': refusing to overwrite it; choose another with -o" \
  "$DNC" search t.csv -q
t "... the spec kept" cmp t.csv t.keep
cp t.csv u.json
err "-o onto the spec's .json: refused" 1 "the output 'u.json' is the input 'u.json'" \
  "$DNC" search u.json -o u -q
t "... the spec kept, and no table written" sh -c 'cmp u.json t.keep && test ! -e u.csv'
spec '# nothing' 'set decades = 4'
err "no base" 1 "e.dns: error: no base function" "$DNC" search e.dns
spec 'base T(x) = tanh(x)' 'base U(x) = erf(x)' 'base V(x) = sin(x)' 'base W(x) = cos(x)' 'base X(x) = x' \
  "stage a: id$(printf ' | scale(%d)' $(seq 1 99))" \
  "stage b: id$(printf ' | shift(%d)' $(seq 1 99))" \
  "stage c: id$(printf ' | gain(%d)' $(seq 1 99))"
err "a space over 4,000,000 candidates: located at the stage" 1 "e.dns:8:7: error: the space holds over 4000000 candidates by stage 'c'" \
  "$DNC" search e.dns
err "a spec that is missing" 1 "cannot open 'none.dns'" "$DNC" search none.dns
err "no spec" 2 "no search spec" "$DNC" search
err "--threads out of range" 2 "--threads needs a whole number from 1" "$DNC" search s.dns --threads 0
tap_done
