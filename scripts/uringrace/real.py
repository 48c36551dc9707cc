"""Real io_uring code: the driver's storms in KCSAN guests of one tree (one
guest, or JOBS guests with different seeds, merged), classified against the
tree's expectations, io_uring reports symbolized to file:line; and on top of
that 'compare' (two trees side by side) and 'bench-real' (time to first
report)."""

import collections
import json
import os
import statistics
import threading

from . import expect, html, report, symbolize
from .common import PipelineError, log
from .guest import boot_once, guest_parts, run_dir

# (workload name, driver arguments): io-wq first, so that a tree with an io-wq
# race shows it within seconds of /init.
STORMS = (("iowq-raw", "iowq --via raw --threads 4"),
          ("iowq-liburing", "iowq --via liburing --threads 4"),
          ("sqpoll-raw", "sqpoll --via raw --fence on"),
          ("read-raw", "read --via raw"),
          ("nop-raw", "nop --via raw"),
          ("cq", "cq --threads 3"))


def storm_script(storms, secs, seed):
    """Guest shell: per storm a kernel-log marker (so reports are charged to
    it), a '## name' line and the driver's JSON line on the KTAP channel."""
    parts = []
    for name, argv in storms:
        parts.append(f"echo 'uringrace: subtest-start {name}' > /dev/kmsg; echo '## {name}'; "
                     f"/usr/bin/uringrace {argv} --duration {secs} --seed {seed} --json")
    return "; ".join(parts) + "; true"


def driver_results(ktap_path):
    """{name: driver JSON} from a storm_script run's KTAP stream."""
    got, name = {}, None
    if not os.path.exists(ktap_path):
        return got
    with open(ktap_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("## "):
                name = line[3:].strip()
            elif line.startswith("{") and name:
                try:
                    got[name] = json.loads(line)
                except ValueError:
                    pass
    return got


def _boot_jobs(args, parts, outdir, storms, secs, jobs, seed0):
    rec, kinfo, work, files, tests = parts
    reps = [None] * jobs

    def one(i):
        sub = os.path.join(outdir, f"job{i}") if jobs > 1 else outdir
        try:
            reps[i] = (sub, boot_once(args, rec, kinfo, work, files, tests, sub,
                                      cmd=storm_script(storms, secs, seed0 + i),
                                      timeout=min(args.timeout, 240 + len(storms) * int(secs) * 4),
                                      echo=jobs == 1))
        except PipelineError as exc:
            log(f"job {i}: {exc}")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for r in reps if r]


def merge(booted, storms, entries):
    """Merge guest runs [(dir, report)] of the same storms: KCSAN reports by
    title (count, first after /init, per workload count and first after the
    storm's start), each classified by the expectations; the timeline events;
    per-workload throughput; and the io_uring/module reports in full."""
    titles, events, full = collections.OrderedDict(), [], []
    workloads = {name: {"ops_per_s": [], "start_s": None} for name, _ in storms}
    outcomes = []
    for job, (sub, rep) in enumerate(booted):
        outcomes.append({"job": job, "outcome": rep["boot"]["outcome"],
                         "reason": rep["boot"]["reason"], "dir": sub,
                         "seconds": rep["boot"]["seconds"]})
        init = rep["init_time"] or 0.0
        starts = {s["name"].split("/", 1)[-1]: s["start"] for s in rep["subtests"]}
        for name, j in driver_results(os.path.join(sub, "ktap.txt")).items():
            if name in workloads and j.get("seconds"):
                workloads[name]["ops_per_s"].append(round(j["ops"] / j["seconds"]))
        for name, ts in starts.items():
            if name in workloads and ts is not None:
                cur = workloads[name]["start_s"]
                workloads[name]["start_s"] = round(ts - init, 2) if cur is None \
                    else min(cur, round(ts - init, 2))
        for r in rep["reports"]:
            if r["test"] == "boot":
                continue
            wl = r["test"].split("/", 1)[-1]
            scope = report.scope(r)
            verdict, rid = expect.classify(r["functions"], entries)
            since_init = round(r["time"] - init, 2)
            since_wl = round(r["time"] - starts[wl], 2) if starts.get(wl) is not None else None
            events.append({"job": job, "workload": wl, "t": since_init, "t_workload": since_wl,
                           "title": r["title"], "scope": scope, "verdict": verdict, "id": rid})
            g = titles.setdefault(r["title"], {
                "title": r["title"], "scope": scope, "verdict": verdict, "id": rid,
                "count": 0, "first_s": since_init, "by_workload": {}})
            g["count"] += 1
            g["first_s"] = min(g["first_s"], since_init)
            w = g["by_workload"].setdefault(wl, {"count": 0, "first_s": since_wl})
            w["count"] += 1
            if since_wl is not None and (w["first_s"] is None or since_wl < w["first_s"]):
                w["first_s"] = since_wl
            if scope != "other":
                r["job"] = job
                full.append(r)
    return {"outcomes": outcomes, "workloads": workloads, "titles": list(titles.values()),
            "events": events, "full": full}


