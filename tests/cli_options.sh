#!/usr/bin/env bash
# cli_options.sh - option values across the commands: negative numbers,
# '-', values after '=', and -w, which main.c reads before the command's
# options are parsed.
set -u
. "$(dirname "$0")/tap.bash"
DNC="$B/dnc"
N="$(dirname "$0")/../examples/norms.dn"

# values that start with '-' and are no option are values
t "eval: negative X and -p with a negative value" \
  test "$("$DNC" eval "$N" -f dyt -p alpha=-1 -2 -- -0.5)" \
  = "$(printf '0.9640275800758169\n0.46211715726000974')"
t "plot --range of negative numbers, --title starting with '-'" \
  "$DNC" plot "$N" -f dyt --range -5:-1 --title -neg- -o "$tmp/a.svg"
t "plot --title=-o, an option's name after '='" \
  "$DNC" plot "$N" -f dyt --title=-o -o "$tmp/b.svg"
printf -- '-x,-y\n-1,-0.46\n0,0\n1,0.46\n' >"$tmp/p.csv"
t "fit: columns named -x and -y" \
  "$DNC" fit "$N" -f dyt --data "$tmp/p.csv" --x -x --y -y \
  --bounds alpha=-2:2
t "compile --output=-c.h, a file name like an option after '='" \
  bash -c "cd '$tmp' && '$PWD/$DNC' compile '$PWD/$N' --emit=header \
    --output=-c.h && test -s ./-c.h"

# -w after --: a file named -w. It was taken for -w, dropped: 'dnc check
# -- -w' said 'no input files', and 'dnc check a.dn -- -w' checked a.dn
# alone, with status 0
printf 'fn f(x) = tanh(x)\n' >"$tmp/ok.dn"
printf 'fn g(x) = y\n' >"$tmp/-w"
printf 'fn h(x) = 2 * x\n' >"$tmp/--no-warnings"
err "check -- -w: the file -w is checked" 1 "^-w:1:11: error: unknown name 'y'" \
  bash -c "cd '$tmp' && '$PWD/$DNC' check ok.dn -- -w"
err "check -- --no-warnings: the file --no-warnings is checked" 1 \
  "^--no-warnings:1:4: error: duplicate function 'f'" \
  bash -c "cd '$tmp' && cp ok.dn ./--no-warnings && \
    '$PWD/$DNC' check ok.dn -- --no-warnings"
printf 'fn warn(x; a = 1) = x\n' >"$tmp/warn.dn"
t "check: -w before -- still hides warnings" \
  test -z "$("$DNC" check -w "$tmp/warn.dn" -- 2>&1)"
err "check: a -w after -- hides nothing" 0 "warning: parameter 'a' is never used" \
  bash -c "cd '$tmp' && printf 'fn w(x) = x\n' >./-w && \
    '$PWD/$DNC' check warn.dn -- -w"

# -w as the next argument's value is an option taken for a value, as
# any other (--title -w was the title '' or took the next argument)
err "plot --title -w: refused" 2 \
  "^dnc: --title needs a value, not the option '-w' (to mean that value: --title=-w)\$" \
  "$DNC" plot "$N" -f dyt -o "$tmp/c.svg" --title -w
t "plot --title -w: nothing written" test ! -e "$tmp/c.svg"
err "plot -o -w: refused" 2 \
  "^dnc: -o needs a file name, not the option '-w' (to mean that value: --output=-w)\$" \
  "$DNC" plot "$N" -f dyt -o -w
t "plot --title=-w: the title" \
  "$DNC" plot "$N" -f dyt --title=-w -o "$tmp/d.svg"
t "plot --title=-w: in the image" grep -q '>-w<' "$tmp/d.svg"

# an option taken for the value of one whose value a function reads (not
# only a text option's): plot -f -o out.svg was the functions '-o' and a
# second input 'out.svg'; compile --cpu -S an unknown CPU, status 1;
# --range -o, --param --jit, --init --gain each its own error
err "plot -f -o: an option taken for the functions" 2 \
  "^dnc: -f needs function names, not the option '-o' (to mean that value: --function=-o)\$" \
  "$DNC" plot "$N" -f -o "$tmp/e.svg"
t "plot -f -o: nothing written" test ! -e "$tmp/e.svg"
err "compile --cpu -S: an option taken for the CPU" 2 \
  "^dnc: --cpu needs a CPU name, not the option '-S' (to mean that value: --cpu=-S)\$" \
  "$DNC" compile "$N" --cpu -S -o "$tmp/k.s"
err "compile --emit -c" 2 \
  "^dnc: --emit needs so, obj, asm, llvm or header, not the option '-c'" \
  "$DNC" compile "$N" --emit -c -o "$tmp/k.o"
t "compile: nothing written" test ! -e "$tmp/k.s" -a ! -e "$tmp/k.o"
err "plot --range -o" 2 \
  "^dnc: --range needs A:B with finite A < B, not the option '-o'" \
  "$DNC" plot "$N" -f dyt --range -o "$tmp/e.svg"
err "eval -p --jit" 2 "^dnc: --param needs NAME=NUMBER, not the option '--jit'" \
  "$DNC" eval "$N" -f dyt -p --jit 1
err "fit --init --gain" 2 \
  "^dnc: --init needs NAME=NUMBER (a finite number), not the option '--gain'" \
  "$DNC" fit "$N" -f dyt --data "$tmp/p.csv" --init --gain
t "fit: --bounds, --init of negative numbers are values" \
  "$DNC" fit "$N" -f dyt --data "$tmp/p.csv" --x -x --y -y \
  --bounds alpha=-3:-0.1 --init alpha=-2

# fit --points in a directory that is not there: found once the fit had
# run and printed its results; now before, so that nothing is printed
err "fit --points in a missing directory: refused first" 1 \
  "^dnc: error: cannot write '$tmp/none/p.csv': No such file or directory\$" \
  "$DNC" fit "$N" -f dyt --data "$tmp/p.csv" --x -x --y -y \
  --points "$tmp/none/p.csv"
t "fit --points in a missing directory: nothing printed" test ! -s "$tmp/out"
err "fit --points under a file: refused first" 1 \
  "^dnc: error: cannot write '$tmp/p.csv/q.csv': Not a directory\$" \
  "$DNC" fit "$N" -f dyt --data "$tmp/p.csv" --x -x --y -y \
  --points "$tmp/p.csv/q.csv"
t "fit --points under a file: nothing printed" test ! -s "$tmp/out"

tap_done
