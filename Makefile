# dnc - build, test, demo, install.
#
#   make            build/dnc, build/libdnc.a, build/libdnc.so
#   make demo       install what is missing, build, run the examples end to end
#   make test       install what is missing, build, run the whole suite (prove)
#   make test SANITIZE=1   the same suite under ASan + UBSan (in build/san)
#   make tsan       the concurrency and kernel tests under ThreadSanitizer
#   make check-math every f32 input through dnc's vector math (docs/accuracy.md)
#   make bench      kernel speed against a memory copy, search speed
#   make wheel      build/wheel/dnc-*.whl with LLVM linked in (docs/python.md)
#                   (bench/README.md)
#   make fuzz       libFuzzer over the front end (clang-19; FUZZ_SECONDS=600);
#                   tests/fuzz.sh replays its corpus and runs it 20 s in make test
#   make install PREFIX=/usr/local DESTDIR=
#
# LLVM 19 is found through llvm-config-19 (override: make LLVM_CONFIG=...).

LLVM_CONFIG ?= llvm-config-19
ifeq ($(origin CC),default)
CC = gcc
endif
PREFIX ?= /usr/local
DESTDIR ?=
SANITIZE ?=
FUZZ_SECONDS ?= 600

ifeq ($(SANITIZE),1)
BUILD ?= build/san
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else ifeq ($(SANITIZE),thread)
BUILD ?= build/tsan
SANFLAGS = -fsanitize=thread -fno-omit-frame-pointer
else
BUILD ?= build
SANFLAGS =
endif

# The version has one home, runtime/dnc.h's DNC_VERSION_STRING: the
# library, `make install`, dnc.pc and the Python wheel all read it there.
VERSION := $(shell sed -n 's/^\#define DNC_VERSION_STRING "\(.*\)"/\1/p' runtime/dnc.h)
# The shared library's soname is libdnc.so.$(ABI): a program linked against
# one ABI never loads a library of another (dnc_options may have grown)
ABI := $(shell sed -n 's/^\#define DNC_ABI_VERSION \([0-9]*\)/\1/p' runtime/dnc.h)
CFLAGS ?= -O2 -g
WARN = -Wall -Wextra -Werror
BASEFLAGS = -std=c11 -D_GNU_SOURCE -fPIC $(SANFLAGS)
# Each object's header dependencies, written by the compiler beside it.
DEPFLAGS = -MMD -MP
# libdnc's objects: every symbol hidden but those dnc.h marks DNC_API, so
# that libdnc.so exports exactly the public API (tests/exports.sh).
LIBFLAGS = -fvisibility=hidden
INCLUDES = -Icompiler -Iruntime -I$(BUILD)/gen -isystem $(LLVM_INCLUDEDIR)
# Generated scanner and parser: these particular warnings come from flex and
# bison skeleton code, not from ours, and are switched off for those two
# files only.
GEN_WARN = -Wno-unused-function -Wno-sign-compare -Wno-unused-parameter

# Lazily expanded, so that `make deps` can install llvm-config first.
LLVM_INCLUDEDIR = $(shell $(LLVM_CONFIG) --includedir)
LLVM_LIBS = $(shell $(LLVM_CONFIG) --link-shared --ldflags --libs core native orcjit) \
            -Wl,-rpath,$(shell $(LLVM_CONFIG) --libdir)
LIBS = -lm -lpthread

