"""test_search_train.py - `python -m dnc.search` (python/dnc/search/):
the rungs, the norm a candidate becomes, the journal, each status (finished,
stopped, diverged, failed), the errors, and, with Ray, a two-node cluster
on loopback (with a worker that dies and is retried) and a run killed
midway then resumed to the table of an uninterrupted one.

Plain pytest functions; the Ray ones skip where ray is not installed
(Debian's python), the rest where torch is missing. Budgets are tiny: a
user task of a few milliseconds a trial on a 3-base spec.
"""
import csv
import json
import math
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PYDIR = os.path.join(ROOT, "python")
if PYDIR not in sys.path:
    sys.path.insert(0, PYDIR)
torch = pytest.importorskip("torch")
if not hasattr(torch, "compile"):
    pytest.skip("dnc.search needs PyTorch 2 (the project's .venv)",
                allow_module_level=True)

import dnc  # noqa: E402
from dnc.search import cli, tasks  # noqa: E402

SPEC = """\
base Erf(x) = erf(x)
base Tanh(x) = tanh(x)
base linear(x) = x
base boom(x) = exp(60 * x)
stage shape: id | clip(1)
"""

# A user task: a tiny regression through one norm, milliseconds a trial;
# exp(60 x) overflows float32 at once: a divergence. CRASH names a marker
# file: the first trial of Erf (unclipped) kills its worker once.
TASK = '''\
import os
import torch
from torch import nn

MARK = {mark!r}
SLEEP = {sleep!r}


def quick(norm, steps, seed):
    n = norm(8)
    src = getattr(norm, "source", "")
    if MARK and "erf(u)" in src and "clamp" not in src and \\
            not os.path.exists(MARK):
        open(MARK, "w").write(str(os.getpid()))
        os._exit(3)  # the worker dies, as a killed node's would
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, :1] * 2 - x[:, 1:2]).tanh()
    model = nn.Sequential(nn.Linear(4, 8), n, nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    if SLEEP:
        import time
        time.sleep(SLEEP)
    return float(((model(x) - y) ** 2).mean().detach())


quick.mode = "min"


def broken(norm, steps, seed):
    raise RuntimeError("no data here")


broken.mode = "max"


def flaky(norm, steps, seed):
    # fails while the file FAIL is there (a bug in the task, then fixed)
    if os.path.exists("FAIL"):
        raise RuntimeError("not fixed yet")
    return quick(norm, steps, seed)


flaky.mode = "min"


def nomode(norm, steps, seed):
    return 1.0


def badmode(norm, steps, seed):
    return 1.0


badmode.mode = "maximize"


def unseeded(norm, steps, seed):
    # draws from the global generators without seeding them
    import random
    x = torch.randn(16, 4) + random.random()
    model = nn.Sequential(nn.Linear(4, 8), norm(8), nn.Linear(8, 1))
    return float(model(x).pow(2).mean().detach())


unseeded.mode = "min"


def sleepy(norm, steps, seed):
    # hangs for tanh (and swallows what it can, as careless code does)
    if "tanh" in getattr(norm, "source", ""):
        import time
        try:
            time.sleep(600)
        except Exception:
            pass
    return quick(norm, steps, seed)


sleepy.mode = "min"


def lnonly(norm, steps, seed):
    # takes nn.LayerNorm alone, as some model code does
    if not isinstance(norm(8), nn.LayerNorm):
        raise TypeError("a LayerNorm, please")
    return quick(norm, steps, seed)


lnonly.mode = "min"


def bare(norm, steps, seed):
    raise MemoryError()


def exits(norm, steps, seed):
    import sys
    sys.exit(3)


bare.mode = "min"


KEYED = (("erf", 1.0), ("tanh", 0.5), ("x / (1", 2.0), ("sin", 3.0))


def keyed(norm, steps, seed):
    # a metric by function, and a seed's part; erf fails while BREAK is
    # there, sin's seed 1 diverges at the last rung (NAN)
    src = getattr(norm, "source", "")
    if "erf" in src and os.path.exists("BREAK"):
        raise RuntimeError("erf broken")
    for k, v in KEYED:
        if k in src:
            if k == "sin" and seed == 1 and steps >= 4:
                return float("nan")
            return v + steps / 1000 + seed / 100
    return 5.0


keyed.mode = "min"


def nans(norm, steps, seed):
    # every candidate diverges; LayerNorm trains, unless ALLNAN is there
    if hasattr(norm, "source") or os.path.exists("ALLNAN"):
        return float("nan")
    return quick(norm, steps, seed)


nans.mode = "max"
'''

KEYED_SPEC = """\
base Erf(x) = erf(x)
base Tanh(x) = tanh(x)
base soft(x) = x / (1 + abs(x))
base Sin(x) = sin(x)
"""


def setup_dir(tmp_path, mark="", sleep=0.0):
    (tmp_path / "s.dns").write_text(SPEC)
    (tmp_path / "usertask.py").write_text(TASK.format(mark=mark,
                                                      sleep=sleep))
    return tmp_path


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = PYDIR + (os.pathsep + e["PYTHONPATH"]
                               if e.get("PYTHONPATH") else "")
    if "DNC_BUILD" in e and not os.path.isabs(e["DNC_BUILD"]):
        e["DNC_BUILD"] = os.path.join(ROOT, e["DNC_BUILD"])
    return e


ARGS = ["s.dns", "--task", "usertask:quick", "--top", "8", "--steps", "16",
        "--seeds", "2", "-q"]


def command(out, *extra):
    return [sys.executable, "-m", "dnc.search"] + ARGS + ["-o", out] + \
        list(extra)


def results(d):
    with open(os.path.join(d, "results.json")) as f:
        return json.load(f)


def journal(d):
    with open(os.path.join(d, "journal.jsonl")) as f:
        return [json.loads(x) for x in f if x.strip()][1:]


# --------------------------------------------------------------- units


def test_plan():
    assert cli.plan(16, 400, 2) == [(50, 16), (100, 8), (200, 4), (400, 2)]
    assert cli.plan(16, 400, 2, rungs=1) == [(400, 16)]
    assert cli.plan(16, 400, 2, rungs=2) == [(200, 16), (400, 8)]
    assert cli.plan(2, 40, 2) == [(40, 2)]
    assert cli.plan(1, 40, 2) == [(40, 1)]
    assert cli.plan(10, 90, 3) == [(10, 10), (30, 4), (90, 2)]
    assert cli.plan(6, 4, 2) == [(1, 6), (2, 3), (4, 2)]  # at least 1 step
    # few steps: no two rungs of the same steps (which trained the same
    # trials twice and named two columns metric@1)
    assert cli.plan(12, 2, 3) == [(1, 12), (2, 2)]
    assert cli.plan(12, 1, 3) == [(1, 12)]


def test_cluster_errors():
    """Ray's own failures (its raylet, a node, the object store) are not a
    trial's; a worker's death after the retries and the memory monitor's
    kill are."""
    ray = pytest.importorskip("ray")
    rx = ray.exceptions
    assert cli.cluster_error(rx.LocalRayletDiedError())
    assert cli.cluster_error(rx.RaySystemError("gone"))
    assert not cli.cluster_error(rx.WorkerCrashedError())
    assert not cli.cluster_error(rx.OutOfMemoryError("oom"))
    assert cli._cluster_text({"error": "LocalRayletDiedError: x"})
    assert not cli._cluster_text({"error": "RuntimeError: x"})


class _FakeRay:
    """Ray's calls dnc.search makes, run in this process: the n-th get
    raises Ray's LocalRayletDiedError, as when the raylet is killed."""

    def __init__(self, fail_at):
        import ray
        self.exceptions = ray.exceptions
        self.fail_at, self.gets, self.results = fail_at, 0, {}

    def remote(self, **kw):
        fake = self

        class Remote:
            def __init__(self, fn):
                self.fn = fn

            def remote(self, *a):
                f = len(fake.results)
                fake.results[f] = self.fn(*a)
                return f
        return Remote

    def wait(self, pending, num_returns=1):
        return pending[:num_returns], pending[num_returns:]

    def get(self, f):
        self.gets += 1
        if self.gets == self.fail_at:
            raise self.exceptions.LocalRayletDiedError()
        return self.results[f]

    def shutdown(self):
        pass


def test_ray_failure_stops_the_run(tmp_path, monkeypatch, capsys):
    """The raylet dying under a trial was journaled as that trial's (and
    every later one's) failure, the table ranked the candidates Ray failed
    under last, and the run exited 0. Now it stops with status 1, journals
    nothing for that trial, and the same command goes on to the table of a
    run Ray never failed."""
    pytest.importorskip("ray")
    setup_dir(tmp_path)
    (tmp_path / "k.dns").write_text(KEYED_SPEC)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["k.dns", "--task", "usertask:keyed", "--top", "4", "--steps",
            "4", "--seeds", "2", "-q", "-o", "r"]
    fake = _FakeRay(fail_at=3)
    monkeypatch.setattr(cli, "start_ray", lambda *a: fake)
    rc, out, err = run_main(args, capsys)
    assert rc == 1 and "Ray failed under" in err and \
        "LocalRayletDiedError" in err, err
    recs = journal("r")
    assert len(recs) == 2 and all(r["status"] == "ok" for r in recs), recs
    fake.fail_at = 0
    rc, out, err = run_main(args, capsys)
    assert rc == 0, err
    rc, out, err = run_main(args[:-1] + ["fresh", "--serial"], capsys)
    assert rc == 0, err
    a, b = results("r")["results"], results("fresh")["results"]
    strip = ("seconds", "node")
    assert [{k: v for k, v in r.items() if k not in strip} for r in a] == \
        [{k: v for k, v in r.items() if k not in strip} for r in b]


