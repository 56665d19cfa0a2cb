#!/bin/bash
# The Python package over NumPy: tests/python/test_numpy.py, with Debian's
# python ($DNC_PYTHON) and the build's libdnc ($DNC_BUILD).
. "$(dirname "$0")/python_env.bash"
exec "$PY" tests/python/test_numpy.py
