"""Evidence for 'run': the io_uring reports of the selftests' guest,
classified and symbolized."""

import collections
import os

from . import artifacts, expect, report, symbolize
from .compare import _race_key
from .storms import merge
from .text import render_evidence


def news(side, epath):
    """The io_uring races a run must fail on, as headline lines: each one the
    tree's expectations forbid, and each one they do not list (with no
    expectation file for the tree, every io_uring race is new)."""
    out = []
    for g in side.titles:
        if g["scope"] != "io_uring" or g["verdict"] not in ("forbidden", "unlisted"):
            continue
        tag = ("FORBIDDEN race" if g["verdict"] == "forbidden" else
               f"NEW race (not in {os.path.basename(epath)})" if epath else
               "NEW race (no expectation file for this tree)")
        out.append(f"{tag} on {side.arch}: {g['title']} ({g['count']} report(s)"
                   + ("; race at unknown origin" if g.get("unknown_origin") else "") + ")")
    return out


def evidence_for_run(rep, rec, kinfo, work, outdir, expect_file=None):
    """For 'run': the io_uring reports of the selftests' guest, classified and
    symbolized, into outdir/evidence.txt; return (a short summary, the
    headline lines of news())."""
    epath, entries = expect.for_version(kinfo.version, expect_file)
    side = merge([(outdir, rep)], (), entries)
    full = [r for r in side.reports if report.scope(r) == "io_uring"]
    if full:
        symbolize.symbolize(full, kinfo, rec, {"uringrace": artifacts.kmod_path(work)})
    side = side.replace(arch=rep["arch"], tree=kinfo.identity, expect=epath, reports=full)
    with open(os.path.join(outdir, "evidence.txt"), "w", encoding="utf-8") as f:
        f.write(render_evidence(side) + "\n")
    io = [g for g in side.titles if g["scope"] == "io_uring"]
    races = collections.Counter()
    for g in io:
        races[(_race_key(g), g["verdict"])] += g["count"]
    lines = [f"   io_uring races ({os.path.basename(epath) if epath else 'no expectations'}): "
             + (", ".join(f"{k} {n}x {v}" for (k, v), n in races.items()) or "none")]
    if any(g["verdict"] == "forbidden" for g in io):
        lines.append("   <== a race this tree's expectations forbid was reported")
    lines.append(f"   in full, symbolized: {os.path.join(outdir, 'evidence.txt')}")
    return "\n".join(lines), news(side, epath)
