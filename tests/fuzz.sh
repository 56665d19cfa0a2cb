#!/usr/bin/env bash
# fuzz.sh - the front end's libFuzzer target in every `make test`, so that
# it cannot rot (issue 20): the committed corpus (examples, diagnostics,
# tests/fuzz/seeds, tests/fuzz/regressions) replayed through the target
# built with the project's compiler (build/tests/fuzz_replay; under ASan
# and UBSan in `make test SANITIZE=1`); then, where clang-19 and libFuzzer
# are installed (tools/deps.sh installs them), `make fuzz-build` and
# a short fixed-budget run: DNC_FUZZ_SECONDS (default 20; 0 skips it), in
# the plain build only, from a copy of the corpus.
set -u
. "$(dirname "$0")/tap.bash"
corpus=(examples/*.dn tests/diag/*.dn tests/fuzz/seeds/*.dn tests/fuzz/regressions/*.dn)
"$B/tests/fuzz_replay" "${corpus[@]}" >"$tmp/replay" 2>"$tmp/err"
rc=$?
t "the corpus (${#corpus[@]} inputs) replayed through the fuzz target" test $rc = 0
[ $rc = 0 ] || sed 's/^/#   /' "$tmp/err" | tail -20
t "... every input ran" test "$(grep -c '^ok ' "$tmp/replay")" = "${#corpus[@]}"

secs=${DNC_FUZZ_SECONDS:-20}
rt=$(clang-19 -print-resource-dir 2>/dev/null)/lib/linux/libclang_rt.fuzzer-x86_64.a
case "$B" in
*san* | *tsan*) why="the fuzz run is made once, in the plain build's suite" ;;
*) why= ;;
esac
if [ -z "$why" ] && [ "$secs" = 0 ]; then why="DNC_FUZZ_SECONDS=0"; fi
if [ -z "$why" ] && ! [ -f "$rt" ]; then
  why="no clang-19 with libFuzzer (sh tools/deps.sh installs them)"
fi
if [ -n "$why" ]; then
  echo "ok $((n += 1)) # SKIP libFuzzer: $why"
  echo "ok $((n += 1)) # SKIP libFuzzer: $why"
else
  make --no-print-directory -s fuzz-build >"$tmp/build" 2>&1
  t "make fuzz-build links the libFuzzer target" test -x build/fuzz/fuzz_frontend
  mkdir -p "$tmp/corpus"
  cp "${corpus[@]}" "$tmp/corpus/"
  # -timeout=60, not make fuzz's 10: an input that loops forever is still
  # caught, while a slow but bounded one (the wide-call inputs of the corpus,
  # under ASan, beside another test on a loaded 2-core machine) is not
  # reported as a hang.
  (cd "$tmp" && "$OLDPWD/build/fuzz/fuzz_frontend" -max_total_time="$secs" \
    -max_len=4096 -timeout=60 -rss_limit_mb=2048 \
    -dict="$OLDPWD/tests/fuzz/dnc.dict" corpus) >"$tmp/fuzz" 2>&1
  rc=$?
  t "libFuzzer for ${secs} s: nothing found ($(grep -o 'Done [0-9]* runs' "$tmp/fuzz"))" test $rc = 0
  [ $rc = 0 ] || grep -E 'ERROR|SUMMARY|Test unit written|==' "$tmp/fuzz" | head -20 | sed 's/^/#   /'
fi
tap_done
