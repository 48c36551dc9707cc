"""'make mutate': would the storms catch a broken barrier in real io_uring?
Per arch, tree A's storms run once; then each mutant of the tree's catalog
(mutants/<major.minor>.txt; MUTANTS=id,... picks some) is built through the
patch loop (B = A + the mutant, from A's build) and its storm run. A mutant
is caught when its storm in B shows an io_uring KCSAN race (by expectation
id, else title) that the same storm in A did not, or an anomaly where A had
none; class not-observable is never counted as caught, whatever it shows."""

import json
import os
import re
import shutil
import statistics
import subprocess
import time

from . import catalog, html, kbuild, mutants, tree
from .common import REPO, PipelineError
from .guest import kernel_for, run_dir
from .parse import outside_reports
from .qemu import HANG_DUMP_MARK, PANIC_RE
from .records import Outcome
from .storms import anomalies, run_side


def storm_args(names):
    table = {s["name"]: s["args"] for s in catalog.storms()}
    missing = [n for n in names if n not in table]
    if missing:
        raise PipelineError(f"mutant storms not in storms.txt: {', '.join(missing)}")
    return tuple((n, table[n]) for n in names)


def _races(side, storms):
    """{race key: first seconds after its storm's start} of a side's io_uring
    races in the given storms."""
    out = {}
    for g in side.titles:
        hit = [w for wl, w in g["by_workload"].items() if wl in storms]
        if g["scope"] == "io_uring" and hit:
            firsts = [w["first_s"] for w in hit if w.get("first_s") is not None]
            out[g["id"] or g["title"]] = min(firsts) if firsts else None
    return out


def _report_site(r, at):
    """Where report r is at the mutated code (at: mutants.sites, 'FILE:LINE'
    -> function): (site, 'line') when a frame of its symbolized stacks
    (inlined frames too) names a mutated line, else (site, 'function') when
    a frame is in the mutated function, else None."""
    funcs = {fn for fn in at.values() if fn}
    by_fn = None
    for acc in r["accesses"]:
        for fr in acc["stack"]:
            for w in fr.get("where", ()):
                loc = w.replace("(inlined by) ", "").split(" ")[0]
                hit = next((s for s in at if loc == s or loc.endswith("/" + s)), None)
                if hit:
                    return hit, "line"
            if by_fn is None and fr.get("fn") in funcs:
                by_fn = next(s for s, fn in at.items() if fn == fr["fn"])
    return (by_fn, "function") if by_fn else None


def _at_sites(side, storms, at):
    """A side's io_uring race reports in the given storms at the mutated
    code, per report: {race key: {'line' or 'function': (site, first
    seconds after its storm's start)}} (_report_site)."""
    keys = {g["title"]: g["id"] or g["title"] for g in side.titles if g["scope"] == "io_uring"}
    out = {}
    for r in side.reports:
        wl = r.get("test", "").split("/", 1)[-1]
        hit = _report_site(r, at) if r["title"] in keys and wl in storms else None
        if not hit:
            continue
        site, how = hit
        got = out.setdefault(keys[r["title"]], {})
        t = r.get("t_workload")
        old = got.get(how)
        if not old or (t is not None and (old[1] is None or t < old[1])):
            got[how] = (site, t)
    return out


# the faulting function of an oops: x86-64's RIP line, arm64's pc line
_FAULT_RE = re.compile(r"(?:RIP: [0-9a-f]+:|pc : )([\w.]+)\+0x")


# a frame of io_uring's code (io_schedule* is the block layer's)
_IO_FRAME_RE = re.compile(r"^\S*\s*\[[ \d.]+\]\s+(?:\? )?(?!io_schedule)(io_\w+|__io_\w+)\+0x",
                          re.M)


