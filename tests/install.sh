#!/usr/bin/env bash
# install.sh - `make install` into a DESTDIR gives the binary, both
# libraries, dnc.h and a dnc.pc with which a C program builds and runs,
# against the shared library or (pkg-config --static) the static one.
set -u
B="${DNC_BUILD:-build}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fail=0
t() { # t NAME CMD...
  n=$((n + 1))
  if "${@:2}" >"$tmp/log" 2>&1; then
    echo "ok $n - $1"
  else
    echo "not ok $n - $1"
    tail -20 "$tmp/log" | sed 's/^/#   /'
    fail=$((fail + 1))
  fi
}
san=""
case "$B" in *san*) san="-fsanitize=address,undefined" SANITIZE=1 ;; esac
t "make install into a DESTDIR" make -s install BUILD="$B" SANITIZE="${SANITIZE:-}" DESTDIR="$tmp/root" PREFIX=/opt/dnc
abi=$(sed -n 's/^#define DNC_ABI_VERSION \([0-9]*\)/\1/p' runtime/dnc.h)
for f in bin/dnc lib/libdnc.a lib/libdnc.so "lib/libdnc.so.$abi" include/dnc.h include/dnc_aot.h lib/pkgconfig/dnc.pc; do
  t "installs $f" test -e "$tmp/root/opt/dnc/$f"
done
cat >"$tmp/use.c" <<'C'
#include <dnc.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
  dnc_context *c = dnc_context_new();
  dnc_module *m;
  const char *s = "fn dyt(x; alpha = 0.5) = tanh(alpha * x)";
  if (dnc_compile_string(c, "s", s, strlen(s), &m) != DNC_OK)
    return 1;
  double x = 1, y;
  dnc_function_eval(dnc_module_find(m, "dyt"), &x, &y, 1, NULL);
  printf("%.17g\n", y);
  dnc_module_free(m);
  dnc_context_free(c);
  return 0;
}
C
flags=$(PKG_CONFIG_PATH="$tmp/root/opt/dnc/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$tmp/root" pkg-config --cflags --libs dnc 2>/dev/null)
t "pkg-config knows dnc" test -n "$flags"
t "a C program builds against the installed header and library" \
  cc -std=c99 -Wall -Wextra -Werror $san -o "$tmp/use" "$tmp/use.c" $flags
out=$(LD_LIBRARY_PATH="$tmp/root/opt/dnc/lib" "$tmp/use" 2>&1)
t "and runs: dyt(1) = tanh(0.5)" test "$out" = "0.46211715726000974"
t "the installed dnc runs" "$tmp/root/opt/dnc/bin/dnc" eval examples/norms.dn -f dyt 1
t "the library's soname is libdnc.so.<DNC_ABI_VERSION>" \
  sh -c "readelf -d '$tmp/root/opt/dnc/lib/libdnc.so.$abi' | grep -q 'Library soname: \[libdnc.so.$abi\]'"
# against the installed static library, with what `pkg-config --static`
# lists after -ldnc (docs/c-api.md): no libdnc.so needed at run time
sflags=$(PKG_CONFIG_PATH="$tmp/root/opt/dnc/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$tmp/root" pkg-config --static --libs dnc 2>/dev/null | sed 's/ -ldnc / /')
t "a C program links the installed static library" \
  cc -std=c99 -Wall -Wextra -Werror $san -I"$tmp/root/opt/dnc/include" -o "$tmp/usestatic" "$tmp/use.c" \
  "$tmp/root/opt/dnc/lib/libdnc.a" $sflags
t "  which it does not need libdnc.so for" sh -c "! readelf -d '$tmp/usestatic' | grep -q 'libdnc'"
out=$("$tmp/usestatic" 2>&1)
t "and runs: dyt(1) = tanh(0.5)" test "$out" = "0.46211715726000974"
# against the build tree's library: it has the soname's link beside it
t "a C program builds against the build tree's library" \
  cc -std=c99 -Wall -Wextra -Werror $san -Iruntime -o "$tmp/usebuild" "$tmp/use.c" \
  -L"$B" -ldnc -Wl,-rpath,"$(cd "$B" && pwd)"