def run_side(args, arch, outdir, secs, jobs=1, seed0=1, storms=STORMS, expect_file=None,
             symbols=True):
    """One tree, one arch: boot `jobs` guests running the storms; return the
    merged side (see the keys below)."""
    parts = guest_parts(args, arch)
    rec, kinfo = parts[0], parts[1]
    epath = expect.path_for(kinfo.get("version"), expect_file)
    entries = expect.load(epath) if epath else []
    booted = _boot_jobs(args, parts, outdir, storms, secs, jobs, seed0)
    side = merge(booted, storms, entries)
    full = side.pop("full")
    if symbols and full:
        ko = os.path.join(parts[2], "src", "kmod", "uringrace.ko")
        n = symbolize.symbolize(full, kinfo, rec, {"uringrace": ko})
        log(f"{arch}: {n} distinct frames placed to file:line by faddr2line")
    side.update(arch=arch, tree=kinfo.get("identity"), version=kinfo.get("version"),
                expect=epath, jobs=jobs, seconds_per_storm=int(secs), reports=full)
    return side


def side_ok(side):
    return bool(side["outcomes"]) and all(o["outcome"] == "pass" for o in side["outcomes"])


def _race_key(g):
    return g["id"] or g["title"]


def callouts(a, b):
    """Races (by expectation id, else title) across all workloads and jobs:
    in A and gone in B, new in B, and forbidden ones reported."""
    ra = {_race_key(g): g for g in a["titles"] if g["scope"] == "io_uring"}
    rb = {_race_key(g): g for g in b["titles"] if g["scope"] == "io_uring"}
    out = []
    for k in ra:
        if k not in rb:
            out.append(("gone in B", k, ra[k]["count"], 0))
    for k in rb:
        if k not in ra:
            out.append(("NEW in B", k, 0, rb[k]["count"]))
    for label, side in (("A", a), ("B", b)):
        for g in side["titles"]:
            if g["verdict"] == "forbidden":
                out.append((f"FORBIDDEN in {label}", _race_key(g), g["count"], g["count"]))
    return out


def _variant_key(r):
    return tuple(sorted((a["type"], a["reordered"], tuple(f"{f['fn']}+{f['off']}"
                                                          for f in a["stack"]))
                        for a in r["accesses"]))


def render_evidence(side):
    """Every io_uring report, grouped by title, identical stack pairs shown
    once with their count; both stacks with file:line. Other subsystems are
    counted and listed after."""
    out = [f"-- {side['arch']} {side['tree']}: io_uring KCSAN reports "
           f"(expectations: {os.path.basename(side['expect']) if side['expect'] else 'none'})"]
    by_title = collections.OrderedDict()
    for r in side["reports"]:
        if report.scope(r) == "io_uring":
            by_title.setdefault(r["title"], []).append(r)
    if not by_title:
        out.append("   none")
    meta = {g["title"]: g for g in side["titles"]}
    for title, reps in by_title.items():
        g = meta[title]
        variants = collections.OrderedDict()
        for r in reps:
            variants.setdefault(_variant_key(r), []).append(r)
        tag = g["verdict"] + (f": {g['id']}" if g["id"] else "")
        out.append("")
        out.append(f"BUG: KCSAN: {title}   [{tag}]")
        out.append(f"   {len(reps)} report(s), first {g['first_s']} s after /init; "
                   f"{len(variants)} distinct stack pair(s); workloads: "
                   + ", ".join(f"{w} {v['count']}x" for w, v in g["by_workload"].items()))
        for vreps in variants.values():
            r = vreps[0]
            out.append(f"   -- {len(vreps)}x like this one (first at {r['time']} s, job {r['job']}):")
            for a in r["accesses"]:
                flags = "".join(f" ({f})" for f in ("marked", "reordered") if a[f])
                who = f"task {a['task']}" if a["task"] is not None else a["context"]
                out.append(f"   {a['type']}{flags} to {a['addr']} of {a['size']} bytes by {who} "
                           f"on cpu {a['cpu']}:")
                for f in a["stack"]:
                    mod = f" [{f['module']}]" if f.get("module") else ""
                    out.append(f"     {f['fn']}+{f['off']}/{f['len']}{mod}")
                    for w in f.get("where", []):
                        out.append(f"         {w}")
                if a.get("reordered_to"):
                    out.append(f"     +-> reordered to: {a['reordered_to']}")
            if r["value_change"]:
                out.append(f"   value changed: {r['value_change'][0]} -> {r['value_change'][1]}")
    others = [g for g in side["titles"] if g["scope"] == "other"]
    out.append("")
    out.append(f"-- other subsystems: {sum(g['count'] for g in others)} report(s), "
               f"{len(others)} title(s)")
    for g in others:
        out.append(f"   {g['count']:4}x  {g['title']}  (first {g['first_s']} s after /init)")
    return "\n".join(out)


