#!/usr/bin/env bash
# diagnostics.sh - golden tests for every diagnostic dnc can emit: the stderr
# of `dnc check` and its exit status are compared to the letter (file, line,
# column, source line and caret) with tests/diag/NAME.expected.
#
# A case is tests/diag/NAME.dn, or, for an input that is not a sensible file
# to keep (a NUL byte, invalid UTF-8, 4 MiB, a directory, a missing file,
# standard input, several files), a generator in prepare() below that writes
# it into a temporary directory; that directory is shown as @TMP@ in the
# expected text. stdout must stay empty.
#
#   prove tests/diagnostics.sh              (DNC_BUILD=build/san for ASan)
#   tests/diagnostics.sh --show NAME        what dnc prints now, as expected
set -u
export LC_ALL=C

DNC="${DNC_BUILD:-build}/dnc"
case $DNC in /*) ;; *) DNC="$PWD/$DNC" ;; esac
cd "$(dirname "$0")/.." || exit 1
DIAG=tests/diag

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dnc-diag.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
tmp_re=$(printf '%s' "$tmp" | sed 's/[][\.*^$|]/\\&/g')

# prepare NAME: sets args (the files to check) and input (standard input);
# returns 1 when there is no case NAME.
prepare() {
  args=()
  input=/dev/null
  if [ -f "$DIAG/$1.dn" ]; then
    args=("$DIAG/$1.dn")
    return 0
  fi
  local f="$tmp/$1.dn"
  case $1 in
  nul_byte)
    printf 'fn f(x) = x +\0 1\n' >"$f" ;;
  bad_utf8)
    printf '# ISO-8859-1, not UTF-8: caf\xe9\nfn f(x) = x\n' >"$f" ;;
  bad_utf8_surrogate)
    printf 'fn f(x) = x # a UTF-16 surrogate: \xed\xa0\x80\n' >"$f" ;;
  too_large)
    head -c 4194305 /dev/zero | tr '\0' '#' >"$f" ;;
  stdin_too_large)
    head -c 4194305 /dev/zero | tr '\0' '#' >"$f"
    input=$f
    f=- ;;
  stdin_source)
    printf 'fn f(x; alpha = 1) = tanh(alpah * x)\n' >"$f"
    input=$f
    f=- ;;
  directory)
    mkdir "$f" ;;
  missing_file)
    ;;
  cannot_read)
    f=/proc/self/mem ;; # open succeeds, read fails with EIO (Linux)
  duplicate_across_files)
    printf 'fn f(x) = x\n' >"$tmp/a.dn"
    printf 'fn g(x) = 2 * x\nfn f(x) = -x\n' >"$tmp/b.dn"
    args=("$tmp/a.dn" "$tmp/b.dn")
    return 0 ;;
  recursion_across_files)
    printf 'fn f(x) = g(x) + 1\n' >"$tmp/a.dn"
    printf '# g is in another file\nfn g(x) = 2 * f(x)\n' >"$tmp/b.dn"
    args=("$tmp/a.dn" "$tmp/b.dn")
    return 0 ;;
  *)
    return 1 ;;
  esac
  args=("$f")
}

# actual NAME: dnc's stderr (the temporary directory as @TMP@) and a last
# line "exit: N" into $tmp/actual; its stdout into $tmp/stdout.
actual() {
  "$DNC" check "${args[@]}" <"$input" >"$tmp/stdout" 2>"$tmp/stderr"
  local rc=$?
  { sed "s|$tmp_re|@TMP@|g" "$tmp/stderr"; echo "exit: $rc"; } >"$tmp/actual"
}

if [ "${1:-}" = --show ]; then
  [ $# = 2 ] || { echo "usage: $0 --show NAME" >&2; exit 2; }
  prepare "$2" || { echo "$0: no case '$2'" >&2; exit 2; }
  actual "$2"
  cat "$tmp/actual"
  exit 0
fi

if [ ! -x "$DNC" ]; then
  echo "1..0 # SKIP $DNC is not built"
  exit 0
fi

# every name with an input or an expected file
names=$(for p in "$DIAG"/*.dn "$DIAG"/*.expected; do
          [ -e "$p" ] || continue
          p=${p##*/}
          echo "${p%.*}"
        done | sort -u)

echo "1..$(echo "$names" | wc -l)"
n=0
fail=0
for name in $names; do
  n=$((n + 1))
  exp="$DIAG/$name.expected"
  if ! prepare "$name"; then
    echo "not ok $n - $name: no $DIAG/$name.dn and no generator in $0"
    fail=$((fail + 1))
    continue
  fi
  if [ "$name" = cannot_read ] && [ ! -r /proc/self/mem ]; then
    echo "ok $n - $name # SKIP no /proc/self/mem"
    continue
  fi
  if [ ! -f "$exp" ]; then
    echo "not ok $n - $name: no $exp; see $DIAG/README"
    fail=$((fail + 1))
    continue
  fi
  actual "$name"
  if cmp -s "$exp" "$tmp/actual" && [ ! -s "$tmp/stdout" ]; then
    echo "ok $n - $name"
  else
    echo "not ok $n - $name"
    diff -u "$exp" "$tmp/actual" | sed 's/^/# /'
    if [ -s "$tmp/stdout" ]; then
      echo "# stdout is not empty:"
      head -c 2000 "$tmp/stdout" | sed 's/^/#   /'
    fi
    fail=$((fail + 1))
  fi
  rm -rf "${tmp:?}"/*
done
[ "$fail" = 0 ]
