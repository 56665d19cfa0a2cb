# tap.bash - what the shell tests share (sourced, not run: prove runs
# tests/*.sh only): the build directory $B, a temporary directory $tmp
# removed on exit, and TAP lines.
#   t NAME CMD...   one test, passing when CMD succeeds
#   tap_done        the plan; the script's status
B="${DNC_BUILD:-build}"
n=0
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

t() {
  n=$((n + 1))
  if "${@:2}"; then
    echo "ok $n - $1"
  else
    echo "not ok $n - $1"
    fail=$((fail + 1))
  fi
}

tap_done() {
  echo "1..$n"
  [ "$fail" = 0 ]
}
