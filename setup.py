"""setup.py - what pyproject.toml cannot say: the package carries the
libdnc.so that `make` built ($DNC_BUILD, else build/), so that an installed
dnc needs no DNC_LIBRARY; setuptools' own build files go to build/pip."""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))


class BuildPy(build_py):
    def run(self):
        super().run()
        build = os.environ.get("DNC_BUILD", "build")
        src = os.path.join(ROOT, build, "libdnc.so")
        if os.path.exists(src):
            # copied every time: copy_file skips an older source, and
            # build/pip may hold another build folder's (make test
            # SANITIZE=1's instrumented) library, newer than this one
            dst = os.path.join(self.build_lib, "dnc", "libdnc.so")
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)
        else:
            self.warn("%s is not built (run make): the installed package "
                      "will look for libdnc through DNC_LIBRARY and the "
                      "system's library path" % src)


setup(cmdclass={"build_py": BuildPy},
      options={"build": {"build_base": os.path.join("build", "pip")},
               "egg_info": {"egg_base": os.path.join("build", "pip")}})
