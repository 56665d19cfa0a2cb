#!/usr/bin/env bash
# badinput.sh - hostile input gets a located error and exit status 1: never
# a crash, a hang, or output on stdout. Inputs are generated here.
set -u
DNC="${DNC_BUILD:-build}/dnc"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fail=0

# bad NAME FILE PATTERN: `dnc check FILE` exits 1 within 60 s, prints nothing
# on stdout, and its stderr matches PATTERN (a grep -E expression).
bad() {
  local name=$1 file=$2 pat=$3
  timeout 60 "$DNC" check "$file" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  n=$((n + 1))
  if [ "$rc" = 1 ] && [ ! -s "$tmp/out" ] && grep -Eq -- "$pat" "$tmp/err"; then
    echo "ok $n - $name: error, exit 1"
  else
    echo "not ok $n - $name: status $rc (want 1; 124 is a hang, >128 a crash)"
    head -c 2000 "$tmp/err" | sed 's/^/#   /'
    fail=$((fail + 1))
  fi
}

# good NAME FILE: a large but valid input is accepted, in time.
good() {
  local name=$1 file=$2
  timeout 60 "$DNC" check "$file" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  n=$((n + 1))
  if [ "$rc" = 0 ]; then
    echo "ok $n - $name: accepted"
  else
    echo "not ok $n - $name: status $rc"
    head -c 2000 "$tmp/err" | sed 's/^/#   /'
    fail=$((fail + 1))
  fi
}

repeat() { # repeat STRING COUNT
  awk -v s="$1" -v n="$2" 'BEGIN { for (i = 0; i < n; i++) printf "%s", s }'
}

: >"$tmp/empty.dn"
bad "an empty file" "$tmp/empty.dn" "empty.dn: error: no functions are defined"

printf '# only a comment, no newline at the end' >"$tmp/comment.dn"
bad "a file with only a comment" "$tmp/comment.dn" "no functions are defined"

printf 'fn f(x) = x # a comment at the end of the file, no newline' >"$tmp/c2.dn"
good "a comment running to the end of the file" "$tmp/c2.dn"

head -c 10485760 /dev/zero | tr '\0' 'x' >"$tmp/big.dn"
bad "a 10 MB file" "$tmp/big.dn" "error: .*big.dn' is too large: 10485760 bytes, at most 4194304"

{ printf 'fn f(x) = '; repeat '(' 100000; printf 'x'; repeat ')' 100000; echo; } >"$tmp/parens.dn"
bad "100,000-deep parentheses" "$tmp/parens.dn" "parens.dn:1:[0-9]+: error: expression nested too deeply"

{ printf 'fn f(x) = '; repeat '-' 100000; echo 'x'; } >"$tmp/minus.dn"
bad "100,000 unary minus signs" "$tmp/minus.dn" "error: expression nested too deeply"

{ printf 'fn f(x) = x'; repeat '^x' 100000; echo; } >"$tmp/pow.dn"
bad "a 100,000-long right-associative power chain" "$tmp/pow.dn" "error: expression nested too deeply"

{ printf 'fn f(x) = x'; repeat '+x' 100000; echo; } >"$tmp/sum.dn"
bad "a 100,000-term left-associative sum" "$tmp/sum.dn" "error: expression nested too deeply"

{ printf 'fn f(x) = '; repeat 'if x > 0 then x else ' 20000; echo 'x'; } >"$tmp/ifs.dn"
bad "20,000 nested if-else" "$tmp/ifs.dn" "error: expression nested too deeply"

{ echo 'fn f0(x) = x + 1'; for i in $(seq 1 200); do echo "fn f$i(x) = f$((i - 1))(x) * 2"; done; } >"$tmp/calls.dn"
bad "a chain of 200 nested calls" "$tmp/calls.dn" "error: calls nested too deeply"

{ echo 'fn f(x) {'; echo '  let u0 = x'; for i in $(seq 1 12000); do echo "  let u$i = u$((i - 1)) + 1"; done; echo '  u12000'; echo '}'; } >"$tmp/lets.dn"
bad "a chain of 12,000 lets" "$tmp/lets.dn" "error: 'f' is too deep: once lets and calls are resolved"

printf 'fn f(x) = x\0 + 1\n' >"$tmp/nul.dn"
bad "a NUL byte" "$tmp/nul.dn" "nul.dn:1:12: error: NUL byte in source text"

printf 'fn f(x) = x # caf\xe9\n' >"$tmp/latin1.dn"
bad "invalid UTF-8" "$tmp/latin1.dn" "latin1.dn:1:18: error: invalid UTF-8: byte 0xE9"