def test_sigterm_during_ray_init_is_a_stop(tmp_path, monkeypatch, capsys):
    """Ray's own SIGTERM handler (sys.exit(15)) is active from the start
    of ray.init: a SIGTERM then ended the run with status 15 and no word.
    It is a stop as any other now: 143, the 'interrupted' line, and what
    ray.init started shut down."""
    ray = pytest.importorskip("ray")
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    calls = []

    def init(**kw):
        # as ray.init does, then the signal before it returns
        ray._private.utils.set_sigterm_handler(
            lambda signum, frame: sys.exit(signum))
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        calls.append("init returned")
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append("shutdown"))
    rc, out, err = run_main(["s.dns", "--task", "usertask:quick", "--top",
                             "2", "--steps", "2", "--seeds", "1", "-o", "t"],
                            capsys)
    assert rc == 143, (rc, err)
    assert "interrupted: 0 of 3 trials kept in t/journal.jsonl; run the " \
        "same command to go on" in err, err
    assert calls and "init returned" not in calls and \
        set(calls) == {"shutdown"}, calls


def test_retried_failure_table_and_partial_seeds(tmp_path, monkeypatch,
                                                  capsys):
    """After --retry-failed a candidate the retried one displaces kept its
    higher rung's records in the table (shown finished where a fresh run
    stops it); and a row whose last rung lost a seed showed the mean of
    the seeds that trained, the best number in the table."""
    setup_dir(tmp_path)
    (tmp_path / "k.dns").write_text(KEYED_SPEC)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["k.dns", "--task", "usertask:keyed", "--top", "4", "--steps",
            "4", "--seeds", "2", "-q", "--serial", "--no-baseline"]
    open("BREAK", "w").close()
    rc, out, err = run_main(args + ["-o", "r"], capsys)
    os.remove("BREAK")
    rc, out, err = run_main(args + ["-o", "r", "--retry-failed"], capsys)
    assert rc == 0, err
    rc, out, err = run_main(args + ["-o", "fresh"], capsys)
    assert rc == 0, err

    def rows(d):
        return [(r["name"], r["status"], r["final_mean"], r["rungs"])
                for r in results(d)["results"]]
    assert rows("r") == rows("fresh"), (rows("r"), rows("fresh"))
    by = {r[0]: r for r in rows("fresh")}
    assert by["Tanh"][1] == "finished" and by["Erf"][1] == "finished"
    assert by["soft"][1] == "stopped", by
    # one rung: every candidate at 4 steps on both seeds; Sin's seed 1
    # diverges: no mean (it was its seed 0's, which ranked it)
    rc, out, err = run_main(args + ["-o", "one", "--rungs", "1"], capsys)
    sin = [r for r in results("one")["results"] if r["name"] == "Sin"][0]
    assert sin["status"] == "diverged" and sin["final_mean"] is None and \
        sin["final_std"] is None and sin["rungs"] == [None], sin
    assert sin["final_seeds"][0] is not None and \
        sin["final_seeds"][1] is None, sin


def test_norm_source_is_gamma_f_alpha_x_plus_s_plus_beta():
    src = tasks.norm_source("fn c7(x) = erf(x) + 0.5 * (x * exp(-x^2))",
                            alpha=0.7, shift=0.25)
    assert src.startswith("fn net(x; alpha = 0.7, shift = 0.25) { let u = "
                          "alpha * x + shift; ")
    assert src.endswith("shift; erf(u) + 0.5 * (u * exp(-u^2)) }")
    norm = tasks.candidate_norm("fn c7(x) = erf(x) + 0.5 * (x * exp(-x^2))",
                                alpha=0.7, shift=0.25)
    m = norm(5)
    names = {n for n, _ in m.named_parameters()}
    assert {"alpha", "shift", "weight", "bias"} <= names
    with torch.no_grad():
        m.weight.copy_(torch.arange(1., 6.))
        m.bias.copy_(torch.arange(5.) / 10)
    x = torch.randn(3, 5, dtype=torch.float32)
    u = 0.7 * x.double() + 0.25
    want = (torch.erf(u) + 0.5 * u * torch.exp(-u * u)) * \
        torch.arange(1., 6.).double() + torch.arange(5.).double() / 10
    assert torch.allclose(m(x).double(), want, atol=1e-5)
    y = m(x).sum()
    y.backward()
    assert m.alpha.grad is not None and m.shift.grad is not None
    # names taken: the bound variable is fresh; hex floats are numbers
    src = tasks.norm_source("fn c1(x) { let u = x * 0x1p-1; tanh(u) + x }")
    assert "let u_ = alpha * x + shift; let u = u_ * 0x1p-1; tanh(u) + u_" \
        in src
    with pytest.raises(ValueError, match="not a search candidate"):
        tasks.norm_source("fn f(x; a = 1) = x")


def test_journal_torn_line_and_other_settings(tmp_path):
    p = str(tmp_path / "journal.jsonl")
    cfg = {"task": "t", "top": 2}
    with cli.Journal(p, cfg) as j:
        j.add({"key": "c1", "rung": 0, "seed": 0, "status": "ok",
               "metric": 1.5})
    with open(p, "ab") as f:
        f.write(b'{"key": "c2", "ru')  # a kill in the middle of a write
    j = cli.Journal(p, cfg)
    j.close()
    assert list(j.done) == [("c1", 0, 0)]
    assert j.done[("c1", 0, 0)]["metric"] == 1.5
    with open(p, "rb") as f:
        assert f.read().endswith(b"}\n"), "the torn line is cut off"
    with pytest.raises(cli.UsageError,
                       match=r"journal.jsonl:1: this directory holds a run of "
                       r"other settings \(top differs\)"):
        cli.Journal(p, {"task": "t", "top": 3})
    with open(p, "ab") as f:
        f.write(b"garbage\n{}\n")
    with pytest.raises(cli.UsageError, match=r"journal.jsonl:3: not a line "
                       "of this journal"):
        cli.Journal(p, cfg)
    q = str(tmp_path / "other.jsonl")
    with open(q, "w") as f:
        f.write('{"a": 1}\n')
    with pytest.raises(cli.UsageError, match="other.jsonl:1: not a "
                       "dnc.search journal"):
        cli.Journal(q, cfg)
    with open(q, "w") as f:
        f.write('[1]\n')
    with pytest.raises(cli.UsageError, match="other.jsonl:1: not a line "
                       "of this journal"):
        cli.Journal(q, cfg)


def test_journal_last_record_without_its_newline_is_torn(tmp_path):
    """A last record whose JSON is whole but whose newline is missing (a
    write torn there) was kept, and the next record was appended to its
    line: the run after that refused the journal ("not a line of this
    journal"). It is cut off as any torn line; its trial trains again."""
    p = str(tmp_path / "journal.jsonl")
    cfg = {"task": "t", "top": 2}
    with cli.Journal(p, cfg) as j:
        j.add({"key": "c1", "rung": 0, "seed": 0, "status": "ok",
               "metric": 1.5})
        j.add({"key": "c2", "rung": 0, "seed": 0, "status": "ok",
               "metric": 2.5})
    with open(p, "rb") as f:
        data = f.read()
    with open(p, "wb") as f:
        f.write(data[:-1])
    with cli.Journal(p, cfg) as j:
        assert list(j.done) == [("c1", 0, 0)]
        j.add({"key": "c2", "rung": 0, "seed": 0, "status": "ok",
               "metric": 2.5})
    with cli.Journal(p, cfg) as j:
        assert list(j.done) == [("c1", 0, 0), ("c2", 0, 0)]
    with open(p, "rb") as f:
        assert f.read().count(b"\n") == 3


def test_task_imported_before_the_trial_is_seeded(tmp_path):
    """A task module whose top level draws from the global generators:
    the trial's numbers were those of the generators after that draw in a
    fresh Ray worker (the first import there came after the seed), and
    the seed's in a --serial run (imported before), so the table depended
    on which worker ran which trial. The task is now imported first."""
    (tmp_path / "drawing.py").write_text(
        "import random\nimport torch\n"
        "DATA = torch.randn(4) + random.random()  # at import, unseeded\n"
        "def task(norm, steps, seed):\n"
        "    return float(torch.randn(1)) + random.random()\n"
        "task.mode = 'min'\n")
    code = ("import sys\nfrom dnc.search import cli\n"
            "if sys.argv[1] == 'before':\n    import drawing\n"
            "r = cli.train_unit('drawing:task', 'c0', 'fn c0(x) = erf(x)', 1,"
            " 7, 0.5, 'min')\nprint(repr(r['metric']))\n")
    e = env()
    e["PYTHONPATH"] = str(tmp_path) + os.pathsep + e["PYTHONPATH"]
    got = [subprocess.run([sys.executable, "-c", code, how], env=e,
                          cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=120) for how in ("first", "before")]
    for r in got:
        assert r.returncode == 0, r.stderr
    assert got[0].stdout == got[1].stdout, (got[0].stdout, got[1].stdout)