out=$("$tmp/usebuild" 2>&1)
t "and runs from there: dyt(1) = tanh(0.5)" test "$out" = "0.46211715726000974"
# the same program as C++ (dnc.h and dnc_aot.h are C++ compatible)
{ echo '#include <dnc_aot.h>'; cat "$tmp/use.c"; } >"$tmp/use.cc"
t "a C++ program builds against the installed headers and library" \
  c++ -std=c++11 -Wall -Wextra -Werror -pedantic $san -o "$tmp/usecc" "$tmp/use.cc" $flags
out=$(LD_LIBRARY_PATH="$tmp/root/opt/dnc/lib" "$tmp/usecc" 2>&1)
t "and runs: dyt(1) = tanh(0.5)" test "$out" = "0.46211715726000974"
# uninstall removes what install wrote and nothing else: not another
# version's library, not a file of the user's beside them
touch "$tmp/root/opt/dnc/lib/libdnc.so.0.3.9" "$tmp/root/opt/dnc/lib/libdnc.so.mine"
t "make uninstall" make -s uninstall BUILD="$B" SANITIZE="${SANITIZE:-}" DESTDIR="$tmp/root" PREFIX=/opt/dnc
left=$(cd "$tmp/root/opt/dnc" && find . ! -type d | sort | tr '\n' ' ')
t "it leaves only the files it did not install" test "$left" = "./lib/libdnc.so.0.3.9 ./lib/libdnc.so.mine "
# the loader's cache is the system's: a private PREFIX (no DESTDIR) never
# runs ldconfig, install or uninstall; /usr/local does, both ways (make -n:
# the command is only printed). A stand-in ldconfig first on the PATH
# notes any call.
mkdir "$tmp/fakebin"
printf '#!/bin/sh\necho "$*" >>"%s"\n' "$tmp/ldconfig-ran" >"$tmp/fakebin/ldconfig"
chmod +x "$tmp/fakebin/ldconfig"
fake() { PATH="$tmp/fakebin:$PATH" "$@"; }
t "make install into a private PREFIX" fake make -s install BUILD="$B" SANITIZE="${SANITIZE:-}" PREFIX="$tmp/private"
t "  runs no ldconfig" test ! -e "$tmp/ldconfig-ran"
t "make uninstall from it" fake make -s uninstall BUILD="$B" SANITIZE="${SANITIZE:-}" PREFIX="$tmp/private"
t "  runs no ldconfig" test ! -e "$tmp/ldconfig-ran"
t "make install PREFIX=/usr/local would run ldconfig" \
  sh -c "PATH='$tmp/fakebin:$PATH' make -n install BUILD='$B' SANITIZE='${SANITIZE:-}' PREFIX=/usr/local | grep -q ldconfig"
t "make uninstall PREFIX=/usr/local would run ldconfig" \
  sh -c "PATH='$tmp/fakebin:$PATH' make -n uninstall BUILD='$B' SANITIZE='${SANITIZE:-}' PREFIX=/usr/local | grep -q ldconfig"
t "  but not into a DESTDIR" \
  sh -c "! PATH='$tmp/fakebin:$PATH' make -n install BUILD='$B' SANITIZE='${SANITIZE:-}' PREFIX=/usr/local DESTDIR='$tmp/root' | grep -q ldconfig"
# dnc.pc's prefix= is PREFIX as given: a relative one is refused
rm -rf "$tmp/root"
t "a relative PREFIX is refused" sh -c "! make -s install BUILD='$B' SANITIZE='${SANITIZE:-}' PREFIX=relprefix DESTDIR='$tmp/root/'"
t "  and nothing is written" test ! -e "$tmp/root"
echo "1..$n"
[ "$fail" = 0 ]
