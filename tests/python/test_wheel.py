"""test_wheel.py - installing dnc with pip, offline: `make wheel`'s wheel
(LLVM linked in, manylinux tag) into a fresh virtualenv, run with the
system's LLVM hidden (a tmpfs over /usr/lib/llvm-19 in a user and mount
namespace); `pip install .` from the repository through the default
isolated build with --no-index; and the message of `pip install .` before
`make`.

`make wheel` relinks the bundled library only when libdnc's objects
changed (the static LLVM link takes minutes the first time); otherwise it
rewrites the wheel from the library it has, in seconds."""
import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from checks import ok

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
B = os.environ.get("DNC_BUILD", "build")
LLVM = "/usr/lib/llvm-19"

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("DNC_SANITIZED")) or not sys.platform.startswith(
        "linux"), reason="the wheel is built from a release build on Linux")


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "DNC_LIBRARY", "DNC_BUILD",
                        "LD_PRELOAD", "VIRTUAL_ENV")}
    env.update(PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               **extra)
    return env


@pytest.fixture(scope="module")
def wheel():
    if shutil.which("make") is None:
        pytest.skip("no make")
    build = B if os.path.isabs(B) else os.path.relpath(
        os.path.join(ROOT, B), ROOT)
    r = subprocess.run(["make", "-s", "wheel", "BUILD=" + build,
                        "PYTHON=" + sys.executable], cwd=ROOT,
                       capture_output=True, text=True, timeout=3000)
    ok(r.returncode == 0, "make wheel", r.stdout[-2000:] + r.stderr[-2000:])
    found = glob.glob(os.path.join(ROOT, build, "wheel", "dnc-*.whl"))
    ok(len(found) == 1, "one wheel in %s/wheel" % build, found)
    return found[0]


