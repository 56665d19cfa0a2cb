#!/bin/bash
# dnc.torch: tests/python/test_torch.py, with Debian's python
# ($DNC_PYTHON), which sees python3-torch.
. "$(dirname "$0")/python_env.bash"
exec "$PY" tests/python/test_torch.py
