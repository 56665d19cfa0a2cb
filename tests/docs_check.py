#!/usr/bin/python3
"""docs_check.py - checks the examples of the markdown documentation (TAP).

usage: docs_check.py DNC FILE.md...

In each markdown file, in order:
  - a ```dn block whose first line is `# NAME.dn` (or a ```python block
    whose first line is `# NAME.py`) is written to that file in a scratch
    folder (one per markdown file), for the transcripts after it;
  - a ```dn block without such a line must check cleanly: `dnc check -`
    prints nothing and exits 0 (one test);
  - a ```console block is a transcript (one test): each line starting with
    `$ ` is a command, run by bash in the scratch folder, and the lines up to
    the next command are its output, standard output and standard error
    together, compared to the letter. `$?` is the status of the previous
    command, as in a shell. `dnc` runs DNC (through a folder put first in
    PATH); `python3` runs DNC_PYTHON (default /usr/bin/python3) with the
    repository's python/ on its path and the libdnc.so beside DNC (with the
    sanitizer runtimes preloaded when that library is instrumented), and
    `.venv/bin/python` the project's virtualenv with PyTorch 2
    (DNC_VENV_PYTHON, default the repository's .venv/bin/python) the same
    way.
  - a ```console block right after the line
    `<!-- not checked: REASON -->` (blank lines between are allowed) is not
    run: it reports a TAP skip with the reason. Use it for output that
    depends on the machine (the host CPU, timings, temporary paths).
Other blocks (```text, ```ebnf, plain ```) are not looked at.
"""
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile

TIMEOUT = 240  # seconds for one console block (a hang is a failure; the
               # torch.compile transcript of python.md takes most of it)

FENCE = re.compile(r"^```(\S*)\s*$")
SKIP = re.compile(r"^<!--\s*not checked:\s*(.*?)\s*-->\s*$")
HEADER = re.compile(r"^# (\S+\.(?:dn|py))$")


def blocks(path):
    """Yields (info, line of the first body line, body lines, skip reason)."""
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    skip = None
    while i < len(lines):
        m = FENCE.match(lines[i])
        s = SKIP.match(lines[i])
        if s:
            skip = s.group(1) or "not checked"
        elif m:
            info = m.group(1)
            start = i + 1
            j = start
            while j < len(lines) and not re.match(r"^```\s*$", lines[j]):
                j += 1
            if j == len(lines):
                raise SystemExit(f"{path}:{i + 1}: unclosed code block")
            yield info, start + 1, lines[start:j], skip
            skip = None
            i = j
        elif lines[i].strip():
            skip = None
        i += 1


UPDATES = []  # (md, first line index, old length, new lines) with DNC_DOCS_UPDATE


