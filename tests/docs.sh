#!/usr/bin/env bash
# docs.sh - the examples in docs/*.md, run as they are written: each
# ```console transcript must give its output to the letter, and each ```dn
# block without a '# NAME.dn' line must check cleanly (tests/docs_check.py says
# how). A transcript that shows machine-specific output is marked
# <!-- not checked: REASON --> and reported as a skip.
set -u
B="${DNC_BUILD:-build}"
PY="${DNC_PYTHON:-/usr/bin/python3}"
case "$B" in /*) ;; *) B="$PWD/$B" ;; esac
cd "$(dirname "$0")/.." || exit 1
exec "$PY" tests/docs_check.py "$B/dnc" docs/*.md
