"""python -m dnc.search: screen a spec with `dnc search`, then train the best
candidates on Ray with successive halving (docs/search.md).

    python -m dnc.search SPEC --task TASK -o DIR [--top K] [--steps N]
        [--seeds S] [--eta E] [--rungs R] [--threads T] [--address ADDR]
        [--retries R] [--retry-failed] [--timeout SECONDS] [--alpha A]
        [--mode max|min] [--no-baseline] [--serial] [--quiet]
"""
import argparse
import csv
import errno
import fcntl
import hashlib
import importlib.util
import io
import json
import logging
import math
import numbers
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from . import tasks as T

JOURNAL = "journal.jsonl"
VERSION = 1
BASELINE = "layernorm"


class UsageError(Exception):
    """A bad argument or a refused directory: message, exit status 2."""


class SpecError(UsageError):
    """An error located in the spec, written as `dnc search` writes its
    own (SPEC:LINE:COL: error: ..., the line and a caret): status 2."""


def _usable_cpus():
    """The CPUs this process may run on (taskset, a container's cpuset),
    as dnc's own thread pool counts them; every CPU where that is not
    known."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# ------------------------------------------------------------ the plan


def plan(top, steps, eta, rungs=None):
    """The rungs: [(steps, how many candidates)], successive halving from
    top candidates down to 2 (or 1), each rung keeping 1/eta of the one
    before (rounded up) for eta times its budget, the last at steps; rungs:
    at most that many (1: everyone trains at steps)."""
    n, sizes = top, [top]
    while n > 2 and (rungs is None or len(sizes) < rungs):
        n = max(2, -(-n // eta))
        sizes.append(n)
    r = len(sizes)
    out = []
    for i in range(r):
        st = max(1, int(round(steps / eta ** (r - 1 - i))))
        if out and out[-1][0] == st:
            # few steps: rungs of the same steps would train the same
            # trials again (and name two columns alike): one rung, cut
            # to the later size at the next
            continue
        out.append((st, sizes[i]))
    return out


def better_key(mode):
    """A sort key on a unit's metric: best first, None (diverged or
    failed) last."""
    def key(m):
        if m is None or not math.isfinite(m):
            return (1, 0.0)
        return (0, -m if mode == "max" else m)
    return key


# ------------------------------------------------------------ journal


def _file_sha256(path):
    """16 hex digits of the SHA-256 of the file at path."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def software(task=None):
    """What the trained numbers depend on besides the settings: dnc's
    version and the SHA-256 (16 digits) of the libdnc it loads (a rebuild
    changes the kernels' last bits) and of the dnc binary that screens
    (find_dnc), PyTorch's version and, given the
    --task, the SHA-256 of its code (tasks.task_sha256: an edit to the
    task, its learning rate, say, changes every number)."""
    try:
        from .. import _capi
        lib = _file_sha256(_capi.path)
        dnc_ver = _capi.lib.dnc_version().decode()
    except (ImportError, OSError, AttributeError):
        lib = dnc_ver = None
    try:
        from importlib import metadata
        torch_ver = metadata.version("torch")
    except Exception:  # no distribution metadata (Debian's torch)
        torch_ver = None
    try:
        binary = _file_sha256(find_dnc())
    except (UsageError, OSError):
        binary = None
    sw = {"dnc": dnc_ver, "libdnc_sha256": lib, "dnc_sha256": binary,
          "torch": torch_ver}
    if task is not None:
        try:
            sw["task_sha256"] = T.task_sha256(task)
        except (ValueError, OSError):
            sw["task_sha256"] = None
    return sw


class Busy(Exception):
    """Another run holds the directory's journal: message, exit status 1."""


class Damaged(Exception):
    """A journal line whose checksum does not match: message, status 1."""


class ClusterFailed(Exception):
    """Ray itself failed under a trial (its raylet, a node, the object
    store): not the candidate's failure, so not journaled; message, status
    1, and the same command goes on."""


def _digest(rec):
    """A record's checksum: 16 hex digits of the SHA-256 of its JSON (keys
    sorted, as written; Python's floats read back exactly, so the JSON of
    a record read is that of the record written)."""
    return hashlib.sha256(json.dumps(rec, sort_keys=True).encode()) \
        .hexdigest()[:16]


def _task_files_text(task):
    """The task's files, for a message."""
    try:
        files = [os.path.relpath(f) for f in T.task_files(task)]
    except (ValueError, TypeError, OSError):
        return "its code"
    return ", ".join(f if not f.startswith("..") else os.path.abspath(f)
                     for f in files) or "its code"


