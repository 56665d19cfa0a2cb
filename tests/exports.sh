#!/usr/bin/env bash
# exports.sh - libdnc.so exports exactly the public API: the functions
# runtime/dnc.h declares (DNC_API), nothing of the compiler's internals or
# of the command line (cli/ is linked into build/dnc only). dnc_aot.h's
# one function is the AOT libraries' export, not libdnc's. The parser of
# the headers is checked too: it must find every DNC_API declaration.
set -u
. "$(dirname "$0")/tap.bash"
SO="$B/libdnc.so"

# the functions a header declares: the name before "(" on DNC_API lines
declared() {
  sed -n 's/^DNC_API [^(]*[ *]\([A-Za-z_][A-Za-z0-9_]*\)(.*/\1/p' "$@" | sort -u
}
# defined dynamic symbols, less the linker's own (_end, _edata, __bss_start)
exported() {
  nm -D --defined-only "$1" | awk '{print $3}' |
    grep -v -x -e _end -e _edata -e __bss_start | sort -u
}

declared runtime/dnc.h >"$tmp/decl"
exported "$SO" >"$tmp/exp"
t "dnc.h declares the API (at least 40 functions)" \
  test "$(wc -l <"$tmp/decl")" -ge 40
t "every DNC_API line is parsed: as many names as DNC_API declarations" \
  test "$(wc -l <"$tmp/decl")" = "$(grep -c '^DNC_API ' runtime/dnc.h)"
t "libdnc.so exports exactly what dnc.h declares" diff "$tmp/decl" "$tmp/exp"
t "no internal symbol leaks (dnc_cmd_*, dnc_cli_*, dnc_mod_*, dnc_fit)" \
  sh -c "! grep -q -e '^dnc_cmd_' -e '^dnc_cli_' -e '^dnc_mod_' -x -e dnc_fit '$tmp/exp'"
t "every exported function is a text symbol (no data exported)" \
  sh -c "! nm -D --defined-only '$SO' | awk '\$2 !~ /^[TtW]\$/ && \$3 !~ /^(_end|_edata|__bss_start)\$/' | grep -q ."
t "dnc_aot.h's dnc_aot_module_get is not libdnc's (the AOT libraries export it)" \
  sh -c "! grep -q -x dnc_aot_module_get '$tmp/exp'"

# the Python package calls only what dnc.h declares
grep -oh '_sig("[a-z_0-9]*"' python/dnc/*.py | sed 's/_sig("//; s/"//' | sort -u >"$tmp/py"
t "python/dnc's ctypes signatures name only dnc.h's functions" \
  sh -c "! comm -23 '$tmp/py' '$tmp/decl' | grep ."
tap_done
