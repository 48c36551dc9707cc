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

from . import artifacts, expect, html, report, symbolize
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


# the driver's counters that mean something went wrong on the ring
ANOMALIES = ("bad_cqe", "short_reads", "stalls", "errors", "duplicate_cqe", "lost_cqe")


def storm_script(storms, secs, seed):
    """Guest shell: per storm a kernel-log marker (so reports are charged to
    it), a '## name' line and the driver's JSON line on the KTAP channel."""
    parts = []
    for name, argv in storms:
        parts.append(f"echo 'uringrace: subtest-start {name}' > /dev/kmsg; echo '## {name}'; "
                     f"/usr/bin/uringrace {argv} --duration {secs} --seed {seed} --json")
    return "; ".join(parts) + "; true"


def driver_results(ktap_path):
    """{name: driver JSON} from the KTAP stream of a run that prints '## name'
    before each driver JSON line (storm_script, cli's bench-driver script)."""
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
    cores = os.cpu_count() or 1
    if jobs * args.smp > cores:
        log(f"warning: {jobs} guest(s) x {args.smp} vCPUs on {cores} host cores. Measured on "
            "a 2-core host (x86-64, Debian 6.1): JOBS=2 cut the io-wq storm's throughput "
            "about 10x and io_uring KCSAN reports from 115 to 2.5 a minute; races need "
            "vCPUs that really run at once. Use JOBS <= cores / SMP.")
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
    workloads = {name: {"ops_per_s": [], "anomalies": [], "start_s": None}
                 for name, _ in storms}
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
                workloads[name]["anomalies"].append(
                    {k: v for k, v in j.get("counts", {}).items() if k in ANOMALIES and v})
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
    epath, entries = expect.for_version(kinfo.get("version"), expect_file)
    booted = _boot_jobs(args, parts, outdir, storms, secs, jobs, seed0)
    side = merge(booted, storms, entries)
    full = side.pop("full")
    if symbols and full:
        n = symbolize.symbolize(full, kinfo, rec, {"uringrace": artifacts.kmod_path(parts[2])})
        log(f"{arch}: {n} distinct frames placed to file:line by faddr2line")
    side.update(arch=arch, tree=kinfo.get("identity"), version=kinfo.get("version"),
                expect=epath, jobs=jobs, seconds_per_storm=int(secs), reports=full)
    return side


def evidence_for_run(rep, rec, kinfo, work, outdir):
    """For 'run': the io_uring reports of the selftests' guest, classified and
    symbolized, into outdir/evidence.txt; return a short summary."""
    epath, entries = expect.for_version(kinfo.get("version"), os.environ.get("EXPECT"))
    side = merge([(outdir, rep)], (), entries)
    full = [r for r in side.pop("full") if report.scope(r) == "io_uring"]
    if full:
        symbolize.symbolize(full, kinfo, rec, {"uringrace": artifacts.kmod_path(work)})
    side.update(arch=rep["arch"], tree=kinfo.get("identity"), expect=epath, reports=full)
    with open(os.path.join(outdir, "evidence.txt"), "w", encoding="utf-8") as f:
        f.write(render_evidence(side) + "\n")
    io = [g for g in side["titles"] if g["scope"] == "io_uring"]
    races = collections.Counter()
    for g in io:
        races[(_race_key(g), g["verdict"])] += g["count"]
    lines = [f"   io_uring races ({os.path.basename(epath) if epath else 'no expectations'}): "
             + (", ".join(f"{k} {n}x {v}" for (k, v), n in races.items()) or "none")]
    if any(g["verdict"] == "forbidden" for g in io):
        lines.append("   <== a race this tree's expectations forbid was reported")
    lines.append(f"   in full, symbolized: {os.path.join(outdir, 'evidence.txt')}")
    return "\n".join(lines)


def side_ok(side):
    return bool(side["outcomes"]) and all(o["outcome"] == "pass" for o in side["outcomes"])


def _race_key(g):
    return g["id"] or g["title"]


def callouts(a, b):
    """Races (by expectation id, else title) across all workloads and jobs:
    in A and gone in B, new in B, and forbidden ones reported."""
    ra, rb = collections.Counter(), collections.Counter()
    for side, c in ((a, ra), (b, rb)):
        for g in side["titles"]:
            if g["scope"] == "io_uring":
                c[_race_key(g)] += g["count"]
    out = [("gone in B", k, ra[k], 0) for k in ra if k not in rb]
    out += [("NEW in B", k, 0, rb[k]) for k in rb if k not in ra]
    for label, side in (("A", a), ("B", b)):
        forbidden = collections.Counter()
        for g in side["titles"]:
            if g["verdict"] == "forbidden":
                forbidden[_race_key(g)] += g["count"]
        out += [(f"FORBIDDEN in {label}", k, n, n) for k, n in forbidden.items()]
    return out


