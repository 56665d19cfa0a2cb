"""wheel_backend.py - the PEP 517 build backend of `pip install .` (named in
pyproject.toml), and `make wheel`'s wheel writer.

It needs nothing but the standard library, so that pip's isolated build
environment has nothing to fetch: `pip install .` works offline. The wheel
holds python/dnc and a libdnc.so (and, from pip install ., dnc.torch's C++
layer calls that `make torch-ext` built, tools/torch_ext.sh; plain `make`
builds none):
  - pip install . : $DNC_BUILD/libdnc.so (default build/) as `make` built
    it, which needs the system's libLLVM 19; tagged linux_<arch>. Without
    it the install fails at once, saying to run make (or make wheel).
  - make wheel   : python3 tools/wheel_backend.py OUTDIR with
    DNC_WHEEL_LIB (the library of `make bundle`, LLVM linked in) and
    DNC_WHEEL_PLATFORM=manylinux: tagged manylinux_<glibc>_<arch> for the
    build machine's glibc (the library needs only libc and libm).
"""
import base64
import hashlib
import os
import platform
import re
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _version():
    """DNC_VERSION_STRING of runtime/dnc.h: the version's one home."""
    with open(os.path.join(ROOT, "runtime", "dnc.h"), encoding="utf-8") as h:
        m = re.search(r'^#define DNC_VERSION_STRING "([^"]+)"', h.read(), re.M)
    if not m:
        raise SystemExit("wheel_backend: no DNC_VERSION_STRING in "
                         "runtime/dnc.h")
    return m.group(1)


def _project():
    text = open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8").read()

    def field(name):
        m = re.search(r'^%s\s*=\s*"([^"]*)"' % name, text, re.M)
        return m.group(1) if m else None
    return {"name": field("name"), "version": _version(),
            "description": field("description"),
            "requires-python": field("requires-python")}


def _platform():
    arch = platform.machine()
    if os.environ.get("DNC_WHEEL_PLATFORM") == "manylinux":
        libc, ver = platform.libc_ver()
        m = re.match(r"(\d+)\.(\d+)", ver or "")
        if libc != "glibc" or not m:
            raise SystemExit("wheel_backend: a manylinux tag needs glibc "
                             "(found %r %r)" % (libc, ver))
        return "manylinux_%s_%s_%s" % (m.group(1), m.group(2), arch)
    return "linux_%s" % arch


def _library():
    lib = os.environ.get("DNC_WHEEL_LIB")
    if lib is None:
        build = os.environ.get("DNC_BUILD", "build")
        lib = os.path.join(ROOT, build, "libdnc.so")
    if not os.path.isfile(lib):
        raise SystemExit(
            "dnc: %s is not built. Run `make` first (the wheel then needs "
            "the system's LLVM 19), or `make wheel` and install "
            "build/wheel/dnc-*.whl (LLVM linked in)." % lib)
    return lib


def _torch_ext():
    """pip install . : dnc.torch's C++ layer calls that `make torch-ext`
    built beside the library ($DNC_BUILD/torch/torch-<version>/), as
    dnc/_torch/..., where dnc.torch looks for them (each is used only under
    the PyTorch version it was built for). Not in `make wheel`'s portable
    wheel."""
    if os.environ.get("DNC_WHEEL_LIB") is not None:
        return []
    top = os.path.join(ROOT, os.environ.get("DNC_BUILD", "build"), "torch")
    out = []
    for d, dirs, names in os.walk(top):
        dirs.sort()
        for n in sorted(names):
            if n.startswith("_dnc_torch") and n.endswith(".so"):
                path = os.path.join(d, n)
                rel = os.path.relpath(path, top).replace(os.sep, "/")
                out.append(("dnc/_torch/" + rel, open(path, "rb").read()))
    return out


def _metadata(p):
    lines = ["Metadata-Version: 2.1", "Name: %s" % p["name"],
             "Version: %s" % p["version"], "Summary: %s" % p["description"],
             "Requires-Python: %s" % p["requires-python"],
             "Requires-Dist: numpy", "Provides-Extra: torch",
             'Requires-Dist: torch; extra == "torch"', ""]
    readme = os.path.join(ROOT, "docs", "python.md")
    body = open(readme, encoding="utf-8").read() \
        if os.path.isfile(readme) else ""
    return "\n".join(lines[:-1] +
                     ["Description-Content-Type: text/markdown", "", body])


def _digest(data):
    h = base64.urlsafe_b64encode(hashlib.sha256(data).digest())
    return "sha256=" + h.rstrip(b"=").decode()


def build_wheel(wheel_directory, config_settings=None,
                metadata_directory=None):
    p = _project()
    lib = _library()
    tag = "py3-none-%s" % _platform()
    name = "%s-%s-%s.whl" % (p["name"], p["version"], tag)
    info = "%s-%s.dist-info" % (p["name"], p["version"])
    files = []
    pkg = os.path.join(ROOT, "python")
    for d, dirs, names in os.walk(os.path.join(pkg, "dnc")):
        dirs[:] = sorted(x for x in dirs if x != "__pycache__")
        for n in sorted(names):
            if n.endswith((".py", ".typed", ".dn")):
                path = os.path.join(d, n)
                files.append((os.path.relpath(path, pkg).replace(os.sep, "/"),
                              open(path, "rb").read()))
    files.append(("dnc/libdnc.so", open(lib, "rb").read()))
    files += _torch_ext()
    files.append(("%s/METADATA" % info, _metadata(p).encode()))
    files.append(("%s/WHEEL" % info, (
        "Wheel-Version: 1.0\nGenerator: dnc tools/wheel_backend.py\n"
        "Root-Is-Purelib: false\nTag: %s\n" % tag).encode()))
    record = "".join("%s,%s,%d\n" % (n, _digest(b), len(b)) for n, b in files)
    record += "%s/RECORD,,\n" % info
    files.append(("%s/RECORD" % info, record.encode()))
    os.makedirs(wheel_directory, exist_ok=True)
    out = os.path.join(wheel_directory, name)
    tmp = out + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for n, b in files:
            zi = zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = (0o755 if n.endswith(".so") else 0o644) << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, b)
    os.replace(tmp, out)
    return name


def get_requires_for_build_wheel(config_settings=None):
    return []


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: wheel_backend.py OUTDIR")
    print(os.path.join(sys.argv[1], build_wheel(sys.argv[1])))