printf 'fn f(x) = x\xed\xa0\x80\n' >"$tmp/surrogate.dn"
bad "a UTF-8 encoded surrogate" "$tmp/surrogate.dn" "error: invalid UTF-8: byte 0xED"

printf 'fn f(x) = x # caf\xc3\xa9\nfn g(x) = \xc3\xa9\n' >"$tmp/utf8.dn"
bad "valid UTF-8 outside a comment" "$tmp/utf8.dn" "utf8.dn:2:11: error: unexpected character 'é'"

# a UTF-8 byte order mark, as some editors write: skipped at the start,
# counted by no column, an error anywhere else
printf '\xef\xbb\xbffn f(x) = x\n' >"$tmp/bom.dn"
good "a UTF-8 byte order mark at the start" "$tmp/bom.dn"
printf '\xef\xbb\xbffn f(x) = y\n' >"$tmp/bomerr.dn"
bad "an error after a byte order mark: its column" "$tmp/bomerr.dn" "bomerr.dn:1:11: error: unknown name 'y'"
n=$((n + 1))
if grep -qx '    1 | fn f(x) = y' "$tmp/err" && grep -qx '      |           ^' "$tmp/err"; then
  echo "ok $n - ... the line shown without the mark, the caret under 'y'"
else
  echo "not ok $n - ... the line shown without the mark, the caret under 'y'"
  sed 's/^/#   /' "$tmp/err"
  fail=$((fail + 1))
fi
printf 'fn f(x) = \xef\xbb\xbfx\n' >"$tmp/bommid.dn"
bad "a byte order mark after the start" "$tmp/bommid.dn" "bommid.dn:1:11: error: unexpected character"

# 64 parameters are accepted, a 65th is the error, at it
{ printf 'fn f(x'; for i in $(seq 1 64); do printf '%s p%d = 1' "$([ $i = 1 ] && echo ';' || echo ',')" $i; done; printf ') = x\n'; } >"$tmp/p64.dn"
good "64 parameters" "$tmp/p64.dn"
sed 's/) = x/, p65 = 1) = x/' "$tmp/p64.dn" >"$tmp/p65.dn"
bad "65 parameters" "$tmp/p65.dn" "p65.dn:1:[0-9]+: error: too many parameters: a function has at most 64"

printf 'fn f(x) {\n  let u = x\n  u\n' >"$tmp/block.dn"
bad "an unterminated block" "$tmp/block.dn" "block.dn:3:4: error: unexpected end of file, expected '}'"

printf 'fn f(x) = (x + 1\n' >"$tmp/paren.dn"
bad "an unterminated parenthesis" "$tmp/paren.dn" "paren.dn:1:17: error: unexpected end of file"

{ printf 'fn f(x) = x * 1.'; repeat 1 398; echo; } >"$tmp/digits.dn"
bad "a 400-digit literal" "$tmp/digits.dn" "digits.dn:1:15: error: numeric literal is 400 characters long"

printf 'fn f(x) = x * 1e999\n' >"$tmp/huge.dn"
bad "a literal that overflows double" "$tmp/huge.dn" "huge.dn:1:15: error: number '1e999' is too large for a double"

printf 'fn f(x) = x * 1e-999\n' >"$tmp/tiny.dn"
bad "a literal that underflows to zero" "$tmp/tiny.dn" "tiny.dn:1:15: error: number '1e-999' is too small"

bad "a missing file" "$tmp/none.dn" "error: cannot open '.*none.dn': No such file or directory"

mkdir "$tmp/dir.dn"
bad "a directory given as a file" "$tmp/dir.dn" "error: '.*dir.dn' is a directory"

head -c 100000 /dev/urandom >"$tmp/random.dn"
bad "random bytes" "$tmp/random.dn" "random.dn:[0-9]+:[0-9]+: error:"

{ for i in $(seq 1 60); do echo "fn f$i(x) = y$i"; done; } >"$tmp/many.dn"
bad "many errors are capped" "$tmp/many.dn" "more errors not shown"

{ for i in $(seq 1 50000); do echo "fn f$i(x; a = $i) = tanh(a * x) + f$(( (i % 7) + 1 ))_(x)"; done; } | sed 's/f[0-9]*_(x)/x/' >"$tmp/valid.dn"
good "a 2 MB file of 50,000 valid functions" "$tmp/valid.dn"

echo "1..$n"
[ "$fail" = 0 ]