def test_journal_of_a_header_alone_takes_new_settings(tmp_path):
    """A run stopped before its first trial (a spec with an error) left a
    journal of its header alone, and the corrected run was refused as one
    of other settings: it now takes the journal."""
    p = str(tmp_path / "journal.jsonl")
    cli.Journal(p, {"spec_sha256": "a"}).close()
    with cli.Journal(p, {"spec_sha256": "b"}) as j:
        j.add({"key": "c1", "rung": 0, "seed": 0, "status": "ok",
               "metric": 1.0})
    with pytest.raises(cli.UsageError, match="spec_sha256 differs"):
        cli.Journal(p, {"spec_sha256": "c"})


def test_damaged_screening_table_is_screened_again(tmp_path, monkeypatch,
                                                   capsys):
    """A truncated DIR/screen.json (its spec's digest still matching) was a
    JSONDecodeError traceback; the screening now runs again."""
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["s.dns", "--task", "usertask:quick", "--top", "2", "--steps",
            "2", "--seeds", "1", "-q", "--serial", "-o", "d"]
    rc, out, err = run_main(args, capsys)
    assert rc == 0, err
    with open("d/screen.json", "r+") as f:
        f.truncate(40)
    rc, out, err = run_main(args, capsys)
    assert rc == 0, err
    with open("d/screen.json") as f:
        assert json.load(f)["ranked"], "screened again"
    # a table that parses but is not the screening's (fewer rows than its
    # distinct candidates): "gave no candidate" before, status 2
    with open("d/screen.json", "w") as f:
        f.write('{"ranked": []}\n')
    rc, out, err = run_main(args, capsys)
    assert rc == 0, err
    with open("d/screen.json") as f:
        doc = json.load(f)
    assert doc["ranked"] and len(doc["ranked"]) == doc["distinct"]


def test_journal_lock_and_torn_header(tmp_path):
    """A journal is locked while a run holds it: a second run of the same
    directory stops (Busy) rather than add its records to the first's;
    a header torn by a kill, or an empty file, starts a new journal."""
    p = str(tmp_path / "journal.jsonl")
    cfg = {"task": "t", "top": 2}
    j = cli.Journal(p, cfg)
    with pytest.raises(cli.Busy, match="journal.jsonl' is being written by "
                       "another python -m dnc.search of the same -o"):
        cli.Journal(p, cfg)
    j.add({"key": "c1", "rung": 0, "seed": 0, "status": "ok", "metric": 1.})
    j.close()
    with cli.Journal(p, cfg) as k:
        assert list(k.done) == [("c1", 0, 0)], "free again once closed"
    for torn in (b'{"journal": "dnc.se', b"", b"\n"):
        with open(p, "wb") as f:
            f.write(torn)
        with cli.Journal(p, cfg) as k:
            assert k.done == {}
        with open(p) as f:
            head = json.loads(f.read())
        assert head["journal"] == "dnc.search" and head["config"] == cfg


def test_journal_records_the_software(tmp_path, monkeypatch, capsys):
    """The header holds dnc's version, the loaded libdnc's SHA-256 and
    PyTorch's version; a run resumed with other software says so (the
    tables would mix trials whose numbers differ in their last digits)."""
    p = str(tmp_path / "journal.jsonl")
    cfg = {"task": "t", "top": 2}
    with cli.Journal(p, cfg) as j:
        j.add({"key": "c1", "rung": 0, "seed": 0, "status": "ok",
               "metric": 1.5})
    with open(p) as f:
        head = json.loads(f.readline())
    sw = head["software"]
    assert sw == cli.software()
    assert sw["dnc"] == dnc.__version__ and len(sw["libdnc_sha256"]) == 16
    with cli.Journal(p, cfg):
        pass
    assert "other software" not in capsys.readouterr().err
    monkeypatch.setattr(cli, "software", lambda: dict(sw, torch="9.9"))
    with cli.Journal(p, cfg) as j:
        assert list(j.done) == [("c1", 0, 0)], "the trials are kept"
    err = capsys.readouterr().err
    assert "journal.jsonl: its 1 trial were trained with other software " \
        "(torch %s -> 9.9)" % sw["torch"] in err, err


def test_journal_records_the_task_code(tmp_path, monkeypatch, capsys):
    """The header holds the SHA-256 of the task's code (the user module's
    file; tasks.py for a built-in task, and the example for char-lm): a
    run interrupted, its task edited (the learning rate), then resumed had
    mixed the old trials with the new silently, and ranked them as one."""
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    # this test's usertask.py, not another test's left imported
    monkeypatch.delitem(sys.modules, "usertask", raising=False)
    assert tasks.task_files("usertask:quick") == [
        os.path.realpath("usertask.py")]
    assert tasks.task_files("digits-vit") == [
        os.path.realpath(tasks.__file__)]
    assert tasks.task_files("char-lm")[1].endswith(
        os.path.join("examples", "train_tiny_transformer.py"))
    args = ["s.dns", "--task", "usertask:quick", "--top", "2", "--steps",
            "2", "--seeds", "1", "-q", "--serial", "-o", "d"]
    rc, out, err = run_main(args, capsys)
    assert rc == 0, err
    with open("d/journal.jsonl") as f:
        head = json.loads(f.readline())
    assert head["software"]["task_sha256"] == \
        tasks.task_sha256("usertask:quick") is not None
    rc, out, err = run_main(args, capsys)
    assert rc == 0 and "warning" not in err, err
    with open("usertask.py") as f:
        text = f.read()
    with open("usertask.py", "w") as f:
        f.write(text.replace("lr=0.05", "lr=0.01"))
    rc, out, err = run_main(args, capsys)
    assert rc == 0, err
    assert "warning: d/journal.jsonl: its 3 trials were trained with other " \
        "code of the task (usertask.py changed: SHA-256 %s -> %s)" % (
            head["software"]["task_sha256"],
            tasks.task_sha256("usertask:quick")) in err, err
    assert "other software" not in err, err
    # a journal written before the header held these hashes: nothing to
    # compare, no warning (it said "SHA-256 None -> ..." and "other
    # software (dnc_sha256 None -> ...)")
    with open("d/journal.jsonl") as f:
        lines = f.readlines()
    head = json.loads(lines[0])
    for k in ("task_sha256", "dnc_sha256"):
        head["software"].pop(k, None)
    head.pop("sum", None)
    head["sum"] = cli._digest(head)
    with open("d/journal.jsonl", "w") as f:
        f.write(json.dumps(head) + "\n")
        f.writelines(lines[1:])
    rc, out, err = run_main(args, capsys)
    assert rc == 0 and "warning" not in err, err


def test_relative_dnc_build_is_one_build_for_both(tmp_path, monkeypatch):
    """A relative DNC_BUILD was taken from the current folder for the
    screening's binary and from the checkout's root for libdnc: run from
    elsewhere, the two came from different builds, silently. Both are in
    the checkout's root now, and the binary is in the journal's
    software."""
    from dnc import _build, _capi
    real = os.environ.get("DNC_BUILD") or "build"
    real = real if os.path.isabs(real) else os.path.join(ROOT, real)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DNC", raising=False)
    monkeypatch.delenv("DNC_LIBRARY", raising=False)
    fake = tmp_path / "bld" / "dnc"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("DNC_BUILD", "bld")
    assert _build.build_dir() == os.path.join(ROOT, "bld")
    assert os.path.join(ROOT, "bld", "libdnc.so") in _capi._candidates()
    assert cli.find_dnc() != str(fake), "the current folder's build"
    monkeypatch.setenv("DNC_BUILD", os.path.relpath(real, ROOT))
    assert cli.find_dnc() == os.path.join(real, "dnc")
    import hashlib
    with open(cli.find_dnc(), "rb") as f:
        assert cli.software()["dnc_sha256"] == \
            hashlib.sha256(f.read()).hexdigest()[:16]