def callout_lines(calls):
    """callouts() as lines of text."""
    if not calls:
        return ["no io_uring race differs between A and B"]
    return [f"{what}: {key} (A {na}x, B {nb}x)" for what, key, na, nb in calls]


def titles_in(ga, gb, wl):
    """Titles with a report in workload wl on either side, A's first."""
    return [t for t in list(ga) + [t for t in gb if t not in ga]
            if wl in (ga.get(t) or {}).get("by_workload", {})
            or wl in (gb.get(t) or {}).get("by_workload", {})]


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


def anomaly_text(w):
    total = collections.Counter()
    for c in w.get("anomalies", []):
        total.update(c)
    return ", ".join(f"{k} {v}" for k, v in sorted(total.items())) or "none"


def _fmt(w):
    if not w:
        return "-"
    return f"{w['count']}x @{w['first_s']}s" if w["first_s"] is not None else f"{w['count']}x"


def render_compare(a, b):
    out = [f"== {a['arch']}: A = {a['tree']} ({', '.join(o['outcome'] for o in a['outcomes'])}), "
           f"B = {b['tree']} ({', '.join(o['outcome'] for o in b['outcomes'])}); "
           f"{a['jobs']} guest(s) per tree, {a['seconds_per_storm']} s per storm"]
    out.append(f"   {'workload':14} {'scope':10} {'verdict A/B':22} {'KCSAN title':68} "
               f"{'A (first after storm start)':>28} {'B':>14}")
    ga = {g["title"]: g for g in a["titles"]}
    gb = {g["title"]: g for g in b["titles"]}
    for wl, _ in STORMS:
        rows = titles_in(ga, gb, wl)
        if not rows:
            out.append(f"   {wl:14} {'':10} {'':22} {'(no KCSAN report)':68}")
        for t in rows:
            x, y = ga.get(t), gb.get(t)
            g = x or y
            verdict = f"{x['verdict'] if x else '-'}/{y['verdict'] if y else '-'}"
            out.append(f"   {wl:14} {g['scope']:10} {verdict:22} {t[:68]:68} "
                       f"{_fmt((x or {}).get('by_workload', {}).get(wl)):>28} "
                       f"{_fmt((y or {}).get('by_workload', {}).get(wl)):>14}")
    out.append("   throughput (ops/s per guest, median over guests) and anomalies (driver "
               "counters: " + ", ".join(ANOMALIES) + "):")
    for wl, _ in STORMS:
        va, vb = a["workloads"][wl]["ops_per_s"], b["workloads"][wl]["ops_per_s"]
        ma = statistics.median(va) if va else None
        mb = statistics.median(vb) if vb else None
        ratio = f"  B/A {mb / ma:.2f}" if ma and mb else ""
        out.append(f"     {wl:14} A {ma if ma is not None else '-':>10}   "
                   f"B {mb if mb is not None else '-':>10}{ratio:11}  anomalies A "
                   f"{anomaly_text(a['workloads'][wl])}, B {anomaly_text(b['workloads'][wl])}")
    out.append("   races (by expectation id, else title; all workloads and guests):")
    out += [f"     <== {line}" for line in callout_lines(callouts(a, b))]
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


PEER_FIRST_S = 52.0  # liburing's tests, Debian 6.1, 4 vCPUs, skip_watch=200 (DESIGN.md)


def _knobs():
    """KNOBS="label=kernel args@smp;...": KCSAN settings to measure; default
    the run's own (KCSAN_ARGS, SMP)."""
    spec = os.environ.get("KNOBS")
    if not spec:
        return None
    out = []
    for part in spec.split(";"):
        label, _, rest = part.strip().partition("=")
        kargs, _, smp = rest.partition("@")
        if not label or (smp and not smp.isdigit()):
            raise PipelineError(f"KNOBS: want 'label=kernel args@smp', got '{part}'")
        out.append((label, kargs.strip(), int(smp) if smp else None))
    return out


def _median(xs):
    return round(statistics.median(xs), 2) if xs else None


