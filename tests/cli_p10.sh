#!/usr/bin/env bash
# cli_p10.sh - the command line under sloppy and hostile input: every error
# located, a non-zero status, nothing half-written on standard output.
set -u
. "$(dirname "$0")/tap.bash"
DNC="$B/dnc"

# eval --jit of a function too large for a kernel: refused at its
# definition (as dnc compile refuses it), before the table's header
{
  echo 'fn small(x) = x'
  echo 'fn big(x) {'
  echo '  let x0 = x'
  for i in $(seq 1 3000); do echo "  let x$i = sin(x$((i - 1))) + x$((i - 1))"; done
  echo '  x3000'
  echo '}'
} >"$tmp/big.dn"
err "eval --jit: a kernel too large is a located error" 1 \
  "big.dn:2:1: error: 'big' is too large to compile" \
  "$DNC" eval --jit "$tmp/big.dn" -f small,big 1 2
t "eval --jit: nothing printed before the error" test ! -s "$tmp/out"

# plot: a title or a CSV label with a control character or a byte that is
# not UTF-8 made an SVG no XML reader opens
echo 'fn f(x) = tanh(x)' >"$tmp/f.dn"
err "plot: a title with a control character is refused" 2 \
  "title needs UTF-8 text without control characters (byte 0x01)" \
  "$DNC" plot "$tmp/f.dn" --title "$(printf 'a\001b')" -o "$tmp/t.svg"
t "plot: no SVG written for it" test ! -e "$tmp/t.svg"
err "plot: a title that is not UTF-8 is refused" 2 "(byte 0xFF)" \
  "$DNC" plot "$tmp/f.dn" --title "$(printf 'a\377b')" -o "$tmp/t.svg"
printf 'rank,name,source\n1,"a\001b<&>",fn f(x) = x\n' >"$tmp/r.csv"
"$DNC" plot "$tmp/r.csv" -o "$tmp/r.svg" 2>"$tmp/err"
t "plot: a CSV label with a control character" \
  grep -q 'a&#xFFFD;b&lt;&amp;&gt;' "$tmp/r.svg"
t "plot: no control character in the SVG" \
  bash -c "! LC_ALL=C grep -q \$'\\x01' '$tmp/r.svg'"

# eval: a line of standard input that is not a number, shown in the
# error: a byte that is not UTF-8 went raw to the terminal
printf '\377\303\251\342\202\n' | "$DNC" eval "$tmp/f.dn" >"$tmp/out" 2>"$tmp/err"
t "eval: a stdin line that is not UTF-8 is shown escaped" \
  grep -qF "<stdin>:1: error: not a number: '\\xFFé\\xE2\\x82'" "$tmp/err"

# the source on standard input is '<stdin>' in every message, as in the
# diagnostics ('-' defines 2 functions, said eval)
printf 'fn f(x) = x\nfn g(x) = x\n' >"$tmp/two.dn"
err "eval: '<stdin>' defines 2 functions" 2 "dnc: '<stdin>' defines 2 functions; choose with -f" \
  "$DNC" eval - 1 <"$tmp/two.dn"

# a function named with the wrong case gets the suggestion (-f DYT said
# only "no function 'DYT'")
echo 'fn dyt(x; alpha = 0.5) = tanh(alpha * x)' >"$tmp/dyt.dn"
err "eval -f DYT: did you mean 'dyt'" 2 "no function 'DYT'; did you mean 'dyt'?" \
  "$DNC" eval "$tmp/dyt.dn" -f DYT 1

# a misspelt long option or command gets a suggestion
err "an unknown long option close to one" 2 "unknown option '--funtion'; did you mean '--function'?" \
  "$DNC" eval "$tmp/dyt.dn" --funtion dyt 1
err "an unknown long option with a value" 2 "unknown option '--dtpye=f32'; did you mean '--dtype'?" \
  "$DNC" eval "$tmp/dyt.dn" --dtpye=f32 1
