#!/usr/bin/env bash
# pytest.sh PYTHON [PYTEST ARGS...] - the Python tests (every
# tests/python/test_*.py) under one interpreter, with the build's libdnc
# ($DNC_BUILD). `make test` runs it for Debian's /usr/bin/python3 (PyTorch
# 1.13) and for the project's .venv (PyTorch 2). A missing interpreter or
# pytest is a failure, not a silent pass.
set -u
cd "$(dirname "$0")/.." || exit 1
PY="$1"
shift
. tools/python_env.bash
if ! [ -x "$PY" ] && ! command -v "$PY" >/dev/null; then
  echo "pytest.sh: no interpreter $PY (make deps makes .venv)" >&2
  exit 1
fi
echo "== pytest tests/python under $PY${DNC_SANITIZED:+ (ASan + UBSan runtimes preloaded)}"
exec "$PY" -m pytest -p no:cacheprovider "$@" tests/python