class Journal:
    """DIR/journal.jsonl: a header line with the run's settings, then one
    JSON line per finished trial, each written with one write and an fsync,
    each with its checksum ("sum": a bit flipped in a metric changed the
    ranking silently); a torn last line (a kill in the middle of a write)
    is cut off. The
    journal is locked (flock) from before it is read until close(): a
    second run of the same directory stops at once (Busy) instead of
    training the same trials and adding its records to the first one's.
    sw: the header's software (default: software())."""

    def __init__(self, path, config, sw=None):
        self.path = path
        self.done = {}
        # the settings of a journal of a header alone that config took
        # over (None where it was new, or of config): a run stopped before
        # its first trial, whose screening may be of another spec
        self.replaced = None
        self.sw = software() if sw is None else sw
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT,
                              0o644)
        except OSError as e:
            raise UsageError("%s: cannot open the journal: %s" % (
                path, e.strerror or e))
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise Busy("'%s' is being written by another python -m "
                       "dnc.search of the same -o; wait for it, or use "
                       "another -o" % path)
        try:
            self._load(config)
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.fd is not None:
            os.close(self.fd)  # and the lock with it
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _load(self, config):
        path = self.path
        chunks = []
        os.lseek(self.fd, 0, os.SEEK_SET)
        while True:
            b = os.read(self.fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        data = b"".join(chunks)
        lines = data.split(b"\n")
        good = 0
        records = []
        for i, raw in enumerate(lines):
            if not raw.strip():
                good += len(raw) + 1
                continue
            if i == len(lines) - 1:
                # no newline after it: a write that a kill tore, even where
                # its JSON is whole (kept, the next record went on the same
                # line, and the journal was refused at the next run)
                break
            try:
                rec = json.loads(raw)
            except ValueError:
                if i == len(lines) - 1 or all(
                        not x.strip() for x in lines[i + 1:]):
                    break  # a torn last line
                raise UsageError("%s:%d: not a line of this journal" % (
                    path, i + 1))
            if not isinstance(rec, dict):
                raise UsageError("%s:%d: not a line of this journal" % (
                    path, i + 1))
            # every line of a journal whose header has a sum has one (a
            # journal of an older dnc has none)
            summed = "sum" in (records[0][1] if records else rec)
            if records and "sum" in rec and not summed:
                # a header without its sum before records with theirs: a
                # bit flipped in the header's own "sum" key (which hid
                # the header from its check)
                raise Damaged(
                    "%s:1: a damaged header: it has no checksum but the "
                    "records after it do, so none of the journal is used; "
                    "remove the journal (its trials train again)" % path)
            if "sum" in rec or summed:
                if rec.pop("sum", None) != _digest(rec):
                    raise Damaged(
                        "%s:%d: a damaged record: its checksum does not "
                        "match, so none of the journal is used; remove "
                        "this line (its trial trains again) or the journal" %
                        (path, i + 1))
                if not records:
                    rec["sum"] = True  # the header's mark, for the lines after
            records.append((i + 1, rec))
            good += len(raw) + 1
        if len(data) > good:
            os.ftruncate(self.fd, min(good, len(data)))
        if not records and not data[:good].strip():
            # a new journal, or one whose header a kill tore: start it
            os.ftruncate(self.fd, 0)
            self._write({"journal": "dnc.search", "version": VERSION,
                         "config": config, "software": self.sw})
            return
        if records[0][1].get("journal") != "dnc.search":
            raise UsageError("%s:1: not a dnc.search journal; remove it "
                             "or use another -o" % path)
        old = records[0][1].get("config")
        if old != config and not records[1:]:
            # no trial yet (the spec had an error, say): the new settings
            # take the journal
            self.replaced = old if isinstance(old, dict) else {}
            os.ftruncate(self.fd, 0)
            self._write({"journal": "dnc.search", "version": VERSION,
                         "config": config, "software": self.sw})
            return
        if old != config:
            old = old if isinstance(old, dict) else {}
            diff = sorted(k for k in set(old) | set(config)
                          if old.get(k) != config.get(k))
            raise UsageError(
                "%s:1: this directory holds a run of other settings (%s"
                " differ%s): rerun with the same ones, use another -o, "
                "or remove the directory" % (
                    path, ", ".join(diff), "s" if len(diff) == 1 else ""))
        was, now = records[0][1].get("software"), self.sw
        n = len(records) - 1
        trials = "its %d trial%s" % (n, "" if n == 1 else "s")
        if records[1:] and isinstance(was, dict) and \
                "task_sha256" in was and "task_sha256" in now and \
                was["task_sha256"] != now["task_sha256"]:
            # (a journal older than the record has no hash: no warning)
            # the task's code changed under the journal: its numbers are
            # another task's, and a ranking of both is not one
            sys.stderr.write(
                "dnc.search: warning: %s: %s were trained with other code "
                "of the task (%s changed: SHA-256 %s -> %s); the tables "
                "will mix and rank the trials of both: use another -o (or "
                "remove the journal) for results of one version\n" % (
                    path, trials, _task_files_text(config.get("task")),
                    was.get("task_sha256"), now.get("task_sha256")))
        if records[1:] and isinstance(was, dict):
            diff = ", ".join("%s %s -> %s" % (k, was.get(k), now.get(k))
                             # what both record (an older journal's
                             # has fewer: no difference to tell)
                             for k in sorted(set(was) & set(now))
                             if k != "task_sha256" and
                             was.get(k) != now.get(k))
            if diff:
                sys.stderr.write(
                    "dnc.search: warning: %s: %s were trained with other "
                    "software (%s); the tables will mix both, whose numbers "
                    "may differ in their last digits: use another -o for "
                    "results of one build\n" % (path, trials, diff))
        for line, rec in records[1:]:
            try:
                self.done[(rec["key"], rec["rung"], rec["seed"])] = rec
            except (KeyError, TypeError):
                raise UsageError("%s:%d: not a line of this journal" % (
                    path, line))

    def _write(self, rec):
        rec = dict(rec, sum=_digest(rec))
        line = (json.dumps(rec, sort_keys=True) + "\n").encode()
        while line:  # one write, unless the kernel takes less
            line = line[os.write(self.fd, line):]
        os.fsync(self.fd)

    def add(self, rec):
        self.done[(rec["key"], rec["rung"], rec["seed"])] = rec
        self._write(rec)

    def get(self, key, rung, seed, steps):
        """The record of candidate key's trial of seed at rung, trained
        for steps: None where the journal's is of other steps (a plan of
        another dnc.search, an edit), whose metric is no metric at those
        steps: the trial trains again, and its new record counts."""
        rec = self.done.get((key, rung, seed))
        return rec if rec is not None and rec.get("steps") == steps \
            else None


# ------------------------------------------------------------ screening


def find_dnc():
    """The dnc binary: $DNC, else $DNC_BUILD/dnc, else build/dnc of the
    checkout this package sits in, else dnc on the PATH. A relative
    DNC_BUILD is in the checkout's root, as libdnc's (dnc._build)."""
    from .._build import build_dir, checkout_root
    root = checkout_root()
    cands = []
    if os.environ.get("DNC"):
        cands.append(os.environ["DNC"])
    if os.environ.get("DNC_BUILD"):
        cands.append(os.path.join(build_dir(), "dnc"))
    if os.path.isfile(os.path.join(root, "runtime", "dnc.h")):
        cands.append(os.path.join(root, "build", "dnc"))  # a checkout
    for c in cands:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    w = shutil.which("dnc")
    if w:
        return w
    raise UsageError("cannot find the dnc binary (tried %s): "
                     "run make, or set DNC or DNC_BUILD (a pip-installed "
                     "dnc has no command: `make install` puts one on the "
                     "PATH)" % ", ".join(cands + ["the PATH"]))


def _die_with_parent():
    """In the screening's process, before exec: SIGTERM when the run that
    started it dies (Linux's PR_SET_PDEATHSIG), so that `dnc search` stops
    between batches, its journal kept, instead of screening on, orphaned,
    after a SIGKILL of the run, holding the lock its rerun needs."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: wait_for_screening waits for it instead


def wait_for_screening(journal, quiet, limit=600.0):
    """Waits (at most limit seconds) until no process holds the lock of
    the screening's journal: a `dnc search` of this directory still
    running (or stopping) after its run was killed. Only a run holding
    DIR/journal.jsonl's lock gets here, so it is no other run's; `dnc
    search` says so itself if it is still held after the limit."""
    try:
        fd = os.open(journal, os.O_RDONLY)
    except OSError:
        return  # no journal: nothing left running
    try:
        t0, said = time.time(), False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError:
                if time.time() - t0 > limit:
                    return
                if not said and not quiet:
                    sys.stderr.write("dnc.search: waiting for the screening "
                                     "that a killed run of this -o left "
                                     "running (%s is locked)\n" % journal)
                    said = True
                time.sleep(0.1)
    finally:
        os.close(fd)  # and the lock with it


def _non_finite_from_csv(path, ranked):
    """Puts into ranked (screen.json's first rows, the candidates to
    train) their values that are not finite as screen.csv has them (inf,
    -inf, nan): screen.json has null for each, and results.csv had an
    empty cell where the screening said inf (an unbounded candidate's sup
    or growth read as missing, not as above any bound). A screen.csv that
    does not say (none, or another table) leaves them None."""
    need = {c.get("id"): c for c in ranked
            if any(v is None for v in c.values())}
    try:
        with open(path, newline="") as f:
            # in rank order: the first K rows are the top K's, so that a
            # table of millions is not read through for them
            for row in csv.DictReader(f):
                if not need:
                    break
                c = need.pop(int(row["id"]), None)
                if c is None:
                    continue
                for col, v in c.items():
                    if v is None and row.get(col) in ("inf", "-inf", "nan"):
                        c[col] = float(row[col])
    except (OSError, ValueError, KeyError, TypeError, csv.Error):
        pass


def screen(spec, digest, out, threads, quiet, stale=False):
    """Runs `dnc search SPEC -o DIR/screen` (resumable by its own journal)
    unless DIR/screen.json is there from this SPEC's very text (digest:
    its SHA-256, kept in DIR/screen.sha256; a screen.json left by another
    spec was reused before); returns its ranked rows. spec: as the user
    gave it (`dnc search` names it so in its messages). stale: the run
    that left DIR (its journal a header alone) was of another spec, so a
    DIR/screen.journal is that spec's stopped screening: removed, where
    `dnc search` refused it and the rerun stopped with status 2."""
    prefix = os.path.join(out, "screen")
    try:
        with open(prefix + ".sha256") as f:
            same = f.read().strip() == digest
    except OSError:
        same = False
    if not (same and os.path.exists(prefix + ".json")):
        cmd = [find_dnc(), "search", "./" + spec if spec.startswith("-")
               else spec, "-o", prefix, "--top", "0"]
        if threads:
            cmd += ["--threads", str(threads)]
        if quiet:
            cmd.append("--quiet")
        wait_for_screening(prefix + ".journal", quiet)
        if stale and os.path.exists(prefix + ".journal"):
            os.unlink(prefix + ".journal")
            if not quiet:
                sys.stderr.write("dnc.search: removed %s.journal, the "
                                 "stopped screening of the spec before "
                                 "its edit; screening %s from the start\n"
                                 % (prefix, spec))
        r = subprocess.run(cmd, stderr=subprocess.PIPE, text=True,
                           preexec_fn=_die_with_parent)
        if r.returncode in (128 + signal.SIGHUP, 128 + signal.SIGINT,
                            128 + signal.SIGTERM):
            # stopped by a signal (its journal kept): the run stops too,
            # with the same status, not as a failed screening
            if not quiet:
                sys.stderr.write(r.stderr)
            _stopped_by[0] = r.returncode - 128
            raise KeyboardInterrupt
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            raise UsageError("the screening (%s) failed with status %d" % (
                " ".join(cmd), r.returncode))
        if not quiet and r.stderr:
            sys.stderr.write(r.stderr)
        with open(prefix + ".sha256", "w") as f:
            f.write(digest + "\n")
    try:
        with open(prefix + ".json") as f:
            doc = json.load(f)
        ranked = doc["ranked"]
        # every distinct candidate, as `dnc search` writes it: a table of
        # fewer rows (one edited, or cut short) is not the screening's
        if isinstance(ranked, list) and all(isinstance(c, dict) and
                                            "source" in c for c in ranked) \
                and type(doc.get("distinct")) is int \
                and len(ranked) == doc["distinct"]:
            return ranked
    except (ValueError, KeyError, TypeError):
        pass
    if same:  # a damaged table of an earlier run: screened again
        os.unlink(prefix + ".sha256")
        return screen(spec, digest, out, threads, quiet, stale)
    raise UsageError("%s.json, which the screening wrote, is not its table;"
                     " remove %s.* and run again" % (prefix, prefix))


# ------------------------------------------------------------ a trial


def trial_name(rec):
    return "%s at %d steps, seed %d" % (rec["key"], rec["steps"], rec["seed"])


def say_if_bad(prog, rec):
    """A trial that failed or diverged, said as it happens."""
    if rec["status"] != "ok":
        prog.say("%s: %s (%s)" % (trial_name(rec), rec["status"],
                                  rec["error"]))


class TrialTimeout(BaseException):
    """--timeout ran out (a BaseException: a task's own `except Exception`
    does not swallow it)."""


def _alarm(signum, frame):
    raise TrialTimeout()


def train_unit(task, key, source, steps, seed, alpha, mode, timeout=None):
    """One trial, in a Ray worker: trains the task with the candidate's
    norm (LayerNorm for source None) and returns its record. An exception
    of the task is a failure, a non-finite loss or metric a divergence;
    neither is retried (a worker that dies is, by Ray). timeout: seconds
    (SIGALRM in this thread, the main one of the worker or of a serial
    run), past which the trial is a failure."""
    t0 = time.time()
    alarm = bool(timeout) and \
        threading.current_thread() is threading.main_thread()
    old = None
    if alarm:
        # imported before the timer runs: a timeout in the middle of
        # `import torch` would leave torch half-imported, and every later
        # trial of the worker failing with ImportError
        try:
            import numpy  # noqa: F401
            import torch  # noqa: F401
            import dnc.torch  # noqa: F401  (torch's lazy imports with it)
            T.resolve_task(task)
        except Exception:
            pass  # _train_unit says what went wrong
        old = signal.signal(signal.SIGALRM, _alarm)
    try:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            rec = _train_unit(task, key, source, steps, seed, alpha, mode)
        finally:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except TrialTimeout:
        rec = {"key": key, "steps": steps, "seed": seed, "node": _node(),
               "status": "failed", "metric": None,
               "error": "TimeoutError: the trial ran past --timeout %g s" %
               timeout}
    finally:
        if alarm:
            signal.signal(signal.SIGALRM, old)
    rec["seconds"] = round(time.time() - t0, 3)
    return rec


def _node():
    """The Ray node this runs on (None outside Ray)."""
    if "ray" in sys.modules:  # not outside Ray: that would start one
        import ray
        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    return None


def _train_unit(task, key, source, steps, seed, alpha, mode):
    rec = {"key": key, "steps": steps, "seed": seed, "node": _node()}
    try:
        import random
        import numpy
        import torch
        torch.set_num_threads(1)
        # the task first: its module's first import in a fresh Ray worker
        # runs its top level, which may draw from the generators (its own
        # data, say) or seed them; after the trial's seed, that made the
        # trial's numbers depend on which worker ran it and in what order
        # (a --serial run had imported it before any trial)
        fn = T.resolve_task(task)
        # the trial's seed, not what earlier trials of this worker left:
        # a task that does not seed itself trains the same on any worker
        torch.manual_seed(seed)
        random.seed(seed)
        numpy.random.seed(seed)
        norm = T.layernorm if source is None else \
            T.candidate_norm(source, alpha, threads=1)
        m = float(fn(norm, steps, seed))
        if math.isfinite(m):
            rec.update(status="ok", metric=m, error=None)
        else:
            rec.update(status="diverged", metric=None,
                       error="the metric is %r" % m)
    except T.Diverged as e:
        rec.update(status="diverged", metric=None, error=str(e))
    except Exception as e:
        msg = str(e).strip().splitlines()
        rec.update(status="failed", metric=None, error="%s: %s" % (
            type(e).__name__, msg[0]) if msg else type(e).__name__)
    except SystemExit as e:
        # sys.exit() or an argparse error in the task: the trial fails;
        # it ended a --serial run with the task's status and no word, and
        # killed Ray's worker (retried, then a WorkerCrashedError)
        rec.update(status="failed", metric=None,
                   error="SystemExit: the task exited (sys.exit(%r))" %
                   (e.code,))
    return rec


# ------------------------------------------------------------ progress


class Progress:
    def __init__(self, quiet):
        self.tty = not quiet and sys.stderr.isatty()
        self.quiet = quiet
        self.t0 = time.time()
        self.last = ""

    def show(self, text):
        if self.tty:
            el = int(time.time() - self.t0)
            line = "%s  %d:%02d" % (text, el // 60, el % 60)
            sys.stderr.write("\r" + line[:150].ljust(len(self.last)))
            sys.stderr.flush()
            self.last = line[:150]

    def say(self, text):
        if self.quiet:
            return
        if self.tty and self.last:
            sys.stderr.write("\r" + " " * len(self.last) + "\r")
            self.last = ""
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


# ------------------------------------------------------------ the run


def _ray_env():
    """Where workers find dnc (this package and libdnc) and a user's task
    module: the driver's paths, which a cluster's nodes must share."""
    import dnc
    here = os.path.dirname(os.path.abspath(__file__))
    pkg_root = os.path.normpath(os.path.join(here, "..", ".."))
    paths = [pkg_root, os.getcwd()] + [p for p in os.environ.get(
        "PYTHONPATH", "").split(os.pathsep) if p]
    seen, pp = set(), []
    for p in paths:
        if p not in seen:
            seen.add(p)
            pp.append(p)
    env = {"PYTHONPATH": os.pathsep.join(pp), "OMP_NUM_THREADS": "1",
           "DNC_LIBRARY": os.path.abspath(dnc.library_path)}
    return {"env_vars": env}


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def _plain(text):
    """text without ANSI escape sequences (Ray colours its headers)."""
    return _ANSI.sub("", text)


def _cause_text(e):
    """'Type: message' (its first line) of the exception a trial raised in
    a Ray worker, from a RayTaskError e: its cause, else the last
    exception line of the traceback it carries. str(e) is Ray's header
    line, with colour codes, then that traceback; its first line alone
    had been the record's error, without the cause."""
    from ray.exceptions import RayTaskError
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException) and cause is not e:
        if isinstance(cause, RayTaskError):
            return _cause_text(cause)  # a task's task failed
        msg = _plain(str(cause)).strip().splitlines()
        return "%s: %s" % (type(cause).__name__, msg[0]) if msg else \
            type(cause).__name__
    lines = _plain(str(e)).splitlines()
    # the traceback's frames are indented ('  File ...', code lines); the
    # exception's line is the first unindented one after the last frame
    last = max((i for i, t in enumerate(lines) if t.startswith(" ")),
               default=0)
    rest = [t for t in lines[last + 1:] if t.strip()]
    return rest[0].strip() if rest else None


