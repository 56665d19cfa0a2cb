# python_env.bash - what the Python tests share (sourced by tools/pytest.sh):
# the interpreter ($PY) with python/ and tests/python on its path, and the
# build's libdnc ($DNC_BUILD). In a sanitizer build libdnc is instrumented,
# and the interpreter is not: the sanitizer runtimes are preloaded, and leak
# checks (of the interpreter's own allocations) are off.
export DNC_BUILD="${DNC_BUILD:-build}"
export PYTHONPATH="python:tests/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
export DNC_SANITIZED=
if nm -D "$DNC_BUILD/libdnc.so" 2>/dev/null | grep -q __asan_init; then
  DNC_SANITIZED=1
  export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
fi
