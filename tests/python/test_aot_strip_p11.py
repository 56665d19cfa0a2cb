"""test_aot_strip_p11.py - a `dnc compile` library packaged for a wheel
or a distribution, loaded with dnc.load (pytest).

The ways packaging strips a library (strip -s as auditwheel --strip does,
--strip-unneeded as dh_strip and brp-strip do, the --only-keep-debug split)
keep its seal: the stripped copy loads and its kernels give the unstripped
library's bits, forward and backward, f32 and f64. A flipped byte in its
code or its kernels' constants, a truncated copy and another library are
refused with dnc.LoadError, never loaded (compiler/aotseal.c,
docs/c-api.md). tests/aot_strip_p11.sh covers the rest through the C API.
"""
import os
import shutil
import struct
import subprocess
import tempfile

import numpy as np
import pytest

import dnc
from checks import ok, raises

B = os.environ.get("DNC_BUILD", "build")
SRC = ("fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n"
       "fn dyisru(x; beta = 1) = x / sqrt(beta + x^2)\n")


@pytest.fixture(scope="module")
def lib():
    d = tempfile.mkdtemp(prefix="dnc-strip-p11.")
    src = os.path.join(d, "k.dn")
    with open(src, "w") as f:
        f.write(SRC)
    out = os.path.join(d, "libk.so")
    r = subprocess.run([os.path.join(B, "dnc"), "compile", src, "-o", out],
                       capture_output=True, text=True)
    ok(r.returncode == 0, "dnc compile writes the library", r.stderr)
    yield d, out
    shutil.rmtree(d)


def outputs(mod):
    """Every function's forward and backward, f32 and f64, as bytes."""
    got = []
    for dt in (np.float32, np.float64):
        x = (np.arange(-500, 501) / 61.0).astype(dt)
        dy = (1.0 + (np.arange(1001) % 7) / 8.0).astype(dt)
        for name in ("dyt", "dyisru"):
            f = mod[name]
            dx, grads = f.backward(x, dy)
            got += [f.forward(x).tobytes(), dx.tobytes(),
                    repr(sorted(grads.items()))]
    return got


def copy(d, lib, name, *cmd):
    p = os.path.join(d, name)
    shutil.copyfile(lib, p)
    if cmd:
        if not shutil.which(cmd[0]):
            pytest.skip("no %s" % cmd[0])
        subprocess.run(list(cmd) + [p], check=True)
    return p


def section(path, want):
    """(offset, size) of the section named want in the ELF file path."""
    with open(path, "rb") as f:
        b = f.read()
    shoff, = struct.unpack_from("<Q", b, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", b, 0x3a)
    def sh(i):
        return struct.unpack_from("<IIQQQQ", b, shoff + i * shentsize)
    names = sh(shstrndx)[4]
    for i in range(shnum):
        name, _, _, _, off, size = sh(i)
        end = b.index(b"\0", names + name)
        if b[names + name:end].decode() == want:
            return off, size
    raise KeyError(want)


@pytest.mark.parametrize("how", [["strip", "-s"],
                                 ["strip", "--strip-unneeded"],
                                 ["objcopy", "--strip-debug"]])
def test_a_stripped_copy_loads_and_gives_the_same_bits(lib, how):
    d, path = lib
    ref = outputs(dnc.load(path))
    # a file of its own: a library in use is never rewritten in place
    p = copy(d, path, "libs%s.so" % how[1], *how)
    with open(p, "rb") as a, open(path, "rb") as b:
        ok(a.read() != b.read(), "%s changed the file" % " ".join(how))
    ok(outputs(dnc.load(p)) == ref,
       "%s: dnc.load'ed, the same bits forward and backward" % " ".join(how))


def test_a_split_debug_package_loads(lib):
    d, path = lib
    if not shutil.which("objcopy"):
        pytest.skip("no objcopy")
    ref = outputs(dnc.load(path))
    p = copy(d, path, "libsplit.so")
    dbg = os.path.join(d, "libsplit.debug")
    subprocess.run(["objcopy", "--only-keep-debug", p, dbg], check=True)
    subprocess.run(["objcopy", "--strip-debug", p], check=True)
    subprocess.run(["objcopy", "--add-gnu-debuglink=" + dbg, p], check=True)
    ok(outputs(dnc.load(p)) == ref, "the stripped half loads, the same bits")
    raises(dnc.LoadError, lambda: dnc.load(dbg), "the debug half is refused",
           "a debug-info file")


@pytest.mark.parametrize("where", [".text", ".rodata"])
def test_a_flipped_byte_in_a_stripped_copy_is_refused(lib, where):
    d, path = lib
    if not shutil.which("strip"):
        pytest.skip("no strip")
    p = copy(d, path, "libflip%s.so" % where, "strip", "-s")
    off, size = section(p, where)
    with open(p, "r+b") as f:
        f.seek(off + size // 2)
        c = f.read(1)[0]
        f.seek(off + size // 2)
        f.write(bytes([c ^ 0x10]))
    raises(dnc.LoadError, lambda: dnc.load(p),
           "a flipped byte in %s is refused" % where, "its digest differs")


def test_a_truncated_copy_and_another_library_are_refused(lib):
    d, path = lib
    with open(path, "rb") as f:
        b = f.read()
    half = os.path.join(d, "libhalf.so")
    with open(half, "wb") as f:
        f.write(b[:len(b) // 2])
    raises(dnc.LoadError, lambda: dnc.load(half), "a truncated copy",
           "truncated?")
    libm = subprocess.run(["gcc", "-print-file-name=libm.so.6"],
                          capture_output=True, text=True).stdout.strip()
    other = copy(d, os.path.realpath(libm), "libm.so")
    raises(dnc.LoadError, lambda: dnc.load(other), "a copy of libm",
           "it has no dnc seal")