def ray_error_text(e, retries):
    """A trial's error when Ray failed it (ray.get raised e): for an
    exception raised in the trial (RayTaskError), that exception's type
    and message; --retries counts the deaths of workers, so 'after N
    retries' is said of those alone; Ray's memory monitor
    (OutOfMemoryError) and others keep counts of their own. Without
    ANSI colour codes."""
    import ray
    rx = ray.exceptions
    if isinstance(e, rx.RayTaskError):
        text = _cause_text(e)
        if text:
            return text
    crashed = tuple(getattr(rx, n) for n in (
        "WorkerCrashedError", "NodeDiedError") if hasattr(rx, n))
    msg = _plain(str(e)).strip().splitlines()
    return "%s%s: %s" % (
        type(e).__name__, " after %d retr%s" % (
            retries, "y" if retries == 1 else "ies")
        if isinstance(e, crashed) else "", msg[0] if msg else "")


# Ray's errors about itself, not about the trial that ran: a trial that
# met one is not journaled (it would rank the candidates Ray failed under
# last, and a rerun would keep them failed), the run stops
_CLUSTER_ERRORS = ("LocalRayletDiedError", "NodeDiedError", "RaySystemError",
                   "ObjectLostError", "OwnerDiedError",
                   "ObjectReconstructionFailedError",
                   "ObjectFetchTimedOutError", "ReferenceCountingAssertionError",
                   "RuntimeEnvSetupError", "PlasmaObjectNotAvailable",
                   "ObjectStoreFullError", "OutOfDiskError")


