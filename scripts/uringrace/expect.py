"""Expected and forbidden races per tree, read from expect/<major.minor>.txt
(or a file given with EXPECT=); see expect/README for the format."""

import os
import re

from . import races
from .common import REPO, PipelineError, table_rows

VERDICTS = ("expected", "forbidden")


def load(path):
    entries = []
    for n, line in table_rows(path):
        try:
            if len(line) < 3 or line[0] not in VERDICTS:
                raise ValueError("want '<expected|forbidden> <id> <race>...'")
            sigs = [races.parse_race(t) for t in line[2:]]
        except ValueError as exc:
            raise PipelineError(f"{path}:{n}: {exc}, got: {' '.join(line)}") from exc
        entries.append({"verdict": line[0], "id": line[1], "races": sigs})
    return entries


def path_for(version, override=None):
    """The expectation file for a kernel version ('6.1.192' -> expect/6.1.txt),
    or the override; None when the tree has none."""
    if override:
        if not os.path.isfile(override):
            raise PipelineError(f"EXPECT={override}: no such file")
        return os.path.abspath(override)
    m = re.match(r"(\d+)\.(\d+)", version or "")
    if not m:
        return None
    p = os.path.join(REPO, "expect", f"{m.group(1)}.{m.group(2)}.txt")
    return p if os.path.isfile(p) else None


def classify(report, entries):
    """(verdict, id) of the first entry with a race the report matches on
    its accesses, ('unlisted', None) if none does."""
    for e in entries:
        if any(races.match(report, r) for r in e["races"]):
            return e["verdict"], e["id"]
    return "unlisted", None


def for_version(version, override=None):
    """(path, entries) for a tree: its expectation file and what it says;
    (None, []) when it has none."""
    path = path_for(version, override)
    return path, load(path) if path else []