def run_console(body, box, env, md, line):
    """Returns a list of problems (strings) for one transcript."""
    where = f"{md}:{line}"
    cmds = []  # [line offset, command, expected output lines]
    for k, text in enumerate(body):
        if text.startswith("$ "):
            cmds.append([k, text[2:], []])
        elif cmds:
            cmds[-1][2].append(text)
        else:
            return [f"{where}: output before the first command: {text!r}"]
    if not cmds:
        return [f"{where}: a console block without a command"]
    # One bash runs the whole transcript; a marker line between commands
    # splits the output, and $? carries over from one command to the next.
    script = "exec 2>&1\n__rc=0\n"
    for k, (_, c, _) in enumerate(cmds):
        script += f"printf '\\n@@DOCTEST{k}@@\\n'\n(exit $__rc)\n{c}\n__rc=$?\n"
    try:
        p = subprocess.run(["bash", "-c", script], cwd=box, env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return [f"{where}: timed out after {TIMEOUT} s"]
    out = p.stdout.decode("utf-8", errors="backslashreplace")
    parts = re.split(r"\n@@DOCTEST\d+@@\n", out)
    outs = parts[1:]
    problems = []
    if parts[0]:
        problems.append(f"{where}: stray output: {parts[0]!r}")
    for k, (off, c, want) in enumerate(cmds):
        got = outs[k] if k < len(outs) else "<missing>"
        if got.endswith("\n"):
            got = got[:-1]
        got_lines = got.split("\n") if got else []
        if got_lines != want:
            UPDATES.append((md, line - 1 + off + 1, len(want), got_lines))
            diff = difflib.unified_diff(want, got_lines, "documented", "actual",
                                        lineterm="", n=2)
            problems.append(f"{md}:{line + off}: $ {c}\n" + "\n".join(diff))
    return problems


def python_wrapper(path, python, build):
    """bin/python3 for the transcripts: the interpreter, with the sanitizer
    runtimes preloaded when the build's libdnc is instrumented (a plain
    interpreter cannot load it otherwise)."""
    pre = ""
    lib = os.path.join(build, "libdnc.so")
    if os.path.exists(lib) and b"__asan_init" in open(lib, "rb").read():
        libs = [subprocess.run(["gcc", f"-print-file-name={n}"],
                               capture_output=True, text=True).stdout.strip()
                for n in ("libasan.so", "libubsan.so")]
        pre = (f"export LD_PRELOAD='{':'.join(libs)}'\n"
               "export ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}"
               "detect_leaks=0\"\n")
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\n{pre}exec '{python}' \"$@\"\n")
    os.chmod(path, 0o755)


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: docs_check.py DNC FILE.md...")
    dnc = os.path.abspath(sys.argv[1])
    if not os.access(dnc, os.X_OK):
        print(f"1..1\nnot ok 1 - {sys.argv[1]} is not built (set DNC_BUILD)")
        return 1
    python = os.environ.get("DNC_PYTHON") or "/usr/bin/python3"
    scratch = tempfile.mkdtemp(prefix="dnc-doctest.")
    try:
        bindir = os.path.join(scratch, "bin")
        os.mkdir(bindir)
        os.symlink(dnc, os.path.join(bindir, "dnc"))
        python_wrapper(os.path.join(bindir, "python3"),
                       shutil.which(python) or python, os.path.dirname(dnc))
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
                   LC_ALL="C", LANG="C", PYTHONDONTWRITEBYTECODE="1",
                   PYTHONPATH=os.path.join(root, "python"),
                   DNC_LIBRARY=os.path.join(os.path.dirname(dnc), "libdnc.so"))
        env.pop("LANGUAGE", None)
        results = []  # (ok, name, problems, skip)
        venv = os.environ.get("DNC_VENV_PYTHON") or \
            os.path.join(root, ".venv", "bin", "python")
        for md in sys.argv[2:]:
            box = os.path.join(scratch, re.sub(r"\W", "_", md))
            os.mkdir(box)
            os.makedirs(os.path.join(box, ".venv", "bin"))
            python_wrapper(os.path.join(box, ".venv", "bin", "python"),
                           os.path.abspath(venv), os.path.dirname(dnc))
            for info, line, body, skip in blocks(md):
                where = f"{md}:{line}"
                if info == "python":
                    h = HEADER.match(body[0]) if body else None
                    if h:
                        with open(os.path.join(box, h.group(1)), "w",
                                  encoding="utf-8") as f:
                            f.write("\n".join(body) + "\n")
                    continue
                if info == "dn":
                    h = HEADER.match(body[0]) if body else None
                    src = "\n".join(body) + "\n"
                    if h:
                        with open(os.path.join(box, h.group(1)), "w",
                                  encoding="utf-8") as f:
                            f.write(src)
                        continue
                    if skip:
                        results.append((True, f"{where} dn block", [], skip))
                        continue
                    p = subprocess.run([dnc, "check", "-"], input=src.encode(),
                                       stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, env=env,
                                       timeout=TIMEOUT)
                    probs = []
                    if p.returncode or p.stdout:
                        probs.append(f"{where}: this dn block does not check "
                                     f"cleanly (status {p.returncode}):\n"
                                     + p.stdout.decode(errors="backslashreplace"))
                    results.append((not probs, f"{where} dn block checks cleanly",
                                    probs, None))
                elif info == "console":
                    first = next((l[2:] for l in body if l.startswith("$ ")), "")
                    name = f"{where} $ {first}"
                    if len(name) > 100:
                        name = name[:97] + "..."
                    if skip:
                        results.append((True, name, [], skip))
                        continue
                    probs = run_console(body, box, env, md, line)
                    results.append((not probs, name, probs, None))
        print(f"1..{len(results)}")
        nfail = 0
        for n, (ok, name, probs, skip) in enumerate(results, 1):
            name = name.replace("#", "\\#")
            if skip:
                print(f"ok {n} - {name} # SKIP {skip}")
                continue
            print(f"{'ok' if ok else 'not ok'} {n} - {name}")
            for pr in probs:
                nfail += 1
                for l in pr.split("\n"):
                    print(f"#   {l}")
        if os.environ.get("DNC_DOCS_UPDATE") and UPDATES:
            # rewrite the documented output from the actual one, bottom up;
            # review the result with git diff before committing it
            for md in sorted({u[0] for u in UPDATES}):
                lines = open(md, encoding="utf-8").read().split("\n")
                for _, at, n, new in sorted((u for u in UPDATES if u[0] == md),
                                            key=lambda u: -u[1]):
                    lines[at:at + n] = new
                with open(md, "w", encoding="utf-8") as f:
                    f.write("\n".join(lines))
            print(f"# DNC_DOCS_UPDATE: rewrote {len(UPDATES)} outputs")
        return 1 if nfail else 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