def _cluster_text(rec):
    """A record an older dnc.search journaled as failed by Ray's own
    failure: its trial trains again."""
    return str(rec.get("error") or "").startswith(_CLUSTER_ERRORS)


def cluster_error(e):
    """Whether ray.get's error e is Ray's own failure (see _CLUSTER_ERRORS),
    not the trial's (WorkerCrashedError after the retries, the memory
    monitor's OutOfMemoryError, a task error: the candidate's run)."""
    import ray
    kinds = tuple(getattr(ray.exceptions, n) for n in _CLUSTER_ERRORS
                  if isinstance(getattr(ray.exceptions, n, None), type))
    return isinstance(e, kinds)


# HTTP/2's client preface and an empty SETTINGS frame: a gRPC server (a
# Ray cluster's GCS) answers with a SETTINGS frame of its own
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + \
    b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _speaks_grpc(sock, timeout):
    """Whether the server on sock answers HTTP/2's preface with a
    SETTINGS frame (its 9-byte header, type 4), as every gRPC server
    does; an HTTP/1 server (Ray's dashboard, 8265) answers 400 or closes,
    and a server that says nothing within timeout is none either."""
    sock.settimeout(timeout)
    try:
        sock.sendall(_H2_PREFACE)
        head = b""
        while len(head) < 9:
            b = sock.recv(9 - len(head))
            if not b:
                break
            head += b
    except OSError:
        return False
    return len(head) == 9 and head[3] == 4


def check_address(address, timeout=10.0):
    """--address HOST:PORT answers on that port as a Ray cluster's GCS
    does (gRPC), else a UsageError at once: ray.init retries a cluster
    that is not there for minutes, then raises, and hangs on a port
    where something else answers (an HTTP server, Ray's dashboard). With
    RAY_USE_TLS the GCS speaks TLS first: only the port is checked.
    Ray's own forms (auto, local, ray://... and other SCHEME:// of its
    client) are Ray's to judge; anything else that is no HOST:PORT (no
    port, a port not a number, http://: the dashboard's or the jobs API's)
    is refused here, where ray.init raised its ValueError as a traceback
    once the screening was done and the run's directory made."""
    if address in ("auto", "local"):
        return
    scheme, sep, _ = address.partition("://")
    if sep and scheme.lower() not in ("http", "https"):
        return  # ray://..., or a client plugin's: Ray's to judge
    if sep:
        raise UsageError(
            "--address %s: an HTTP address (Ray's dashboard, or its jobs "
            "API) is no cluster to join; give the address `ray start "
            "--head` printed, HOST:PORT (its --port, 6379 by default)" %
            address)
    host, sep, port = address.rpartition(":")
    if not (sep and port.isdigit() and 0 < int(port) < 65536) or \
            host.endswith(":"):
        raise UsageError(
            "--address %s: not an address of a Ray cluster: HOST:PORT, as "
            "`ray start --head` printed it (its --port, 6379 by default), "
            "ray://HOST:PORT for Ray Client, or auto" % address)
    try:
        sock = socket.create_connection((host.strip("[]"), int(port)),
                                        timeout)
    except (OSError, ValueError, OverflowError) as e:
        raise UsageError("--address %s: no Ray cluster answers there (%s); "
                         "start one with `ray start --head`, or leave "
                         "--address out for a local Ray of this command's "
                         "own" % (address, getattr(e, "strerror", None) or
                                  e))
    with sock:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return
        if not _speaks_grpc(sock, timeout):
            raise UsageError(
                "--address %s: what answers there is not a Ray cluster (it "
                "does not speak gRPC, as a cluster's head does: an HTTP "
                "server, Ray's dashboard?); give the address `ray start "
                "--head` printed (its --port, 6379 by default)" % address)


