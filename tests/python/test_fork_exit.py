"""test_fork_exit.py - dnc's Python layers around fork() and the
interpreter's exit.

- A fork() while another thread holds one of dnc's Python locks (making
  the default context, a derivative, a dnc.torch context) copied the lock
  held into the child, whose first such call then waited for ever: the
  locks are renewed in the child (os.register_at_fork). The tests hold
  each lock in a thread of their own across the fork, which is the race
  made certain.
- numpy.ma is imported with dnc, not on a call (NumPy 2's lazy np.ma
  imported it under the import lock at the first call, and a fork then
  hung the child the same way).
- A daemon thread still running kernels as the interpreter exits: the
  module's code and the context's threads were freed under it (SIGSEGV).
"""
import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import dnc

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork()")

DYT = "fn dyt(x; alpha = 0.5) = tanh(alpha * x)"


def _fork_while_held(lock_of, child):
    """Holds lock_of() in another thread across a fork(); the child runs
    child() and exits 0, or 3 if it raised; an alarm ends a child that
    waits (status: killed by SIGALRM)."""
    held, release = threading.Event(), threading.Event()
    lock = lock_of()

    def hold():
        with lock:
            held.set()
            release.wait()

    t = threading.Thread(target=hold)
    t.start()
    held.wait()
    pid = os.fork()
    if pid == 0:  # the child: nothing of pytest's
        signal.alarm(20)
        try:
            child()
            os._exit(0)
        except BaseException:
            os._exit(3)
    release.set()
    t.join()
    _, st = os.waitpid(pid, 0)
    return st


def _x():
    return np.linspace(-3, 3, 8, dtype=np.float32).reshape(2, 4)


def test_fork_while_the_default_context_is_being_made():
    dnc.default_context()
    f = dnc.compile(DYT)["dyt"]
    st = _fork_while_held(lambda: dnc._default_lock,
                          lambda: dnc.compile(DYT)["dyt"](_x()))
    assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, \
        "the child waited for the parent's lock (status %r)" % st
    np.testing.assert_allclose(f(_x()), np.tanh(0.5 * _x()), rtol=2e-7)


def test_fork_while_a_derivative_is_being_compiled():
    f = dnc.compile(DYT)["dyt"]
    st = _fork_while_held(lambda: dnc._derivative_lock,
                          lambda: f.derivative("x")(_x()))
    assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, \
        "the child waited for the parent's lock (status %r)" % st


def test_fork_while_dnc_torch_makes_a_context():
    torch = pytest.importorskip("torch")
    import dnc.torch as dt
    norm = dt.PointwiseNorm(8, "dyt")
    x = torch.randn(4, 8)
    norm(x)

    def child():
        torch.set_num_threads(1)  # as docs/python.md tells a forked child
        y = dt.PointwiseNorm(8, "dyt", threads=3)(x)
        assert torch.allclose(y, torch.tanh(0.5 * x), atol=1e-6)

    for lock in (lambda: dt._lock, lambda: dt._reuse_lock):
        st = _fork_while_held(lock, child)
        assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, \
            "the child waited for the parent's lock (status %r)" % st


def test_numpy_ma_is_imported_with_dnc():
    code = ("import sys; sys.modules.pop('numpy.ma', None); import dnc; "
            "print('numpy.ma' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"


EXIT = textwrap.dedent("""
    import threading, time
    import numpy as np
    import dnc
    x = np.random.rand(512, 512).astype(np.float32)
    c = dnc.Context(threads=2)
    f = c.compile("%s")["dyt"]
    def run():
        while True:
            f(x)
    threading.Thread(target=run, daemon=True).start()
    time.sleep(0.1)
""" % DYT)


def test_exit_with_a_daemon_thread_in_the_kernels():
    for _ in range(3):
        r = subprocess.run([sys.executable, "-c", EXIT], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, (r.returncode, r.stderr[-2000:])


def test_a_cached_derivative_is_read_while_another_compiles():
    """Function.derivative's lock is one for all functions (renewed in a
    fork()ed child); a derivative already made is read without it, so
    that one function's compile does not hold up the others' lookups
    (dnc.torch's double backward takes them each call)."""
    f = dnc.compile(DYT)["dyt"]
    d = f.derivative("x")
    got = []
    with dnc._derivative_lock:  # another thread compiling, as it were
        t = threading.Thread(target=lambda: got.append(f.derivative("x")))
        t.start()
        t.join(10)
        alive = t.is_alive()
    t.join()
    assert not alive, "the cached lookup waited for the lock"
    assert got == [d]
