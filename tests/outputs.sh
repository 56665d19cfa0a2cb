#!/usr/bin/env bash
# outputs.sh - what the commands' outputs replace (issue 20, items 4 and 5):
# all outputs of one `dnc compile` appear together or not at all, and a
# failure leaves the old ones; an output that is the input is refused; a
# symlink's target is replaced, the link kept; a device or FIFO is written
# in place, and the file standard output or error is, through the
# descriptor; a directory or a dangling link is refused (compiler/outfile.c).
set -u
. "$(dirname "$0")/tap.bash"
DNC="$(cd "$B" && pwd)/dnc" # absolute: the test runs in $tmp
cd "$tmp" || exit 1
echo 'fn dyt(x; alpha = 0.5) = tanh(alpha * x)' >dyt.dn
"$DNC" compile --emit=header dyt.dn -o k.h
t "a header written" grep -q 'dnc_dyt_f32_fwd' k.h
echo 'fn other(x) = x' >other.dn
"$DNC" compile dyt.dn -o k.so
cp k.so k.so.orig
mkdir hdir
err "-H naming a directory: refused before the work" 1 "cannot write 'hdir': it is a directory" \
  "$DNC" compile other.dn -o k.so -H hdir
t "... and the old library is still there, unchanged" cmp -s k.so k.so.orig
t "... and no temporaries left beside it" sh -c '! ls -A | grep -q "^\.k"'
cp dyt.dn in.dn
err "-o naming the input: refused" 1 "the output 'in.dn' is the input 'in.dn': refusing to overwrite it" \
  "$DNC" compile in.dn -o in.dn
t "... and the source is untouched" cmp -s in.dn dyt.dn
err "-H naming the input: refused" 1 "the output 'in.dn' is the input 'in.dn'" \
  "$DNC" compile in.dn -o x.so -H in.dn
t "... and no library written either" test ! -e x.so
# an input "-" is the file standard input is: it has no name to compare,
# and `dnc compile - -o in.dn < in.dn` wrote the library over its source
err "-o naming the file standard input is: refused" 1 \
  "the output 'in.dn' is the input '<stdin>': refusing to overwrite it" \
  "$DNC" compile - -o in.dn <in.dn
t "... and the source is untouched" cmp -s in.dn dyt.dn
err "-H naming the file standard input is: refused" 1 \
  "the output 'in.dn' is the input '<stdin>'" "$DNC" compile - -o x.so -H in.dn <in.dn
t "... and no library written either" test ! -e x.so
"$DNC" compile - -o x.so <in.dn
t "compile - -o another file: written" test -s x.so
rm -f x.so
err "plot - -o naming the file standard input is: refused" 1 \
  "the output 'in.dn' is the input '<stdin>'" "$DNC" plot - -o in.dn <in.dn
printf 'x,y\n0,0\n1,0.46\n2,0.76\n' >in.csv
cp in.csv in.csv.orig
err "fit - --points naming the file standard input is: refused" 1 \
  "the output 'in.dn' is the input '<stdin>'" \
  "$DNC" fit - --data in.csv --points in.dn <in.dn
err "fit --data - --points naming the file standard input is: refused" 1 \
  "the output 'in.csv' is the input '<stdin>'" \
  "$DNC" fit in.dn --data - --points in.csv <in.csv
t "... and the sources are untouched" sh -c 'cmp -s in.dn dyt.dn && cmp -s in.csv in.csv.orig'
printf 'base T(x) = tanh(x)\n' >spec.json
cp spec.json spec.orig
err "search - -o onto the file standard input is: refused" 1 \
  "the output 'spec.json' is the input '<stdin>'" "$DNC" search - -o spec -q <spec.json
t "... and the spec is untouched, no table written" \
  sh -c 'cmp -s spec.json spec.orig && test ! -e spec.csv'
err "-o and -H the same file: a usage error" 2 "-o and -H name the same file" \
  "$DNC" compile dyt.dn -o same -H same
ln -s k.h hlink.h
"$DNC" compile --emit=header other.dn -o hlink.h
t "-o a symlink: the link stays a link" test -L hlink.h
t "... and its target holds the new output" grep -q 'dnc_other_f32_fwd' k.h
ln -s nowhere dangling.h
err "-o a dangling symlink: refused" 1 "cannot write 'dangling.h': it is a symbolic link to nothing" \
  "$DNC" compile --emit=header dyt.dn -o dangling.h
t "... and it is left as it was" test -L dangling.h
"$DNC" compile --emit=header dyt.dn -o /dev/null
t "-o /dev/null: written in place, still a character device" test -c /dev/null
mkfifo fifo
timeout 120 cat fifo >from_fifo &
"$DNC" compile --emit=header dyt.dn -o fifo
wait
t "-o a FIFO: written into it, whole" grep -q '^#endif' from_fifo
t "... and still a FIFO" test -p fifo
# -o /dev/stdout with standard output redirected to a file: written
# through the descriptor, after what came before and before what follows
# (renaming over the file lost both)
{ echo before; "$DNC" compile --emit=header dyt.dn -o /dev/stdout; echo after; } >stdout.txt
t "-o /dev/stdout redirected to a file: the header is in it" grep -q '^#endif' stdout.txt
t "... after what the shell wrote before" sh -c 'head -1 stdout.txt | grep -qx before'
t "... and before what it wrote after" sh -c 'tail -1 stdout.txt | grep -qx after'
printf 'x,y\n0,0\n1,0.46\n2,0.76\n' >pts.csv
"$DNC" fit dyt.dn --data pts.csv --format csv --points /dev/stdout >fit.txt
t "fit --points /dev/stdout: the summary row is kept" grep -q '^dyt,pts.csv,3,' fit.txt
t "... and the points follow it" grep -q '^x,y,fit,residual' fit.txt
"$DNC" plot dyt.dn -o /dev/stderr 2>plot.txt
t "plot -o /dev/stderr redirected to a file: the SVG is in it" grep -q '</svg>' plot.txt
"$DNC" compile --emit=header dyt.dn -o - >dash.txt
t "-o -: standard output" grep -q '^#endif' dash.txt
t "... and no file named '-'" test ! -e -
err "plot -o naming its input: refused" 1 "the output 'dyt.dn' is the input 'dyt.dn'" \
  "$DNC" plot dyt.dn -o dyt.dn
