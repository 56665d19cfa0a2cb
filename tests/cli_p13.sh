#!/usr/bin/env bash
# cli_p13.sh - the command line after round thirteen's audit: an option of
# one value given twice, journal write errors, fit's norms of huge
# residuals, --points naming an input, one error per lexical mistake,
# numbers parsed alike everywhere, dnc compile under a memory limit.
set -u
. "$(dirname "$0")/tap.bash"
DNC="$B/dnc"
N="$(dirname "$0")/../examples/norms.dn"

# an option of one value given twice with two values: the last one won,
# silently, in every command but eval and print's -f and fit's --target
err "plot -f given twice: refused" 2 \
  "^dnc: -f is given twice ('dyt' and 'derf'); give it once\$" \
  "$DNC" plot "$N" -f dyt -f derf -o "$tmp/p.svg"
t "plot -f given twice: nothing written" test ! -e "$tmp/p.svg"
err "plot --range given twice: refused" 2 \
  "^dnc: --range is given twice ('-1:1' and '-2:2'); give it once\$" \
  "$DNC" plot "$N" -f dyt --range -1:1 --range=-2:2 -o "$tmp/p.svg"
err "compile --cpu given twice: refused" 2 \
  "^dnc: --cpu is given twice ('znver4' and 'x86-64-v3'); give it once\$" \
  "$DNC" compile "$N" -S --cpu znver4 --cpu x86-64-v3 -o "$tmp/k.s"
err "compile -O0 -O3: refused" 2 \
  "^dnc: -O is given twice ('-O0' and '-O3'); give it once\$" \
  "$DNC" compile "$N" -O0 -O3 -S -o "$tmp/k.s"
t "compile: nothing written" test ! -e "$tmp/k.s"
err "compile --target given twice: refused" 2 \
  "^dnc: --target is given twice ('a' and 'b'); give it once\$" \
  "$DNC" compile "$N" --target a --target=b -o "$tmp/k.s"
for opt in --seed --eps --scale --reach; do
  err "fit $opt given twice: refused" 2 \
    "^dnc: $opt is given twice ('1' and '2'); give it once\$" \
    "$DNC" fit "$N" -f dyt "$opt" 1 "$opt" 2
done
err "fit --steps given twice: refused" 2 \
  "^dnc: --steps is given twice ('64' and '65'); give it once\$" \
  "$DNC" fit "$N" -f dyt --steps 64 --steps 65
err "search --top given twice: refused" 2 \
  "^dnc: --top is given twice ('1' and '2'); give it once\$" \
  "$DNC" search "$tmp/none.dns" --top 1 --top 2
err "diff --order given twice: refused" 2 \
  "^dnc: --order is given twice ('1' and '2'); give it once\$" \
  "$DNC" diff "$N" --order 1 --order 2
t "compile -O3 -O3: the same value twice is once" \
  "$DNC" compile "$N" -O3 -O3 -S -o "$tmp/k.s"
t "plot --range the same twice is once" \
  "$DNC" plot "$N" -f dyt --range -1:1 --range -1:1 -o "$tmp/p.svg"
t "repeatable: plot -p for two parameters" \
  "$DNC" plot "$N" -f derf -p alpha=1 -p shift=2 -o "$tmp/p.svg"
t "repeatable: fit --init for two parameters" sh -c \
  "'$DNC' fit '$N' -f derf --target layernorm --init alpha=1 --init shift=0 --steps 64 >/dev/null"
err "a value missing at the end is that error, not 'given twice'" 2 \
  "^dnc: --seed needs a whole number from 0 to 2^64 - 1, not ''\$" \
  "$DNC" fit "$N" -f dyt --seed 1 --seed