def test_wheel_tag(wheel):
    name = os.path.basename(wheel)
    ok("-py3-none-manylinux_" in name and
       name.endswith("_%s.whl" % platform.machine()),
       "a manylinux platform tag for this architecture", name)
    r = subprocess.run(["readelf", "-d", os.path.join(os.path.dirname(wheel),
                                                      "libdnc.so")],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip("no readelf")
    ok("NEEDED" in r.stdout and "LLVM" not in r.stdout,
       "the bundled libdnc.so needs no libLLVM", r.stdout)
    # the libraries the manylinux policy (PEP 600) lets a wheel assume
    allowed = {"libc.so.6", "libm.so.6", "libdl.so.2", "librt.so.1",
               "libpthread.so.0", "libgcc_s.so.1", "libstdc++.so.6",
               "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                            r.stdout))
    ok(needed and needed <= allowed,
       "the bundled libdnc.so needs only what manylinux allows",
       sorted(needed - allowed))


CODE = r"""
import os, sys
import numpy as np
import dnc
here = os.path.dirname(dnc.__file__)
assert dnc.library_path.startswith(here), dnc.library_path
llvm = os.path.exists(sys.argv[1])
f = dnc.compile("fn g(x; a = 0.5) = tanh(a * x)")["g"]
x = np.linspace(-2, 2, 9, dtype=np.float32)
y = f.forward(x)
dx, grads = f.backward(x, np.ones_like(x))
assert np.allclose(y, np.tanh(0.5 * x), atol=1e-6)
assert np.allclose(dx, 0.5 / np.cosh(0.5 * x) ** 2, atol=1e-6)
maps = open("/proc/self/maps").read()
try:
    import torch
    import dnc.torch as dt
    m = dt.PointwiseNorm(8, "derf", threads=1)
    t = torch.randn(3, 8, requires_grad=True)
    m(t).sum().backward()
    assert t.grad.shape == t.shape and m.alpha.grad is not None
    has_torch = "torch %s" % torch.__version__
except ImportError:
    has_torch = "no torch"
print("llvm visible:", llvm, "| libLLVM mapped:", "libLLVM" in maps,
      "|", has_torch)
"""


def test_wheel_in_fresh_venv_without_llvm(wheel):
    tmp = tempfile.mkdtemp()
    try:
        venv = os.path.join(tmp, "venv")
        # Debian's python with its site packages (NumPy, PyTorch 1.13):
        # nothing comes from an index
        r = subprocess.run(["/usr/bin/python3", "-m", "venv",
                            "--system-site-packages", venv],
                           capture_output=True, text=True, env=_clean_env())
        if r.returncode:
            pytest.skip("no venv module: %s" % r.stderr[-200:])
        py = os.path.join(venv, "bin", "python")
        r = subprocess.run([py, "-m", "pip", "install", "-q", "--no-index",
                            "--no-deps", wheel], capture_output=True,
                           text=True, env=_clean_env(), cwd=tmp)
        ok(r.returncode == 0, "pip install of the wheel, offline",
           r.stdout + r.stderr)
        cmd = [py, "-c", CODE, os.path.join(LLVM, "lib")]
        hidden = subprocess.run(["unshare", "-rm", "true"],
                                capture_output=True).returncode == 0
        if hidden:
            cmd = ["unshare", "-rm", "sh", "-c",
                   'mount -t tmpfs none "$0" && exec "$@"', LLVM] + cmd
        r = subprocess.run(cmd, capture_output=True, text=True,
                           env=_clean_env(), cwd=tmp, timeout=600)
        ok(r.returncode == 0, "import, compile, forward and backward from "
           "the installed wheel", r.stdout + r.stderr)
        ok("libLLVM mapped: False" in r.stdout,
           "no libLLVM in the process", r.stdout)
        if not hidden:
            pytest.skip("no user namespaces here: the wheel ran, but with "
                        "the system's LLVM present (%s)" % r.stdout.strip())
        ok("llvm visible: False" in r.stdout,
           "the system's LLVM was hidden", r.stdout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pip_install_repo(build, target):
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index",
         "--no-deps", "--target", target, ROOT],
        capture_output=True, text=True, timeout=600,
        env=_clean_env(DNC_BUILD=build))


def _installed_torch_ext(target):
    """dnc.torch's C++ layer call that make built for this interpreter's
    PyTorch is installed with the package, and the installed dnc.torch
    uses that copy."""
    try:
        import dnc.torch as dt
    except ImportError:
        return
    built = dt.extension()
    if built is None:
        return
    key = os.path.basename(os.path.dirname(built))
    inst = os.path.join(target, "dnc", "_torch", key,
                        os.path.basename(built))
    ok(os.path.exists(inst), "the C++ layer call is installed", inst)
    r = subprocess.run(
        [sys.executable, "-c", "import dnc.torch as dt; "
         "print(dt.extension())"], capture_output=True, text=True,
        timeout=300, cwd=target, env=_clean_env(
            PYTHONPATH=target, **{k: os.environ[k] for k in ("LD_PRELOAD",)
                                  if k in os.environ}))
    ok(r.returncode == 0 and r.stdout.strip() == inst,
       "the installed dnc.torch loads its own copy", r.stdout + r.stderr)


def test_pip_install_dot_offline_with_isolation():
    if subprocess.run([sys.executable, "-m", "pip", "--version"],
                      capture_output=True).returncode:
        pytest.skip("no pip")
    tmp = tempfile.mkdtemp()
    try:
        r = _pip_install_repo(os.path.abspath(os.path.join(ROOT, B)), tmp)
        ok(r.returncode == 0 and
           os.path.exists(os.path.join(tmp, "dnc", "libdnc.so")) and
           os.path.exists(os.path.join(tmp, "dnc", "convert.py")),
           "pip install . --no-index, isolated build: nothing to fetch",
           r.stdout + r.stderr)
        _installed_torch_ext(tmp)
        r = _pip_install_repo(os.path.join(tmp, "not-built"),
                              os.path.join(tmp, "t2"))
        ok(r.returncode != 0 and "Run `make` first" in r.stdout + r.stderr,
           "pip install . before make fails at install time, saying what "
           "to run", r.stdout[-1500:] + r.stderr[-1500:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
