"""conftest.py - what every test of tests/python shares: the repository's
python/ and this folder on the path, and the build's libdnc ($DNC_BUILD,
else build/). `make test` runs pytest here under Debian's python3
(PyTorch 1.13) and the project's .venv (PyTorch 2)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for p in (os.path.join(ROOT, "python"), HERE):
    if p not in sys.path:
        sys.path.insert(0, p)
os.environ.setdefault("DNC_BUILD", os.path.join(ROOT, "build"))
# for the interpreters the tests start themselves
os.environ["PYTHONPATH"] = os.pathsep.join(
    [os.path.join(ROOT, "python"), HERE] +
    [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"


def pytest_report_header(config):
    try:
        import torch
        t = "torch %s" % torch.__version__
    except ImportError:
        t = "no torch"
    return "dnc tests: %s, %s, DNC_BUILD=%s" % (sys.executable, t,
                                                 os.environ["DNC_BUILD"])


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: minutes under the sanitizers (make test SANITIZE=1 "
        "leaves these out of the virtualenv's run)")