def check_ray_imports(address):
    """ray imports (installed is not enough: a broken install raised its
    traceback only once training began, after the screening), and with a
    ray:// address Ray Client's own dependency (grpc, of ray[client]),
    whose ValueError came from ray.init after the screening too."""
    try:
        import ray  # noqa: F401
    except Exception as e:
        msg = str(e).strip().splitlines()
        raise UsageError("the ray package of this Python (%s) is installed "
                         "but does not import (%s%s): reinstall it, or give"
                         " --serial to train the trials in this process" % (
                             sys.executable, type(e).__name__,
                             ": " + msg[0] if msg else ""))
    if address and address.startswith("ray://"):
        try:
            import grpc  # noqa: F401
        except Exception:
            raise UsageError("--address %s: a ray:// address needs Ray "
                             "Client, which this Python (%s) does not have:"
                             " pip install 'ray[client]', or give the "
                             "cluster's HOST:PORT (its GCS, with ray start"
                             "'s --port)" % (address, sys.executable))


def start_ray(address, threads, quiet):
    import ray
    kw = dict(runtime_env=_ray_env(),
              logging_level=logging.ERROR if quiet else logging.WARNING,
              log_to_driver=not quiet)
    try:
        if address:
            ray.init(address=address, **kw)
        else:
            # "local": a new cluster of its own, never one found running
            # here
            ray.init(address="local", num_cpus=threads,
                     include_dashboard=False,
                     object_store_memory=80 * 1024 * 1024, **kw)
    except SystemExit as e:
        # Ray's SIGTERM handler, active from the start of ray.init, ends
        # it with sys.exit(SIGTERM): the process exited 15, without a
        # word; it is our stop, as after ray.init (143, "interrupted")
        if e.code != signal.SIGTERM:
            raise
        _stopped_by[0] = signal.SIGTERM
        ray.shutdown()  # what ray.init started of a local Ray
        raise KeyboardInterrupt from None
    except KeyboardInterrupt:
        ray.shutdown()  # SIGINT or SIGHUP (ours) during ray.init
        raise
    # ray.init installs its own SIGTERM handler (which dumps a trace and
    # ends the process with 15): SIGTERM is ours again, a stop between
    # trials with status 143
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is not _stop:
                signal.signal(sig, _stop)
    return ray


def run(a):
    spec = os.path.abspath(a.spec)
    if os.path.isdir(spec):
        raise UsageError("%s: a directory, not a spec file" % a.spec)
    if not os.path.isfile(spec):
        raise UsageError("%s: no such spec file" % a.spec)
    with open(spec, "rb") as f:
        # utf-8-sig: a byte order mark before a first line `score
        # status(x) = ...` hid it from the check (dnc search reads past it)
        check_score_names(f.read().decode("utf-8-sig", "replace"), a.spec)
    try:
        fn = T.resolve_task(a.task)
    except ValueError as e:
        raise UsageError(str(e)) from e
    mode = a.mode or getattr(fn, "mode", None)
    if mode is None:
        raise UsageError("task '%s' says nothing of its metric's direction: "
                         "give --mode max or --mode min (or set %s.mode)" % (
                             a.task, a.task))
    if mode not in ("max", "min"):
        raise UsageError("task '%s' has mode %r: it is \"max\" or \"min\" "
                         "(or give --mode)" % (a.task, mode))
    steps = a.steps if a.steps is not None else getattr(fn, "default_steps",
                                                        None)
    if steps is None:
        raise UsageError("task '%s' has no default budget: give --steps" %
                         a.task)
    if a.steps is None and (isinstance(steps, bool) or
                            not isinstance(steps, numbers.Integral) or
                            steps < 1):
        # the task's own value, said as its (a TypeError or ValueError
        # traceback before, or `--steps is at least 1` without --steps)
        raise UsageError("task '%s' has default_steps %r: a whole number of"
                         " steps, at least 1 (or give --steps)" % (
                             a.task, steps))
    steps = int(steps)  # (a NumPy integer's too)
    metric = getattr(fn, "metric", "metric")
    for name, v, lo in (("--top", a.top, 1), ("--steps", steps, 1),
                        ("--seeds", a.seeds, 1), ("--eta", a.eta, 2),
                        ("--threads", 1 if a.threads is None else a.threads, 1),
                        ("--retries", a.retries, 0),
                        ("--rungs", 1 if a.rungs is None else a.rungs, 1)):
        if v < lo:
            raise UsageError("%s is at least %d, not %d" % (name, lo, v))
    if a.threads is not None and a.threads > 1024:
        # what `dnc search`, which screens with as many, takes
        raise UsageError("--threads is at most 1024, not %d" % a.threads)
    if a.serial and a.address:
        raise UsageError("--serial trains in this process: no --address")
    if a.address:
        check_address(a.address)
    if not a.serial and importlib.util.find_spec("ray") is None:
        # before the run's directory: ray.init's ImportError was a
        # traceback after the journal was made
        raise UsageError("training on Ray needs the ray package, which "
                         "this Python (%s) does not have: pip install "
                         "'ray[tune]', or give --serial to train the "
                         "trials in this process" % sys.executable)
    if not a.serial:
        check_ray_imports(a.address)
    if not math.isfinite(a.alpha):
        raise UsageError("--alpha must be finite")
    if a.timeout is not None and not (0 < a.timeout < 1e9):
        raise UsageError("--timeout is a number of seconds above 0, not %r"
                         % a.timeout)
    try:
        os.makedirs(a.output, exist_ok=True)
    except OSError as e:
        raise UsageError("-o %s: cannot make the run's directory: %s" % (
            a.output, e.strerror or e))
    with open(spec, "rb") as f:
        spec_hash = hashlib.sha256(f.read()).hexdigest()
    config = {"spec_sha256": spec_hash, "task": a.task, "top": a.top,
              "steps": steps, "seeds": a.seeds, "eta": a.eta, "mode": mode,
              "alpha": a.alpha, "baseline": a.baseline, "rungs": a.rungs}
    with Journal(os.path.join(a.output, JOURNAL), config,
                 software(a.task)) as journal:
        return train(a, spec_hash, config, journal, mode, steps,
                     metric)


