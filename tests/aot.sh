#!/usr/bin/env bash
# aot.sh - `dnc compile` on the command line: its options and usage errors,
# errors in the input and in the output (each exits non-zero with a clear
# message and leaves nothing behind, an existing output untouched), the
# library's dynamic section (libc and libm only), the header under C99 and
# C++, assembly and IR, and cross compiling to AArch64 and RISC-V objects
# and to NVPTX assembly.
# The library's kernels against the JIT's are tests/test_aot.c's.
set -u
. "$(dirname "$0")/tap.bash"
DNC="$B/dnc"

# run WANT_STATUS ARGS...: dnc's stderr in $tmp/err, stdout in $tmp/out
run() {
  local want=$1
  shift
  "$DNC" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" != "$want" ]; then
    echo "# dnc $* exited $rc, not $want:"
    sed 's/^/# /' "$tmp/err"
    return 1
  fi
}
says() { grep -qF -- "$1" "$tmp/err" || { echo "# stderr lacks '$1':"; sed 's/^/# /' "$tmp/err"; return 1; }; }
# only the named entries in directory $1
only() { local d=$1; shift; [ "$(ls -A "$d" | sort | xargs)" = "$*" ] || { echo "# $d holds: $(ls -A "$d" | xargs)"; return 1; }; }
fails() { ! "$@"; }

src="$tmp/f.dn"
printf 'fn dyt(x; alpha = 0.5) = tanh(alpha * x)\nfn pc(x; s[] = 0.25) = x * sigmoid(x + s)\n' >"$src"
bad="$tmp/bad.dn"
printf 'fn oops(x) = tanh(x +)\n' >"$bad"
out="$tmp/o"
mkdir "$out"

# ---------------------------------------------------------------- usage
t "compile --help exits 0" run 0 compile --help
t "  and shows the usage" grep -q "usage: dnc compile FILE... -o OUT" "$tmp/out"
t "  and its long forms --output and --header" \
  sh -c "grep -q -- '-o, --output OUT' '$tmp/out' && grep -q -- '-H, --header HEADER' '$tmp/out'"
t "no -o is a usage error" run 2 compile "$src"
t "  saying so" says "no output file (-o OUT)"
t "no input is a usage error" run 2 compile -o "$out/k.so"
t "an unknown --emit is a usage error" run 2 compile "$src" --emit=exe -o "$out/k"
t "  naming the kinds" says "--emit is so, obj, asm, llvm or header, not 'exe'"
t "-c and -S together are a usage error" run 2 compile "$src" -c -S -o "$out/k"
t "-o and -H the same file is a usage error" run 2 compile "$src" -o "$out/k" -H "$out/k"
# by another spelling or a link, the header replaced the library, status 0
t "-o and -H the same new file by two spellings" run 2 compile "$src" -o "$out/k" -H "$out/../o/./k"
t "  saying so" says "-o and -H name the same file"
echo old >"$tmp/kept.so"
ln -s "$tmp/kept.so" "$tmp/link.h"
ln "$tmp/kept.so" "$tmp/hard.h"
t "-o and -H the same file through a symbolic link" run 2 compile "$src" -o "$tmp/kept.so" -H "$tmp/link.h"
t "-o and -H the same file through a hard link" run 2 compile "$src" -o "$tmp/kept.so" -H "$tmp/hard.h"
t "  leaving it as it was" grep -qx old "$tmp/kept.so"
rm -f "$tmp/kept.so" "$tmp/link.h" "$tmp/hard.h"
t "an unknown option is a usage error" run 2 compile "$src" -O9 -o "$out/k.so"
t "--cpu '' is a usage error" run 2 compile "$src" --cpu '' -o "$out/k.so"
t "  saying so" says "--cpu needs a CPU name"
for c in , x86-64-v3, ,x86-64-v3 x86-64-v2,,x86-64-v3; do
  t "--cpu $c (an empty name in the list) is a usage error" run 2 compile "$src" --cpu "$c" -o "$out/k.so"
  t "  saying so" says "--cpu needs CPU names separated by commas, none empty, not '$c'"
done
t "nothing was written" only "$out"