t "... and the source is untouched" grep -q '^fn dyt' dyt.dn
# issue 20, item 10: a signal during dnc compile removes its temporaries;
# after SIGKILL the next run removes those of the dead process (and only
# those: a live process's stay)
mkdir -p sigtmp
# 24 functions: several seconds, one object per chunk of functions and
# level (more than the 64 temporaries a list holds), some written when
# the signal comes
for i in $(seq 24); do
  echo "fn s$i(x; a = 0.5) = tanh(a * x + $i) * erf(x)"
done >sig.dn
for sig in INT TERM; do
  TMPDIR=$PWD/sigtmp "$DNC" compile sig.dn -o sig.so -H sig.h &
  pid=$!
  sleep 1
  kill -$sig $pid
  wait $pid
  rc=$?
  want=$((128 + $(kill -l $sig)))
  t "SIG$sig during compile: the signal's status $want ($rc), or done first" \
    test "$rc" = "$want" -o "$rc" = 0
  t "... and no temporaries left, beside the outputs or in TMPDIR" \
    sh -c '! ls -A . sigtmp | grep -q "^\.sig\.\|dnc-compile"'
done
# SIGTERM while the C compiler links: that child is ended and waited for
# (it had run on, an orphan, printing ld's errors after dnc was gone)
TMPDIR=$PWD/sigtmp "$DNC" compile sig.dn -o sig.so -H sig.h &
pid=$!
child=
for i in $(seq 600); do
  child=$(pgrep -P $pid 2>/dev/null | head -1)
  [ -n "$child" ] && break
  sleep 0.05
done
if [ -n "$child" ] && kill -TERM $pid 2>/dev/null; then
  wait $pid
  t "SIGTERM while linking: the C compiler it ran is gone when dnc is" \
    sh -c "! kill -0 $child 2>/dev/null"
else
  wait $pid
  t "# SKIP no C compiler seen running to signal" true
fi
t "... and no temporaries left" \
  sh -c '! ls -A . sigtmp | grep -q "^\.sig\.\|dnc-compile"'
dead=$(sh -c 'echo $$')
touch ".k.so.$dead.AbCdEf" ".k.so.$$.LiVeOn"
mkdir "sigtmp/dnc-compile.$dead.XyZzY1"
touch "sigtmp/dnc-compile.$dead.XyZzY1/level0.o"
TMPDIR=$PWD/sigtmp "$DNC" compile dyt.dn -o k.so
t "after SIGKILL: the next run removes the dead process's temporaries" \
  sh -c "! test -e .k.so.$dead.AbCdEf && ! test -e sigtmp/dnc-compile.$dead.XyZzY1"
t "... and keeps a live process's" test -e ".k.so.$$.LiVeOn"
rm -f ".k.so.$$.LiVeOn"
# a write error (a full disk; here the file size limit, SIGXFSZ ignored)
# is an error naming the output, never LLVM's fatal "IO failure on output
# stream", and leaves no temporary, beside the output or in TMPDIR
small() { (trap '' XFSZ && ulimit -f "$1" && "${@:2}"); } # small KIB CMD...
for e in asm llvm obj; do
  err "--emit=$e past the file size limit: a clear error" 1 \
    "^dnc: error: cannot write 'big.$e': File too large" \
    small 8 "$DNC" compile dyt.dn --emit=$e -o big.$e
  t "... not LLVM's" sh -c "! grep -q 'LLVM ERROR' '$tmp/err'"
  t "... and no output or temporary left" sh -c '! ls -A | grep -q "big"'
done
err "a library whose objects pass the limit in TMPDIR: a clear error" 1 \
  "^dnc: error: cannot write '.*sigtmp/dnc-compile\..*/k0.o': File too large" \
  small 16 env TMPDIR="$PWD/sigtmp" "$DNC" compile dyt.dn -o big.so -H big.h
t "... and no temporaries left, beside the outputs or in TMPDIR" \
  sh -c '! ls -A . sigtmp | grep -q "big\|dnc-compile"'
err "a header past the limit: a clear error" 1 \
  "^dnc: error: cannot write 'big.h': File too large" \
  small 2 "$DNC" compile --emit=header sig.dn -o big.h
t "... and no temporary left" sh -c '! ls -A | grep -q "big"'
# SIGXFSZ at its default: dnc ignores it, so the limit is the same error
# (not a death by the signal, status 153, mid-write)
err "past the file size limit, SIGXFSZ at its default: the same error" 1 \
  "^dnc: error: cannot write 'big.s': File too large" \
  sh -c "trap - XFSZ; ulimit -f 8; exec \"\$0\" compile dyt.dn -S -o big.s" "$DNC"
t "... and no temporary left" sh -c '! ls -A | grep -q "big"'
tap_done
