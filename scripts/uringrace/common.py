"""Paths, arch records and small helpers shared by every pipeline step."""

import hashlib
import os
import shlex
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class PipelineError(Exception):
    """A step failed in a way the user must fix; the message says how."""


def cache_dir():
    base = os.environ.get("URINGRACE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "uringrace")
    os.makedirs(base, exist_ok=True)
    return base


def log(msg):
    print(f"[urr {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


KEY = r"[0-9a-f]{12}"  # the pattern of a digest() key (and of a patched tree's key)


def digest(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:12]


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def run(cmd, cwd=None, env=None, quiet=False, logfile=None):
    """Run a command; raise PipelineError naming it if it fails."""
    log("$ " + " ".join(shlex.quote(c) for c in cmd))
    out = None
    if logfile:
        out = open(logfile, "ab")
    elif quiet:
        out = subprocess.DEVNULL
    try:
        res = subprocess.run(cmd, cwd=cwd, env=env, stdout=out,
                             stderr=subprocess.STDOUT if out else None, check=False)
    finally:
        if logfile:
            out.close()
    if res.returncode != 0:
        hint = f" (log: {logfile})" if logfile else ""
        raise PipelineError(f"command failed with status {res.returncode}: {cmd[0]} {' '.join(cmd[1:3])}...{hint}")


def jobs():
    return str((os.cpu_count() or 1) + 1)


def table_rows(path):
    """(line number, fields) of each line of a '#'-commented, whitespace-
    separated data file (verdicts.txt, storms.txt, expect/*.txt) that has
    any: the one reader of their shared layout."""
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            fields = raw.split("#", 1)[0].split()
            if fields:
                yield n, fields
