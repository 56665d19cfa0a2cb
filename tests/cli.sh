#!/usr/bin/env bash
# cli.sh - the dnc command: output, exit statuses (0 ok, 1 input, 2 usage),
# help and version, eval from arguments and from stdin.
set -u
DNC="${DNC_BUILD:-build}/dnc"
n=0
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# check NAME WANT_STATUS WANT_STDOUT -- CMD...   (stdout compared exactly)
check() {
  local name=$1 want_rc=$2 want_out=$3
  shift 3
  local out rc
  out=$("$@" 2>"$tmp/err")
  rc=$?
  n=$((n + 1))
  if [ "$rc" = "$want_rc" ] && [ "$out" = "$want_out" ]; then
    echo "ok $n - $name"
  else
    echo "not ok $n - $name"
    echo "#   status $rc (want $want_rc)"
    echo "$out" | sed 's/^/#   stdout: /'
    echo "$want_out" | sed 's/^/#   wanted: /'
    sed 's/^/#   stderr: /' "$tmp/err"
    fail=$((fail + 1))
  fi
}

# check_err NAME WANT_STATUS PATTERN -- CMD...  (stderr must match PATTERN)
check_err() {
  local name=$1 want_rc=$2 pat=$3
  shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  n=$((n + 1))
  if [ "$rc" = "$want_rc" ] && grep -q -- "$pat" "$tmp/err"; then
    echo "ok $n - $name"
  else
    echo "not ok $n - $name"
    echo "#   status $rc (want $want_rc), stderr:"
    sed 's/^/#   /' "$tmp/err"
    fail=$((fail + 1))
  fi
}

N=examples/norms.dn
check "eval dyt at 0 1 -1 prints 0 and +-tanh(0.5)" 0 \
  "$(printf '0\n0.46211715726000974\n-0.46211715726000974')" "$DNC" eval $N -f dyt 0 1 -1
check "eval reads values from stdin, skipping blank lines" 0 \
  "$(printf '0\n0.46211715726000974')" sh -c "printf '0\n\n  1  \n' | \"$DNC\" eval $N -f dyt"
check "eval --param overrides a default" 0 "0.7615941559557649" \
  "$DNC" eval $N -f dyt --param alpha=1 1
check "eval -p NAME=V and --param=NAME=V" 0 "$(printf '0.7615941559557649\n0.7615941559557649')" \
  sh -c "\"$DNC\" eval $N -f dyt -p alpha=1 1 && \"$DNC\" eval $N -f dyt --param=alpha=1 1"
check "eval of several functions prints a table" 0 \
  "$(printf 'x\tdyt\tlinear\n2\t0.7615941559557649\t2')" "$DNC" eval $N -f dyt,linear 2
check "eval -f with a repeated name prints the column again" 0 \
  "$(printf 'x\tdyt\tlinear\tdyt\n2\t0.7615941559557649\t2\t0.7615941559557649')" \
  "$DNC" eval $N -f dyt,linear,dyt 2
check "eval -f dyt,dyt: two columns" 0 \
  "$(printf 'x\tdyt\tdyt\n2\t0.7615941559557649\t0.7615941559557649')" "$DNC" eval $N -f dyt,dyt 2
check "eval prints special values" 0 "$(printf 'nan\ninf\n-inf\n-0')" \
  "$DNC" eval $N -f linear nan inf -inf -0
check "eval prints the shortest exact decimal" 0 "0.1" "$DNC" eval $N -f linear 0.1
check "check prints nothing on success" 0 "" "$DNC" check $N
check "check -v lists signatures" 0 "$(printf 'dyt(x; alpha = 0.5)\nderf_pc(x; alpha = 0.5, s[] = 0)')" \
  sh -c "\"$DNC\" check -v $N | grep -E '^(dyt|derf_pc)\\('"
