#!/usr/bin/env python3
"""Where one st2pack run spent its time, from `strace -f -tt -e trace=execve` output.

    python3 bench/trace_summary.py RUN.strace

bench/install.sh (BENCH_TRACE=1) runs st2-pack-install under strace (with -s 1024, so that
command-line arguments are not cut short) and calls this. It lists every
program st2pack started (uv, the interpreter compiling bytecode, ...) with its start offset and
duration, then the total per kind of work. Children run in parallel (--jobs), so the totals can add
up to more than the wall time; the gaps in the timeline are st2pack's own work (fetching, copying
virtualenvs to and from its cache, relocating, placing).
"""

import re
import sys
from collections import defaultdict

LINE = re.compile(r"^(\d+)\s+(\d\d):(\d\d):(\d\d\.\d+) (.*)$")

# What a child was doing, recognised from its command line as strace prints it (first match wins).
KINDS = [
    ('"venv", "--python"', "uv venv"),
    ('"pip", "install"', "uv pip install"),
    ("sys.path = [__import", "interpreter query (uv)"),
    ("import sys, os; e = sys.executab", "interpreter query (st2pack)"),
    ("py_compile", None),  # decided below: a virtualenv's or a pack's bytecode
]


def kind_of(command):
    for needle, kind in KINDS:
        if needle in command:
            if kind is None:
                # The tree being compiled is a staged virtualenv or a staged pack.
                staged_venv = re.search(r'\.st2pack-staging/[^/"]+/venv\b', command)
                return "bytecode: virtualenv" if staged_venv else "bytecode: pack files"
            return kind
    program = re.match(r'execve\("([^"]*)"', command)
    return program.group(1).rsplit("/", 1)[-1] if program else "?"


def main(path):
    started, ended, kinds = {}, {}, {}
    pending = {}  # execve calls strace split across lines ("<unfinished ...>" / "resumed")
    first = None
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            m = LINE.match(line.rstrip("\n"))
            if not m:
                continue
            pid, rest = int(m.group(1)), m.group(5)
            t = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4))
            if rest.startswith("execve(") and "<unfinished" in rest:
                pending[pid] = rest
                continue
            if rest.startswith("<... execve resumed>") and pid in pending:
                rest = pending.pop(pid) + rest
            if rest.startswith("execve(") and rest.rstrip().endswith("= 0") and pid not in started:
                started[pid] = t
                kinds[pid] = "st2-pack-install (whole run)" if first is None else kind_of(rest)
                first = pid if first is None else first
            elif rest.startswith("+++ exited") or rest.startswith("+++ killed"):
                ended[pid] = t
    if first is None:
        sys.exit(f"{path}: no execve found; was it written by strace -f -tt -e trace=execve?")

    t0 = started[first]
    print(f"wall time: {ended.get(first, t0) - t0:.2f} s\n")
    print("programs started, in order (start offset, duration, what):")
    totals = defaultdict(lambda: [0, 0.0])
    for pid in sorted(started, key=started.get):
        if pid == first:
            continue
        duration = ended.get(pid, started[pid]) - started[pid]
        print(f"  +{started[pid] - t0:7.3f} s  {duration:6.3f} s  {kinds[pid]}")
        totals[kinds[pid]][0] += 1
        totals[kinds[pid]][1] += duration
    print("\ntotal per kind (children overlap, so this can exceed the wall time):")
    for kind, (count, seconds) in sorted(totals.items(), key=lambda kv: -kv[1][1]):
        print(f"  {seconds:7.2f} s  {count:3d} x  {kind}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
