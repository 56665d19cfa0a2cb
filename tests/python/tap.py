"""tap.py - TAP output for the Python tests (run by prove through
tests/python_*.sh): ok(), raises(), done()."""
import sys
import traceback

_n = 0
_fail = 0


def ok(cond, name, diag=None):
    """One test; diag (a string, or a callable giving one) is printed as a
    TAP comment when it fails."""
    global _n, _fail
    _n += 1
    cond = bool(cond)
    print("%s %d - %s" % ("ok" if cond else "not ok", _n, name))
    if not cond:
        _fail += 1
        if diag is not None:
            text = diag() if callable(diag) else diag
            for line in str(text).splitlines():
                print("#   " + line)
    sys.stdout.flush()
    return cond


def skip(name, why):
    """A test that cannot run here, and why."""
    global _n
    _n += 1
    print("ok %d - %s # skip %s" % (_n, name, why))
    sys.stdout.flush()


def raises(exc, fn, name, match=None):
    """fn() must raise exc, whose message contains match (if given)."""
    try:
        fn()
    except exc as e:
        return ok(match is None or match in str(e), name,
                  "message: %s\nexpected to contain: %s" % (e, match))
    except Exception as e:  # the wrong exception is a failure, not a crash
        return ok(False, name, "raised %s: %s" % (type(e).__name__, e))
    return ok(False, name, "raised nothing")


def run(name, fn):
    """Runs a group of tests; an exception in it is one failed test."""
    try:
        fn()
    except Exception:
        ok(False, name + " (raised)", traceback.format_exc())


def done():
    print("1..%d" % _n)
    sys.exit(1 if _fail else 0)