check "check reads standard input with -" 0 "" sh -c "echo 'fn f(x) = x' | \"$DNC\" check -"
check "print -f prints one function" 0 "fn dyt(x; alpha = 0.5) = tanh(alpha * x)" \
  "$DNC" print -f dyt $N
"$DNC" print $N >"$tmp/printed.dn"
check "the printed module checks again and evaluates the same" 0 \
  "$("$DNC" eval $N -f satursin,isru,derf -2 0.3 7)" \
  "$DNC" eval "$tmp/printed.dn" -f satursin,isru,derf -2 0.3 7
printf 'fn g(t; k = 3) = k * t\n' >"$tmp/g.dn"
printf 'fn f(x) = g(x; k = 5) + 1\n' >"$tmp/f.dn"
check "several files form one module: f's call of g in another file is inlined" 0 \
  "fn f(x) = 5 * x + 1" "$DNC" print -f f "$tmp/g.dn" "$tmp/f.dn"
check_err "a call into a file not given is an unknown function" 1 "unknown function 'g'" \
  "$DNC" check "$tmp/f.dn"
check_err "a file given twice: said once, not as duplicate functions" 1 \
  "^dnc: error: '$tmp/./g.dn' is given twice (also as '$tmp/g.dn')\$" \
  "$DNC" check "$tmp/g.dn" "$tmp/./g.dn"
check_err "standard input given twice" 1 "^dnc: error: '-' is given twice\$" \
  sh -c "echo 'fn f(x) = x' | \"$DNC\" check - -"
# '-' is the file on fd 0, also named /dev/stdin: read twice, it had made
# duplicate functions, or (a pipe) an empty second file and exit 0
check_err "standard input given as - and /dev/stdin" 1 \
  "^dnc: error: '/dev/stdin' is given twice (also as '-')\$" \
  sh -c "echo 'fn g(x) = x' | \"$DNC\" check - /dev/stdin"
check_err "... from a file, not a pipe: no duplicate function" 1 \
  "^dnc: error: '/dev/stdin' is given twice (also as '-')\$" \
  sh -c "\"$DNC\" check -v - /dev/stdin <'$tmp/g.dn'"
check_err "... a file named and also redirected to standard input" 1 \
  "^dnc: error: '-' is given twice (also as '$tmp/g.dn')\$" \
  sh -c "\"$DNC\" check '$tmp/g.dn' - <'$tmp/g.dn'"

check_err "no command is a usage error" 2 "no command given" "$DNC"
check_err "an unknown command is a usage error" 2 "unknown command 'frob'" "$DNC" frob
check_err "an unknown option is a usage error" 2 "unknown option '--frob'" "$DNC" check --frob $N
check_err "check without files is a usage error" 2 "no input files" "$DNC" check
check_err "eval without a file is a usage error" 2 "no input file" "$DNC" eval
check_err "eval - without X: a usage error, not an empty success" 2 \
  "the source is read from standard input ('-'), so the values of x must be given as arguments" \
  sh -c "echo 'fn f(x) = x' | \"$DNC\" eval -"
check_err "eval of a file with several functions needs -f" 2 "choose with -f" "$DNC" eval $N 1
check_err "eval of an unknown function names the closest" 2 "no function 'dty'; did you mean 'dyt'?" \
  "$DNC" eval $N -f dty 1
check_err "eval of an unknown parameter is a usage error" 2 "no function evaluated has a parameter 'beta'" \
  "$DNC" eval $N -f dyt --param beta=1 1
check_err "a malformed --param is a usage error" 2 "needs NAME=NUMBER" "$DNC" eval $N -f dyt --param alpha 1
check_err "a non-number X is a usage error" 2 "not a number: 'abc'" "$DNC" eval $N -f dyt abc
check_err "a blank X is not a number" 2 "not a number: '  '" "$DNC" eval $N -f dyt '  '
check_err "a non-number on stdin is an input error with its line" 1 "<stdin>:2: error: not a number: 'abc'" \
  sh -c "printf '1\nabc\n' | \"$DNC\" eval $N -f dyt"
