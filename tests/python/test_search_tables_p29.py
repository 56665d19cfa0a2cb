"""test_search_tables_p29.py - what `dnc search` writes reads back with
pandas, Python's csv and json: every non-finite value of PREFIX.csv is
spelled `nan`, `inf` or `-inf` (a NaN whose sign bit is set, as x86-64's
invalid operations make, was written `-nan`), the JSON has no bare NaN or
Infinity, and the two tables agree value for value.
"""
import csv
import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PYDIR = os.path.join(ROOT, "python")
if PYDIR not in sys.path:
    sys.path.insert(0, PYDIR)

from dnc.search import cli  # noqa: E402

# log(-1 + x) at 0 and sqrt(-1 + x) are NaNs with the sign bit set; log at
# 0 is -inf; a score that is NaN everywhere
SPEC = """\
base L(x) = log(x)
base N(x) = sqrt(x)
base T(x) = tanh(x)
stage s: id | shift(-1, 1)
set grid_points = 101
set ln_steps = 10
score sc(x) = f(x)
score none(x) = -sqrt(x - 100)
"""


def search(tmp_path):
    spec = tmp_path / "nan.dns"
    spec.write_text(SPEC)
    subprocess.run([cli.find_dnc(), "search", str(spec), "-o",
                    str(tmp_path / "t"), "--top", "0", "-q"], check=True)
    return tmp_path / "t.csv", tmp_path / "t.json"


def test_non_finite_values_have_one_spelling(tmp_path):
    csv_path, _ = search(tmp_path)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    cells = [v for row in rows for k, v in row.items()
             if k not in ("name", "source")]
    assert "-nan" not in cells
    bad = [v for v in cells
           if not math.isfinite(float(v)) and v not in ("nan", "inf", "-inf")]
    assert bad == []
    # the spec does make NaNs, negative infinities and infinities
    assert {"nan", "inf", "-inf"} <= set(cells)


def _strict(name):
    raise ValueError("a bare %s in the JSON" % name)


def test_csv_and_json_read_back_alike(tmp_path):
    pd = pytest.importorskip("pandas")
    csv_path, json_path = search(tmp_path)
    doc = json.loads(json_path.read_text(), parse_constant=_strict)
    table = pd.read_csv(csv_path)
    assert len(table) == len(doc["ranked"]) == doc["distinct"]
    flags = ("zero_centred", "bounded", "center_sensitive", "monotonic",
             "finite")
    for (_, row), obj in zip(table.iterrows(), doc["ranked"]):
        assert row["id"] == obj["id"] and row["source"] == obj["source"]
        for col, want in obj.items():
            if col in ("rank", "id", "name", "source"):
                continue
            got = row[col]
            if col in flags:
                assert got == (1 if want else 0), col
            elif want is None:
                # the JSON's null: a NaN or an infinity in the CSV
                assert not math.isfinite(got), (obj["name"], col, got)
            else:
                # (pandas' own float parser may be an ulp off the
                # shortest decimal's double)
                assert got == want or math.isclose(got, want, rel_tol=3e-16), \
                    (obj["name"], col, got, want)
    # every numeric column is a float (or int) column, no strings
    for col in table.columns:
        if col not in ("name", "source"):
            assert table[col].dtype.kind in "fi", (col, table[col].dtype)


# python -m dnc.search's results.csv: the screening's columns as screen.csv
# has them. They were read from screen.json, where inf and nan are null,
# and so written as empty cells: exp(60 x)'s sup, inf in screen.csv, was
# missing in results.csv, and a filter such as sup > 1e6 left it out.
TRAIN_SPEC = """\
base Tanh(x) = tanh(x)
base boom(x) = exp(60 * x)
base L(x) = log(1 + abs(x))
set grid_points = 101
set ln_steps = 10
score sc(x) = f(x)
"""

TRAIN_TASK = '''\
def flat(norm, steps, seed):
    return 0.5


flat.mode = "max"
'''