def _fmt(w):
    if not w:
        return "-"
    return f"{w['count']}x @{w['first_s']}s" if w["first_s"] is not None else f"{w['count']}x"


def render_compare(a, b):
    out = [f"== {a['arch']}: A = {a['tree']} ({', '.join(o['outcome'] for o in a['outcomes'])}), "
           f"B = {b['tree']} ({', '.join(o['outcome'] for o in b['outcomes'])}); "
           f"{a['jobs']} guest(s) per tree, {a['seconds_per_storm']} s per storm"]
    out.append(f"   {'workload':14} {'scope':10} {'verdict A/B':22} {'KCSAN title':62} "
               f"{'A (first after storm start)':>28} {'B':>14}")
    ga = {g["title"]: g for g in a["titles"]}
    gb = {g["title"]: g for g in b["titles"]}
    for wl, _ in STORMS:
        rows = [t for t in list(ga) + [t for t in gb if t not in ga]
                if wl in (ga.get(t) or {}).get("by_workload", {})
                or wl in (gb.get(t) or {}).get("by_workload", {})]
        if not rows:
            out.append(f"   {wl:14} {'':10} {'':22} {'(no KCSAN report)':62}")
        for t in rows:
            x, y = ga.get(t), gb.get(t)
            g = x or y
            verdict = f"{x['verdict'] if x else '-'}/{y['verdict'] if y else '-'}"
            out.append(f"   {wl:14} {g['scope']:10} {verdict:22} {t[:62]:62} "
                       f"{_fmt((x or {}).get('by_workload', {}).get(wl)):>28} "
                       f"{_fmt((y or {}).get('by_workload', {}).get(wl)):>14}")
    out.append("   throughput (ops/s per guest, median over jobs):")
    for wl, _ in STORMS:
        va, vb = a["workloads"][wl]["ops_per_s"], b["workloads"][wl]["ops_per_s"]
        ma = statistics.median(va) if va else None
        mb = statistics.median(vb) if vb else None
        ratio = f"  B/A {mb / ma:.2f}" if ma and mb else ""
        out.append(f"     {wl:14} A {ma if ma is not None else '-':>10}   "
                   f"B {mb if mb is not None else '-':>10}{ratio}")
    calls = callouts(a, b)
    out.append("   races (by expectation id, else title; all workloads and guests):")
    if not calls:
        out.append("     no io_uring race differs between A and B")
    for what, key, na, nb in calls:
        out.append(f"     <== {what}: {key} (A {na}x, B {nb}x)")
    return "\n".join(out)


def cmd_compare(args):
    """Run the same real io_uring storms on tree A and tree B (default Debian
    6.1 and 6.12; KSRC_A/KSRC_B for a patch before and after); print per
    workload the KCSAN reports by title side by side and call out races gone
    in B or new in B; the io_uring reports in full, symbolized; JSON and HTML."""
    import argparse
    env = os.environ.get
    secs = env("STORM_SECONDS") or "8"
    jobs = int(env("JOBS") or 1)
    sides = {"A": (env("KSRC_A") or None, env("KVER_A") or "6.1", env("EXPECT_A") or None),
             "B": (env("KSRC_B") or None, env("KVER_B") or "6.12", env("EXPECT_B") or None)}
    rd = run_dir(args, "compare")
    result, texts = {}, []
    for arch in args.arch:
        res = {}
        for lab, (ks, kv, ex) in sides.items():
            sub = argparse.Namespace(**{**vars(args), "ksrc": ks, "kver": kv})
            res[lab] = run_side(sub, arch, os.path.join(rd, f"{arch}-{lab}"), secs, jobs=jobs,
                                expect_file=ex)
        result[arch] = res
        text = render_compare(res["A"], res["B"])
        print(text, flush=True)
        ev = "\n\n".join(render_evidence(res[lab]) for lab in ("A", "B"))
        with open(os.path.join(rd, f"evidence-{arch}.txt"), "w", encoding="utf-8") as f:
            f.write(ev + "\n")
        texts.append(text)
        print(f"   io_uring reports in full, symbolized: {rd}/evidence-{arch}.txt")
    with open(os.path.join(rd, "compare.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
    with open(os.path.join(rd, "compare.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    html.write_compare(os.path.join(rd, "compare.html"), result, STORMS)
    print(f"artifacts: {rd} (compare.txt, compare.json, compare.html, evidence-<arch>.txt, "
          "console.log per guest)")
    bad = [s for r in result.values() for s in r.values() if not side_ok(s)]
    forbidden = [c for r in result.values() for c in callouts(r["A"], r["B"])
                 if c[0].startswith("FORBIDDEN")]
    return 1 if bad or forbidden else 0
