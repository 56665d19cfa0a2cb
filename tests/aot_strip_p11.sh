#!/usr/bin/env bash
# aot_strip_p11.sh - a `dnc compile` library through packaging: every way
# Debian, RPM and wheels strip a library (strip, --strip-unneeded,
# --strip-debug, -s, objcopy --strip-all, the --only-keep-debug /
# --add-gnu-debuglink split, dh_strip's and install -s's commands,
# llvm-strip, RPM debugedit's new build-id) keeps its seal: the copy
# loads with dnc_module_load and its kernels give the unstripped
# library's bits, forward and backward. What the seal exists for is still
# refused before dlopen runs any of the file's code (LD_DEBUG shows the
# dynamic loader never opened it): a truncated copy, a flipped byte in
# .text, .rodata (the kernels' constants, the sources), .data.rel.ro (the
# descriptor) and .dynamic, another library (libm), a library whose seal
# was never filled in or is for another ABI, the debug-info file, and a
# copy patchelf edited (docs/c-api.md, compiler/aotseal.c).
set -u
. "$(dirname "$0")/tap.bash"
DNC="$B/dnc"
LLVM_LIBDIR=$(llvm-config-19 --libdir 2>/dev/null || echo /usr/lib/llvm-19/lib)
san=""
case "$B" in *san*) san="-fsanitize=address,undefined" ;; esac

printf 'fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n' >"$tmp/a.dn"
printf 'fn derf(x; alpha = 0.5, s[] = -0.25) = erf(alpha * x + s)\nfn dyisru(x; beta = 1) = x / sqrt(beta + x^2)\n' >"$tmp/b.dn"
if ! "$DNC" compile "$tmp/a.dn" "$tmp/b.dn" -o "$tmp/lib.so"; then
  echo "Bail out! dnc compile failed"
  exit 1
fi
t "dnc compile writes the library" test -s "$tmp/lib.so"

# dump LIB: every function's forward and backward (f32, f64; dx and the
# parameters' gradients) as raw bytes on stdout; a refusal on stderr, 1
cat >"$tmp/dump.c" <<'C'
#include <dnc.h>
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
  enum { N = 1001 };
  static float xf[N], yf[N], dyf[N], dxf[N];
  static double xd[N], yd[N], dyd[N], dxd[N];
  for (int i = 0; i < N; i++) {
    xd[i] = (i - 500) / 61.0;
    dyd[i] = 1.0 + (i % 7) / 8.0;
    xf[i] = (float)xd[i];
    dyf[i] = (float)dyd[i];
  }
  for (int k = 0; k < dnc_module_function_count(m); k++) {
    const dnc_function *f = dnc_module_function(m, k);
    double dp[8] = {0};
    dnc_tensor x = {xf, DNC_F32, 1, N, 0}, y = {yf, DNC_F32, 1, N, 0},
               dy = {dyf, DNC_F32, 1, N, 0}, dx = {dxf, DNC_F32, 1, N, 0};
    if (dnc_forward(f, &x, &y, NULL) || dnc_backward(f, &x, &dy, &dx, NULL, dp))
      return 2;
    fwrite(yf, sizeof yf, 1, stdout);
    fwrite(dxf, sizeof dxf, 1, stdout);
    dnc_tensor xe = {xd, DNC_F64, 1, N, 0}, ye = {yd, DNC_F64, 1, N, 0},
               dye = {dyd, DNC_F64, 1, N, 0}, dxe = {dxd, DNC_F64, 1, N, 0};
    if (dnc_forward(f, &xe, &ye, NULL) ||
        dnc_backward(f, &xe, &dye, &dxe, NULL, dp))
      return 2;
    fwrite(yd, sizeof yd, 1, stdout);
    fwrite(dxd, sizeof dxd, 1, stdout);
    fwrite(dp, sizeof dp, 1, stdout);
  }
  fprintf(stderr, "loaded %d functions at %s\n", dnc_module_function_count(m),
          dnc_module_cpu(m));
  dnc_module_free(m);
  dnc_context_free(c);
  return 0;
}
C
if ! cc -std=c99 $san -Iruntime -o "$tmp/dump" "$tmp/dump.c" \
  "$B/libdnc.a" -L"$LLVM_LIBDIR" -lLLVM-19 -Wl,-rpath,"$LLVM_LIBDIR" -lm -lpthread; then
  echo "Bail out! the loader does not build against $B/libdnc.a"
  exit 1