def crash(side):
    """'kernel crash: <first panic line>, at <function>' when a guest of the
    side died (panic, oops, BUG) with io_uring code on the dying stack (its
    faulting function or a frame of its call trace), or 'kernel hang: ...'
    when one ran out its time with a task blocked or a CPU running in
    io_uring code (the stacks guest/init dumps before the limit); else
    None. A crash or hang the mutant causes is the storm catching it; one
    elsewhere is no verdict."""
    for o in side.outcomes:
        if o["outcome"] not in (Outcome.PANIC, Outcome.HANG):
            continue
        try:
            with open(os.path.join(o["dir"], "console.log"), encoding="utf-8",
                      errors="replace") as f:
                con = f.read()
        except OSError:
            continue
        if o["outcome"] == Outcome.HANG:
            # the dump's stacks, not a KCSAN report printed among them
            at = con.find(HANG_DUMP_MARK)
            frames = _IO_FRAME_RE.findall(outside_reports(con[at:])) if at >= 0 else []
            if frames:
                return f"kernel hang: a task or CPU in {frames[0]} at the limit"
            continue
        hit = PANIC_RE.search(con)
        if not hit:
            continue
        tail = con[hit.start():]
        line = tail.splitlines()[0].split("] ", 1)[-1].strip()
        fault = _FAULT_RE.search(tail)
        frames = _IO_FRAME_RE.findall(tail[:6000])
        if (fault and "io_" in fault.group(1)) or frames:
            return f"kernel crash: {line}, at {fault.group(1) if fault else frames[0]}"
    return None


def score(m, a, b, at):
    """One build of m (a mutant or an emulated form) from A's and B's sides:
    {verdict, detail, first_s, kcsan}. Caught: an io_uring race B's storm
    showed and A's did not, with a report at the mutated code (at: mutants.
    sites; kcsan true; a race A shows too counts when B reports it at a
    mutated line and A never does), anomalies where A had none, or a guest
    of B killed by a crash or hang in io_uring code (crash()) where A's
    lived. A new race elsewhere is listed, not counted: a storm's rarer real
    races come and go."""
    ra, rb = _races(a, m.storms), _races(b, m.storms)
    ha, hb = _at_sites(a, m.storms, at), _at_sites(b, m.storms, at)
    where = {}
    for k in sorted(rb):
        h = hb.get(k, {})
        if k not in ra:
            where[k] = h.get("line") or h.get("function")
        elif "line" in h and "line" not in ha.get(k, {}):
            # a race A shows too, but B reports it at the mutated line and
            # A never does: per report site, not per race id
            where[k] = h["line"]
    elsewhere = [k for k, w in where.items() if not w]
    new = [k for k, w in where.items() if w]
    extra = anomalies(b, m.storms) if not anomalies(a, m.storms) else 0
    firsts = [where[k][1] if where[k][1] is not None else rb[k] for k in new]
    firsts = [f for f in firsts if f is not None]
    seen = [f"{k} at {where[k][0]}" + (" (also in A, elsewhere)" if k in ra else "")
            for k in new]
    seen += [f"{extra} anomalies"] if extra else []
    seen += [f"(new elsewhere, not counted: {', '.join(elsewhere)})"] if elsewhere else []
    out = {"verdict": "missed", "kcsan": bool(new), "first_s": min(firsts) if firsts else None,
           "detail": ", ".join(seen)}
    died = crash(b) if not crash(a) else None
    if died and m.cls != "not-observable":
        return dict(out, verdict="caught", detail=died + (f", {out['detail']}" if seen else ""))
    for wl in m.storms:
        ops = b.workloads.get(wl, {}).get("ops_per_s") or []
        if not ops or not all(ops):
            return dict(out, verdict="no work", detail=f"storm {wl} did no work in B")
    if m.cls == "not-observable":
        return dict(out, verdict="not observable here", kcsan=False,
                    detail=m.reason + (f" (B showed: {out['detail']})" if out["detail"] else ""))
    if new or extra:
        return dict(out, verdict="caught")
    return dict(out, detail="no new io_uring race at the mutated code and no anomaly in its "
                "storm" + (f" {seen[-1]}" if elsewhere else ""))


def counted(m, real, form):
    """The mutant's verdict from its own run and its emulated form's (either
    may be None when not run): caught by KCSAN (or an anomaly) on the real
    mutant, else, for a class KCSAN cannot model or this machine cannot show,
    caught by the form's anomalies; not observable is never caught."""
    runs = [r for r in (real, form) if r]
    if any(r["verdict"] == "no work" for r in runs):
        return "no work"
    if real and real["verdict"] == "caught":
        return "caught"
    if form and form["verdict"] == "caught" and m.cls in ("emulated", "not-observable"):
        return "caught (emulated)"
    if m.cls == "not-observable":
        return "not observable here"
    if m.cls == "emulated" and not form:
        return "missed: no emulated form yet"
    return "missed"


def _cell(run):
    if not run:
        return "-"
    if run["verdict"] == "caught" and run["first_s"] is not None:
        return f"caught {run['first_s']} s"
    return run["verdict"]


