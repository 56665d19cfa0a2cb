"""_build.py - the build folder of the checkout this package sits in, found
one way for libdnc (_capi.py) and for the dnc binary (dnc.search's
screening), so that the two cannot come from different builds."""
import os


def checkout_root():
    """The folder above python/dnc/ (a checkout's root where the package
    sits in one)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.dirname(os.path.dirname(here))


def build_dir():
    """$DNC_BUILD, else build/: as it is where absolute, else in the
    checkout's root (not the current folder: a relative DNC_BUILD named
    another build for the screening than for the training when the
    command ran from elsewhere)."""
    build = os.environ.get("DNC_BUILD") or "build"
    return build if os.path.isabs(build) else \
        os.path.join(checkout_root(), build)