fi
t "the loader builds against libdnc.a" test -x "$tmp/dump"
t "the library as written loads: the reference bits" \
  sh -c "'$tmp/dump' '$tmp/lib.so' >'$tmp/ref.bin' 2>'$tmp/err' && grep -q 'loaded 3 functions' '$tmp/err'"
# 3 functions x (2 x 1001 x 4 + 2 x 1001 x 8 + 64) bytes
t "the reference holds every kernel's output" test "$(wc -c <"$tmp/ref.bin")" = 72264

# same NAME FILE: FILE loads and gives the reference's bits
same() {
  if "$tmp/dump" "$2" >"$tmp/out.bin" 2>"$tmp/err" && cmp -s "$tmp/ref.bin" "$tmp/out.bin"; then
    t "$1: loads, the same bits forward and backward" true
  else
    t "$1: loads, the same bits forward and backward" false
    sed 's/^/#   /' "$tmp/err"
  fi
}
# variant NAME TOOL CMD...: a copy, CMD run on it ({} is its path)
variant() {
  local name=$1 tool=$2
  shift 2
  if ! command -v "$tool" >/dev/null; then
    t "# SKIP $name: no $tool" true
    return
  fi
  local f="$tmp/v.so"
  cp "$tmp/lib.so" "$f"
  local cmd=()
  for a in "$@"; do cmd+=("${a//\{\}/$f}"); done
  if ! "${cmd[@]}" 2>"$tmp/err"; then
    t "$name: $tool ran" false
    sed 's/^/#   /' "$tmp/err"
    return
  fi
  t "$name: the file changed" sh -c "! cmp -s '$tmp/lib.so' '$f'"
  same "$name" "$f"
}
variant "strip" strip strip {}
variant "strip --strip-unneeded (brp-strip-shared)" strip strip --strip-unneeded {}
variant "strip --strip-debug (brp-strip -g)" strip strip --strip-debug {}
variant "strip -s (auditwheel --strip)" strip strip -s {}
variant "dh_strip's strip of a library" strip strip --remove-section=.comment --remove-section=.note --strip-unneeded {}
variant "objcopy --strip-all" objcopy objcopy --strip-all {}
t "install -s installs a stripped copy" \
  sh -c "install -s -m 0644 '$tmp/lib.so' '$tmp/installed.so' && ! cmp -s '$tmp/lib.so' '$tmp/installed.so'"
same "install -s" "$tmp/installed.so"
variant "llvm-strip" llvm-strip llvm-strip {}
variant "llvm-objcopy --strip-all" llvm-objcopy-19 llvm-objcopy-19 --strip-all {}
variant "eu-strip" eu-strip eu-strip {}
# the split debug package: the debug file, then the stripped library
# pointing at it
cp "$tmp/lib.so" "$tmp/split.so"
t "objcopy --only-keep-debug writes the debug file" \
  objcopy --only-keep-debug "$tmp/split.so" "$tmp/split.debug"
t "objcopy --strip-debug and --add-gnu-debuglink" \
  sh -c "objcopy --strip-debug '$tmp/split.so' && objcopy --add-gnu-debuglink='$tmp/split.debug' '$tmp/split.so'"
same "the library of a split debug package" "$tmp/split.so"