# --------------------------------------------------------------- errors
t "a source with errors exits 1" run 1 compile "$bad" -o "$out/k.so" -H "$out/k.h"
t "  with the located error" says "bad.dn:1:"
t "  and writes nothing" only "$out"
t "a missing directory exits 1" run 1 compile "$src" -o "$tmp/none/k.so"
t "  naming the file and why" says "cannot write '$tmp/none/k.so': No such file or directory"
touch "$tmp/file"
t "a directory that is a file exits 1" run 1 compile "$src" -o "$tmp/file/k.so"
t "  saying why" says "Not a directory"
t "an unknown target exits 1" run 1 compile "$src" --target nosuch-cpu-linux -o "$out/k.o" -c
t "  saying so" says "unknown target 'nosuch-cpu-linux'"
# targets LLVM has whose back ends crash or fail on dnc's kernels
for tgt in avr s390x-linux-gnu ve xcore bpf amdgcn aarch64_be-linux-gnu; do
  t "--target $tgt is refused (exit 1, no crash)" run 1 compile "$src" --target "$tgt" -c -o "$out/x.o"
  t "  saying which targets dnc compiles for" says "does not support target '$tgt' (it compiles for x86_64"
  t "  and writing nothing" test ! -e "$out/x.o"
done
for tgt in i686-linux-gnu armv7-linux-gnueabihf powerpc64le-linux-gnu mips64el-linux-gnuabi64 wasm32; do
  t "--target $tgt -c" run 0 compile "$src" --target "$tgt" -c -o "$out/x.o"
  rm -f "$out/x.o"
done
t "a 32-bit-only CPU exits 1, not an abort" run 1 compile "$src" --cpu i386 -o "$out/k.so"
t "  saying why" says "CPU 'i386' cannot run 64-bit code"
t "an AVX-512 CPU without VL, DQ and BW exits 1, not an abort" run 1 compile "$src" --cpu knl -o "$out/knl.so"
t "  saying why" says "CPU 'knl' has AVX-512F without AVX512-DQ"
t "  and writing nothing" test ! -e "$out/knl.so"
t "an unknown CPU exits 1" run 1 compile "$src" --cpu znver44 -o "$out/k.so"
t "  with a suggestion" says "unknown CPU 'znver44' for x86_64"
t "several CPUs that are not x86-64 levels exit 1" run 1 compile "$src" --cpu x86-64-v3,znver4 -o "$out/k.so"
t "  saying what a library can hold" says "can hold x86-64, x86-64-v2, x86-64-v3 and x86-64-v4"
t "a C compiler that fails exits 1" fails env CC=false "$DNC" compile "$src" -o "$out/k.so" 2>"$tmp/err"
t "  saying so" says "the C compiler 'false' failed"
t "a C compiler that is missing exits 1" fails env CC=/no/such/cc "$DNC" compile "$src" -o "$out/k.so" 2>"$tmp/err"
t "  saying so" says "cannot run the C compiler '/no/such/cc' (set CC)"
t "no failure left a file behind" only "$out"
echo old >"$out/keep.so"
t "a failed compile over an existing output" run 1 compile "$bad" -o "$out/keep.so"
t "  leaves it as it was" grep -qx old "$out/keep.so"
t "a failed link over an existing output" fails env CC=false "$DNC" compile "$src" -o "$out/keep.so" 2>/dev/null
t "  leaves it as it was" grep -qx old "$out/keep.so"
t "a successful compile replaces it" run 0 compile "$src" -o "$out/keep.so"
t "  with a library" sh -c "readelf -h '$out/keep.so' | grep -q 'DYN'"
t "  and nothing else in the directory" only "$out" keep.so
rm -f "$out/keep.so"