def train(a, spec_hash, config, journal, mode, steps, metric):
    """The run once its directory's journal is read and locked: screening,
    the rungs on Ray (or serially), the tables."""
    prog = Progress(a.quiet)
    # the spec as the user gave it, not its absolute path, in the
    # screening's messages
    stale = journal.replaced is not None and \
        journal.replaced.get("spec_sha256") != spec_hash
    ranked = screen(a.spec, spec_hash, a.output, a.threads, a.quiet, stale)
    cands = ranked[:a.top]
    # their values that are not finite, which screen.json has as null
    _non_finite_from_csv(os.path.join(a.output, "screen.csv"), cands)
    if not cands:
        raise UsageError("the screening of %s gave no candidate" % a.spec)
    # the rungs of the candidates there are (--top may ask for more)
    rungs = plan(len(cands), steps, a.eta, a.rungs)
    info = {"c%d" % c["id"]: c for c in cands}
    order = {k: i for i, k in enumerate(info)}
    seeds_last = list(range(a.seeds))
    key_of = better_key(mode)

    def seeds_of(r):
        return seeds_last if r == len(rungs) - 1 else [0]

    def rung_metric(k, r):
        """(metric or None, all ok) of candidate k at rung r, over seeds."""
        recs = [journal.get(k, r, s, rungs[r][0]) for s in seeds_of(r)]
        if any(x is None for x in recs):
            return None, False
        ms = [x["metric"] for x in recs if x["status"] == "ok"]
        if len(ms) != len(recs):
            return None, False
        return sum(ms) / len(ms), True

    total = sum(n * len(seeds_of(r)) for r, (_, n) in enumerate(rungs)) + \
        (a.seeds if a.baseline else 0)
    ray = None
    submitted = 0
    # each rung's candidates, as this run promotes them: the table reads
    # those records only (a journal may hold others: a trial that failed
    # and succeeds on --retry-failed changes who is promoted)
    by_rung = []
    try:
        members = list(info)
        for r, (st, n) in enumerate(rungs):
            if r > 0:
                prev = [(rung_metric(k, r - 1), k) for k in members]
                ok = [(m, k) for (m, good), k in prev if good]
                ok.sort(key=lambda t: (key_of(t[0]), order[t[1]]))
                members = [k for _, k in ok[:n]]
            by_rung.append(set(members))
            units = [(k, r, s) for k in members for s in seeds_of(r)]
            if a.baseline and r == 0:
                units += [(BASELINE, len(rungs) - 1, s) for s in seeds_last]
            done = {u: journal.get(*u, rungs[u[1]][0]) for u in units}
            todo = [u for u in units if done[u] is None or (
                done[u]["status"] == "failed" and (
                    a.retry_failed or _cluster_text(done[u])))]
            prog.say("rung %d/%d: %d candidate%s x %d seed%s at %d steps, %d "
                     "to train" % (r + 1, len(rungs), len(members),
                                   "" if len(members) == 1 else "s",
                                   len(seeds_of(r)),
                                   "" if len(seeds_of(r)) == 1 else "s", st,
                                   len(todo)))
            if not todo:
                continue
            if a.serial:
                for i, (k, rr, s) in enumerate(todo):
                    src = None if k == BASELINE else info[k]["source"]
                    rec = train_unit(a.task, k, src, rungs[rr][0], s,
                                     a.alpha, mode, a.timeout)
                    rec["rung"] = rr
                    journal.add(rec)
                    submitted += 1
                    say_if_bad(prog, rec)
                    prog.show("rung %d/%d (%d steps): %d/%d trials" % (
                        r + 1, len(rungs), st, i + 1, len(todo)))
                continue
            if ray is None:
                ray = start_ray(a.address, a.threads or _usable_cpus(),
                                a.quiet)
                remote = ray.remote(num_cpus=1, max_retries=a.retries,
                                    retry_exceptions=False)(train_unit)
            futs = {}
            for (k, rr, s) in todo:
                src = None if k == BASELINE else info[k]["source"]
                stp = rungs[rr][0]
                f = remote.remote(a.task, k, src, stp, s, a.alpha, mode,
                                  a.timeout)
                futs[f] = (k, rr, s, stp)
                submitted += 1
            pending = list(futs)
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for f in ready:
                    k, rr, s, stp = futs[f]
                    try:
                        rec = ray.get(f)
                    except ray.exceptions.RayError as e:
                        if cluster_error(e):
                            raise ClusterFailed(
                                "Ray failed under %s (%s); %d of %d trials"
                                " are kept in %s: restart Ray (or the "
                                "cluster) and run the same command to go "
                                "on" % (
                                    trial_name({"key": k, "steps": stp,
                                                "seed": s}),
                                    ray_error_text(e, a.retries),
                                    len(journal.done), total,
                                    journal.path)) from None
                        rec = {"key": k, "steps": stp, "seed": s,
                               "node": None, "seconds": None,
                               "status": "failed", "metric": None,
                               "error": ray_error_text(e, a.retries)}
                    rec["rung"] = rr
                    journal.add(rec)
                    best = [(rung_metric(x, r)[0], x) for x in members]
                    best = [t for t in best if t[0] is not None]
                    best.sort(key=lambda t: key_of(t[0]))
                    prog.show("rung %d/%d (%d steps): %d/%d trials, %d of %d "
                              "in all%s" % (
                                  r + 1, len(rungs), st,
                                  len(todo) - len(pending), len(todo),
                                  len(journal.done), total,
                                  "; best %s %.4g" % (best[0][1], best[0][0])
                                  if best else ""))
                    say_if_bad(prog, rec)
    except KeyboardInterrupt:
        prog.say("interrupted: %d of %d trials kept in %s; run the same "
                 "command to go on" % (len(journal.done), total,
                                       journal.path))
        return 128 + _stopped_by[0]
    finally:
        if ray is not None:
            ray.shutdown()
    rows = table(cands, rungs, seeds_of, journal, a, mode, metric, ranked,
                 by_rung)
    try:
        write_tables(a.output, rows, rungs, metric, a, mode, config, ranked)
    except KeyboardInterrupt:
        # (not "interrupted before training", which main() says)
        prog.say("interrupted while writing the tables: all %d trials are "
                 "kept in %s; run the same command to write them" % (
                     len(journal.done), journal.path))
        return 128 + _stopped_by[0]
    if not a.quiet:
        prog.say("dnc.search: %d candidates screened, %d trained over %d "
                 "rung%s (%d trials, %d this time); wrote %s and %s" % (
                     len(ranked), len(cands), len(rungs),
                     "" if len(rungs) == 1 else "s", len(journal.done),
                     submitted, os.path.join(a.output, "results.csv"),
                     os.path.join(a.output, "results.json")))
    show_top(rows, metric, a.top, rungs)
    return no_candidate_trained(rows)


