# tap.bash - what the shell tests share (sourced, not run: prove runs
# tests/*.sh only): the build directory $B, a temporary directory $tmp
# removed on exit, and TAP lines.
#   t NAME CMD...   one test, passing when CMD succeeds
#   err NAME STATUS PATTERN CMD...   one test of an error
#   tap_done        the plan; the script's status
B="${DNC_BUILD:-build}"
n=0
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# the kernel cache: off unless the caller turned it on, never the user's
export DNC_CACHE="${DNC_CACHE:-0}" XDG_CACHE_HOME="$tmp/xdg-cache"
unset DNC_CACHE_DIR

t() {
  n=$((n + 1))
  if "${@:2}"; then
    echo "ok $n - $1"
  else
    echo "not ok $n - $1"
    fail=$((fail + 1))
  fi
}

# err NAME STATUS PATTERN CMD...: CMD exits with STATUS and its stderr
# matches PATTERN (grep); stdout and stderr are left in $tmp/out, $tmp/err
err() {
  local name=$1 want=$2 pat=$3
  shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" = "$want" ] && grep -q -- "$pat" "$tmp/err"; then
    t "$name" true
  else
    t "$name" false
    echo "#   status $rc (want $want), stderr:"
    sed 's/^/#   /' "$tmp/err"
  fi
}

tap_done() {
  echo "1..$n"
  [ "$fail" = 0 ]
}