# a journal write cut short by the file-size limit: the error said errno
# as a short write left it, stale ("Numerical result out of range")
cat >"$tmp/s.dns" <<'DNS'
base T(x) = tanh(x)
base E(x) = erf(x)
stage scale: id | scale(0.5, 2) | shift(0.5, -1)
stage outer: id | compose(T) | times(E) | mix(0.5)
set grid_points = 201
score near_tanh(x) = abs(f(x) - tanh(x))
rank props desc, near_tanh asc
DNS
err "search: a journal past ulimit -f says why" 1 \
  "^dnc: error: cannot write '$tmp/uf.journal': File too large\$" \
  sh -c "ulimit -f 1; exec '$DNC' search '$tmp/s.dns' -q -o '$tmp/uf'"
t "search: no tables after the failed journal" test ! -e "$tmp/uf.csv"

# fit: residuals near DBL_MAX summed to inf in double, a mean |r| of inf
# (json null, csv inf) beside a max |r| of 1e308
printf 'x,y\n1e308,1e308\n-1e308,-1e308\n1,1\n' >"$tmp/big.csv"
"$DNC" fit "$N" -f dyt --data "$tmp/big.csv" >"$tmp/out" 2>"$tmp/err"
t "fit: the mean |r| of huge residuals is finite" \
  grep -q "^residual: mean |r| 6.66667e+307, max |r| 1e+308," "$tmp/out"
"$DNC" fit "$N" -f dyt --data "$tmp/big.csv" --format json >"$tmp/out"
t "fit --format json: mean_abs_residual a number, not null" \
  grep -q '"mean_abs_residual": 6.66666666666666[0-9]e+307,' "$tmp/out"

# fit --points naming an input: refused only after the fit ran and its
# report was printed
printf 'x,y\n1,0.5\n2,0.8\n3,0.9\n' >"$tmp/d.csv"
cp "$tmp/d.csv" "$tmp/d.orig"
cp "$N" "$tmp/n.dn"
err "fit --points naming --data: refused" 1 \
  "^dnc: error: the output '$tmp/d.csv' is the input '$tmp/d.csv': refusing" \
  "$DNC" fit "$tmp/n.dn" -f dyt --data "$tmp/d.csv" --points "$tmp/d.csv"
t "fit --points naming --data: nothing printed" test ! -s "$tmp/out"
t "fit --points naming --data: the data kept" cmp "$tmp/d.csv" "$tmp/d.orig"
err "fit --points naming the source: refused" 1 \
  "^dnc: error: the output '$tmp/n.dn' is the input '$tmp/n.dn': refusing" \
  "$DNC" fit "$tmp/n.dn" -f dyt --data "$tmp/d.csv" --points "$tmp/n.dn"
t "fit --points naming the source: nothing printed" test ! -s "$tmp/out"
err "fit --points naming a directory: refused before the fit" 1 \
  "^dnc: error: cannot write '$tmp': it is a directory" \
  "$DNC" fit "$tmp/n.dn" -f dyt --data "$tmp/d.csv" --points "$tmp"
t "fit --points naming a directory: nothing printed" test ! -s "$tmp/out"

# numbers: a NUL shown as \0 before a digit read as an octal escape
printf 'fn g(x) = x\n' >"$tmp/g.dn"
err "eval: a NUL byte is shown as \\x00" 1 \
  "^<stdin>:1: error: not a number: '1\\\\x002'\$" \
  sh -c "printf '1\\0002\\n' | '$DNC' eval '$tmp/g.dn'"
err "search --top out of range: the range stated" 2 \
  "^dnc: --top needs a whole number from 0 to 1000000, not '99999999999'\$" \
  "$DNC" search "$tmp/s.dns" --top 99999999999
err "diff --order ' 3': leading white space refused, as trailing is" 2 \
  "^dnc: --order needs a number from 1 to 16, not ' 3'\$" \
  "$DNC" diff "$N" --order ' 3'
err "diff --order '3 '" 2 "^dnc: --order needs a number from 1 to 16, not '3 '\$" \
  "$DNC" diff "$N" --order '3 '
err "fit --seed ' -1': not 2^64 - 1" 2 \
  "^dnc: --seed needs a whole number from 0 to 2^64 - 1, not ' -1'\$" \
  "$DNC" fit "$N" -f dyt --target layernorm --seed ' -1'
