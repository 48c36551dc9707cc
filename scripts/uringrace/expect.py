"""Per tree, read from expect/<major.minor>.txt (or a file given with
EXPECT=): the expected and forbidden races, and the storms whose verdict
differs there from storms.txt's; see expect/README for the format."""

import os
import re

from . import catalog, races
from .common import REPO, PipelineError, table_rows

VERDICTS = ("expected", "forbidden")
STORM_ROW = "storm"


def _parse(path):
    """(race entries, {storm: its verdict in this tree}) of one file: the
    one reader of both row kinds."""
    names = {s["name"] for s in catalog.storms()}
    entries, verdicts = [], {}
    for n, line in table_rows(path):
        try:
            if line[0] == STORM_ROW:
                if len(line) != 3 or line[2] not in catalog.STORM_EXPECT:
                    raise ValueError(f"want '{STORM_ROW} <name> <{'|'.join(catalog.STORM_EXPECT)}>'")
                if line[1] not in names:
                    raise ValueError(f"no storm '{line[1]}' in storms.txt")
                verdicts[line[1]] = line[2]
                continue
            if len(line) < 3 or line[0] not in VERDICTS:
                raise ValueError("want '<expected|forbidden> <id> <race>...'")
            sigs = [races.parse_race(t) for t in line[2:]]
        except ValueError as exc:
            raise PipelineError(f"{path}:{n}: {exc}, got: {' '.join(line)}") from exc
        entries.append({"verdict": line[0], "id": line[1], "races": sigs})
    return entries, verdicts


def load(path):
    """The races a tree's file lists, as [{'verdict', 'id', 'races'}]."""
    return _parse(path)[0]


def storm_verdicts(path):
    """{storm: 'clean'|'anomaly'} that a tree's file sets over storms.txt's
    own column (a known bug of that tree that a storm shows); {} for none."""
    return _parse(path)[1] if path else {}


def storm_expectations(path):
    """{storm: 'clean'|'anomaly'}: what each storm of storms.txt must show on
    the tree whose expectation file is `path` (its 'storm' row there, else
    storms.txt's column). A name not in it (a run's own label) has none."""
    own = {s["name"]: s["expect"] for s in catalog.storms()}
    return {**own, **storm_verdicts(path)}


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