check_err "a NUL byte on stdin makes the line not a number" 1 \
  "<stdin>:2: error: not a number: '2\\\\x00abc'" \
  sh -c "printf '1\n2\\0abc\n3\n' | \"$DNC\" eval $N -f linear"
check "... after the values before it" 0 "1" cat "$tmp/out"
# the line is shown as it is but for control bytes: an escape sequence in
# the data went to the terminal as it was
check "control bytes in a line that is not a number are shown as \\xHH" 1 \
  "<stdin>:1: error: not a number: 'a\\x1B[31mb\\x07\\x09c'" \
  sh -c "printf 'a\\033[31mb\\007\\tc\\n' | \"$DNC\" eval $N -f linear 2>&1"
check "a line cut at 60 bytes is not cut inside a UTF-8 character" 1 \
  "<stdin>:1: error: not a number: '$(printf 'a%.0s' $(seq 59))'" \
  sh -c "printf '%59s\\303\\251b\\n' '' | tr ' ' a | \"$DNC\" eval $N -f linear 2>&1"
check_err "a line of only a NUL byte is not skipped as blank" 1 \
  "<stdin>:1: error: not a number: '\\\\x00'" \
  sh -c "printf '\\0\n3\n' | \"$DNC\" eval $N -f linear"
# a line on stdin is at most 1 MiB, its newline not counted (docs/cli.md)
{ echo; echo 1; head -c 1048575 /dev/zero | tr '\0' ' '; echo 2; } >"$tmp/long1"
{ echo 1; head -c 1048576 /dev/zero | tr '\0' ' '; echo 2; echo 3; } >"$tmp/long2"
check "an empty first line, then a line of 1 MiB on stdin are read" 0 "$(printf '1\n2')" \
  sh -c "\"$DNC\" eval $N -f linear <\"$tmp/long1\""
check_err "a longer line is an input error with its line" 1 \
  "^<stdin>:2: error: line too long (more than 1048576 bytes)\$" \
  sh -c "\"$DNC\" eval $N -f linear <\"$tmp/long2\""
check "... after the values before it" 0 "1" cat "$tmp/out"
check_err "standard input that cannot be read is an input error" 1 \
  "^dnc: error: cannot read '<stdin>': Is a directory\$" sh -c "\"$DNC\" eval $N -f linear </"
check_err "a missing file is an input error" 1 "cannot open '$tmp/none.dn'" "$DNC" check "$tmp/none.dn"
check_err "an error in the source is an input error" 1 "error: unknown name 'y'" \
  sh -c "echo 'fn f(x) = y' | \"$DNC\" check -"

# eval --jit: the kernels against the interpreter from the shell
"$DNC" eval $N -f dyt,derf,dyisru 1 -2.5 0.001 300 >"$tmp/interp"
"$DNC" eval $N -f dyt,derf,dyisru --jit 1 -2.5 0.001 300 >"$tmp/jit"
check "eval --jit (f64) agrees with the interpreter within 2 ulp for dyt, derf, dyisru" 0 "4 rows" \
  sh -c "paste \"$tmp/interp\" \"$tmp/jit\" | awk 'NR > 1 { for (i = 2; i <= 4; i++) { d = \$i - \$(i + 4); if (d < 0) d = -d; a = \$i < 0 ? -\$i : \$i; if (d > 4.5e-16 * a) bad++ } n++ } END { print (bad ? bad \" bad\" : n \" rows\") }'"
check "eval --jit keeps NaN, inf and -0" 0 "$(printf 'nan\n1\n-0')" "$DNC" eval $N -f dyt --jit nan inf -0
check "eval --dtype f32 rounds x and computes in float" 0 "0.46211716532707214" \
  "$DNC" eval $N -f dyt --dtype f32 1