def test_no_dnc_binary_message(tmp_path, monkeypatch):
    """With no dnc anywhere, the message lists what it tried, and with
    nothing but the PATH to try it read "(tried  the PATH)"."""
    from dnc import _build
    monkeypatch.delenv("DNC", raising=False)
    monkeypatch.delenv("DNC_BUILD", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(_build, "checkout_root", lambda: str(tmp_path))
    with pytest.raises(cli.UsageError) as e:
        cli.find_dnc()
    assert "cannot find the dnc binary (tried the PATH): " in str(e.value), \
        str(e.value)
    monkeypatch.setenv("DNC", str(tmp_path / "nodnc"))
    with pytest.raises(cli.UsageError) as e:
        cli.find_dnc()
    assert "(tried %s, the PATH): " % (tmp_path / "nodnc") in str(e.value), \
        str(e.value)


def test_train_unit_statuses(tmp_path, monkeypatch):
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    ok = cli.train_unit("usertask:quick", "c0", "fn c0(x) = erf(x)", 5, 0,
                        0.5, "min")
    assert ok["status"] == "ok" and math.isfinite(ok["metric"])
    again = cli.train_unit("usertask:quick", "c0", "fn c0(x) = erf(x)", 5, 0,
                           0.5, "min")
    assert again["metric"] == ok["metric"], "a trial is deterministic"
    d = cli.train_unit("usertask:quick", "c6", "fn c6(x) = exp(60 * x)", 5,
                       0, 0.5, "min")
    assert d["status"] == "diverged" and d["metric"] is None
    f = cli.train_unit("usertask:broken", "c0", "fn c0(x) = erf(x)", 5, 0,
                       0.5, "max")
    assert f["status"] == "failed" and \
        f["error"] == "RuntimeError: no data here"
    ln = cli.train_unit("usertask:quick", "layernorm", None, 5, 0, 0.5, "min")
    assert ln["status"] == "ok"
    # a task that does not seed: the trial seeds torch, random and NumPy,
    # so what ran before in the worker does not change it
    u = [cli.train_unit("usertask:unseeded", "c0", "fn c0(x) = erf(x)", 1,
                        1, 0.5, "min")["metric"] for _ in range(2)]
    assert u[0] == u[1] and math.isfinite(u[0]), u


def run_main(args, capsys):
    rc = cli.main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def test_errors(tmp_path, monkeypatch, capsys):
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    cases = [
        (["s.dns", "--task", "digits", "-o", "o"],
         "unknown task 'digits': digits-vit, char-lm or module:function"),
        (["s.dns", "--task", "nosuchmod:f", "-o", "o"],
         "cannot import module 'nosuchmod'"),
        (["s.dns", "--task", "usertask:nothere", "-o", "o"],
         "module 'usertask' has no 'nothere'"),
        (["s.dns", "--task", "usertask:nomode", "--steps", "3", "-o", "o"],
         "says nothing of its metric's direction: give --mode max or --mode"
         " min"),
        (["s.dns", "--task", "usertask:badmode", "--steps", "3", "-o", "o"],
         "task 'usertask:badmode' has mode 'maximize': it is \"max\" or "
         "\"min\""),
        (["s.dns", "--task", ":quick", "-o", "o"],
         "task ':quick': module:function names both"),
        (["s.dns", "--task", "raising:f", "-o", "o"],
         "importing module 'raising' raised RuntimeError: no GPU here"),
        (["s.dns", "--task", "usertask:quick", "-o", "o"],
         "task 'usertask:quick' has no default budget: give --steps"),
        (["none.dns", "--task", "digits-vit", "-o", "o"],
         "none.dns: no such spec file"),
        (["s.dns", "--task", "digits-vit", "--top", "0", "-o", "o"],
         "--top is at least 1, not 0"),
        (["s.dns", "--task", "digits-vit", "--eta", "1", "-o", "o"],
         "--eta is at least 2, not 1"),
        # 0 is a value, not "the default"
        (["s.dns", "--task", "digits-vit", "--steps", "0", "-o", "o"],
         "--steps is at least 1, not 0"),
        (["s.dns", "--task", "digits-vit", "--rungs", "0", "-o", "o"],
         "--rungs is at least 1, not 0"),
        (["s.dns", "--task", "digits-vit", "--threads", "0", "-o", "o"],
         "--threads is at least 1, not 0"),
        # the screening's own bound, said as ours (was `dnc search`'s usage
        # text, then "the screening failed")
        (["s.dns", "--task", "digits-vit", "--threads", "2000", "-o", "o"],
         "--threads is at most 1024, not 2000"),
        (["s.dns", "--task", "digits-vit", "--serial", "--address", "x:1",
          "-o", "o"], "--serial trains in this process: no --address"),
    ]
    (tmp_path / "raising.py").write_text("raise RuntimeError('no GPU here')\n")
    for args, msg in cases:
        rc, out, err = run_main(args, capsys)
        assert rc == 2, args
        assert err.startswith("python -m dnc.search: error: ") and msg in err, \
            err
    # --address where no cluster is: said at once (ray.init retried for
    # minutes), before the directory is made
    import socket
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    t0 = time.time()
    rc, out, err = run_main(["s.dns", "--task", "usertask:quick", "--steps",
                             "2", "-o", "ad", "--address",
                             "127.0.0.1:%d" % port], capsys)
    assert rc == 2 and "error: --address 127.0.0.1:%d: no Ray cluster " \
        "answers there (" % port in err, err
    assert time.time() - t0 < 60 and not os.path.exists("ad")
    (tmp_path / "bad.dns").write_text("base T(x) = tanh(y)\n")
    rc, out, err = run_main(["bad.dns", "--task", "usertask:quick",
                             "--steps", "3", "-o", "b", "--serial"], capsys)
    assert rc == 2 and "bad.dns:1:18: error: unknown name 'y'" in err
    assert "the screening" in err and "failed with status 1" in err


def test_score_named_like_a_results_column_is_refused(tmp_path,
                                                      monkeypatch, capsys):
    """A score named like a column results.csv has of its own (status,
    place, final_mean, ...: not `dnc search`'s, which it refuses itself)
    gave two columns of one name, and csv.DictReader read the score for
    the status: refused, located, before anything runs."""
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for col in cli.RESULT_COLUMNS:
        if col in ("id", "name", "source"):
            continue  # dnc search's own: it says so itself
        (tmp_path / "sc.dns").write_text(
            SPEC + "# a score\n  score  %s(x) = f(x)\n" % col)
        rc, out, err = run_main(["sc.dns", "--task", "usertask:quick",
                                 "--steps", "2", "--top", "2", "-o", "sc",
                                 "--serial", "-q"], capsys)
        assert rc == 2, (col, err)
        assert err == (
            "sc.dns:7:10: error: '%s' is a column of python -m dnc.search's "
            "results.csv; call this score something else\n"
            "    7 |   score  %s(x) = f(x)\n"
            "      |          ^%s\n" % (col, col, "~" * (len(col) - 1))), err
        assert not os.path.exists("sc")
    (tmp_path / "sc.dns").write_text(SPEC + "score status2(x) = f(x)\n")
    rc, out, err = run_main(["sc.dns", "--task", "usertask:quick", "--steps",
                             "2", "--top", "2", "-o", "sc", "--serial", "-q"],
                            capsys)
    assert rc == 0, err
    with open("sc/results.csv") as f:
        head = next(csv.reader(f))
    assert len(head) == len(set(head)) and "status2" in head


def test_address_of_something_not_ray_is_refused_at_once(
        tmp_path, monkeypatch, capsys):
    """--address HOST:PORT where an HTTP server answers (Ray's dashboard,
    8265) passed the port check and hung in ray.init for minutes: what
    answers must speak gRPC (HTTP/2), as a cluster's GCS does."""
    import http.server
    import socket
    import threading
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("RAY_USE_TLS", raising=False)

    def never(*a, **k):
        raise AssertionError("ray.init was reached")
    monkeypatch.setattr(cli, "start_ray", never)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def serve(lsk, answer):
        # one connection at a time: a gRPC server's SETTINGS, or silence
        while True:
            try:
                c, _ = lsk.accept()
            except OSError:
                return
            with c:
                c.recv(64)
                if answer:
                    c.sendall(answer)
                time.sleep(0.5)
    servers = []
    for answer in (b"\x00\x00\x06\x04\x00\x00\x00\x00\x00"
                   b"\x00\x03\x00\x00\x00\x64", b""):
        lsk = socket.socket()
        lsk.bind(("127.0.0.1", 0))
        lsk.listen()
        threading.Thread(target=serve, args=(lsk, answer),
                         daemon=True).start()
        servers.append(lsk)
    try:
        http_addr = "127.0.0.1:%d" % httpd.server_address[1]
        t0 = time.time()
        rc, out, err = run_main(["s.dns", "--task", "usertask:quick",
                                 "--steps", "2", "-o", "ad", "--address",
                                 http_addr], capsys)
        assert rc == 2 and err == (
            "python -m dnc.search: error: --address %s: what answers there "
            "is not a Ray cluster (it does not speak gRPC, as a cluster's "
            "head does: an HTTP server, Ray's dashboard?); give the address "
            "`ray start --head` printed (its --port, 6379 by default)\n" %
            http_addr), err
        assert time.time() - t0 < 30 and not os.path.exists("ad")
        grpc_addr, silent = ["127.0.0.1:%d" % x.getsockname()[1]
                             for x in servers]
        cli.check_address(grpc_addr, timeout=5)  # a SETTINGS frame: passes
        with pytest.raises(cli.UsageError, match="not a Ray cluster"):
            cli.check_address(silent, timeout=0.2)
        monkeypatch.setenv("RAY_USE_TLS", "1")  # TLS first: the port alone
        cli.check_address(http_addr, timeout=5)
    finally:
        httpd.shutdown()
        httpd.server_close()
        for x in servers:
            x.close()


def test_address_that_is_no_host_port_is_refused_at_once(
        tmp_path, monkeypatch, capsys):
    """An --address Ray cannot parse (no port, a port that is no number,
    an http:// address: the dashboard's) passed the port check unchecked;
    ray.init then raised its ValueError as a traceback, status 1, after
    the screening, with the run's directory made. Now status 2, one line,
    before anything runs; Ray's own forms still go to Ray."""
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))

    def never(*a, **k):
        raise AssertionError("ray.init was reached")
    monkeypatch.setattr(cli, "start_ray", never)
    for addr in ("headnode", "headnode:", "headnode:gcs", "127.0.0.1:0",
                 "127.0.0.1:70000", "::1"):
        rc, out, err = run_main(["s.dns", "--task", "usertask:quick",
                                 "--steps", "2", "-o", "ad", "--address",
                                 addr, "-q"], capsys)
        assert rc == 2 and err == (
            "python -m dnc.search: error: --address %s: not an address of a"
            " Ray cluster: HOST:PORT, as `ray start --head` printed it (its "
            "--port, 6379 by default), ray://HOST:PORT for Ray Client, or "
            "auto\n" % addr), (addr, err)
        assert not os.path.exists("ad"), addr
    for addr in ("http://127.0.0.1:8265", "HTTPS://head:8265"):
        rc, out, err = run_main(["s.dns", "--task", "usertask:quick",
                                 "--steps", "2", "-o", "ad", "--address",
                                 addr, "-q"], capsys)
        assert rc == 2 and err == (
            "python -m dnc.search: error: --address %s: an HTTP address "
            "(Ray's dashboard, or its jobs API) is no cluster to join; give "
            "the address `ray start --head` printed, HOST:PORT (its --port, "
            "6379 by default)\n" % addr), (addr, err)
        assert not os.path.exists("ad"), addr
    for addr in ("auto", "local", "ray://head:10001", "anyscale://c"):
        cli.check_address(addr, timeout=0.2)  # Ray's to judge: no error