# -------------------------------------------------------------- library
t "a library and a header" run 0 compile "$src" -o "$out/k.so" -H "$out/k.h"
t "the library is executable and readable" test -x "$out/k.so" -a -r "$out/k.so"
needed=$(readelf -d "$out/k.so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
t "it needs libc and libm only (needs: $needed)" sh -c "[ '$needed' = 'libc.so.6 libm.so.6 ' ] || [ '$needed' = 'libc.so.6 ' ]"
exports=$(nm -D --defined-only "$out/k.so" | awk '{print $3}' | sort)
t "it exports every kernel by its C name" sh -c "echo '$exports' | grep -qx dnc_pc_bf16_layer_bwd && echo '$exports' | grep -qx dnc_dyt_f64_fwd"
t "and the descriptor" sh -c "echo '$exports' | grep -qx dnc_aot_module_get"
t "and nothing else (33 symbols)" sh -c "[ \$(echo '$exports' | wc -l) = 33 ]"
t "the header compiles as C99 with -Wall -Wextra -Werror -pedantic" \
  sh -c "printf '#include \"k.h\"\nint main(void) { return DNC_NPARAMS_pc - 1; }\n' >'$tmp/h.c' &&
         cc -std=c99 -Wall -Wextra -Werror -pedantic -I'$out' -c -o '$tmp/h.o' '$tmp/h.c'"
t "and as C++" sh -c "printf '#include \"k.h\"\nint main() { return DNC_DEFAULT_dyt_alpha == 0.5 ? 0 : 1; }\n' >'$tmp/h.cc' &&
         c++ -Wall -Wextra -Werror -I'$out' -c -o '$tmp/hpp.o' '$tmp/h.cc'"
# the header quotes each definition, comments included, and names the
# files, inside C comments: a star-slash, a slash-star or a trigraph there
# ended the comment (the rest of the header was C) or failed -Werror
mkdir "$tmp/odd*"
printf 'fn c1(x; a = 1) = a * x  # ends */ starts /* \n# after\nfn c2(x) { # ??/\n  x # \\\n}\n' >"$tmp/odd*/c.dn"
t "comment text in the source and a '*/' in its path" \
  run 0 compile "$tmp/odd*/c.dn" --emit=header -o "$out/c.h"
t "  the header compiles as C99 with -Wall -Wextra -Werror -pedantic" \
  sh -c "printf '#include \"c.h\"\nint main(void) { return DNC_NPARAMS_c1 - 1; }\n' >'$tmp/c.c' &&
         cc -std=c99 -Wall -Wextra -Werror -pedantic -I'$out' -c -o '$tmp/c.o' '$tmp/c.c'"
t "  and as C++" c++ -Wall -Wextra -Werror -pedantic -x c++ -I"$out" -c -o "$tmp/c.o" "$tmp/c.c"
t "  still quoting the definition" grep -qF "fn c1(x; a = 1) = a * x  # ends * / starts / *" "$out/c.h"
rm -f "$out/c.h" "$tmp/c.o"
t "it holds the function's source" grep -qF "fn pc(x; s[] = 0.25) = x * sigmoid(x + s)" "$out/k.h"
t "and its parameters' defaults" grep -qx "#define DNC_DEFAULT_pc_s 0.25" "$out/k.h"
# a negative default was written bare: 2-DNC_DEFAULT_n_a read 2--1.0
printf 'fn n(x; a = -1, z = -0) = a * x + z\n' >"$tmp/neg.dn"
t "a negative default is parenthesised" \
  sh -c "'$DNC' compile '$tmp/neg.dn' --emit=header -o '$out/neg.h' &&
         grep -qx '#define DNC_DEFAULT_n_a (-1.0)' '$out/neg.h' &&
         grep -qx '#define DNC_DEFAULT_n_z (-0.0)' '$out/neg.h'"
t "  and reads as itself in an expression" \
  sh -c "printf '#include \"neg.h\"\nint main(void) { return 2-DNC_DEFAULT_n_a == 3 && 1 / DNC_DEFAULT_n_z < 0 ? 0 : 1; }\n' >'$tmp/neg.c' &&
         cc -std=c99 -Wall -Wextra -Werror -pedantic -I'$out' -o '$tmp/neg' '$tmp/neg.c' && '$tmp/neg'"
rm -f "$out/neg.h" "$tmp/neg" "$tmp/neg.c"
t "a C program links the library and calls a kernel" \
  sh -c "printf '#include \"k.h\"\n#include <math.h>\nint main(void) { float x[3] = {-1, 0, 2}, y[3]; double p[1] = {0.5};\n dnc_dyt_f32_fwd(x, y, 3, p);\n return fabs(y[2] - tanh(1.0)) < 1e-7 ? 0 : 1; }\n' >'$tmp/p.c' &&
         cc -std=c99 -I'$out' -o '$tmp/p' '$tmp/p.c' -L'$out' -l:k.so -Wl,-rpath,'$out' -lm && '$tmp/p'"
# the headers of two libraries, one file name in two folders: the guard
# was the name alone (DNC_KERNELS_KERNELS_H in both), and the second
# header included was skipped, its declarations lost
mkdir -p "$tmp/ia" "$tmp/ib"
printf 'fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n' >"$tmp/ka.dn"
printf 'fn derf(x; alpha = 0.5) = erf(alpha * x)\n' >"$tmp/kb.dn"
t "two libraries' headers of one name, both included, declare both" \
  sh -c "'$DNC' compile '$tmp/ka.dn' -o '$tmp/ia/libka.so' -H '$tmp/ia/kernels.h' &&
         '$DNC' compile '$tmp/kb.dn' -o '$tmp/ib/libkb.so' -H '$tmp/ib/kernels.h' &&
         printf '#include \"ia/kernels.h\"\n#include \"ib/kernels.h\"\nint main(void) { float x[1] = {1}, y[1]; double p[1] = {DNC_DEFAULT_derf_alpha + DNC_DEFAULT_dyt_alpha};\n dnc_dyt_f32_fwd(x, y, 1, p);\n dnc_derf_f32_fwd(x, y, 1, p);\n return 0; }\n' >'$tmp/guard.c' &&
         cc -std=c99 -Wall -Wextra -Werror -I'$tmp' -c -o '$tmp/guard.o' '$tmp/guard.c'"
t "  and each guard is a valid identifier, the file's name and a digest" \
  bash -c "grep -qx '#ifndef DNC_KERNELS_KERNELS_H_[0-9A-F]\{16\}' '$tmp/ia/kernels.h' &&
         ! cmp -s <(grep '^#ifndef' '$tmp/ia/kernels.h') <(grep '^#ifndef' '$tmp/ib/kernels.h')"
# a file name with a run of non-letters (__k.h, é.h): the guard
# DNC_KERNELS___K_H was an identifier C++ reserves
for h in __k.h é.h; do
  "$DNC" compile "$tmp/ka.dn" --emit=header -o "$tmp/ia/$h"
done
t "a header named __k.h or é.h: no '__' in its guard" \
  sh -c "grep -q '^#ifndef DNC_KERNELS_K_H_' '$tmp/ia/__k.h' &&
         grep -q '^#ifndef DNC_KERNELS_H_' '$tmp/ia/é.h' &&
         ! grep -q '^#ifndef.*__' '$tmp/ia/__k.h' '$tmp/ia/é.h'"
if command -v clang++ >/dev/null; then
  printf '#include "__k.h"\n#include "é.h"\nint main() { return DNC_NPARAMS_dyt - 1; }\n' >"$tmp/ia/k.cc"
  t "  and it compiles under clang++ -Weverything -Werror" \
    clang++ -std=c++17 -Weverything -Werror -fsyntax-only "$tmp/ia/k.cc"
fi
# names with '_' at an end are joined as they are, '__' and all
# (docs/cli.md: no renaming avoids it and keeps every other name)
printf 'fn fnx(letter; _scale2 = 1) = _scale2 * letter\nfn _g(x) = x\n' >"$tmp/res.dn"
t "fn _g, parameter _scale2: the names docs/cli.md gives" \
  sh -c "'$DNC' compile '$tmp/res.dn' --emit=header -o '$tmp/ia/res.h' &&
         grep -q '^#define DNC_DEFAULT_fnx__scale2 1.0\$' '$tmp/ia/res.h' &&
         grep -q '^#define DNC_NPARAMS__g 0\$' '$tmp/ia/res.h' &&
         grep -q '^void dnc__g_f32_fwd(' '$tmp/ia/res.h'"
rm -rf "$tmp/ia" "$tmp/ib" "$tmp/guard.c" "$tmp/guard.o" "$tmp/res.dn"
t "--emit=header alone" run 0 compile "$src" --emit=header -o "$out/only.h"
t "  is the same header" cmp -s "$out/only.h" <(sed 's/DNC_KERNELS_K_H/DNC_KERNELS_ONLY_H/' "$out/k.h")
t "--output and --header, the long forms of -o and -H" \
  run 0 compile "$src" -c --output "$out/long.o" --header="$out/long.h"
t "  write the object and the same header" \
  bash -c "test -s '$out/long.o' && cmp -s '$out/long.h' <(sed 's/DNC_KERNELS_K_H/DNC_KERNELS_LONG_H/' '$out/k.h')"
t "-O0 builds a library" run 0 compile "$src" -O0 -o "$out/o0.so"
t "-O3 builds a library" run 0 compile "$src" -O3 -o "$out/o3.so"
t "--cpu native builds a one-level library" run 0 compile "$src" --cpu native -o "$out/native.so"
# a library for one named CPU checked nothing when loaded: on a CPU
# without AVX2 and FMA a --cpu haswell library loaded, and its first
# kernel call died of SIGILL; it now names what it checks ('avx', 'fma')
t "--cpu haswell builds a one-level library" run 0 compile "$src" --cpu haswell -o "$out/hsw.so"
t "  which checks AVX and FMA when loaded" \
  sh -c "strings -n 3 '$out/hsw.so' | grep -qx avx && strings -n 3 '$out/hsw.so' | grep -qx fma"
if command -v clang >/dev/null; then
  t "--cpu native linked by clang (its names for the features)" \
    sh -c "CC=clang '$DNC' compile '$src' --cpu native -o '$out/native-clang.so'"
fi
rm -f "$out/hsw.so" "$out/native-clang.so"
t "--cpu x86-64,x86-64-v3 builds two levels" run 0 compile "$src" --cpu x86-64-v3,x86-64 -o "$out/two.so"

# --------------------------------------------- many functions, in jobs
# a library's kernels are compiled in jobs (chunks of functions per level,
# each its own object, on $DNC_NUM_THREADS threads): ten functions make
# four chunks per level; the library is the same bytes on any thread count
many="$tmp/many.dn"
for i in 0 1 2 3 4 5 6 7 8 9; do
  printf 'fn m%d(x; a = 0.5) = tanh(a * x + %d) * x\n' "$i" "$i"
done >"$many"
t "ten functions on one thread" sh -c "DNC_NUM_THREADS=1 '$DNC' compile '$many' --cpu x86-64-v3,x86-64-v4 -o '$out/m1.so'"
t "ten functions on three threads" sh -c "DNC_NUM_THREADS=3 '$DNC' compile '$many' --cpu x86-64-v3,x86-64-v4 -o '$out/m3.so'"
t "  the same library, byte for byte" cmp -s "$out/m1.so" "$out/m3.so"
# and on other counts: the jobs' code generation made its DAG nodes in the
# order the threads came, whose ids order commutative operands (2 of 12
# compiles on 2 to 4 threads differed; codegen.c's dnc_codegen_prepare)
for nth in 2 5; do
  DNC_NUM_THREADS=$nth "$DNC" compile "$many" --cpu x86-64-v3,x86-64-v4 -o "$out/m$nth.so"
  t "  on $nth threads too" cmp -s "$out/m1.so" "$out/m$nth.so"
done
exports=$(nm -D --defined-only "$out/m3.so" | awk '{print $3}' | sort)
t "  exporting every kernel of every function (161 symbols)" \
  sh -c "[ \$(echo '$exports' | wc -l) = 161 ] && echo '$exports' | grep -qx dnc_m9_f16_layer_bwd && echo '$exports' | grep -qx dnc_m0_f32_fwd"
t "  a C program calls the first and the last function's kernels" \
  sh -c "printf '#include <math.h>\n#include <stdint.h>\nvoid dnc_m0_f32_fwd(const float *, float *, int64_t, const double *);\nvoid dnc_m9_f64_fwd(const double *, double *, int64_t, const double *);\nint main(void) { float x = 2, y; double p = 0.5, dx = 2, dy;\n dnc_m0_f32_fwd(&x, &y, 1, &p); dnc_m9_f64_fwd(&dx, &dy, 1, &p);\n return fabs(y - 2 * tanh(1.0)) < 1e-6 && fabs(dy - 2 * tanh(10.0)) < 1e-15 ? 0 : 1; }\n' >'$tmp/m.c' &&
         cc -std=c99 -o '$tmp/m' '$tmp/m.c' '$out/m3.so' -Wl,-rpath,'$out' -lm && '$tmp/m'"
rm -f "$out/m1.so" "$out/m3.so"
# two functions whose parameters' default macros would have one name
printf 'fn a_b(x; c = 1) = c * x\nfn a(x; b_c = 2) = b_c * x\n' >"$tmp/clash.dn"
t "DNC_DEFAULT_ names that clash: the header is refused" run 1 compile "$tmp/clash.dn" --emit=header -o "$out/clash.h"
t "  saying which, at the second function" says "clash.dn:2:1: error: the header would define DNC_DEFAULT_a_b_c twice: for parameter 'b_c' of 'a' and parameter 'c' of 'a_b'; rename one of them"
t "  and writing nothing" test ! -e "$out/clash.h"
t "  a library without a header is fine" run 0 compile "$tmp/clash.dn" -o "$out/clash.so"
rm -f "$out/clash.so"

# ------------------------------------------ objects, assembly, IR, cross
t "-c writes an object" run 0 compile "$src" -c -o "$out/k.o"
t "  an x86-64 ELF relocatable" sh -c "readelf -h '$out/k.o' | grep -q 'Advanced Micro Devices X86-64'"
t "  with the kernels under their C names" sh -c "nm '$out/k.o' | grep -q ' T dnc_dyt_f32_fwd$'"
t "-S writes assembly" run 0 compile "$src" -S -o "$out/k.s"
t "  text with the kernels" grep -q "^dnc_dyt_f32_layer_bwd:" "$out/k.s"
t "--emit=llvm writes IR" run 0 compile "$src" --emit=llvm -o "$out/k.ll"
t "  with the kernels" grep -q "define .*@dnc_pc_f16_fwd(" "$out/k.ll"
t "--target aarch64-linux-gnu -c" run 0 compile "$src" --target aarch64-linux-gnu --cpu generic -c -o "$out/a64.o"
t "  is an AArch64 object" sh -c "readelf -h '$out/a64.o' | grep -q 'Machine: *AArch64'"
t "  with NEON code" sh -c "'$DNC' compile '$src' --target aarch64-linux-gnu -S -o '$out/a64.s' && grep -q 'fmla' '$out/a64.s'"
t "--target riscv64-linux-gnu -c" run 0 compile "$src" --target riscv64-linux-gnu -c -o "$out/rv.o"
t "  is a RISC-V object" sh -c "readelf -h '$out/rv.o' | grep -q 'Machine: *RISC-V'"
# the platform's ABI (clang's rv64gc, lp64d): a soft-float object cannot
# be linked with the rest of a program (EF_RISCV_FLOAT_ABI_DOUBLE is 0x4)
t "  with the double-float ABI, as the platform's code" sh -c "readelf -h '$out/rv.o' | grep -q 'Flags: *0x5, RVC, double-float ABI'"
t "a library for another target needs its C compiler" run 1 compile "$src" --target aarch64-linux-gnu -o "$out/a64.so"
t "  saying so" says "set CC to its cross compiler"
t "  and leaving nothing" test ! -e "$out/a64.so"
# NVPTX has no CPU "generic": LLVM warned, once per module, that it ignored
# it, and wrote `.target generic`, which ptxas refuses; the baseline is sm_52
"$DNC" compile "$src" --target nvptx64-nvidia-cuda -S -o "$out/k.ptx" 2>"$tmp/err"
rc=$?
if grep -qF "unknown target" "$tmp/err"; then
  for i in 1 2 3 4; do
    n=$((n + 1))
    echo "ok $n # skip this LLVM has no NVPTX target"
  done
else
  t "--target nvptx64-nvidia-cuda -S" test "$rc" = 0
  t "  prints nothing (no LLVM warnings)" sh -c "! sed 's/^/# /' '$tmp/err' | grep ."
  t "  PTX for sm_52, the baseline" grep -qx '\.target sm_52' "$out/k.ptx"
  if command -v ptxas >/dev/null; then
    t "  which ptxas assembles" ptxas "$out/k.ptx" -o "$out/k.cubin"
  else
    n=$((n + 1))
    echo "ok $n # skip no ptxas here to assemble the PTX"
  fi
fi
t "no temporary file is left in the output directory" sh -c "! ls -A '$out' | grep -q '^\.'"

tap_done
