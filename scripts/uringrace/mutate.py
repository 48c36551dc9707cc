"""'make mutate': would the storms catch a broken barrier in real io_uring?
Per arch, tree A's storms run once; then each mutant of the tree's catalog
(mutants/<major.minor>.txt; MUTANTS=id,... picks some) is built through the
patch loop (B = A + the mutant, from A's build) and its storm run. A mutant
is caught when its storm in B shows an io_uring KCSAN race (by expectation
id, else title) that the same storm in A did not, or an anomaly where A had
none; class not-observable is never counted as caught, whatever it shows."""

import json
import os
import shutil
import statistics
import time

from . import catalog, kbuild, mutants, tree
from .common import PipelineError
from .guest import kernel_for, run_dir
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


PEER_FIRST_S = 52.0  # liburing's tests to the first io-wq report, Debian 6.1 (DESIGN.md)


def cmd_bench_patch(args):
    """'make bench-patch': the patch loop's cost per arch, for the tree's
    first mutant (or PATCH=): A's cold build (as recorded when it was made),
    B's build from A's (median of RUNS fresh ones, default 5), the storms of
    a compare on B, the total; against the peer, a cold build of the patched
    tree plus liburing's tests to their first io-wq report."""
    src, identity = tree.resolve(args.ksrc, args.kver)
    patches = args.patches
    rd = run_dir(args, "bench-patch")
    if not patches:
        m = mutants.load(mutants.path_for(tree.kernel_version(src)))[0]
        patches = (mutants.write_patch(m, src, rd),)
    rows = []
    for arch in args.arch:
        rec, a = kernel_for(args.for_tree(args.ksrc, args.kver), arch)
        bsrc, bid = tree.patched(src, identity, patches)
        builds, compiled = [], 0
        for _ in range(args.runs):
            shutil.rmtree(kbuild.objdir_for(bid, rec), ignore_errors=True)
            t0 = time.time()
            b = kbuild.build_patched(bsrc, bid, rec, a)
            builds.append(time.time() - t0)
            compiled = b.compiled
        t0 = time.time()
        side = run_side(args.for_tree(args.ksrc, args.kver, patches), arch,
                        os.path.join(rd, f"{arch}-B"), str(args.storm_seconds))
        storms_s = time.time() - t0
        b_s = statistics.median(builds)
        peer = (a.cold_seconds or 0) + PEER_FIRST_S
        rows.append({"arch": arch, "cold_a_s": a.cold_seconds, "b_build_s": round(b_s, 1),
                     "b_builds": [round(x, 1) for x in builds], "b_compiled": compiled,
                     "storms_s": round(storms_s, 1), "total_s": round(b_s + storms_s, 1),
                     "peer_s": round(peer, 1), "guests": [o["outcome"] for o in side.outcomes]})
    print(f"{'arch':8} {'A cold':>9} {'B build':>9} {'compiled':>9} {'storms':>8} {'total':>8} "
          f"{'peer':>8} {'ratio':>6}")
    for r in rows:
        print(f"{r['arch']:8} {str(r['cold_a_s']) + ' s':>9} {r['b_build_s']:>7} s "
              f"{r['b_compiled']:>9} {r['storms_s']:>6} s {r['total_s']:>6} s "
              f"{r['peer_s']:>6} s {r['peer_s'] / r['total_s']:>5.1f}x")
    print("B build: median of fresh builds from A's (objects copied, only the patch's files "
          "compiled); storms: a compare side on B (boot included); peer: A's cold build + "
          f"{PEER_FIRST_S:.0f} s of liburing's tests. Goal: total <= 180 s.")
    with open(os.path.join(rd, "bench-patch.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1)
    print(f"artifacts: {rd}")
    return 0