def test_one_line_errors_not_tracebacks(tmp_path, monkeypatch, capsys):
    """What was a traceback (or a wrong message) is one line and status 2,
    before anything runs: a task's default_steps that is no whole number
    of steps ('8', NaN) or under 1 (said as --steps, not given); a
    directory for SPEC ('no such spec file'); a ray that is installed but
    does not import, and a ray:// address without Ray Client (both were
    raised once training began, after the screening)."""
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    with open("stepstask.py", "w") as f:
        for name, v in (("s8", "'8'"), ("snan", "float('nan')"),
                        ("s0", "0")):
            f.write("def %s(norm, steps, seed):\n    return 1.0\n\n\n"
                    "%s.mode = 'min'\n%s.default_steps = %s\n\n\n" % (
                        name, name, name, v))
    os.mkdir("adir")
    cases = [
        ("stepstask:s8", [], "task 'stepstask:s8' has default_steps '8': a "
         "whole number of steps, at least 1 (or give --steps)"),
        ("stepstask:snan", [], "task 'stepstask:snan' has default_steps "
         "nan: a whole number of steps, at least 1 (or give --steps)"),
        ("stepstask:s0", [], "task 'stepstask:s0' has default_steps 0: a "
         "whole number of steps, at least 1 (or give --steps)"),
    ]
    for task, extra, msg in cases:
        rc, out, err = run_main(["s.dns", "--task", task, "-o", "o",
                                 "--serial"] + extra, capsys)
        assert rc == 2 and err == "python -m dnc.search: error: %s\n" % msg, \
            err
    # --steps given: the task's value does not matter
    rc, out, err = run_main(["s.dns", "--task", "stepstask:s8", "--steps",
                             "2", "--top", "1", "--seeds", "1", "-o", "o8",
                             "--serial", "-q", "--no-baseline"], capsys)
    assert rc == 0, err
    rc, out, err = run_main(["adir", "--task", "usertask:quick", "--steps",
                             "2", "-o", "o", "--serial"], capsys)
    assert rc == 2 and err == "python -m dnc.search: error: adir: a " \
        "directory, not a spec file\n", err
    assert not os.path.exists("o")

    # a ray:// address without Ray Client (grpc)
    monkeypatch.setitem(sys.modules, "grpc", None)
    pytest.importorskip("ray")
    rc, out, err = run_main(["s.dns", "--task", "usertask:quick", "--steps",
                             "2", "-o", "rc", "--address",
                             "ray://127.0.0.1:10001"], capsys)
    assert rc == 2 and err.startswith(
        "python -m dnc.search: error: --address ray://127.0.0.1:10001: a "
        "ray:// address needs Ray Client") and "ray[client]" in err, err
    assert not os.path.exists("rc"), "before the screening"
    # a ray that is there but does not import
    fake = tmp_path / "fake" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise RuntimeError('a broken ray')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "fake"))
    for m in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, m)
    rc, out, err = run_main(["s.dns", "--task", "usertask:quick", "--steps",
                             "2", "-o", "br"], capsys)
    assert rc == 2 and err.startswith(
        "python -m dnc.search: error: the ray package of this Python (%s) "
        "is installed but does not import (RuntimeError: a broken ray)" %
        sys.executable) and "--serial" in err, err
    assert not os.path.exists("br"), "before the screening"


def test_no_ray_is_a_usage_error(tmp_path, monkeypatch, capsys):
    """Without the ray package, a run that is not --serial stops at once
    with status 2 and says what to do, before its directory is made (it
    was ray.init's ImportError, a traceback, after the journal)."""
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "ray", None)  # find_spec: None
    rc, out, err = run_main(["s.dns", "--task", "usertask:quick", "--steps",
                             "2", "-o", "nr"], capsys)
    assert rc == 2 and "error: training on Ray needs the ray package" in err \
        and "--serial" in err and "Traceback" not in err, err
    assert not os.path.exists("nr")


def check_table(r, steps=16):
    rows = {x["name"]: x for x in r["results"]}
    assert r["rungs"] == [{"steps": 4, "candidates": 8},
                          {"steps": 8, "candidates": 4},
                          {"steps": 16, "candidates": 2}]
    assert [x["place"] for x in r["results"]] == list(range(1, 10))
    boom = [x for x in r["results"] if x["name"] == "boom"]
    assert boom and all(x["status"] == "diverged" for x in boom)
    assert all("loss" in x["error"] or "metric" in x["error"] for x in boom)
    fin = [x for x in r["results"] if x["status"] == "finished"]
    assert len(fin) == 2
    for x in fin:
        assert len(x["final_seeds"]) == 2 and None not in x["final_seeds"]
        m = sum(x["final_seeds"]) / 2
        assert abs(x["final_mean"] - m) < 1e-12
        assert x["final_std"] == pytest.approx(
            abs(x["final_seeds"][0] - x["final_seeds"][1]) / math.sqrt(2))
    base = rows["LayerNorm (baseline)"]
    assert base["status"] == "baseline" and base["final_mean"] is not None
    stopped = [x for x in r["results"] if x["status"] == "stopped"]
    assert stopped and all(x["rungs"][-1] is None for x in stopped)
    # finished first (best first), then stopped, then diverged
    order = [x["status"] for x in r["results"]]
    assert order.index("diverged") > max(i for i, s in enumerate(order)
                                         if s == "stopped")
    ms = [x["final_mean"] for x in r["results"]
          if x["status"] in ("finished", "baseline")]
    assert ms == sorted(ms), "a loss: ascending"
    for x in r["results"]:
        if x["source"]:
            assert x["train_source"].startswith("fn net(x; alpha = 0.5, "
                                                "shift = 0.0)")
            assert "residual" in x["screen"] and "props" in x["screen"]


