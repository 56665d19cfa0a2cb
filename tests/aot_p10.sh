#!/usr/bin/env bash
# aot_p10.sh - an embedder's view of a `dnc compile` library: two files
# into one library and header, its dynamic symbols (the kernels and
# dnc_aot_module_get only), the header with dnc.h and dnc_aot.h under
# C++17 -pedantic, dnc_module_load at each CPU level ($DNC_AOT_CPU), and a
# stripped copy: loaded by dnc_module_load (the seal is a note strip keeps,
# docs/c-api.md; every packaging strip in tests/aot_strip_p11.sh), run by a
# program that links it directly.
set -u
. "$(dirname "$0")/tap.bash"
DNC="$B/dnc"
LLVM_LIBDIR=$(llvm-config-19 --libdir 2>/dev/null || echo /usr/lib/llvm-19/lib)
# the sanitizer build's libdnc.a needs its runtime linked in
san=""
case "$B" in *san*) san="-fsanitize=address,undefined" ;; esac

printf 'fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n' >"$tmp/a.dn"
printf 'fn derf(x; alpha = 0.5, s[] = -0.25) = erf(alpha * x + s)\n' >"$tmp/b.dn"
t "two files into one library and a header" \
  "$DNC" compile "$tmp/a.dn" "$tmp/b.dn" -o "$tmp/libk.so" -H "$tmp/k.h"
other=$(nm -D --defined-only "$tmp/libk.so" | awk '{print $3}' |
  grep -Ev '^dnc_(dyt|derf)_(f32|f64|bf16|f16)_(fwd|bwd|layer_fwd|layer_bwd)$|^dnc_aot_module_get$' |
  grep -Ev '^(_edata|_end|__bss_start)$' | xargs)
t "it exports the kernels and dnc_aot_module_get only${other:+ (also: $other)}" test -z "$other"
t "32 kernels exported" test "$(nm -D --defined-only "$tmp/libk.so" | grep -c ' T dnc_d')" = 32
printf '#include <dnc.h>\n#include <dnc_aot.h>\n#include "k.h"\nint main() { return DNC_NPARAMS_derf - 2; }\n' >"$tmp/h.cc"
t "the header, dnc.h and dnc_aot.h compile as C++17 -pedantic" \
  c++ -std=c++17 -Wall -Wextra -pedantic -Werror -Iruntime -I"$tmp" -fsyntax-only "$tmp/h.cc"

cat >"$tmp/load.c" <<'C'
#include <dnc.h>
#include <math.h>
#include <stdio.h>
int main(int argc, char **argv)
{
  (void)argc;
  dnc_context *c = dnc_context_new();
  dnc_module *m;
  if (dnc_module_load(c, argv[1], &m)) {
    fprintf(stderr, "%s\n", dnc_last_error());
    return 1;
  }
  float x[37], y[37];
  for (int i = 0; i < 37; i++)
    x[i] = (float)(i - 18) / 5;
  dnc_tensor tx = {x, DNC_F32, 1, 37, 0}, ty = {y, DNC_F32, 1, 37, 0};
  if (dnc_forward(dnc_module_find(m, "derf"), &tx, &ty, NULL))
    return 2;
  for (int i = 0; i < 37; i++)
    if (fabs(y[i] - erf(0.5 * x[i] - 0.25)) > 1e-6)
      return 3;
  printf("%s\n", dnc_module_cpu(m));
  dnc_module_free(m);
  dnc_context_free(c);
  return 0;
}
C
t "a loader builds against libdnc.a" cc -std=c99 $san -Iruntime -o "$tmp/load" "$tmp/load.c" \
  "$B/libdnc.a" -L"$LLVM_LIBDIR" -lLLVM-19 -Wl,-rpath,"$LLVM_LIBDIR" -lm -lpthread
t "dnc_module_load runs the library's derf" sh -c "'$tmp/load' '$tmp/libk.so' >/dev/null"
for lv in x86-64-v2 x86-64-v3 x86-64-v4; do
  case $lv in x86-64-v2) flag=sse4_2 ;; x86-64-v3) flag=avx2 ;; *) flag=avx512bw ;; esac
  if grep -q "^flags.* $flag" /proc/cpuinfo; then
    t "DNC_AOT_CPU=$lv loads that level" sh -c "[ \"\$(DNC_AOT_CPU=$lv '$tmp/load' '$tmp/libk.so')\" = $lv ]"
  else
    t "# SKIP this CPU cannot run $lv" true
  fi
done
err "DNC_AOT_CPU=bogus is refused, naming the levels" 1 \
  "DNC_AOT_CPU=bogus is not a level of this library (it has x86-64-v2,x86-64-v3,x86-64-v4)" \
  env DNC_AOT_CPU=bogus "$tmp/load" "$tmp/libk.so"

cp "$tmp/libk.so" "$tmp/libks.so"
if strip "$tmp/libks.so" 2>/dev/null; then
  t "a stripped copy loads with dnc_module_load and runs derf" \
    sh -c "'$tmp/load' '$tmp/libks.so' >/dev/null"
  printf '#include "k.h"\n#include <stdio.h>\nint main(void) { float x = 2, y; double p[1] = {DNC_DEFAULT_dyt_alpha};\n  dnc_dyt_f32_fwd(&x, &y, 1, p); printf("%%.6f\\n", y); return 0; }\n' >"$tmp/direct.c"
  t "a program links the stripped copy directly" \
    cc -std=c99 -I"$tmp" -o "$tmp/direct" "$tmp/direct.c" -L"$tmp" -lks -Wl,-rpath,"$tmp"
  t "and runs it: dyt(2) = tanh(1)" test "$("$tmp/direct")" = 0.761594
else
  t "# SKIP no strip" true
fi
tap_done
