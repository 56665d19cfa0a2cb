"""results.py - build/bench/kernels.json, shared by the Python benchmarks:
each adds its keys to what kernels.c (and the others) wrote."""
import json
import os


def load(path, missing_ok=True):
    """The results so far: {} when the file is not there and missing_ok."""
    if missing_ok and not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def save(path, res):
    """Writes res to path atomically (a temporary file renamed over it)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