def test_serial_run_divergence_and_rerun(tmp_path, monkeypatch, capsys):
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    rc, out, err = run_main(ARGS + ["-o", "ser", "--serial"], capsys)
    assert rc == 0, err
    r = results("ser")
    check_table(r)
    # the printed table says at how many steps each row's metric is: a
    # stopped row's is its last rung's (4 or 8), not the last rung's (16)
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["place", "screen", "status", "steps",
                                    "metric"], lines
    steps = [x["steps"] for x in r["rungs"]]
    seen = set()
    for line, x in zip(lines[1:], r["results"]):
        f = line.split()
        assert f[0] == str(x["place"]) and f[2] == x["status"], (line, x)
        at = [i for i, v in enumerate(x["rungs"]) if v is not None]
        want = "-" if x["status"] == "diverged" else str(steps[at[-1]])
        assert f[3] == want, (line, x)
        seen.add(want)
    assert {"4", "8", "16"} <= seen, lines
    recs = journal("ser")
    keys = [(x["key"], x["rung"], x["seed"]) for x in recs]
    assert len(keys) == len(set(keys)), "each trial once"
    for x in r["results"]:
        if x["status"] == "diverged":
            n = [k for k in keys if k[0] == "c%d" % x["id"]]
            assert len(n) == 1, "a divergence is recorded, not retried"
    assert open("ser/results.csv").readline().startswith(
        "place,screen_rank,id,name,status,metric@4,metric@8,metric@16,"
        "final_mean,final_std,final_seeds,error,")
    before = open("ser/results.csv").read()
    rc, out, err = run_main(ARGS + ["-o", "ser", "--serial"], capsys)
    assert rc == 0 and len(journal("ser")) == len(recs), "nothing retrained"
    assert open("ser/results.csv").read() == before
    rc, out, err = run_main(ARGS[:-2] + ["3", "-q", "-o", "ser", "--serial"],
                            capsys)
    assert rc == 2 and "seeds differs" in err
    # --top over the space's size: the rungs of the 8 there are
    args = list(ARGS)
    args[args.index("--top") + 1] = "100"
    rc, out, err = run_main(args + ["-o", "all", "--serial"], capsys)
    assert rc == 0, err
    check_table(results("all"))
    # a failing trial is said on stderr, as under Ray; when every trial
    # fails (a broken task), the run says so and exits with status 1, the
    # tables written
    rc, out, err = run_main(["s.dns", "--task", "usertask:broken", "--top",
                             "2", "--steps", "2", "--seeds", "1", "-o",
                             "broken", "--serial"], capsys)
    assert rc == 1 and "layernorm at 2 steps, seed 0: failed (" \
        "RuntimeError: no data here)" in err, err
    assert "error: every trial failed (" in err and \
        "RuntimeError: no data here); the tables say which" in err, err
    assert all(x["status"] == "failed" for x in results("broken")["results"])
    # every candidate failed, LayerNorm trained: not a ranking either (it
    # exited 0 with the baseline first)
    rc, out, err = run_main(["s.dns", "--task", "usertask:lnonly", "--top",
                             "2", "--steps", "2", "--seeds", "1", "-o",
                             "lnonly", "--serial", "-q"], capsys)
    assert rc == 1 and "error: every candidate's trial failed (c" in err \
        and "TypeError: a LayerNorm, please" in err and "while LayerNorm's trained: " \
        "the task does not train with dnc's norms; the tables say which" \
        in err, err
    st = {x["status"] for x in results("lnonly")["results"]}
    assert st == {"failed", "baseline"}, st


def test_every_candidate_diverged_is_no_ranking(tmp_path, monkeypatch,
                                                capsys):
    """Every candidate diverged: it exited 0 with LayerNorm in place 1 (a
    script took the baseline for the search's winner), where every
    candidate failed exits 1; now the same, with its own line."""
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["s.dns", "--task", "usertask:nans", "--top", "3", "--steps",
            "2", "--seeds", "1", "--serial", "-q"]
    rc, out, err = run_main(args + ["-o", "n"], capsys)
    assert rc == 1 and "python -m dnc.search: error: every candidate's " \
        "trial diverged (c" in err and "the metric is nan), while " \
        "LayerNorm's trained: no candidate gives a finite metric in this " \
        "task; the tables say which\n" in err, err
    st = [x["status"] for x in results("n")["results"]]
    assert st == ["baseline", "diverged", "diverged", "diverged"], st
    open("ALLNAN", "w").close()
    rc, out, err = run_main(args + ["-o", "a"], capsys)
    assert rc == 1 and "error: every trial diverged (c" in err and \
        "the metric is nan); the tables say which" in err, err
    assert {x["status"] for x in results("a")["results"]} == {"diverged"}


def test_tables_through_temporaries_of_their_own(tmp_path, monkeypatch,
                                                 capsys):
    """The tables went through fixed DIR/results.*.tmp names: a directory
    of that name failed every run, and a failed write left its temporary
    behind. Now each is a temporary of the process's own, removed on a
    failure; a table that is a directory is refused before either is
    replaced."""
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["s.dns", "--task", "usertask:quick", "--top", "2", "--steps",
            "2", "--seeds", "1", "-q", "--serial", "-o", "t"]
    os.makedirs("t/results.json.tmp")
    os.makedirs("t/results.csv.tmp")
    rc, out, err = run_main(args, capsys)
    assert rc == 0, err
    assert sorted(os.listdir("t")) == [
        "journal.jsonl", "results.csv", "results.csv.tmp", "results.json",
        "results.json.tmp", "screen.csv", "screen.json", "screen.sha256"]
    assert oct(os.stat("t/results.csv").st_mode & 0o777) == \
        oct(os.stat("t/screen.csv").st_mode & 0o777)
    before = open("t/results.csv").read()
    os.remove("t/results.json")
    os.makedirs("t/results.json")
    rc, out, err = run_main(args, capsys)
    assert rc == 1 and "python -m dnc.search: error: t/results.json: Is " \
        "a directory\n" in err, err
    assert open("t/results.csv").read() == before
    assert not [f for f in os.listdir("t") if f.startswith(".")]
    # a failure while writing them: no temporary left, nothing replaced
    with pytest.raises(TypeError):
        cli.install("t", (("results.csv", "x\n"), ("other", 3)))
    assert not [f for f in os.listdir("t") if f.startswith(".")]
    assert open("t/results.csv").read() == before


def test_a_row_reproduced_by_hand_as_the_docs_say(tmp_path, monkeypatch,
                                                  capsys):
    """docs/search.md's `reproduce` snippet, run as written, trains a
    char-lm table's rows again to the same bits (a candidate's and
    LayerNorm's, at a rung before the last and at the last)."""
    pytest.importorskip("numpy")
    with open(os.path.join(ROOT, "docs", "search.md")) as f:
        text = f.read()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    code = [b for b in blocks if "def reproduce(" in b]
    assert len(code) == 1, "docs/search.md shows how to reproduce a row"
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_main(["s.dns", "--task", "char-lm", "--top", "3",
                             "--steps", "2", "--seeds", "2", "--serial",
                             "-q", "-o", "lm"], capsys)
    assert rc == 0, err
    r = results("lm")
    steps = [x["steps"] for x in r["rungs"]]
    assert steps == [1, 2], steps
    scope = {}
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the snippet's own setting counts
        exec(code[0], scope)
        done = 0
        for row in r["results"]:
            at = max(i for i, v in enumerate(row["rungs"]) if v is not None)
            if at == len(steps) - 1:
                seeds, want = [0, 1], row["final_seeds"]
            else:
                seeds, want = [0], [row["rungs"][at]]
            got = [scope["reproduce"]("char-lm", row["source"], steps[at], s,
                                      r["config"]["alpha"]) for s in seeds]
            assert got == want, (row["name"], got, want)
            done += 1
    finally:
        torch.set_num_threads(threads)
    assert done == 4 and {x["status"] for x in r["results"]} == {
        "baseline", "finished", "stopped"}


