"""test_fit_p10.py - Function.fit of more points than the memory holds:
the solver wrote through malloc's NULL and the process died of a
segmentation fault; now the fit says so (status "toolarge"), and the
process goes on. Run in a child whose address space is capped."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PYDIR = os.path.join(ROOT, "python")

CHILD = r'''
import resource, sys
import numpy as np
import dnc
f = dnc.compile("fn derf(x; alpha = 0.5, shift = 0) = erf(alpha * x + shift)")["derf"]
x = np.linspace(-5, 5, 30000000)
y = np.tanh(x)
with open("/proc/self/statm") as fh:
    vsz = int(fh.read().split()[0]) * 4096
# room for a little, not for the Jacobian's 2 x 480 MB
resource.setrlimit(resource.RLIMIT_AS, (vsz + (600 << 20),) * 2)
r = f.fit(x, y, max_iter=2)
print(r.status, "|", r.message, "|", r.values["alpha"])
'''


def test_fit_of_too_many_points_for_the_memory():
    build = os.environ.get("DNC_BUILD", "build")
    if "san" in build or "asan" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("the sanitizers reserve more address space than the cap")
    pytest.importorskip("numpy")
    e = dict(os.environ)
    e["PYTHONPATH"] = PYDIR + (os.pathsep + e["PYTHONPATH"]
                               if e.get("PYTHONPATH") else "")
    if not os.path.isabs(build):
        e["DNC_BUILD"] = os.path.join(ROOT, build)
    r = subprocess.run([sys.executable, "-c", CHILD], env=e,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    status, msg, alpha = r.stdout.strip().split(" | ")
    assert status == "toolarge", r.stdout
    assert msg.startswith("cannot be done: 30000000 points and 2 free "
                          "parameters need 1.44 GB"), msg
    assert float(alpha) == 0.5  # the start, untouched
