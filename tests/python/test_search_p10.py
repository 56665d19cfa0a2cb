"""test_search_p10.py - `python -m dnc.search` killed with SIGKILL while
`dnc search` screens for it: the screening died with it (it screened on,
orphaned, holding its journal's lock, and the rerun that the docs promise
resumes failed at once with status 2, 'being written by another dnc
search'), and a rerun waits for a screening that is still stopping.
"""
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PYDIR = os.path.join(ROOT, "python")
if PYDIR not in sys.path:
    sys.path.insert(0, PYDIR)

from dnc.search import cli  # noqa: E402

TASK = '''\
def quick(norm, steps, seed):
    n = norm(4)
    import torch
    return float(n(torch.linspace(-2, 2, 8).reshape(2, 4)).abs().mean())


quick.mode = "max"
'''


def env(tmp_path):
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(
        [PYDIR, str(tmp_path)] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH")
                                  else []))
    if "DNC_BUILD" in e and not os.path.isabs(e["DNC_BUILD"]):
        e["DNC_BUILD"] = os.path.join(ROOT, e["DNC_BUILD"])
    return e


def children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            if int(st[st.rindex(")") + 2:].split()[1]) == pid:
                kids.append(int(d))
    return kids


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2] != "Z"


def test_wait_for_screening_waits_for_the_lock(tmp_path):
    j = tmp_path / "screen.journal"
    cli.wait_for_screening(str(j), True)  # none: at once
    j.write_text("dnc search journal\n")
    fd = os.open(str(j), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    threading.Timer(0.6, os.close, (fd,)).start()
    t0 = time.time()
    cli.wait_for_screening(str(j), True)
    assert time.time() - t0 >= 0.5
    t0 = time.time()
    fd = os.open(str(j), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        cli.wait_for_screening(str(j), True, limit=0.3)  # gives up
    finally:
        os.close(fd)
    assert time.time() - t0 < 5


@pytest.mark.slow  # a screening of 16,800 candidates on one thread
def test_driver_killed_while_screening_then_rerun(tmp_path):
    torch = pytest.importorskip("torch")
    if not hasattr(torch, "compile"):
        pytest.skip("dnc.search needs PyTorch 2 (the project's .venv)")
    spec = os.path.join(ROOT, "examples", "search", "derf_space.dns")
    (tmp_path / "usertask.py").write_text(TASK)
    cmd = [sys.executable, "-m", "dnc.search", spec, "--task",
           "usertask:quick", "--top", "2", "--steps", "2", "--seeds", "1",
           "--serial", "--threads", "1", "-q", "-o", "k"]
    e = env(tmp_path)
    p = subprocess.Popen(cmd, cwd=tmp_path, env=e, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    jp = tmp_path / "k" / "screen.journal"
    kid = None
    try:
        t0 = time.time()
        while time.time() - t0 < 120 and p.poll() is None:
            kids = children(p.pid)
            if kids and jp.exists() and \
                    len(jp.read_bytes().splitlines()) >= 3:
                kid = kids[0]
                break
            time.sleep(0.05)
        assert kid is not None and p.poll() is None, \
            "the screening was not seen measuring"
        p.kill()  # the driver alone, as `kill -9 PID` does
        p.wait()
        r = subprocess.run(cmd, cwd=tmp_path, env=e, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        assert (tmp_path / "k" / "results.csv").exists()
        t0 = time.time()
        while alive(kid) and time.time() - t0 < 30:
            time.sleep(0.1)
        assert not alive(kid), "the screening outlived its run"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if kid and alive(kid):
            os.kill(kid, signal.SIGKILL)


def test_the_printed_table_shows_small_metrics(capsys):
    """A task whose losses are about 1e-6 printed 0.0000 for every row."""
    rows = [{"place": i + 1, "screen_rank": i + 1, "status": "finished",
             "final_mean": m, "final_std": sd, "rungs": [m], "reached": 0,
             "name": "c%d" % i}
            for i, (m, sd) in enumerate([(3.125e-06, 2.5e-07),
                                         (8.5e-06, None), (0.9759, 0.008),
                                         (0.0, None), (12345.678, 0.5)])]
    cli.show_top(rows, "val_loss", 10, [(40, 5)])
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[3:6] == ["40", "3.125e-06", "2.5e-07"], out
    assert out[2].split()[4:6] == ["8.5e-06", "-"], out
    assert out[3].split()[4:6] == ["0.9759", "0.0080"], out
    assert out[4].split()[4] == "0.0000", out
    assert out[5].split()[4:6] == ["1.235e+04", "0.5000"], out


def test_journal_checksums_find_flipped_bits(tmp_path):
    """A bit flipped in a journal line (a damaged disk, an edit) is found
    on its line, as `dnc search`'s checksums find theirs: a metric read
    back as another number changed the ranking silently. Each of 80
    random flips is reported at its line, or tears the last line (which
    is cut off and trained again); no flip is read as other values."""
    import json
    import random
    p = str(tmp_path / "journal.jsonl")
    cfg = {"task": "t", "top": 4, "steps": 16}
    recs = [{"key": "c%d" % k, "rung": r, "seed": 0, "steps": 8, "node": None,
             "status": "ok", "metric": 0.9 + k / 7 + r / 11, "error": None,
             "seconds": 1.25} for k in range(3) for r in range(2)]
    with cli.Journal(p, cfg) as j:
        for r in recs:
            j.add(r)
    with open(p, "rb") as f:
        good = f.read()
    with cli.Journal(p, cfg) as j:
        want = dict(j.done)
    assert [want[(r["key"], r["rung"], 0)] for r in recs] == recs
    starts = [0] + [i + 1 for i, b in enumerate(good) if b == 10]
    rng = random.Random(5)
    for _ in range(80):
        pos, bit = rng.randrange(len(good)), 1 << rng.randrange(8)
        bad = bytearray(good)
        bad[pos] ^= bit
        with open(p, "wb") as f:
            f.write(bad)
        line = max(i for i, s in enumerate(starts) if s <= pos) + 1
        try:
            with cli.Journal(p, cfg) as j:
                got = dict(j.done)
        except (cli.Damaged, cli.UsageError) as e:
            assert str(e).startswith("%s:%d: " % (p, line)), (pos, bit, e)
            continue
        # read without an error: only the last line torn (cut off)
        assert line >= len(starts) - 1, (pos, bit, bad[starts[line - 1]:])
        last = (recs[-1]["key"], recs[-1]["rung"], 0)
        assert got == {k: v for k, v in want.items() if k != last}, (pos, bit)
    # the header's own "sum" key flipped to "cum": its line, not a header
    # read without its check
    bad = good.replace(b'"sum"', b'"cum"', 1)
    with open(p, "wb") as f:
        f.write(bad)
    with pytest.raises(cli.Damaged, match=r":1: a damaged header"):
        cli.Journal(p, cfg)
    # a journal of an older dnc.search, without sums, is still read
    with open(p, "w") as f:
        f.write(json.dumps({"journal": "dnc.search", "version": 1,
                            "config": cfg}) + "\n")
        f.write(json.dumps(recs[0]) + "\n")
    with cli.Journal(p, cfg) as j:
        assert j.done == {("c0", 0, 0): recs[0]}
    # the command's status for a damaged journal: 1, one line
    with open(p, "wb") as f:
        f.write(good.replace(b'"metric": 0.9,', b'"metric": 0.8,', 1))
    with pytest.raises(cli.Damaged, match=r"journal.jsonl:2: a damaged "
                       r"record: its checksum does not match"):
        cli.Journal(p, cfg)