def test_journal_record_of_other_steps_is_not_reused(tmp_path, monkeypatch,
                                                     capsys):
    """The journal's records were looked up by (candidate, rung, seed)
    alone: one trained for other steps than the plan's rung (another
    dnc.search's plan, an edit) was taken as the rung's metric. Now it
    is trained again, and the table is the uninterrupted run's."""
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ARGS + ["-o", "st", "--serial"]
    rc, out, err = run_main(args, capsys)
    assert rc == 0, err
    before = open("st/results.csv").read()
    path = "st/journal.jsonl"
    lines = open(path).read().splitlines()
    recs = [json.loads(x) for x in lines]
    i = next(i for i, x in enumerate(recs) if i and x["rung"] == 0 and
             x["status"] == "ok")
    rec = recs[i]
    del rec["sum"]
    rec["steps"] += 1  # a trial of 5 steps, at the rung of 4
    rec["metric"] = -1.0  # the best loss there is, had it counted
    rec["sum"] = cli._digest(rec)
    lines[i] = json.dumps(rec, sort_keys=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    rc, out, err = run_main(args, capsys)
    assert rc == 0, err
    # recs: the header and the records; one record more
    assert len(journal("st")) == (len(recs) - 1) + 1, \
        "that trial alone trained again"
    again = journal("st")[-1]
    assert (again["key"], again["rung"], again["seed"], again["steps"]) == \
        (rec["key"], 0, rec["seed"], rec["steps"] - 1)
    assert open("st/results.csv").read() == before
    assert "-1.0" not in before


def test_screening_of_another_spec_is_not_reused(tmp_path, monkeypatch,
                                                 capsys):
    """A finished screening is reused by a rerun of its spec; with
    journal.jsonl gone but screen.json left, a run of another spec in the
    same -o screens that spec, not ranks the old screening's candidates."""
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["s.dns", "--task", "usertask:quick", "--top", "2", "--steps",
            "2", "--seeds", "1", "-q", "--serial", "-o", "o"]
    rc, out, err = run_main(args, capsys)
    assert rc == 0, err
    stamp = os.stat("o/screen.json").st_mtime_ns
    rc, out, err = run_main(args, capsys)
    assert rc == 0 and os.stat("o/screen.json").st_mtime_ns == stamp, \
        "the same spec's screening is reused"
    os.remove("o/journal.jsonl")
    (tmp_path / "s.dns").write_text(SPEC.replace(
        "base linear(x) = x\n", "base soft(x) = x / (1 + abs(x))\n"))
    rc, out, err = run_main(args, capsys)
    assert rc == 0, err
    with open("o/screen.json") as f:
        names = [r["name"] for r in json.load(f)["ranked"]]
    assert "soft" in names and "linear" not in names, names
    got = [r["name"] for r in results("o")["results"]]
    assert all("linear" not in n for n in got), got


def test_retry_failed(tmp_path, monkeypatch, capsys):
    """Failed trials stay failed on a rerun (nothing the journal holds is
    trained again) unless --retry-failed asks for them."""
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["s.dns", "--task", "usertask:flaky", "--top", "2", "--steps",
            "2", "--seeds", "1", "-q", "--serial", "-o", "r"]
    open("FAIL", "w").close()
    rc, out, err = run_main(args, capsys)
    assert rc == 1 and "not fixed yet" in err, err
    os.remove("FAIL")
    n = len(journal("r"))
    rc, out, err = run_main(args, capsys)
    assert rc == 1 and len(journal("r")) == n, "nothing retrained"
    rc, out, err = run_main(args + ["--retry-failed"], capsys)
    assert rc == 0, err
    assert len(journal("r")) == 2 * n, "each failed trial trained again"
    st = [x["status"] for x in results("r")["results"]]
    assert st and all(s in ("finished", "baseline") for s in st), st
    rc, out, err = run_main(args + ["--retry-failed"], capsys)
    assert rc == 0 and len(journal("r")) == 2 * n, "nothing failed is left"


def test_the_directory_busy_or_not_one_and_one_seed(tmp_path, monkeypatch,
                                                   capsys):
    """A second run of a directory whose journal a run holds stops with
    status 1, training nothing; an -o that is a file is refused with 2,
    not a traceback; with one seed the deviation is none, not 0."""
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["s.dns", "--task", "usertask:quick", "--top", "2", "--steps",
            "2", "--seeds", "1", "-q", "--serial"]
    os.mkdir("busy")
    held = cli.Journal(os.path.join("busy", "journal.jsonl"), {"x": 1})
    try:
        rc, out, err = run_main(args + ["-o", "busy"], capsys)
    finally:
        held.close()
    assert rc == 1 and "python -m dnc.search: error: 'busy/journal.jsonl' " \
        "is being written by another python -m dnc.search of the same -o; " \
        "wait for it, or use another -o" in err, err
    assert not os.path.exists("busy/screen.json"), "nothing ran"
    open("afile", "w").close()
    rc, out, err = run_main(args + ["-o", "afile"], capsys)
    assert rc == 2 and "error: -o afile: cannot make the run's directory" \
        in err, err
    rc, out, err = run_main(args + ["-o", "one"], capsys)
    assert rc == 0, err
    fin = [x for x in results("one")["results"]
           if x["status"] in ("finished", "baseline")]
    assert len(fin) == 3
    for x in fin:
        assert len(x["final_seeds"]) == 1 and x["final_mean"] is not None
        assert x["final_std"] is None, "no deviation from one seed"
    with open("one/results.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(r["final_std"] == "" for r in rows if r["final_mean"])


def test_timeout(tmp_path, monkeypatch, capsys):
    """--timeout: a trial that hangs fails after that many seconds (even
    in a task that catches Exception) and the run goes on; an exception
    without a message is named alone."""
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    t0 = time.time()
    rc, out, err = run_main(["s.dns", "--task", "usertask:sleepy", "--top",
                             "8", "--steps", "2", "--seeds", "1", "--rungs",
                             "1", "-o", "t", "--serial", "--timeout", "0.5"],
                            capsys)
    assert rc == 0, err
    assert time.time() - t0 < 300
    rows = results("t")["results"]
    tanh = [x for x in rows if x["name"].startswith("Tanh")]
    assert len(tanh) == 2 and all(
        x["status"] == "failed" and x["error"] == "at 2 steps, seed 0: "
        "TimeoutError: the trial ran past --timeout 0.5 s" for x in tanh), \
        tanh
    assert "TimeoutError: the trial ran past --timeout 0.5 s" in err
    assert sum(x["status"] == "finished" for x in rows) >= 4
    import signal as sg
    assert sg.getsignal(sg.SIGALRM) in (sg.SIG_DFL, None) and \
        sg.getitimer(sg.ITIMER_REAL) == (0.0, 0.0), "the timer is disarmed"
    for bad in ("0", "-1", "nan"):
        rc, out, err = run_main(["s.dns", "--task", "usertask:sleepy",
                                 "--steps", "2", "-o", "t2", "--serial",
                                 "--timeout", bad], capsys)
        assert rc == 2 and "--timeout is a number of seconds above 0" in err
    r = cli.train_unit("usertask:bare", "c0", "fn c0(x) = erf(x)", 1, 0,
                       0.5, "min")
    assert r["status"] == "failed" and r["error"] == "MemoryError", r
    # sys.exit() in a task: the trial fails, the run goes on (a --serial
    # run ended with the task's status, no word, no tables)
    r = cli.train_unit("usertask:exits", "c0", "fn c0(x) = erf(x)", 1, 0,
                       0.5, "min")
    assert r["status"] == "failed" and r["error"] == \
        "SystemExit: the task exited (sys.exit(3))", r


def test_interrupted_screening(tmp_path, monkeypatch, capsys):
    """A screening stopped by a signal stops the run with the same status
    and a line saying so (it was 'the screening failed', status 2; a
    Ctrl-C while the driver waited for it, a traceback); the rerun goes
    on from the screening's journal."""
    setup_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["s.dns", "--task", "usertask:quick", "--top", "2", "--steps",
            "2", "--seeds", "1", "--serial", "-o", "i"]
    for sig, status in (("2", 130), ("15", 143)):
        monkeypatch.setenv("DNC_SEARCH_STOP_AFTER", "expand")
        monkeypatch.setenv("DNC_SEARCH_STOP_SIGNAL", sig)
        rc, out, err = run_main(args, capsys)
        assert rc == status, (rc, err)
        assert "python -m dnc.search: interrupted before training; run the " \
            "same command to go on" in err, err
        assert "Traceback" not in err and not os.path.exists("i/screen.json")
        assert cli._stopped_by[0] == signal.SIGINT or rc == 143
    monkeypatch.delenv("DNC_SEARCH_STOP_AFTER")
    monkeypatch.delenv("DNC_SEARCH_STOP_SIGNAL")
    rc, out, err = run_main(args, capsys)
    assert rc == 0, err


# 2 x 5 x 5 x 4 = 200 candidates: more than one batch of 64, so that a
# screening stopped after 64 leaves its journal
WIDE_SPEC = """\
base Erf(x) = erf(x)
base Tanh(x) = tanh(x)
stage s: id | scale(0.25, 0.5, 2, 4)
stage t: id | shift(-1, -0.5, 0.5, 1)
stage g: id | gain(2, 3, 4)
"""


def test_screening_stopped_then_spec_edited(tmp_path, monkeypatch, capsys):
    """A screening stopped midway, then the spec edited (a comment alone):
    the rerun stopped with status 2 on `dnc search`'s 'this journal is not
    of this search', naming the spec by its absolute path. The run's own
    journal, a header alone, says the spec changed: the stale
    DIR/screen.journal is removed, said in one line naming the spec as
    given, and the search runs. One of the same spec (other settings) is
    resumed, not removed."""
    setup_dir(tmp_path)
    (tmp_path / "w.dns").write_text(WIDE_SPEC)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["w.dns", "--task", "usertask:quick", "--top", "2", "--steps",
            "2", "--seeds", "1", "--serial", "--threads", "1", "-o", "e"]
    monkeypatch.setenv("DNC_SEARCH_STOP_AFTER", "64")
    rc, out, err = run_main(args, capsys)
    assert rc == 130 and os.path.exists("e/screen.journal"), err
    # the same spec, another --top: the journal's header is taken over,
    # the screening's journal kept and resumed (64 candidates fewer)
    rc, out, err = run_main(args[:4] + ["3"] + args[5:], capsys)
    assert rc == 130 and "removed" not in err, err
    assert "128 of 200 candidates measured" in err, err
    with open("w.dns", "a") as f:
        f.write("# a comment\n")
    monkeypatch.delenv("DNC_SEARCH_STOP_AFTER")
    rc, out, err = run_main(args, capsys)
    assert rc == 0, err
    assert "dnc.search: removed e/screen.journal, the stopped screening " \
        "of the spec before its edit; screening w.dns from the start\n" \
        in err, err
    assert "200 measured" in err and str(tmp_path) not in err, err
    assert not os.path.exists("e/screen.journal")


@pytest.mark.slow  # Python's signal handling in a child, not libdnc's test
@pytest.mark.parametrize("how", ["--serial", "ray", "hup-serial",
                                 "hup-ray"])
def test_sigterm_stops_with_143_and_keeps_the_journal(tmp_path, how):
    """SIGTERM stops between trials with 143, serial or under the local
    Ray (whose ray.init installs a SIGTERM handler of its own); SIGHUP
    (the terminal gone) with 129, as `dnc search` (it died of the signal,
    -1)."""
    if not how.endswith("serial"):
        pytest.importorskip("ray")
    setup_dir(tmp_path, sleep=0.3)
    e = env()
    e["PYTHONPATH"] += os.pathsep + str(tmp_path)
    sig = signal.SIGHUP if how.startswith("hup") else signal.SIGTERM
    extra = ("--serial",) if how.endswith("serial") else ("--threads", "1")
    p = subprocess.Popen(command("term", *extra), cwd=tmp_path, env=e,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        jp = tmp_path / "term" / "journal.jsonl"
        t0 = time.time()
        while time.time() - t0 < 240 and p.poll() is None:
            if jp.exists() and len(jp.read_text().splitlines()) >= 3:
                break
            time.sleep(0.1)
        assert p.poll() is None, "finished before the signal: %s" % (
            p.stderr.read().decode()[-2000:])
        p.send_signal(sig)
        rc = p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        err = p.stderr.read().decode()
        p.stderr.close()
    assert rc == 128 + sig, (rc, err[-2000:])  # as `dnc search`
    kept = journal(str(tmp_path / "term"))
    assert len(kept) >= 2, "the finished trials stay in the journal"
    assert not (tmp_path / "term" / "results.csv").exists(), \
        "no table from an interrupted run"


# --------------------------------------------------------------- Ray


@pytest.mark.slow  # Ray's own processes under a preloaded ASan: not libdnc's test
def test_two_node_cluster_and_a_dying_worker(tmp_path, monkeypatch, capsys):
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster
    mark = str(tmp_path / "crashed")
    setup_dir(tmp_path, mark=mark, sleep=0.2)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    # the uninterrupted reference, without Ray (and without the crash)
    open(mark, "w").close()
    rc, out, err = run_main(ARGS + ["-o", "ref", "--serial"], capsys)
    assert rc == 0, err
    os.unlink(mark)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [PYDIR, str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    cluster = Cluster(initialize_head=True, head_node_args=dict(
        num_cpus=1, include_dashboard=False,
        object_store_memory=80 * 1024 * 1024))
    try:
        cluster.add_node(num_cpus=1, object_store_memory=80 * 1024 * 1024)
        cluster.wait_for_nodes()
        rc, out, err = run_main(ARGS + ["-o", "two", "--address",
                                        cluster.address], capsys)
    finally:
        cluster.shutdown()
    assert rc == 0, err
    assert os.path.exists(mark), "the first Erf trial killed its worker"
    nodes = {x["node"] for x in journal("two")}
    assert None not in nodes and len(nodes) == 2, "trials on both nodes"
    r = results("two")
    check_table(r)
    erf = [x for x in r["results"] if x["name"] == "Erf"][0]
    assert erf["status"] in ("finished", "stopped"), "retried, then trained"
    assert open("two/results.csv").read() == open("ref/results.csv").read()


def test_ray_error_text():
    """'after N retries' is said of a worker's death, which --retries
    counts, not of Ray's other failures (its memory monitor keeps a count
    of its own)."""
    ray = pytest.importorskip("ray")
    rx = ray.exceptions
    assert cli.ray_error_text(rx.WorkerCrashedError(), 2).startswith(
        "WorkerCrashedError after 2 retries: ")
    assert cli.ray_error_text(rx.WorkerCrashedError(), 1).startswith(
        "WorkerCrashedError after 1 retry: ")
    t = cli.ray_error_text(rx.OutOfMemoryError("the node ran out\nmore"), 2)
    assert t == "OutOfMemoryError: the node ran out", t


def test_ray_error_text_of_a_task_error_names_its_cause():
    """A trial that raised in a Ray worker (RayTaskError) had for its error
    Ray's header line alone, with its colour codes: 'RayTaskError(
    RuntimeError): \\x1b[36mray::train_unit()\\x1b[39m (pid=..., ip=...)'.
    Now the exception's type and message, without colour codes, from its
    cause or, without one, from the traceback Ray carries."""
    import traceback
    ray = pytest.importorskip("ray")
    RayTaskError = ray.exceptions.RayTaskError
    try:
        raise RuntimeError("dnc.torch: the kernel failed\nits second line")
    except RuntimeError as c:
        cause, tb = c, traceback.format_exc()
    e = RayTaskError("train_unit", tb, cause, proctitle="ray::train_unit()",
                     pid=4912, ip="10.0.0.1").as_instanceof_cause()
    assert "\x1b[" in str(e), str(e)  # Ray's header, coloured
    t = cli.ray_error_text(e, 2)
    assert t == "RuntimeError: dnc.torch: the kernel failed", t
    # without its cause (one Ray could not unpickle): the traceback's line
    bare = RayTaskError("train_unit", "\x1b[36mray::train_unit()\x1b[39m "
                        "(pid=1, ip=x)\n" + tb, None)
    t = cli.ray_error_text(bare, 2)
    assert t == "RuntimeError: dnc.torch: the kernel failed", t
    # a task's task
    outer = RayTaskError("outer", "x", e)
    assert cli.ray_error_text(outer, 2) == \
        "RuntimeError: dnc.torch: the kernel failed"
    assert cli._plain("\x1b[36mray::f()\x1b[39m (pid=1)") == "ray::f() (pid=1)"
    t = cli.ray_error_text(ray.exceptions.OutOfMemoryError(
        "\x1b[31mthe node ran out\x1b[0m\nmore"), 2)
    assert t == "OutOfMemoryError: the node ran out", t


def descendants(pid):
    """pid and every process under it, from /proc (Linux)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


@pytest.mark.slow  # Ray's own processes under a preloaded ASan: not libdnc's test
def test_killed_and_resumed(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    if not os.path.isdir("/proc/self"):
        pytest.skip("finding the run's processes needs Linux's /proc")
    setup_dir(tmp_path, sleep=0.6)
    monkeypatch.chdir(tmp_path)
    e = env()
    e["PYTHONPATH"] += os.pathsep + str(tmp_path)
    ref = subprocess.run(command("ref", "--serial"), cwd=tmp_path, env=e,
                         capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr
    p = subprocess.Popen(command("cut", "--threads", "1"), cwd=tmp_path,
                         env=e, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, start_new_session=True)
    procs = []
    try:
        jp = tmp_path / "cut" / "journal.jsonl"
        t0 = time.time()
        while time.time() - t0 < 240 and p.poll() is None:
            if jp.exists() and len(jp.read_text().splitlines()) >= 4:
                break
            time.sleep(0.2)
        assert p.poll() is None, "killed before it finished: %s" % (
            p.stderr.read().decode()[-2000:])
        procs = descendants(p.pid)
        for q in procs:  # the driver and all it started, as a crash would
            try:
                os.kill(q, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
        t0 = time.time()
        while time.time() - t0 < 30 and any(
                os.path.exists("/proc/%d" % q) and q != p.pid
                for q in procs):
            time.sleep(0.2)
    done_before = journal("cut")
    assert 3 <= len(done_before) < 18, "killed midway"
    assert not (tmp_path / "cut" / "results.csv").exists()
    res = subprocess.run(command("cut", "--threads", "2"), cwd=tmp_path,
                         env=e, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    after = journal("cut")
    keys = [(x["key"], x["rung"], x["seed"]) for x in after]
    assert len(keys) == len(set(keys)), "nothing finished was retrained"
    assert after[:len(done_before)] == done_before
    assert (tmp_path / "cut" / "results.csv").read_text() == \
        (tmp_path / "ref" / "results.csv").read_text()
    assert results("cut") == results("ref")


def test_tables_mode_and_numpy_default_steps(tmp_path, monkeypatch, capsys):
    """The tables are made as open() makes a file, 0666 less the umask
    (they were 0644 less it: 0644 under umask 002, where open gives 0664),
    without setting the umask to 0 to read it (Ray's threads' files would
    have been 0666 in that moment); a task's default_steps may be a NumPy
    integer (it was refused as not a whole number)."""
    np = pytest.importorskip("numpy")
    setup_dir(tmp_path)
    (tmp_path / "nptask.py").write_text(
        "import numpy as np\n"
        "from usertask import quick as _quick\n"
        "def quick(norm, steps, seed):\n"
        "    return _quick(norm, steps, seed)\n"
        "quick.mode = 'min'\n"
        "quick.default_steps = np.int64(2)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "usertask", raising=False)
    monkeypatch.delitem(sys.modules, "nptask", raising=False)
    old = os.umask(0o002)
    try:
        rc, out, err = run_main(["s.dns", "--task", "nptask:quick", "--top",
                                 "2", "--seeds", "1", "-q", "--serial",
                                 "-o", "d"], capsys)
        assert rc == 0, err
        assert cli._umask() == 0o002
        assert os.umask(0o002) == 0o002, "the umask was left as it was"
    finally:
        os.umask(old)
    for name in ("results.csv", "results.json"):
        mode = stat.S_IMODE(os.stat(os.path.join("d", name)).st_mode)
        assert mode == 0o664, (name, oct(mode))