def no_candidate_trained(rows):
    """The run's status: 1, with an error line, where no candidate's trial
    gave a metric (every one failed or diverged), else 0. Not a ranking:
    a script must not go on with it, nor take the baseline, first when
    no candidate trained, for the search's winner (every candidate
    diverged had exited 0, LayerNorm in place 1)."""
    bad = ("failed", "diverged")
    cand = [row for row in rows if row["key"] != BASELINE]
    if not cand or any(row["status"] not in bad for row in cand):
        return 0
    every = all(row["status"] in bad for row in rows)
    kinds = {row["status"] for row in (rows if every else cand)}
    what = "failed" if kinds == {"failed"} else "diverged" \
        if kinds == {"diverged"} else "diverged or failed"
    first = min(cand, key=lambda row: str(row["key"]))
    if every:
        why = ""
    elif what == "failed":
        why = ", while LayerNorm's trained: the task does not train with " \
            "dnc's norms"
    else:
        why = ", while LayerNorm's trained: no candidate gives a finite " \
            "metric in this task"
    # a row's error: "at STEPS steps, seed S: ...", its first bad trial
    sys.stderr.write("python -m dnc.search: error: every %s %s (%s %s)%s; "
                     "the tables say which\n" % (
                         "trial" if every else "candidate's trial", what,
                         first["key"], first["error"], why))
    return 1


SCREEN_SKIP = {"rank", "id", "name", "source"}

# results.csv's own columns, around the rungs' (METRIC@STEPS) and the
# screening's (which a score of the spec adds to): a score of one of these
# names made two columns of one name, and csv.DictReader read the score
RESULT_FRONT = ["place", "screen_rank", "id", "name", "status"]
RESULT_FINAL = ["final_mean", "final_std", "final_seeds", "error"]
RESULT_BACK = ["source", "train_source"]
RESULT_COLUMNS = RESULT_FRONT + RESULT_FINAL + RESULT_BACK

_SCORE = re.compile(r"(\s*score\s+)([A-Za-z_][A-Za-z0-9_]*)")


def check_score_names(text, name):
    """A SpecError for the first `score NAME(x) = ...` of the spec's text
    whose NAME is a column results.csv has of its own (`dnc search`
    refuses its own columns, not these), located as `dnc search` locates
    its errors; name: the spec as the user gave it."""
    for i, line in enumerate(text.split("\n"), 1):
        m = _SCORE.match(line)
        if m and m.group(2) in RESULT_COLUMNS:
            col = len(m.group(1))
            raise SpecError(
                "%s:%d:%d: error: '%s' is a column of python -m dnc.search's"
                " results.csv; call this score something else\n"
                "%5d | %s\n      | %s^%s" % (
                    name, i, col + 1, m.group(2), i, line, " " * col,
                    "~" * (len(m.group(2)) - 1)))


def table(cands, rungs, seeds_of, journal, a, mode, metric, ranked,
          by_rung):
    key_of = better_key(mode)
    last = len(rungs) - 1
    rows = []
    entries = [("c%d" % c["id"], c) for c in cands]
    if a.baseline:
        entries.append((BASELINE, None))
    for k, c in entries:
        row = {"key": k, "screen_rank": c["rank"] if c else None,
               "id": c["id"] if c else None,
               "name": c["name"] if c else "LayerNorm (baseline)",
               "status": None, "error": None, "final_mean": None,
               "final_std": None, "final_seeds": [], "rungs": [],
               "reached": -1}
        first_bad = None
        for r, (st, _) in enumerate(rungs):
            if k == BASELINE and r != last:
                row["rungs"].append(None)
                continue
            recs = [journal.get(k, r, s, st) for s in seeds_of(r)] \
                if k == BASELINE or k in by_rung[r] else []
            if all(x is None for x in recs):
                row["rungs"].append(None)
                continue
            row["reached"] = r
            ms = [x["metric"] for x in recs if x and x["status"] == "ok"]
            # a mean of every seed, or none: the seeds that trained alone
            # would rank a diverged or failed row by its good seeds
            whole = len(ms) == len(recs)
            row["rungs"].append(sum(ms) / len(ms) if whole else None)
            for s, x in zip(seeds_of(r), recs):
                if x and x["status"] != "ok" and first_bad is None:
                    first_bad = (x["status"], "at %d steps, seed %d: %s" % (
                        st, s, x["error"]))
            if r == last:
                row["final_seeds"] = [x["metric"] if x and x["status"] == "ok"
                                      else None for x in recs]
                if whole:
                    mean = sum(ms) / len(ms)
                    row["final_mean"] = mean
                    # the sample deviation: none from one seed (not 0,
                    # which would say the seeds agree)
                    row["final_std"] = math.sqrt(sum((m - mean) ** 2 for m in
                                                     ms) / (len(ms) - 1)) \
                        if len(ms) > 1 else None
        if first_bad:
            row["status"], row["error"] = first_bad
        elif row["reached"] == last:
            row["status"] = "baseline" if k == BASELINE else "finished"
        else:
            row["status"] = "stopped" if row["reached"] >= 0 else "untrained"
        row["screen"] = {col: v for col, v in c.items()
                         if col not in SCREEN_SKIP} if c else {}
        row["source"] = c["source"] if c else None
        row["train_source"] = T.norm_source(c["source"], a.alpha) if c \
            else None
        rows.append(row)
    rank_status = {"finished": 0, "baseline": 0, "stopped": 1, "diverged": 2,
                   "failed": 3, "untrained": 4}

    def place_key(row):
        st = rank_status[row["status"]]
        m = row["final_mean"] if st == 0 else (
            row["rungs"][row["reached"]] if row["reached"] >= 0 else None)
        return (st, -row["reached"], key_of(m), row["screen_rank"] or 0)
    rows.sort(key=place_key)
    for i, row in enumerate(rows, 1):
        row["place"] = i
    return rows


def _num(v):
    return None if v is None or (isinstance(v, float) and not
                                 math.isfinite(v)) else v


def write_tables(out, rows, rungs, metric, a, mode, config, ranked):
    rcols = ["%s@%d" % (metric, st) for st, _ in rungs]
    screen_cols = []
    for row in rows:
        for col in row["screen"]:
            if col not in screen_cols:
                screen_cols.append(col)
    head = RESULT_FRONT + rcols + RESULT_FINAL + screen_cols + RESULT_BACK
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)

    def cell(v):
        if v is None:
            return ""
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return repr(v)
        return v
    for row in rows:
        w.writerow([cell(row["place"]), cell(row["screen_rank"]),
                    cell(row["id"]), row["name"], row["status"]] +
                   [cell(v) for v in row["rungs"]] +
                   [cell(row["final_mean"]), cell(row["final_std"]),
                    ";".join("" if v is None else repr(v)
                             for v in row["final_seeds"]),
                    cell(row["error"])] +
                   [cell(row["screen"].get(col)) for col in screen_cols] +
                   [cell(row["source"]), cell(row["train_source"])])
    doc = {"spec": a.spec, "task": a.task, "metric": metric, "mode": mode,
           "config": config, "screened": len(ranked),
           "rungs": [{"steps": st, "candidates": n} for st, n in rungs],
           "results": [{
               "place": row["place"], "screen_rank": row["screen_rank"],
               "id": row["id"], "name": row["name"], "status": row["status"],
               "rungs": [_num(v) for v in row["rungs"]],
               "final_mean": _num(row["final_mean"]),
               "final_std": _num(row["final_std"]),
               "final_seeds": [_num(v) for v in row["final_seeds"]],
               "error": row["error"], "screen": {
                   k: _num(v) for k, v in row["screen"].items()},
               "source": row["source"], "train_source": row["train_source"]}
               for row in rows]}
    install(out, (("results.csv", buf.getvalue()),
                  ("results.json", json.dumps(doc, indent=1) + "\n")))