check "eval --dtype bf16 rounds the result to bf16" 0 "0.462890625" "$DNC" eval $N -f dyt --dtype bf16 1
check "eval --dtype f16 rounds the result to f16" 0 "0.46215820312500000" \
  sh -c "\"$DNC\" eval $N -f dyt --dtype f16 1 | awk '{printf \"%.17f\\n\", \$1}'"
check "eval --jit reads stdin too" 0 "$(printf '0.46211715726000974\n-0.7615941559557649')" \
  sh -c "printf '1\n-2\n' | \"$DNC\" eval $N -f dyt --jit"
mkdir -p "$tmp/ir"
check "eval --dump-ir writes the IR before and after optimisation" 0 \
  "$(printf 'dnc1_dyt_f64.after.ll\ndnc1_dyt_f64.before.ll')" \
  sh -c "\"$DNC\" eval $N -f dyt --dump-ir \"$tmp/ir\" 1 >/dev/null && ls \"$tmp/ir\""
check "the dumped IR holds the vector kernels" 0 "4" \
  sh -c "grep -c '^define void @dnck[0-9a-f]*_' \"$tmp/ir/dnc1_dyt_f64.after.ll\""
check_err "an unwritable --dump-ir directory is an input error" 1 \
  "cannot write the IR to '$tmp/none/dnc1_dyt_f64.before.ll'" \
  "$DNC" eval $N -f dyt --dump-ir "$tmp/none" 1
check_err "--dump-ir past the file size limit: an input error, not LLVM's fatal one" 1 \
  "cannot write the IR to '$tmp/ir/dnc1_dyt_f64.before.ll': File too large" \
  sh -c "trap '' XFSZ && ulimit -f 1 && \"$DNC\" eval $N -f dyt --dump-ir \"$tmp/ir\" 1"
check_err "an unknown --dtype is a usage error" 2 "dnc: --dtype is f32, f64, bf16 or f16, not 'f8'" \
  "$DNC" eval $N -f dyt --dtype f8 1

check "dnc --help exits 0" 0 "usage: dnc <command> [options] FILE..." sh -c "\"$DNC\" --help | head -1"
for c in check print eval; do
  check "dnc $c --help exits 0" 0 "usage: dnc $c" sh -c "\"$DNC\" $c --help | head -1 | cut -d' ' -f1-3"
done
V=$(sed -n 's/^#define DNC_VERSION_STRING "\(.*\)"/\1/p' runtime/dnc.h)
check "dnc --version names dnc ($V, dnc.h's) and LLVM 19" 0 "dnc $V LLVM 19" \
  sh -c "\"$DNC\" --version | sed -E 's/^(dnc [0-9.]+) .*(LLVM 19)\\..*/\\1 \\2/'"

# results on standard output that could not be written (a full disk, a
# closed descriptor) exited 0, the output cut short without a word
for c in "check -v $N" "print $N" "eval $N -f dyt 1 2" "diff $N" "--help" \
  "--version" "print --help"; do
  check_err "dnc $c >/dev/full: an input error, saying why" 1 \
    "^dnc: error: cannot write standard output: No space left on device" \
    sh -c "\"$DNC\" $c >/dev/full"
done
check_err "eval from standard input >/dev/full too" 1 \
  "^dnc: error: cannot write standard output: No space left on device" \
  sh -c "printf '1\n2\n' | \"$DNC\" eval $N -f dyt >/dev/full"
check_err "eval of an endless standard input to /dev/full stops (it read forever)" 1 \
  "^dnc: error: cannot write standard output: No space left on device" \
  sh -c "yes 1 | timeout 60 \"$DNC\" eval $N -f dyt >/dev/full"
check_err "dnc print with standard output closed" 1 \
  "^dnc: error: cannot write standard output: Bad file descriptor" \
  sh -c "\"$DNC\" print $N >&-"
check_err "an error in the source keeps its status and its message" 1 \
  "error: unknown name" sh -c "echo 'fn f(x) = y' | \"$DNC\" print - >/dev/full"

echo "1..$n"
[ "$fail" = 0 ]