def cmd_bench_real(args):
    """Time to first io_uring KCSAN report per workload and tree (median over
    RUNS runs, default 5), io_uring reports per minute, one guest and JOBS
    guests (default 2) at once; first io-wq race after /init against the
    peer's 52 s. KNOBS measures KCSAN settings side by side."""
    import argparse
    env = os.environ.get
    runs = int(env("RUNS") or 5)
    secs = env("STORM_SECONDS") or "8"
    fleet = int(env("JOBS") or 2)
    pick = [s for s in (env("BENCH_STORMS") or "").replace(",", " ").split() if s]
    storms = tuple(s for s in STORMS if not pick or s[0] in pick)
    if not storms:
        raise PipelineError(f"BENCH_STORMS={env('BENCH_STORMS')}: none of "
                            + ", ".join(n for n, _ in STORMS))
    trees = [(env("KSRC_A") or None, env("KVER_A") or "6.1"),
             (env("KSRC_B") or None, env("KVER_B") or "6.12")]
    knobs = _knobs() or [("as run", args.kcsan_args, args.smp)]
    rd = run_dir(args, "bench-real")
    rows = []
    for arch in args.arch:
        for ks, kv in trees:
            for label, kargs, smp in knobs:
                for jobs in sorted({1, fleet}):
                    sub = argparse.Namespace(**{**vars(args), "ksrc": ks, "kver": kv,
                                                "kcsan_args": kargs, "smp": smp or args.smp})
                    samples = []
                    for i in range(runs):
                        out = os.path.join(rd, f"{arch}-{kv}-{label.replace(' ', '_')}-"
                                               f"j{jobs}-run{i}")
                        side = run_side(sub, arch, out, secs, jobs=jobs, seed0=1 + i * jobs,
                                        storms=storms, symbols=False)
                        samples.append(side)
                    rows.append(_bench_row(arch, kv, label, kargs, smp or args.smp, jobs,
                                           samples, storms, secs))
                    print(_render_bench_row(rows[-1]), flush=True)
    with open(os.path.join(rd, "bench-real.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1)
    print()
    print("\n".join(_render_bench_row(r) for r in rows))
    print(f"peer: liburing's test suite, Debian 6.1, 4 vCPUs, kcsan.skip_watch=200: first io-wq "
          f"report {PEER_FIRST_S:.0f} s after /init. Goal: < 10 s on x86_64 (>= 5x faster).")
    print(f"artifacts: {rd} (bench-real.json, a console.log per guest)")
    return 0


def _bench_row(arch, kver, label, kargs, smp, jobs, samples, storms, secs):
    per_wl = {}
    for name, _ in storms:
        firsts = []
        for s in samples:
            ts = [e["t_workload"] for e in s["events"]
                  if e["workload"] == name and e["scope"] == "io_uring"
                  and e["t_workload"] is not None]
            if ts:
                firsts.append(min(ts))
        per_wl[name] = {"hits": len(firsts), "median_first_s": _median(firsts),
                        "firsts": firsts}
    iowq, any_io, rate, bad = [], [], [], 0
    for s in samples:
        bad += sum(1 for o in s["outcomes"] if o["outcome"] != "pass")
        ev = [e for e in s["events"] if e["scope"] == "io_uring"]
        t = [e["t"] for e in ev if e["id"] == "iowq-worker-flags"
             or any(f in e["title"] for f in ("io_wqe_", "io_wq_", "io_worker_"))]
        if t:
            iowq.append(min(t))
        if ev:
            any_io.append(min(e["t"] for e in ev))
        rate.append(len(ev) / (len(storms) * int(secs) / 60.0))
    return {"arch": arch, "tree": kver, "knobs": label, "kernel_args": kargs, "smp": smp,
            "jobs": jobs, "runs": len(samples), "guest_failures": bad, "workloads": per_wl,
            "iowq_first_after_init": {"hits": len(iowq), "median_s": _median(iowq),
                                      "all": iowq},
            "io_uring_first_after_init": {"hits": len(any_io), "median_s": _median(any_io)},
            "io_uring_reports_per_min": _median(rate)}


def _render_bench_row(r):
    head = (f"{r['arch']:7} {r['tree']:5} {r['knobs'][:18]:18} smp {r['smp']} jobs {r['jobs']}: "
            f"{r['runs']} runs, {r['guest_failures']} guest failures; io_uring reports/min "
            f"{r['io_uring_reports_per_min']}")
    io = r["iowq_first_after_init"]
    speed = f" ({PEER_FIRST_S / io['median_s']:.0f}x the peer)" if io["median_s"] else ""
    lines = [head, f"    first io-wq race after /init: {io['hits']}/{r['runs']} runs, median "
                   f"{io['median_s']} s{speed}; first io_uring report after /init: median "
                   f"{r['io_uring_first_after_init']['median_s']} s"]
    for name, w in r["workloads"].items():
        lines.append(f"    {name:14} first io_uring report {w['hits']}/{r['runs']} runs, median "
                     f"{w['median_first_s']} s after the storm started")
    return "\n".join(lines)