def install(out, files):
    """Writes files, [(name, text)], into the directory out, each whole
    through a temporary of this process's own beside it
    (.NAME.PID.XXXXXX.tmp: a fixed NAME.tmp was another run's too, and a
    directory of that name failed every run), then renames them all into
    place. A target that is a directory is refused first, so that nothing
    changes; on any failure, or a stop, the temporaries are removed."""
    for name, _ in files:
        path = os.path.join(out, name)
        if os.path.isdir(path):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR),
                                    path)
    moves = []
    try:
        for name, text in files:
            fd, tmp = tempfile.mkstemp(prefix=".%s.%d." % (name, os.getpid()),
                                       suffix=".tmp", dir=out)
            moves.append(tmp)
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fchmod(f.fileno(), 0o666 & ~_umask())
                os.fsync(f.fileno())
        # all into place with the stop signals blocked, so that they
        # appear together (as `dnc search`'s tables): a SIGINT between the
        # two renames left a results.csv of this run beside a
        # results.json of the last
        stop = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, stop)
        try:
            for (name, _), tmp in zip(files, list(moves)):
                os.replace(tmp, os.path.join(out, name))
                moves.remove(tmp)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
    finally:
        for tmp in moves:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _proc_umask():
    """The process's umask as /proc says it (Linux 4.7 on), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _set_umask_read():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# where /proc has none: read by setting it and back, once, at import
# (setting it to 0 while Ray's threads made files gave them mode 0666 in
# that moment)
_UMASK = _proc_umask()
if _UMASK is None:
    _UMASK = _set_umask_read()


def _umask():
    """The umask the tables are made with (mkstemp makes its files 0600;
    the tables are made as open() makes a file, 0666 less the umask)."""
    mask = _proc_umask()
    return _UMASK if mask is None else mask


def shown(v):
    """A metric in the printed table: 4 decimals where they say something
    (0.9759), else 4 digits (a loss of 3.1e-06 was 0.0000, as were all its
    rivals, though the tables rank them by their full values)."""
    if v is None:
        return "-"
    if v == 0 or not math.isfinite(v) or 1e-3 <= abs(v) < 1e4:
        return "%.4f" % v
    return "%.4g" % v


def show_top(rows, metric, k, rungs):
    """The first k + 1 rows, each with the steps its metric is at: a
    stopped row's is that of the last rung it reached, not the last
    rung's (a row at 50 steps printed beside one at 200, unsaid)."""
    print("%-5s %-6s %-10s %-6s %-10s %-9s %s" % (
        "place", "screen", "status", "steps", metric[:10], "spread", "name"))
    for row in rows[:k + 1]:
        m = row["final_mean"] if row["final_mean"] is not None else (
            row["rungs"][row["reached"]] if row["reached"] >= 0 else None)
        print("%-5d %-6s %-10s %-6s %-10s %-9s %s" % (
            row["place"], row["screen_rank"] or "-", row["status"],
            rungs[row["reached"]][0] if m is not None else "-",
            shown(m), shown(row["final_std"]), row["name"]))


def parser():
    ap = argparse.ArgumentParser(
        prog="python -m dnc.search",
        description="Screen a dnc search spec, then train its best "
        "candidates as gamma * f(alpha x + s) + beta norms on Ray with "
        "successive halving (docs/search.md).")
    ap.add_argument("spec", help="a `dnc search` spec (.dns)")
    ap.add_argument("--task", default="digits-vit",
                    help="digits-vit (default), char-lm, or module:function")
    ap.add_argument("-o", "--output", required=True,
                    help="the run's directory (reused to resume)")
    ap.add_argument("--top", type=int, default=16,
                    help="candidates to train (default 16)")
    ap.add_argument("--steps", type=int, default=None,
                    help="training steps of the last rung (default: the "
                    "task's)")
    ap.add_argument("--seeds", type=int, default=3,
                    help="seeds at the last rung (default 3)")
    ap.add_argument("--eta", type=int, default=2,
                    help="each rung keeps 1/eta of the candidates for eta "
                    "times the steps (default 2)")
    ap.add_argument("--threads", type=int, default=None,
                    help="trials at a time in the local Ray (default: every "
                    "CPU); one torch thread each")
    ap.add_argument("--address", default=None,
                    help="an existing Ray cluster's address (ray start)")
    ap.add_argument("--rungs", type=int, default=None,
                    help="at most this many rungs (1: no halving, every "
                    "candidate trains the full budget with every seed)")
    ap.add_argument("--serial", action="store_true",
                    help="train in this process, one trial at a time, "
                    "without Ray (debugging; the same table)")
    ap.add_argument("--retries", type=int, default=2,
                    help="retries of a trial whose worker dies (default 2)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds a trial may take, past which it fails "
                    "(default: no limit)")
    ap.add_argument("--retry-failed", action="store_true",
                    help="train again the trials the journal holds as "
                    "failed (after a fix to the task)")
    ap.add_argument("--alpha", type=float, default=0.5,
                    help="alpha's initial value (default 0.5); s starts at 0")
    ap.add_argument("--mode", choices=("max", "min"), default=None,
                    help="a user task's direction (default: its .mode)")
    ap.add_argument("--no-baseline", dest="baseline", action="store_false",
                    help="no LayerNorm row")
    ap.add_argument("-q", "--quiet", action="store_true",
                    help="no progress display nor summary")
    return ap


# The signal that stopped the run (SIGINT unless the handler below saw
# another): the exit status is 128 + it, as `dnc search`'s.
_stopped_by = [signal.SIGINT]


def _stop(signum, frame):
    _stopped_by[0] = signum
    raise KeyboardInterrupt


def main(argv=None):
    a = parser().parse_args(argv)
    # SIGTERM and SIGHUP (the terminal gone) as SIGINT: stop between
    # trials, journal kept, status 143 or 129, as `dnc search`
    _stopped_by[0] = signal.SIGINT
    old = signal.signal(signal.SIGTERM, _stop)
    old_hup = signal.signal(signal.SIGHUP, _stop)
    try:
        return run(a)
    except SpecError as e:
        sys.stderr.write("%s\n" % e)
        return 2
    except UsageError as e:
        sys.stderr.write("python -m dnc.search: error: %s\n" % e)
        return 2
    except (Busy, Damaged, ClusterFailed) as e:
        sys.stderr.write("python -m dnc.search: error: %s\n" % e)
        return 1
    except KeyboardInterrupt:
        # before the trials (importing the task, screening): what the
        # screening's journal holds is kept by `dnc search` itself
        sys.stderr.write("python -m dnc.search: interrupted before "
                         "training; run the same command to go on\n")
        return 128 + _stopped_by[0]
    except OSError as e:
        # a full disk, a directory made read-only under the run: said, not
        # a traceback; the journal keeps what was done
        sys.stderr.write("python -m dnc.search: error: %s%s\n" % (
            "%s: " % e.filename if e.filename else "", e.strerror or e))
        return 1
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGHUP, old_hup)