err "fit --x ' 1': not column 1" 1 "no column ' 1'" \
  "$DNC" fit "$N" -f dyt --data "$tmp/d.csv" --x ' 1'
t "diff --order +2: a sign is a number's" sh -c "'$DNC' diff '$N' -f dyt --order +2 >/dev/null"

# dnc compile out of memory: LLVM cannot recover (std::bad_alloc ends the
# process), which was SIGABRT, status 134, temporaries left beside the
# output and in TMPDIR. An abort is now an error with them removed, and
# under ulimit -v the threads are no more than the limit holds.
mkdir -p "$tmp/ctmp" "$tmp/cout"
for i in $(seq 24); do
  echo "fn s$i(x; a = 0.5) = tanh(a * x + $i) * erf(x)"
done >"$tmp/sig.dn"
no_temps() {
  ! ls -A "$tmp/cout" "$tmp/ctmp" | grep -v "^/\|^$" | grep -q . ||
    { ls -lAR "$tmp/cout" "$tmp/ctmp" | sed "s/^/#   /"; false; }
}
TMPDIR="$tmp/ctmp" "$DNC" compile "$tmp/sig.dn" -o "$tmp/cout/k.so" \
  2>"$tmp/err" &
pid=$!
sleep 1
kill -ABRT $pid
wait $pid
rc=$?
t "SIGABRT during compile: status 1 ($rc), or done first" \
  test "$rc" = 1 -o "$rc" = 0
if [ "$rc" = 1 ]; then
  t "... said as an error" grep -q \
    "^dnc: error: the compilation aborted (out of memory in LLVM, or the error above); no output written\$" \
    "$tmp/err"
  t "... and no temporaries left, beside the output or in TMPDIR" no_temps
else
  t "... said as an error # skip compile finished first" true
  t "... and no temporaries left # skip compile finished first" true
fi
rm -rf "$tmp/cout" "$tmp/ctmp"; mkdir "$tmp/cout" "$tmp/ctmp"
case "$B" in
*san*) # ASan reserves terabytes of address space: no ulimit -v
  for k in 1 2 3 4 5 6; do t "ulimit -v $k # skip under a sanitizer" true; done ;;
*)
  # 16 threads under 1 GB: each thread's LLVM and malloc arena is some
  # 74 MB, and the 16 ran out (aot.c's AOT_THREAD_BYTES)
  (ulimit -v 1000000; DNC_NUM_THREADS=16 TMPDIR="$tmp/ctmp" \
    exec "$DNC" compile "$N" -o "$tmp/cout/vt.so") 2>"$tmp/err"
  t "compile, 16 threads under ulimit -v 1000000: fewer threads, done" \
    test $? = 0 -a -s "$tmp/cout/vt.so"
  rm -rf "$tmp/cout" "$tmp/ctmp"; mkdir "$tmp/cout" "$tmp/ctmp"
  # too little memory for even one thread; where the limit is too low
  # for dnc to start at all (127), a little more
  for v in 170000 185000 200000 215000 230000; do
    (ulimit -v $v; TMPDIR="$tmp/ctmp" \
      exec "$DNC" compile "$N" -c -o "$tmp/cout/vo.o") 2>"$tmp/err"
    rc=$?
    [ $rc = 127 ] || break
  done
  t "compile -c out of memory (ulimit -v $v): status 1 ($rc)" test $rc = 1
  t "... said as an error" grep -q \
    "^dnc: error: the compilation aborted (out of memory in LLVM" "$tmp/err"
  t "... nothing written, no temporaries" no_temps
  rm -rf "$tmp/cout" "$tmp/ctmp"; mkdir "$tmp/cout" "$tmp/ctmp"
  (ulimit -v $v; DNC_NUM_THREADS=16 TMPDIR="$tmp/ctmp" \
    exec "$DNC" compile "$N" -o "$tmp/cout/vt.so") 2>"$tmp/err"
  rc=$?
  t "compile of a library out of memory: status 1 ($rc)" test $rc = 1
  t "... no temporaries" no_temps
  ;;
esac

tap_done