# offset and size of section NAME in FILE
section() {
  local o z
  read -r o z <<<"$(readelf -SW "$2" | sed 's/^ *\[ *[0-9]*\] *//' |
    awk -v s="$1" '$1 == s { print $4, $5; exit }')"
  [ -n "$o" ] && echo $((16#$o)) $((16#$z))
}
# poke FILE OFFSET XOR: the byte at OFFSET xor XOR
poke() {
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "\\$(printf %o $((b ^ $3)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# RPM's find-debuginfo has debugedit recompute the build-id in place
cp "$tmp/lib.so" "$tmp/bid.so"
read -r off size <<<"$(section .note.gnu.build-id "$tmp/bid.so")"
if [ -n "${off:-}" ]; then
  for i in $(seq 16 $((size - 1))); do poke "$tmp/bid.so" $((off + i)) 0x5a; done
  t "a new build-id (RPM's debugedit): the file changed" sh -c "! cmp -s '$tmp/lib.so' '$tmp/bid.so'"
  same "a new build-id (RPM's debugedit)" "$tmp/bid.so"
else
  t "# SKIP the linker wrote no build-id" true
fi

# refused NAME FILE PATTERN: refused with PATTERN, the file never opened
# by the dynamic loader (LD_DEBUG=files names every file it opens)
refused() {
  LD_DEBUG=files LD_DEBUG_OUTPUT="$tmp/ld" "$tmp/dump" "$2" >/dev/null 2>"$tmp/err"
  local rc=$?
  if [ $rc = 1 ] && grep -q -- "$3" "$tmp/err" && ! cat "$tmp"/ld.* 2>/dev/null | grep -qF "$2"; then
    t "$1: refused before dlopen (\"$3\")" true
  else
    t "$1: refused before dlopen (\"$3\")" false
    echo "#   status $rc, stderr:"
    sed 's/^/#   /' "$tmp/err"
  fi
  rm -f "$tmp"/ld.*
}
t "LD_DEBUG shows the dynamic loader opening a library it loads" \
  sh -c "LD_DEBUG=files LD_DEBUG_OUTPUT='$tmp/ld' '$tmp/dump' '$tmp/lib.so' >/dev/null 2>&1 && cat '$tmp'/ld.* | grep -q 'calling init: $tmp/lib.so'"
rm -f "$tmp"/ld.*

strip -s -o "$tmp/s.so" "$tmp/lib.so"
size=$(wc -c <"$tmp/s.so")
head -c $((size / 2)) "$tmp/s.so" >"$tmp/half.so"
refused "half of a stripped copy" "$tmp/half.so" "truncated?"
head -c $((size - 16)) "$tmp/s.so" >"$tmp/short.so"
refused "a stripped copy without its last 16 bytes" "$tmp/short.so" "truncated?"
for sec in .text .rodata .data.rel.ro .dynamic .rela.dyn .dynsym; do
  cp "$tmp/s.so" "$tmp/flip.so"
  read -r off size <<<"$(section $sec "$tmp/flip.so")"
  poke "$tmp/flip.so" $((off + size / 2)) 0x10
  refused "a flipped byte in $sec of a stripped copy" "$tmp/flip.so" "its digest differs"
done
cp "$tmp/s.so" "$tmp/src.so"
off=$(grep -obUaF 'erf(alpha * x + s)' "$tmp/src.so" | head -1 | cut -d: -f1)
printf 'erfc' | dd of="$tmp/src.so" bs=1 seek="$off" conv=notrunc status=none
refused "an edited embedded source in a stripped copy" "$tmp/src.so" "its digest differs"
cp /usr/lib/x86_64-linux-gnu/libm.so.6 "$tmp/libm.so" 2>/dev/null ||
  cp "$(cc -print-file-name=libm.so.6)" "$tmp/libm.so"
refused "another library (libm)" "$tmp/libm.so" "it has no dnc seal"
seal=$(grep -obUaF DNCSEAL "$tmp/s.so" | head -1 | cut -d: -f1)
t "one seal in the library" test "$(grep -obUaF DNCSEAL "$tmp/s.so" | wc -l)" = 1
cp "$tmp/s.so" "$tmp/unsealed.so"
dd if=/dev/zero of="$tmp/unsealed.so" bs=1 seek=$((seal + 16)) count=16 conv=notrunc status=none
refused "a library whose seal was never filled in" "$tmp/unsealed.so" "its dnc seal was never filled in"
cp "$tmp/s.so" "$tmp/abi.so"
printf 'c' | dd of="$tmp/abi.so" bs=1 seek=$((seal + 8)) conv=notrunc status=none
refused "a library for another ABI" "$tmp/abi.so" "for library ABI 99; this libdnc"
cp "$tmp/s.so" "$tmp/magic.so"
poke "$tmp/magic.so" $seal 0x20
refused "a library whose seal's name is damaged" "$tmp/magic.so" "it has no dnc seal"
refused "the debug-info file of a split package" "$tmp/split.debug" "a debug-info file"
if command -v patchelf >/dev/null; then
  cp "$tmp/lib.so" "$tmp/rpath.so"
  patchelf --set-rpath '$ORIGIN/../lib' "$tmp/rpath.so"
  refused "patchelf --set-rpath" "$tmp/rpath.so" "its loaded segments were rewritten"
  cp "$tmp/lib.so" "$tmp/needed.so"
  patchelf --add-needed libz.so.1 "$tmp/needed.so"
  refused "patchelf --add-needed" "$tmp/needed.so" "its loaded segments were rewritten"
else
  t "# SKIP no patchelf" true
fi
tap_done