def test_results_csv_keeps_the_screenings_infinities(tmp_path, monkeypatch,
                                                      capsys):
    torch = pytest.importorskip("torch")
    if not hasattr(torch, "compile"):
        pytest.skip("dnc.search needs PyTorch 2")
    (tmp_path / "s.dns").write_text(TRAIN_SPEC)
    (tmp_path / "flattask.py").write_text(TRAIN_TASK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    rc = cli.main(["s.dns", "--task", "flattask:flat", "--top", "3",
                   "--steps", "1", "--seeds", "1", "--serial",
                   "--no-baseline", "-q", "-o", "run"])
    capsys.readouterr()
    assert rc == 0
    with open("run/screen.csv", newline="") as f:
        screen = {r["id"]: r for r in csv.DictReader(f)}
    with open("run/results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    seen = set()
    for row in rows:
        want = screen[row["id"]]
        for col in ("f0", "sup", "growth", "residual", "gain", "sc"):
            if want[col] in ("inf", "-inf", "nan"):
                seen.add(want[col])
                assert row[col] == want[col], (row["name"], col, row[col])
            else:
                assert float(row[col]) == float(want[col])
    assert "inf" in seen  # exp(60 x) and log(1 + |x|): unbounded
    doc = json.loads((tmp_path / "run" / "results.json").read_text(),
                     parse_constant=_strict)
    boom = [r for r in doc["results"] if r["name"] == "boom"][0]
    assert boom["screen"]["sup"] is None  # the JSON's null, as documented


def test_study_report_takes_a_null_residual(tmp_path):
    """examples/search/study/report.py pools the studies' candidates in
    dnc search's default order (props desc, residual asc): a residual of
    null in results.json (NaN: the candidate not finite at LayerNorm's
    points) was compared with floats, a TypeError; it ranks last."""
    rows = []
    for i, (name, res, m) in enumerate([("A", 0.3, 0.9), ("B", None, 0.8),
                                        ("C", 0.2, 0.7)]):
        rows.append({
            "place": i + 1, "screen_rank": i + 1, "id": i, "name": name,
            "status": "finished", "rungs": [m], "final_mean": m,
            "final_std": 0.01, "final_seeds": [m], "error": None,
            "screen": {"zero_centred": True, "bounded": True,
                       "center_sensitive": True, "monotonic": True,
                       "props": 4, "residual": res},
            "source": "fn c%d(x) = tanh(%d * x)" % (i, i + 1),
            "train_source": None})
    doc = {"spec": "s.dns", "task": "digits-vit", "metric": "val_accuracy",
           "mode": "max", "config": {"steps": 8, "seeds": 1, "top": 3},
           "screened": 3, "rungs": [{"steps": 8, "candidates": 3}],
           "results": rows}
    d = tmp_path / "digits-vit" / "ranked"
    d.mkdir(parents=True)
    (d / "results.json").write_text(json.dumps(doc))
    r = subprocess.run([sys.executable, os.path.join(
        ROOT, "examples", "search", "study", "report.py"), str(tmp_path)],
        capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # pooled order: C (0.2), A (0.3), B (null, last) against 0.7, 0.9, 0.8
    assert "All studies' 3 distinct candidates pooled" in r.stdout
    assert "Spearman -0.50" in r.stdout, r.stdout


@pytest.mark.parametrize("k", ["-1", "0"])
def test_train_top_k_below_one_is_refused(tmp_path, k):
    """examples/search/train_top.py -k -1 took the first K as a slice,
    [: -1]: every candidate but the last, silently; -k 0 trained none."""
    csv_path, json_path = search(tmp_path)
    r = subprocess.run([sys.executable, os.path.join(
        ROOT, "examples", "search", "train_top.py"), str(json_path), "-k",
        k, "-o", str(tmp_path / "t.md")], capture_output=True, text=True)
    assert r.returncode == 2 and "-k is the number of candidates to " \
        "train, at least 1, not %s" % k in r.stderr, r.stderr
    assert not (tmp_path / "t.md").exists()


def test_score_named_status_after_a_byte_order_mark_is_refused(
        tmp_path, monkeypatch, capsys):
    """A spec that starts with a UTF-8 byte order mark (dnc search reads
    past it) whose first line is `score status(x) = f(x)`: the check for
    scores named like results.csv's own columns did not see that line, and
    results.csv had two columns named status."""
    torch = pytest.importorskip("torch")
    if not hasattr(torch, "compile"):
        pytest.skip("dnc.search needs PyTorch 2")
    (tmp_path / "bom.dns").write_bytes(
        b"\xef\xbb\xbfscore status(x) = f(x)\nbase T(x) = tanh(x)\n")
    (tmp_path / "flattask.py").write_text(TRAIN_TASK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    rc = cli.main(["bom.dns", "--task", "flattask:flat", "--steps", "1",
                   "--seeds", "1", "--serial", "-q", "-o", "run"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("bom.dns:1:7: error: 'status' is a column of "
                          "python -m dnc.search's results.csv"), err
    assert not os.path.exists("run")