COMPILER_SRC = $(wildcard compiler/*.c)
# The command line (the dnc driver, option parsing, CSV, the fit, search
# and plot commands): linked into build/dnc, not into libdnc.
CLI_SRC = $(wildcard cli/*.c)
CLI_OBJ = $(CLI_SRC:cli/%.c=$(BUILD)/obj/cli_%.o)
# the files that include LLVM's headers (left out of the fuzzing build)
LLVM_SRC = compiler/llvm_host.c compiler/codegen.c compiler/vmath.c compiler/jit.c \
           compiler/aot.c
RUNTIME_SRC = $(wildcard runtime/*.c)
LIB_OBJ = $(COMPILER_SRC:compiler/%.c=$(BUILD)/obj/%.o) \
          $(RUNTIME_SRC:runtime/%.c=$(BUILD)/obj/rt_%.o) \
          $(BUILD)/obj/parser.o $(BUILD)/obj/lexer.o
# Generated headers: made before any object is compiled (order-only);
# after that the -MMD files say which object includes which.
GEN_HEADERS = $(BUILD)/gen/parser.h $(BUILD)/gen/lexer.h $(BUILD)/gen/llvm_names.h \
              $(BUILD)/gen/dnc_aot_h.inc

TEST_SRC = $(wildcard tests/test_*.c)
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_SCRIPTS = $(wildcard tests/*.sh)

PYTHON ?= /usr/bin/python3
# The project's virtualenv with PyTorch 2 from PyPI (tools/deps.sh makes it).
VENV ?= .venv
VENV_PYTHON = $(VENV)/bin/python
# Two test programs at a time: no test measures time, and the longest ones
# (test_jit, the SymPy check) then overlap.
PROVE_FLAGS ?= -j2

.PHONY: all deps demo test run-tests run-pytest tests torch-ext bench bundle install uninstall fuzz fuzz-build clean tsan examples check-math
.DELETE_ON_ERROR:

all: $(BUILD)/dnc $(BUILD)/libdnc.a $(BUILD)/libdnc.so

$(BUILD)/gen/parser.c $(BUILD)/gen/parser.h &: grammar/parser.y
	@mkdir -p $(BUILD)/gen
	bison -Wall -Werror --header=$(BUILD)/gen/parser.h -o $(BUILD)/gen/parser.c $<

$(BUILD)/gen/lexer.c $(BUILD)/gen/lexer.h &: grammar/lexer.l $(BUILD)/gen/parser.h
	@mkdir -p $(BUILD)/gen
	flex --header-file=$(BUILD)/gen/lexer.h -o $(BUILD)/gen/lexer.c $<

# The CPU and feature names LLVM knows, to refuse unknown ones (jit.c).
$(BUILD)/gen/llvm_names.h: tools/llvm_names.sh
	@mkdir -p $(BUILD)/gen
	sh tools/llvm_names.sh $(shell $(LLVM_CONFIG) --bindir)/llc $@

# runtime/dnc_aot.h as a C string: `dnc compile` copies it into the C of
# every library it writes (aot.c), so the descriptor has one definition.
$(BUILD)/gen/dnc_aot_h.inc: runtime/dnc_aot.h
	@mkdir -p $(BUILD)/gen
	{ echo 'static const char dnc_aot_h_text[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$$/\\n"/' $<; \
	  echo '    ;'; } >$@

$(BUILD)/obj/parser.o: $(BUILD)/gen/parser.c | $(GEN_HEADERS)
	@mkdir -p $(BUILD)/obj
	$(CC) $(BASEFLAGS) $(LIBFLAGS) $(DEPFLAGS) $(CFLAGS) $(WARN) $(GEN_WARN) $(INCLUDES) -c -o $@ $<

$(BUILD)/obj/lexer.o: $(BUILD)/gen/lexer.c | $(GEN_HEADERS)
	@mkdir -p $(BUILD)/obj
	$(CC) $(BASEFLAGS) $(LIBFLAGS) $(DEPFLAGS) $(CFLAGS) $(WARN) $(GEN_WARN) $(INCLUDES) -c -o $@ $<

$(BUILD)/obj/%.o: compiler/%.c | $(GEN_HEADERS)
	@mkdir -p $(BUILD)/obj
	$(CC) $(BASEFLAGS) $(LIBFLAGS) $(DEPFLAGS) $(CFLAGS) $(WARN) $(INCLUDES) -c -o $@ $<

$(BUILD)/obj/rt_%.o: runtime/%.c | $(GEN_HEADERS)
	@mkdir -p $(BUILD)/obj
	$(CC) $(BASEFLAGS) $(LIBFLAGS) $(DEPFLAGS) $(CFLAGS) $(WARN) $(INCLUDES) -c -o $@ $<

$(BUILD)/obj/cli_%.o: cli/%.c | $(GEN_HEADERS)
	@mkdir -p $(BUILD)/obj
	$(CC) $(BASEFLAGS) $(DEPFLAGS) $(CFLAGS) $(WARN) -Icli $(INCLUDES) -c -o $@ $<

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/tests/*.d $(BUILD)/bench/*.d)

$(BUILD)/libdnc.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libdnc.so: $(LIB_OBJ)
	$(CC) -shared $(SANFLAGS) -Wl,-soname,libdnc.so.$(ABI) -o $@ $^ $(LLVM_LIBS) $(LIBS)
	ln -sf libdnc.so $(BUILD)/libdnc.so.$(ABI)

$(BUILD)/dnc: $(CLI_OBJ) $(BUILD)/libdnc.a
	$(CC) $(SANFLAGS) -o $@ $^ $(LLVM_LIBS) $(LIBS)

$(BUILD)/tests/test_%: tests/test_%.c $(BUILD)/libdnc.a | $(GEN_HEADERS)
	@mkdir -p $(BUILD)/tests
	$(CC) $(BASEFLAGS) $(DEPFLAGS) $(CFLAGS) $(WARN) $(INCLUDES) -Itests -o $@ $< $(BUILD)/libdnc.a $(LLVM_LIBS) $(LIBS)

$(BUILD)/tests/gen_corpus: tests/gen_corpus.c
	@mkdir -p $(BUILD)/tests
	$(CC) $(BASEFLAGS) $(DEPFLAGS) $(CFLAGS) $(WARN) -Itests -o $@ $<

tests: all $(TEST_BIN) $(BUILD)/tests/gen_corpus $(BUILD)/examples/embed \
       $(BUILD)/examples/aot $(BUILD)/tests/fuzz_replay $(BUILD)/bench/ab \
       $(BUILD)/bench/fma_rate $(BUILD)/bench/phases $(BUILD)/bench/floor torch-ext

# dnc.torch's eager layer call in C++ (python/dnc/_torch_ext.cpp), for the
# virtualenv's PyTorch, beside libdnc.so in $(BUILD)/torch/: where that
# PyTorch has no C++ headers (or there is no virtualenv) it says so and
# dnc.torch calls its kernels from Python (docs/python.md, "Speed").
torch-ext: $(BUILD)/libdnc.so
	@sh tools/torch_ext.sh $(VENV_PYTHON) $(BUILD)/torch

# The libFuzzer target built with $(CC) and a main() that replays files
# (tests/fuzz/replay.c): tests/fuzz.sh runs the committed corpus through it.
$(BUILD)/tests/fuzz_replay: tests/fuzz/fuzz_frontend.c tests/fuzz/replay.c $(BUILD)/libdnc.a
	@mkdir -p $(BUILD)/tests
	$(CC) $(BASEFLAGS) $(CFLAGS) $(WARN) $(INCLUDES) -o $@ tests/fuzz/fuzz_frontend.c \
	  tests/fuzz/replay.c $(BUILD)/libdnc.a $(LLVM_LIBS) $(LIBS)

# examples/embed.c: libdnc in a C program (docs/c-api.md), built as a user's
# program is, with dnc.h alone, against the static library; run by
# `make examples` and, in the suite, by tests/examples.sh.
$(BUILD)/examples/embed: examples/embed.c runtime/dnc.h $(BUILD)/libdnc.a
	@mkdir -p $(BUILD)/examples
	$(CC) $(BASEFLAGS) $(CFLAGS) $(WARN) -Iruntime -o $@ $< $(BUILD)/libdnc.a $(LLVM_LIBS) $(LIBS)

# examples/aot.c: a plain C program over the library and header that
# `dnc compile` writes from examples/norms.dn; no LLVM, no libdnc.
$(BUILD)/examples/libnorms.so $(BUILD)/examples/norms.h &: examples/norms.dn $(BUILD)/dnc
	@mkdir -p $(BUILD)/examples
	$(BUILD)/dnc compile examples/norms.dn -o $(BUILD)/examples/libnorms.so \
	  -H $(BUILD)/examples/norms.h

$(BUILD)/examples/aot: examples/aot.c $(BUILD)/examples/libnorms.so $(BUILD)/examples/norms.h
	$(CC) -std=c99 $(CFLAGS) $(WARN) -I$(BUILD)/examples -o $@ $< \
	  -L$(BUILD)/examples -lnorms -Wl,-rpath,'$$ORIGIN' -lm

examples: $(BUILD)/examples/embed $(BUILD)/examples/aot
	$(BUILD)/examples/embed
	$(BUILD)/examples/aot

deps:
	@DNC_VENV=$(abspath $(VENV)) sh tools/deps.sh

demo: deps
	@$(MAKE) --no-print-directory all $(BUILD)/examples/embed $(BUILD)/examples/aot
	@sh tools/demo.sh $(BUILD)/dnc

test: deps
	@$(MAKE) --no-print-directory tests
	@$(MAKE) --no-print-directory run-tests

# The scripts find the build through DNC_BUILD; sanitizer options make any
# report fatal. The kernel cache is off, and its default directory is in
# the build, never the user's (tests/test_kcache.c turns it on in its own).
run-tests:
	DNC_BUILD=$(BUILD) DNC_PYTHON=$(PYTHON) DNC_VENV_PYTHON=$(VENV_PYTHON) \
	DNC_CACHE=0 XDG_CACHE_HOME=$(abspath $(BUILD))/tests/xdg-cache DNC_CACHE_DIR= \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	prove $(PROVE_FLAGS) $(TEST_BIN) $(TEST_SCRIPTS); rc=$$?; \
	$(MAKE) --no-print-directory run-pytest || rc=1; exit $$rc

# The Python tests (pytest collects tests/python/test_*.py) under Debian's
# python (PyTorch 1.13) and the virtualenv's (PyTorch 2); -rs prints why
# each skipped test was skipped. Under the sanitizers the Debian run takes
# every test through the instrumented libdnc; the virtualenv's leaves out
# those marked slow (inductor compiling, spawned workers, the gradchecks
# the Debian run has just made), which spend minutes in PyTorch under ASan
# and call libdnc as the others do.
PYTEST_FLAGS ?= -q -rs
ifeq ($(SANITIZE),1)
VENV_PYTEST_FLAGS = -m "not slow"
endif
run-pytest: export DNC_CACHE = 0
run-pytest: export XDG_CACHE_HOME = $(abspath $(BUILD))/tests/xdg-cache
run-pytest:
	DNC_BUILD=$(BUILD) ASAN_OPTIONS=abort_on_error=0:halt_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	tools/pytest.sh $(PYTHON) $(PYTEST_FLAGS); rc=$$?; \
	$(if $(VENV_PYTEST_FLAGS),echo "sanitizer build: $(VENV_PYTHON) runs the tests not marked slow";) \
	DNC_BUILD=$(BUILD) ASAN_OPTIONS=abort_on_error=0:halt_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 DNC_TORCH_EXT_BUILT=1 \
	tools/pytest.sh $(VENV_PYTHON) $(PYTEST_FLAGS) $(VENV_PYTEST_FLAGS) \
	|| rc=1; exit $$rc

# Kernel speed as ratios to a memory copy, and JIT latency: bench/README.md.
# DNC_BENCH_ROWS, DNC_BENCH_COLS and DNC_BENCH_REPS make a quick run.
bench: $(BUILD)/bench/kernels $(BUILD)/bench/incache $(BUILD)/bench/pool_wait $(BUILD)/bench/fma_rate $(BUILD)/libdnc.so $(BUILD)/dnc torch-ext
	$(BUILD)/bench/fma_rate
	$(BUILD)/bench/kernels $(BUILD)/bench/kernels.json
	$(BUILD)/bench/incache $(BUILD)/bench/kernels.json
	$(BUILD)/bench/pool_wait $(BUILD)/bench/kernels.json
	DNC_BUILD=$(BUILD) $(if $(wildcard $(VENV_PYTHON)),$(VENV_PYTHON),$(PYTHON)) \
	  bench/torch_eager.py $(BUILD)/bench/kernels.json
	DNC_BUILD=$(BUILD) $(VENV_PYTHON) bench/torch2.py $(BUILD)/bench/kernels.json
	DNC_BUILD=$(BUILD) $(if $(wildcard $(VENV_PYTHON)),$(VENV_PYTHON),$(PYTHON)) \
	  bench/jax_peer.py $(BUILD)/bench/kernels.json
	$(PYTHON) bench/search.py $(BUILD)/dnc $(BUILD)/bench/kernels.json
	$(PYTHON) bench/aot_scale.py $(BUILD)/dnc $(BUILD)/bench/kernels.json

# A libdnc.so with LLVM linked in (static LLVM libraries, all targets,
# libstdc++, zlib and zstd static; it needs only libc and libm, which the
# manylinux policy allows): for a
# machine without LLVM 19, such as the 16-core benchmark machine, where
# bench/device.sh builds the benchmarks against it. Compressed with xz.
bundle: $(BUILD)/bundle/libdnc.so.xz $(BUILD)/bundle/libsleef.so.3

# LLVM's compression libraries, static (zlib1g-dev and libzstd-dev,
# tools/deps.sh): the shared ones where the archives are missing.
BUNDLE_COMPRESSION = $(or $(wildcard /usr/lib/x86_64-linux-gnu/libz.a),-lz) \
  $(or $(wildcard /usr/lib/x86_64-linux-gnu/libzstd.a),$(firstword $(wildcard \
  /usr/lib/x86_64-linux-gnu/libzstd.so /usr/lib/x86_64-linux-gnu/libzstd.so.1)))

$(BUILD)/bundle/libdnc.so.xz: $(LIB_OBJ)
	@mkdir -p $(BUILD)/bundle
	g++ -shared -o $(BUILD)/bundle/libdnc.so -Wl,-soname,libdnc.so.$(ABI) \
	  -Wl,--no-undefined -Wl,--gc-sections $(LIB_OBJ) \
	  $(shell $(LLVM_CONFIG) --link-static --ldflags --libs all-targets core native orcjit) \
	  -Wl,--as-needed $(BUNDLE_COMPRESSION) -static-libstdc++ -static-libgcc \
	  -Wl,--exclude-libs,ALL $(LIBS) -ldl -lrt
	strip $(BUILD)/bundle/libdnc.so
	xz -T0 -3 -f $(BUILD)/bundle/libdnc.so

# What bench/device.sh builds the benchmarks with beside the library (not
# the wheel's: it needs no SLEEF).
$(BUILD)/bundle/libsleef.so.3: runtime/dnc.h
	@mkdir -p $(BUILD)/bundle
	cp runtime/dnc.h $(wildcard /usr/include/sleef.h /usr/include/*/sleef.h) $(BUILD)/bundle/
	cp -L $(firstword $(wildcard /usr/lib/*/libsleef.so.3 /usr/lib/libsleef.so.3) libsleef.so.3) $(BUILD)/bundle/

# A wheel for machines without LLVM 19: the library of `make bundle` (LLVM
# linked in) and python/dnc, tagged manylinux_<glibc>_<arch> for this
# machine's glibc, written by tools/wheel_backend.py (no network, no
# setuptools): $(BUILD)/wheel/dnc-VERSION-py3-none-TAG.whl.
wheel: $(BUILD)/bundle/libdnc.so.xz
	@mkdir -p $(BUILD)/wheel
	rm -f $(BUILD)/wheel/dnc-*.whl
	xz -dkc $(BUILD)/bundle/libdnc.so.xz > $(BUILD)/wheel/libdnc.so
	DNC_WHEEL_LIB=$(BUILD)/wheel/libdnc.so DNC_WHEEL_PLATFORM=manylinux \
	  $(PYTHON) tools/wheel_backend.py $(BUILD)/wheel

# In-cache vector math against glibc's libmvec (a loop gcc vectorises with
# -O3 -march=native -ffast-math, the flags of that one file) and SLEEF.
$(BUILD)/bench/libmvec.o: bench/libmvec.c
	@mkdir -p $(BUILD)/bench
	$(CC) -O3 -march=native -ffast-math -c -o $@ $<

$(BUILD)/bench/incache: bench/incache.c bench/bench.h $(BUILD)/bench/libmvec.o runtime/dnc.h $(BUILD)/libdnc.a
	@mkdir -p $(BUILD)/bench
	$(CC) $(BASEFLAGS) $(CFLAGS) -march=native $(WARN) $(INCLUDES) -o $@ $< \
	  $(BUILD)/bench/libmvec.o $(BUILD)/libdnc.a -lsleef $(LLVM_LIBS) $(LIBS)

# The thread pool's spinning against sleeping at once, on training-size calls.
$(BUILD)/bench/pool_wait: bench/pool_wait.c bench/bench.h runtime/dnc.h $(BUILD)/libdnc.a
	@mkdir -p $(BUILD)/bench
	$(CC) $(BASEFLAGS) $(CFLAGS) $(WARN) $(INCLUDES) -o $@ $< \
	  $(BUILD)/libdnc.a $(LLVM_LIBS) $(LIBS)

# The C peer a programmer would write (bench/peer.c), with the flags of
# that comparison: gcc vectorises tanhf and erff into libmvec calls.
$(BUILD)/bench/peer.o: bench/peer.c bench/peer.h
	@mkdir -p $(BUILD)/bench
	$(CC) -O3 -march=native -ffast-math -c -o $@ $<

$(BUILD)/bench/kernels: bench/kernels.c bench/bench.h bench/peer.h $(BUILD)/bench/peer.o runtime/dnc.h $(BUILD)/libdnc.a
	@mkdir -p $(BUILD)/bench
	$(CC) $(BASEFLAGS) $(CFLAGS) $(WARN) $(INCLUDES) -Ibench -o $@ $< $(BUILD)/bench/peer.o \
	  $(BUILD)/libdnc.a $(LLVM_LIBS) $(LIBS)

# 512-bit multiply-adds a cycle and their latency (bench/fma_rate.c)
$(BUILD)/bench/fma_rate: bench/fma_rate.c
	@mkdir -p $(BUILD)/bench
	$(CC) -O2 $(WARN) -o $@ $<

# DyT's backward in C, its chain split from the rest or not (bench/phases.c)
$(BUILD)/bench/phases: bench/phases.c
	@mkdir -p $(BUILD)/bench
	$(CC) -O2 $(WARN) -o $@ $< -lm

# The floor's layer backward, dnc against C loops of the same work
# (bench/floor.c): build/bench/floor LIBDNC.so [ROWS COLS]
$(BUILD)/bench/floor: bench/floor.c bench/bench.h runtime/dnc.h
	@mkdir -p $(BUILD)/bench
	$(CC) $(BASEFLAGS) $(CFLAGS) $(WARN) $(INCLUDES) -o $@ $< -ldl -lm

# Two libdnc.so builds' layer kernels timed alternately (bench/ab.c):
# build/bench/ab OLD/libdnc.so NEW/libdnc.so [SOURCE [ROWS COLS]]
$(BUILD)/bench/ab: bench/ab.c bench/bench.h runtime/dnc.h
	@mkdir -p $(BUILD)/bench
	$(CC) $(BASEFLAGS) $(CFLAGS) $(WARN) $(INCLUDES) -o $@ $< -ldl

# Every f32 input through each of dnc's own vector math functions, against
# double references: the table of docs/accuracy.md (minutes; not in CI,
# whose test_vmath takes every 257th input).
check-math: $(BUILD)/tests/test_vmath
	DNC_MATH_STRIDE=1 DNC_MATH_F64=100000000 $(BUILD)/tests/test_vmath | tee $(BUILD)/check-math.txt

# ThreadSanitizer over the tests that run threads (its own build, build/tsan).
tsan: deps
	@$(MAKE) --no-print-directory SANITIZE=thread build/tsan/tests/test_concurrency \
	  build/tsan/tests/test_kernels
	TSAN_OPTIONS="halt_on_error=1 suppressions=$(CURDIR)/tests/tsan.supp" prove build/tsan/tests/test_concurrency \
	  build/tsan/tests/test_kernels

# The loader's cache (ldconfig) is refreshed only for a prefix whose lib/
# it searches by default, installed in place (no DESTDIR): a private
# PREFIX has nothing in the system's cache to refresh.
LDCONFIG_PREFIXES = /usr /usr/local
run_ldconfig = $(if $(DESTDIR),,$(filter $(LDCONFIG_PREFIXES),$(patsubst %/,%,$(PREFIX))))
ldconfig_cmd = -@if [ -w /etc/ld.so.cache ] && command -v ldconfig >/dev/null; then ldconfig; fi

# dnc.pc names PREFIX as it is: a relative one would name a folder relative
# to wherever pkg-config runs
ifneq ($(filter install uninstall,$(MAKECMDGOALS)),)
ifeq ($(filter /%,$(PREFIX)),)
$(error PREFIX=$(PREFIX) is not an absolute path: make install PREFIX=$$PWD/$(PREFIX) says where)
endif
endif

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib \
	  $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/dnc $(DESTDIR)$(PREFIX)/bin/dnc
	install -m 644 $(BUILD)/libdnc.a $(DESTDIR)$(PREFIX)/lib/libdnc.a
	install -m 755 $(BUILD)/libdnc.so $(DESTDIR)$(PREFIX)/lib/libdnc.so.$(VERSION)
	ln -sf libdnc.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libdnc.so.$(ABI)
	ln -sf libdnc.so.$(ABI) $(DESTDIR)$(PREFIX)/lib/libdnc.so
	install -m 644 runtime/dnc.h $(DESTDIR)$(PREFIX)/include/dnc.h
	install -m 644 runtime/dnc_aot.h $(DESTDIR)$(PREFIX)/include/dnc_aot.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	  -e 's|@LLVM_LIBDIR@|$(shell $(LLVM_CONFIG) --libdir)|g' \
	  tools/dnc.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/dnc.pc
	@# the loader's cache: /usr/local/lib is searched only through it
	$(if $(run_ldconfig),$(ldconfig_cmd))

# Exactly what install wrote, by name: no pattern, so another version's
# libdnc.so.X.Y.Z (or any other file beside them) stays.
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/dnc $(DESTDIR)$(PREFIX)/lib/libdnc.a \
	  $(DESTDIR)$(PREFIX)/lib/libdnc.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libdnc.so.$(ABI) \
	  $(DESTDIR)$(PREFIX)/lib/libdnc.so $(DESTDIR)$(PREFIX)/include/dnc.h \
	  $(DESTDIR)$(PREFIX)/include/dnc_aot.h $(DESTDIR)$(PREFIX)/lib/pkgconfig/dnc.pc
	@# else the cache still names the removed libdnc.so.$(ABI)
	$(if $(run_ldconfig),$(ldconfig_cmd))

# libFuzzer over the front end: its own build with clang-19, not in CI.
FUZZ_BUILD = build/fuzz
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=all -Icompiler -Iruntime -I$(FUZZ_BUILD)/gen
fuzz:
	@DNC_DEPS_VENV=0 sh tools/deps.sh
	@$(MAKE) --no-print-directory fuzz-build
	cp examples/*.dn tests/diag/*.dn tests/fuzz/seeds/*.dn tests/fuzz/regressions/*.dn \
	  $(FUZZ_BUILD)/corpus/
	$(FUZZ_BUILD)/fuzz_frontend -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -timeout=10 -dict=tests/fuzz/dnc.dict $(FUZZ_BUILD)/corpus

# The libFuzzer target alone (tests/fuzz.sh runs it briefly when clang-19
# and libFuzzer are installed).
fuzz-build: $(FUZZ_BUILD)/fuzz_frontend

$(FUZZ_BUILD)/fuzz_frontend: tests/fuzz/fuzz_frontend.c $(wildcard compiler/*.c compiler/*.h) \
                             runtime/pool.c grammar/parser.y grammar/lexer.l
	@mkdir -p $(FUZZ_BUILD)/gen $(FUZZ_BUILD)/corpus
	bison --header=$(FUZZ_BUILD)/gen/parser.h -o $(FUZZ_BUILD)/gen/parser.c grammar/parser.y
	flex --header-file=$(FUZZ_BUILD)/gen/lexer.h -o $(FUZZ_BUILD)/gen/lexer.c grammar/lexer.l
	clang-19 $(FUZZ_CFLAGS) -o $(FUZZ_BUILD)/fuzz_frontend tests/fuzz/fuzz_frontend.c \
	  $(filter-out $(LLVM_SRC),$(wildcard compiler/*.c)) runtime/pool.c \
	  $(FUZZ_BUILD)/gen/parser.c $(FUZZ_BUILD)/gen/lexer.c -lm -lpthread

clean:
	rm -rf build
