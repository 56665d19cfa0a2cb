"""checks.py - helpers for the pytest files of tests/python: ok() and
raises() assert with a name and a diagnostic, so that a test that checks
many things says which one failed and why."""
import pytest


def ok(cond, name, diag=None):
    """Asserts cond; the failure names the check and shows diag (a string,
    or a callable giving one)."""
    if not cond:
        text = diag() if callable(diag) else diag
        raise AssertionError(name if text is None
                             else "%s\n%s" % (name, text))


def raises(exc, fn, name, match=None):
    """fn() must raise exc, whose message contains match (if given)."""
    with pytest.raises(exc) as info:
        fn()
    ok(match is None or match in str(info.value), name,
       "message: %s\nexpected to contain: %s" % (info.value, match))