def score_rows(arch, pairs, runs):
    """The score table's rows of one arch: one per mutant, its KCSAN (real
    mutant) and emulated-form columns and what counts."""
    rows = []
    for m, form in pairs:
        real, emu = runs.get(m.id), runs.get(form.id) if form else None
        if not real and not emu:
            continue
        rows.append({"arch": arch, "mutant": m.id, "class": m.cls, "storms": list(m.storms),
                     "real": real, "emulated": emu, "verdict": counted(m, real, emu),
                     "first_s": next((r["first_s"] for r in (real, emu)
                                      if r and r["verdict"] == "caught"), None)})
    return rows


def summary(rows, arch):
    mine = [r for r in rows if r["arch"] == arch]
    caught = sum(r["verdict"].startswith("caught") for r in mine)
    kc = sum(bool(r["real"] and r["real"]["kcsan"]) for r in mine)
    hidden = sum(r["verdict"] == "not observable here" for r in mine)
    pct = 100 * caught / len(mine) if mine else 0
    return (f"{arch}: {caught} of {len(mine)} mutants caught ({pct:.0f} %); KCSAN alone "
            f"{kc} of {len(mine)}; not observable here {hidden}")


def print_table(rows, secs):
    print(f"{'arch':7} {'mutant':28} {'class':15} {'KCSAN (real mutant)':22} "
          f"{'emulated form':16} verdict")
    for r in rows:
        print(f"{r['arch']:7} {r['mutant']:28} {r['class']:15} {_cell(r['real']):22} "
              f"{_cell(r['emulated']):16} {r['verdict'].upper()}")
    print(f"(caught N s: the first report N s after its storm's start; an anomaly is seen "
          f"at the storm's end, {secs} s)")


def cmd_mutate(args):
    secs = str(args.storm_seconds)
    src, _ = tree.resolve(args.ksrc, args.kver)
    ver = tree.kernel_version(src)
    path = mutants.path_for(ver)
    if not path:
        raise PipelineError(f"no mutant catalog for linux {ver} (mutants/<major.minor>.txt)")
    catalog_ms = mutants.load(path)
    pick = list(args.mutants)
    todo = catalog_ms
    if pick:
        known = {m.id for m in catalog_ms}
        if not set(pick) <= known:
            raise PipelineError(f"MUTANTS: {', '.join(sorted(set(pick) - known))} not in {path}")
        # a mutant picked brings its emulated form
        todo = [m for m in catalog_ms if m.id in pick or
                (mutants.is_form(m) and mutants.form_of(m) in pick)]
    forms = {mutants.form_of(m) for m in todo if mutants.is_form(m)}

    def runs_it(m):
        # a not-observable mutant with no form: its reason is the verdict
        # (MUTANTS= with its id builds and runs it all the same)
        return m.cls != "not-observable" or m.id in forms or m.id in pick
    storms = storm_args(sorted({s for m in todo if runs_it(m) for s in m.storms}))
    rd = run_dir(args, "mutate")
    rows, t_start = [], time.time()

    def save(rows, finished):
        # after every mutant, so that a run cut short keeps what it scored
        # (make mutate-score reads it)
        with open(os.path.join(rd, "mutate.json"), "w", encoding="utf-8") as f:
            json.dump({"tree": ver, "storm_seconds": int(secs), "finished": finished,
                       "wall_s": round(time.time() - t_start, 1), "rows": rows,
                       "summary": [summary(rows, arch) for arch in args.arch]}, f, indent=1)
    for arch in args.arch:
        # A symbolized too: a race A shows is B's catch only where A never
        # reports it at the mutated line (score)
        a = run_side(args, arch, os.path.join(rd, f"{arch}-A"), secs, storms=storms,
                     reuse=args.reuse_a)
        runs = {}
        for m in todo:
            if not runs_it(m):
                runs[m.id] = {"verdict": "not observable here", "kcsan": False,
                              "first_s": None, "detail": m.reason + " (not run)"}
                print(f"{arch:7} {m.id:28} {m.cls:15} {'-':26} NOT OBSERVABLE HERE  (not run)",
                      flush=True)
                continue
            patch = mutants.write_patch(m, src, os.path.join(rd, "patches"))
            b = run_side(args.for_tree(args.ksrc, args.kver, (patch,)), arch,
                         os.path.join(rd, f"{arch}-{m.id}"), secs,
                         storms=tuple(s for s in storms if s[0] in m.storms))
            runs[m.id] = score(m, a, b, at=mutants.sites(m, src))
            print(f"{arch:7} {m.id:28} {m.cls:15} {','.join(m.storms):26} "
                  f"{runs[m.id]['verdict'].upper():20} {runs[m.id]['detail']}", flush=True)
            save(rows + score_rows(arch, mutants.with_forms(catalog_ms), runs), False)
        rows += score_rows(arch, mutants.with_forms(catalog_ms), runs)
    print()
    print_table(rows, secs)
    for arch in args.arch:
        print(summary(rows, arch))
    wall = round(time.time() - t_start, 1)
    print(f"wall time {wall} s for {len(todo)} builds per arch, {secs} s per storm")
    save(rows, True)
    html.write_mutate(os.path.join(rd, "mutate.html"), ver, rows, secs,
                      [summary(rows, arch) for arch in args.arch])
    print(f"artifacts: {rd} (mutate.json, mutate.html)")
    return 1 if any(r["verdict"] == "no work" for r in rows) else 0