err "an unknown command close to one" 2 "unknown command 'chek'; did you mean 'check'?" \
  "$DNC" chek "$tmp/dyt.dn"

# a line of stray UTF-8 continuation bytes: the first 60 bytes were cut back
# to nothing (the cut stepped back over every "continuation")
head -c 70 /dev/zero | tr '\0' '\200' >"$tmp/cont.txt"; echo >>"$tmp/cont.txt"
"$DNC" eval "$tmp/f.dn" <"$tmp/cont.txt" >"$tmp/out" 2>"$tmp/err"
t "eval: stray continuation bytes are shown, not cut to nothing" \
  grep -qF "not a number: '\\x80\\x80\\x80" "$tmp/err"

# -f with an empty name, and an option of one value given twice: `-f dyt,`
# was -f dyt, and `-f dyt -f derf` kept derf, silently (a helper's audit)
printf 'fn dyt(x; alpha = 0.5) = tanh(alpha * x)\nfn lin(x) = 2 * x\n' \
  >"$tmp/two.dn"
err "-f with a trailing comma: an empty name" 2 \
  "the list of functions 'dyt,' has an empty name" \
  "$DNC" eval "$tmp/two.dn" -f dyt, 1
err "-f with a leading comma" 2 "the list of functions ',dyt' has an empty name" \
  "$DNC" print "$tmp/two.dn" -f ,dyt
err "-f dyt,,lin" 2 "the list of functions 'dyt,,lin' has an empty name" \
  "$DNC" diff "$tmp/two.dn" -f dyt,,lin
err "-f given twice: refused" 2 "-f is given twice ('dyt' and 'lin'); give it once" \
  "$DNC" eval "$tmp/two.dn" -f dyt -f lin 1
err "--dtype given twice: refused" 2 \
  "--dtype is given twice ('f32' and 'f64'); give it once" \
  "$DNC" eval "$tmp/two.dn" -f lin --dtype f32 --dtype f64 1
err "--param with two values for one parameter: refused" 2 \
  "two values for 'alpha' in --param (1 and 2); give one" \
  "$DNC" eval "$tmp/two.dn" -f dyt --param alpha=1 -p alpha=2 1
# these were one 'dnc: error:' line, where every other usage error (fit's
# --fix twice) is 'dnc: MESSAGE' and the usage (docs/cli.md, Exit status)
err "two values for a parameter: 'dnc: MESSAGE', a usage error's form" 2 \
  "^dnc: two values for 'alpha' in --param (1 and 2); give one\$" \
  "$DNC" eval "$tmp/two.dn" -f dyt -p alpha=1 -p alpha=2 1
t "... then the usage" grep -q "^usage: dnc eval" "$tmp/err"
err "an empty name in -f: 'dnc: MESSAGE', a usage error's form" 2 \
  "^dnc: the list of functions 'dyt,,dyt' has an empty name\$" \
  "$DNC" eval "$tmp/two.dn" -f dyt,,dyt 1
t "... then the usage" grep -q "^usage: dnc eval" "$tmp/err"
t "the same value twice is once" sh -c \
  "test \"\$('$DNC' eval '$tmp/two.dn' -f lin -f lin 3)\" = 6"

# -- ends the options: a point -1 and a file named -n.dn after it
t "eval -- -1 2: points" sh -c \
  "test \"\$('$DNC' eval '$tmp/two.dn' -f lin -- -1 2 | tr '\n' ' ')\" = '-2 4 '"
cp "$tmp/two.dn" "$tmp/-n.dn"
ADNC=$(cd "$(dirname "$DNC")" && pwd)/$(basename "$DNC")
t "check -- -n.dn: a file named like an option" sh -c \
  "cd '$tmp' && '$ADNC' check -- -n.dn"
err "without --, -n.dn is an unknown option" 2 "unknown option '-n.dn'" \
  sh -c "cd '$tmp' && '$ADNC' check -n.dn"
