"""'make mutate': would the storms catch a broken barrier in real io_uring?
Per arch, tree A's storms run once; then each mutant of the tree's catalog
(mutants/<major.minor>.txt; MUTANTS=id,... picks some) is built through the
patch loop (B = A + the mutant, from A's build) and its storm run. A mutant
is caught when its storm in B shows an io_uring KCSAN race (by expectation
id, else title) that the same storm in A did not, or an anomaly where A had
none; class not-observable is never counted as caught, whatever it shows."""

import json
import os

from . import catalog, mutants, tree
from .common import PipelineError
from .guest import run_dir
from .storms import run_side


def storm_args(names):
    table = {s["name"]: s["args"] for s in catalog.storms()}
    missing = [n for n in names if n not in table]
    if missing:
        raise PipelineError(f"mutant storms not in storms.txt: {', '.join(missing)}")
    return tuple((n, table[n]) for n in names)


def _races(side, storms):
    return {g["id"] or g["title"] for g in side.titles
            if g["scope"] == "io_uring" and set(storms) & set(g["by_workload"])}


def _anomalies(side, storms):
    return sum(sum(c.values()) for wl in storms
               for c in side.workloads.get(wl, {}).get("anomalies", []))


def score(m, a, b):
    """(verdict, detail) of mutant m from A's and B's sides."""
    new = sorted(_races(b, m.storms) - _races(a, m.storms))
    extra = _anomalies(b, m.storms) if not _anomalies(a, m.storms) else 0
    for wl in m.storms:
        ops = b.workloads.get(wl, {}).get("ops_per_s") or []
        if not ops or not all(ops):
            return "no work", f"storm {wl} did no work in B"
    seen = ", ".join(new + ([f"{extra} anomalies"] if extra else []))
    if m.cls == "not-observable":
        return "not observable here", m.reason + (f" (B showed: {seen})" if seen else "")
    if new or extra:
        return "caught", seen
    if m.cls == "emulated":
        return "missed", "KCSAN cannot model this class; its emulated form is still to come"
    return "missed", "no new io_uring race and no anomaly in its storm"


def cmd_mutate(args):
    secs = str(args.storm_seconds)
    src, identity = tree.resolve(args.ksrc, args.kver)
    ver = tree.kernel_version(src)
    path = mutants.path_for(ver)
    if not path:
        raise PipelineError(f"no mutant catalog for linux {ver} (mutants/<major.minor>.txt)")
    todo = mutants.load(path)
    pick = list(args.mutants)
    if pick:
        todo = [m for m in todo if m.id in pick]
        if len(todo) != len(pick):
            raise PipelineError(f"MUTANTS={','.join(pick)}: not all in {path}")
    storms = storm_args(sorted({s for m in todo for s in m.storms}))
    rd = run_dir(args, "mutate")
    rows = []
    for arch in args.arch:
        a = run_side(args, arch, os.path.join(rd, f"{arch}-A"), secs, storms=storms,
                     symbols=False)
        for m in todo:
            patch = mutants.write_patch(m, src, os.path.join(rd, "patches"))
            b = run_side(args.for_tree(args.ksrc, args.kver, (patch,)), arch,
                         os.path.join(rd, f"{arch}-{m.id}"), secs,
                         storms=tuple(s for s in storms if s[0] in m.storms))
            verdict, detail = score(m, a, b)
            rows.append({"arch": arch, "mutant": m.id, "class": m.cls,
                         "storms": list(m.storms), "verdict": verdict, "detail": detail})
            print(f"{arch:7} {m.id:22} {m.cls:15} {','.join(m.storms):26} {verdict.upper():20} "
                  f"{detail}", flush=True)
    print()
    for arch in args.arch:
        mine = [r for r in rows if r["arch"] == arch]
        caught = sum(r["verdict"] == "caught" for r in mine)
        kcsan = [r for r in mine if r["class"] == "kcsan"]
        print(f"{arch}: {caught} of {len(mine)} mutants caught; KCSAN alone "
              f"{sum(r['verdict'] == 'caught' for r in kcsan)} of {len(kcsan)} of its class; "
              f"not observable here {sum(r['verdict'] == 'not observable here' for r in mine)}")
    with open(os.path.join(rd, "mutate.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1)
    print(f"artifacts: {rd}")
    return 1 if any(r["verdict"] == "no work" for r in rows) else 0