def assembled_rows(run_dirs, ver, catalog_ms):
    """The catalog's score from several 'make mutate' runs (their
    directories, oldest first): per arch and mutant, the newest run's row
    whose storms are the catalog's storms now ("run" names it); a mutant
    with none is "not run" (counted, never caught); a not-observable one
    with no emulated form keeps its reason. Returns (rows, runs read)."""
    found, used = {}, []
    for d in run_dirs:
        try:
            with open(os.path.join(d, "mutate.json"), encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue  # a run that did not finish wrote none
        if data.get("tree") != ver:
            continue
        used.append(os.path.basename(d) + ("" if data.get("finished", True) else " (cut short)"))
        for r in data.get("rows", []):
            found[(r["arch"], r["mutant"])] = dict(r, run=used[-1],
                                                   storm_seconds=data.get("storm_seconds"))
    rows = []
    for arch in sorted({a for a, _ in found}):
        for m, form in mutants.with_forms(catalog_ms):
            r = found.get((arch, m.id))
            if r and r["storms"] == list(m.storms):
                rows.append(r)
                continue
            verdict = ("not observable here" if m.cls == "not-observable" and not form
                       else "not run")
            rows.append({"arch": arch, "mutant": m.id, "class": m.cls, "storms": list(m.storms),
                         "real": None, "emulated": None, "verdict": verdict, "first_s": None,
                         "run": (f"not since its storms changed ({r['run']})" if r else "-"),
                         "storm_seconds": None})
    return rows, used


def cmd_mutate_score(args):
    """'make mutate-score': the tree's catalog scored from the newest run of
    each mutant in OUT's earlier 'make mutate' runs, as one table, JSON and
    HTML page, each row naming its run."""
    src, _ = tree.resolve(args.ksrc, args.kver)
    ver = tree.kernel_version(src)
    path = mutants.path_for(ver)
    if not path:
        raise PipelineError(f"no mutant catalog for linux {ver} (mutants/<major.minor>.txt)")
    root = os.path.abspath(args.out)
    # run_dir's names: mutate-YYYYmmdd-HHMMSS, which sort by time
    names = sorted(os.listdir(root)) if os.path.isdir(root) else []
    dirs = [os.path.join(root, d) for d in names if re.fullmatch(r"mutate-\d{8}-\d{6}", d)]
    rows, used = assembled_rows(dirs, ver, mutants.load(path))
    if not rows:
        raise PipelineError(f"no 'make mutate' run of linux {ver} under {root}")
    secs = "/".join(sorted({str(r["storm_seconds"]) for r in rows if r["storm_seconds"]}))
    print_table(rows, secs or "-")
    for r in rows:
        print(f"  {r['arch']:7} {r['mutant']:28} from {r['run']}")
    archs = sorted({r["arch"] for r in rows})
    summaries = [summary(rows, arch) for arch in archs]
    print("\n".join(summaries))
    rd = run_dir(args, "mutate-score")
    with open(os.path.join(rd, "mutate.json"), "w", encoding="utf-8") as f:
        json.dump({"tree": ver, "runs": used, "rows": rows, "summary": summaries}, f, indent=1)
    html.write_mutate(os.path.join(rd, "mutate.html"), ver, rows, secs or "-", summaries)
    print(f"from {len(used)} runs; artifacts: {rd} (mutate.json, mutate.html)")
    return 0


PEER_FIRST_S = 52.0  # liburing's tests to the first io-wq report, Debian 6.1 (DESIGN.md)


def cmd_bench_patch(args):
    """'make bench-patch': the patch loop's cost per arch, for the tree's
    first mutant (or PATCH=): A's cold build (as recorded when it was made);
    A's side (its storms, reused when it passed before, else run now); B's
    build from A's (median of RUNS fresh ones, default 5); and the verdict:
    a whole 'PATCH= make compare' of that arch from a fresh B, patch given
    to verdict printed, A's side reused. Against the peer, a cold build of
    the patched tree plus liburing's tests to their first io-wq report."""
    src, identity = tree.resolve(args.ksrc, args.kver)
    patches = args.patches
    rd = run_dir(args, "bench-patch")
    if not patches:
        m = mutants.load(mutants.path_for(tree.kernel_version(src)))[0]
        patches = (mutants.write_patch(m, src, rd),)
    patches = tuple(os.path.abspath(p) for p in patches)
    rows = []
    for arch in args.arch:
        rec, a = kernel_for(args.for_tree(args.ksrc, args.kver), arch)
        t0 = time.time()
        run_side(args.for_tree(args.ksrc, args.kver), arch, os.path.join(rd, f"{arch}-A"),
                 str(args.storm_seconds), reuse=True)
        a_side = time.time() - t0
        bsrc, bid = tree.patched(src, identity, patches)
        builds, compiled = [], 0
        for _ in range(args.runs):
            shutil.rmtree(kbuild.objdir_for(bid, rec), ignore_errors=True)
            t0 = time.time()
            b = kbuild.build_patched(bsrc, bid, rec, a, keep=args.keep_b)
            builds.append(time.time() - t0)
            compiled = b.compiled
        kbuild.in_use(b, False)  # the compare below builds it again, in a process of its own
        shutil.rmtree(kbuild.objdir_for(bid, rec), ignore_errors=True)
        t0 = time.time()
        out = os.path.join(rd, f"{arch}-compare")
        res = subprocess.run(["python3", os.path.join(REPO, "scripts", "urr"), "--arch", arch,
                              "compare"], capture_output=True, text=True, check=False,
                             env={**os.environ, "PATCH": ",".join(patches), "REUSE_A": "1",
                                  "OUT": out})
        verdict_s = time.time() - t0
        with open(os.path.join(rd, f"{arch}-compare.log"), "w", encoding="utf-8") as f:
            f.write(res.stdout + res.stderr)
        b_s = statistics.median(builds)
        peer = (a.cold_seconds or 0) + PEER_FIRST_S
        rows.append({"arch": arch, "cold_a_s": a.cold_seconds, "a_side_s": round(a_side, 1),
                     "b_build_s": round(b_s, 1), "b_builds": [round(x, 1) for x in builds],
                     "b_compiled": compiled, "verdict_s": round(verdict_s, 1),
                     "compare_status": res.returncode,
                     # run_side leaves this note in a side it reused
                     "a_reused": os.path.exists(os.path.join(out, "compare-latest",
                                                             f"{arch}-A", "reused-from")),
                     "peer_s": round(peer, 1)})
    print(f"{'arch':8} {'A cold':>9} {'A side':>8} {'B build':>9} {'compiled':>9} "
          f"{'verdict':>9} {'A reused':>9} {'peer':>8} {'ratio':>6}")
    for r in rows:
        print(f"{r['arch']:8} {str(r['cold_a_s']) + ' s':>9} {r['a_side_s']:>6} s "
              f"{r['b_build_s']:>7} s {r['b_compiled']:>9} {r['verdict_s']:>7} s "
              f"{'yes' if r['a_reused'] else 'NO':>9} {r['peer_s']:>6} s "
              f"{r['peer_s'] / r['verdict_s']:>5.1f}x")
    print(f"A side: its storms (reused if they passed before); B build: median of {args.runs} "
          "fresh builds from A's; verdict: 'PATCH= make compare' from a fresh B to its "
          f"table, A reused (exit status in bench-patch.json); peer: A's cold build + "
          f"{PEER_FIRST_S:.0f} s of liburing's tests. Goal: verdict <= 180 s.")
    with open(os.path.join(rd, "bench-patch.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1)
    print(f"artifacts: {rd}")
    return 0 if all(r["a_reused"] for r in rows) else 1