# the kernel cache's key names the dnc binary by its absolute path, also
# when it runs through $PATH from another directory (dladdr gave argv[0],
# "dnc", which stat() did not find: "build unknown", and two builds of one
# version shared entries, a rebuilt dnc linking its predecessor's code)
echo 'fn g(x; a = 2) = tanh(a * x)' >"$tmp/kc.dn"
(cd / && PATH="$(dirname "$ADNC"):$PATH" DNC_CACHE=1 \
  DNC_CACHE_DIR="$tmp/kc" dnc eval "$tmp/kc.dn" --jit 1 >/dev/null)
t "a cache entry written by dnc run through \$PATH names its build's file" \
  sh -c "grep -a -q '^build /.*/dnc [0-9]' '$tmp'/kc/*.dko && \
         ! grep -a -q '^build unknown' '$tmp'/kc/*.dko"

# a new build renamed into place while an old process runs but has not
# made its first context: the old process's key named the new file's size
# and time (stat of the path), it wrote its kernels under the new build's
# key, and the new build linked them. The old dnc here waits for its
# source on a FIFO; the new one is the same binary and a byte more.
mkdir "$tmp/bid"
cp "$ADNC" "$tmp/bid/old" && cp "$ADNC" "$tmp/bid/dnc"
mkfifo "$tmp/bid/src.dn"
DNC_CACHE=1 DNC_CACHE_DIR="$tmp/bid/kc" "$tmp/bid/dnc" eval "$tmp/bid/src.dn" \
  --jit 1 >/dev/null &
pid=$!
for _ in $(seq 200); do # until it runs the old file
  case "$(readlink "/proc/$pid/exe")" in "$tmp/bid/dnc"*) break ;; esac
  sleep 0.05
done
cp "$tmp/bid/old" "$tmp/bid/new" && printf 'B' >>"$tmp/bid/new"
mv "$tmp/bid/new" "$tmp/bid/dnc"
echo 'fn g(x; a = 2) = tanh(a * x)' >"$tmp/bid/src.dn"
wait "$pid"
ls "$tmp/bid/kc" >"$tmp/bid/old.ls" 2>/dev/null
echo 'fn g(x; a = 2) = tanh(a * x)' >"$tmp/bid/g.dn"
DNC_CACHE=1 DNC_CACHE_DIR="$tmp/bid/kc" "$tmp/bid/dnc" eval "$tmp/bid/g.dn" \
  --jit 1 >/dev/null
t "a build renamed in while an old one starts: it links no entry of the old's" \
  sh -c "ls '$tmp/bid/kc' | grep -v -x -F -f '$tmp/bid/old.ls' | grep -q ."

# --dump-ir under a file-size limit (ulimit -f) the IR would pass: a
# located error, not SIGXFSZ (status 153, a truncated file)
mkdir -p "$tmp/ir"
# (SIGXFSZ at its default, which a shell started with it ignored keeps)
(ulimit -f 4; exec perl -e '$SIG{XFSZ} = "DEFAULT"; exec @ARGV or die' \
  "$DNC" eval "$tmp/kc.dn" --jit --dump-ir "$tmp/ir" 1) \
  >"$tmp/out" 2>"$tmp/err"
rc=$?
t "--dump-ir past ulimit -f: an error, status 1, not the signal" \
  sh -c "[ $rc -eq 1 ] && grep -q 'cannot write the IR to .*File too large' '$tmp/err'"
t "... and no file cut short at the limit" \
  sh -c "! ls '$tmp/ir' | grep -q ."

# a flag given a value: said so (it was an unknown option)
N="$(dirname "$0")/../examples/norms.dn"
err "check --verbose=1: a flag takes no value" 2 \
  "^dnc: --verbose takes no value, not '1'\$" "$DNC" check --verbose=1 "$N"
err "diff --stats=yes: the same" 2 "^dnc: --stats takes no value, not 'yes'\$" \
  "$DNC" diff --stats=yes "$N"
err "a misspelt flag with a value is still unknown, with a suggestion" 2 \
  "unknown option '--verbos=1'; did you mean '--verbose'?" \
  "$DNC" check --verbos=1 "$N"

tap_done
