"""What runs: the real-io_uring storms of storms.txt in KCSAN guests of one
tree (one guest, or JOBS guests with different seeds, merged), classified
against the tree's expectations; and the driver run on the host."""

import collections
import hashlib
import json
import os
import subprocess
import threading
import time

from . import artifacts, catalog, expect, kbuild, report, results, symbolize
from .common import REPO, PipelineError, cache_dir, digest, log
from .guest import boot_once, guest_parts
from .records import Outcome, Side, to_json


# (storm name, driver arguments): storms.txt's "compare" set, io-wq first
STORMS = catalog.storm_set("compare")


def storm_script(storms, secs, seed):
    """Guest shell: per storm a kernel-log marker (so reports are charged to
    it) and the driver's result line, labelled with the storm's name."""
    parts = []
    for name, argv in storms:
        parts.append(f"echo 'uringrace: subtest-start {name}' > /dev/kmsg; "
                     f"/usr/bin/uringrace {argv} --duration {secs} --seed {seed} --json "
                     f"--label {name}")
    return "; ".join(parts) + "; true"


def driver_results(ktap_path):
    """{label: result} from the result lines of a run's KTAP stream."""
    return results.by_label(results.read(ktap_path))


def run_driver_host(drv, argv):
    """Run the driver here with --json: (exit status, its results)."""
    res = subprocess.run([drv] + argv + ["--json"], capture_output=True, text=True,
                         check=False, timeout=120)
    return res.returncode, results.parse_results(res.stdout)


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
        outcomes.append({"job": job, "outcome": rep["boot"].outcome,
                         "reason": rep["boot"].reason, "dir": sub,
                         "seconds": rep["boot"].seconds})
        init = rep["init_time"] or 0.0
        starts = {s["name"].split("/", 1)[-1]: s["start"] for s in rep["subtests"]}
        for name, j in driver_results(os.path.join(sub, "ktap.txt")).items():
            if name in workloads and j.get("seconds"):
                workloads[name]["ops_per_s"].append(round(j["ops"] / j["seconds"]))
                workloads[name]["anomalies"].append(
                    {k: v for k, v in j.get("anomalies", {}).items() if v})
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
            verdict, rid = expect.classify(r, entries)
            since_init = round(r["time"] - init, 2)
            since_wl = round(r["time"] - starts[wl], 2) if starts.get(wl) is not None else None
            events.append({"job": job, "workload": wl, "t": since_init, "t_workload": since_wl,
                           "title": r["title"], "scope": scope, "verdict": verdict, "id": rid})
            g = titles.setdefault(r["title"], {
                "title": r["title"], "scope": scope, "verdict": verdict, "id": rid,
                "count": 0, "first_s": since_init, "by_workload": {}, "unknown_origin": False})
            g["count"] += 1
            g["unknown_origin"] |= r["unknown_origin"]
            g["first_s"] = min(g["first_s"], since_init)
            w = g["by_workload"].setdefault(wl, {"count": 0, "first_s": since_wl})
            w["count"] += 1
            if since_wl is not None and (w["first_s"] is None or since_wl < w["first_s"]):
                w["first_s"] = since_wl
            if scope != "other":
                r["job"], r["t_workload"] = job, since_wl
                full.append(r)
    return Side(outcomes=outcomes, workloads=workloads, titles=list(titles.values()),
                events=events, reports=full)


def _file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def side_key(args, parts, storms, secs, jobs, seed0, epath, symbols):
    """What a side's result depends on: the kernel build, every file the
    guest gets (driver, module, tests) and its /init, the storms and their
    seconds, guests and seeds, the expectations, the QEMU and KCSAN knobs."""
    rec, kinfo, _, files, _ = parts
    bits = [kinfo.key, rec.arch, str(secs), str(jobs), str(seed0), str(symbols), str(args.smp),
            str(args.mem), args.accel, args.kcsan_args, _file_digest(os.path.join(REPO, "guest",
                                                                                  "init"))]
    bits += [f"{n} {a}" for n, a in storms]
    bits += [f"{g} {_file_digest(h)}" for g, h in sorted(files.items())]
    bits.append(_file_digest(epath) if epath else "")
    return digest(*bits)


def run_side(args, arch, outdir, secs, jobs=1, seed0=1, storms=STORMS, expect_file=None,
             symbols=True, reuse=False):
    """One tree, one arch: boot `jobs` guests running the storms; return the
    merged Side. reuse: a side that passed with exactly these inputs
    (side_key) is read from the cache instead of run again (the unpatched
    tree A of a patch loop: only B's side is new work)."""
    parts = guest_parts(args, arch)
    try:
        return _side(args, arch, outdir, secs, jobs, seed0, storms, expect_file, symbols,
                     reuse, parts)
    finally:
        kbuild.in_use(parts[1], False)  # a tree B: another patch's build may remove it now


def _side(args, arch, outdir, secs, jobs, seed0, storms, expect_file, symbols, reuse, parts):
    rec, kinfo = parts[0], parts[1]
    epath, entries = expect.for_version(kinfo.version, expect_file)
    saved = os.path.join(cache_dir(), "sides", side_key(args, parts, storms, secs, jobs, seed0,
                                                         epath, symbols) + ".json")
    if reuse and os.path.exists(saved):
        with open(saved, encoding="utf-8") as f:
            d = json.load(f)
        log(f"{arch}: tree {kinfo.identity}'s side reused, the same inputs passed at "
            f"{d['when']} (its guests' logs: {d['outdir']}; REUSE_A=0 runs it again)")
        os.makedirs(outdir, exist_ok=True)
        with open(os.path.join(outdir, "reused-from"), "w", encoding="utf-8") as f:
            f.write(d["outdir"] + "\n")
        return Side(**d["side"])
    booted = _boot_jobs(args, parts, outdir, storms, secs, jobs, seed0)
    side = merge(booted, storms, entries)
    if symbols and side.reports:
        n = symbolize.symbolize(side.reports, kinfo, rec,
                                {"uringrace": artifacts.kmod_path(parts[2])})
        log(f"{arch}: {n} distinct frames placed to file:line (nm + addr2line; faddr2line "
            "for the module)")
    side = side.replace(arch=arch, tree=kinfo.identity, version=kinfo.version, expect=epath,
                        jobs=jobs, seconds_per_storm=int(secs))
    if side_ok(side):
        # only a side that passed is worth reusing; written whole, then renamed
        os.makedirs(os.path.dirname(saved), exist_ok=True)
        with open(saved + ".tmp", "w", encoding="utf-8") as f:
            json.dump({"when": time.strftime("%Y-%m-%d %H:%M:%S"), "outdir": outdir,
                       "side": side}, f, default=to_json)
        os.rename(saved + ".tmp", saved)
    return side


def anomalies(side, storms):
    """The anomalies a side's results count over the given storms (every
    guest, every counter): the one sum compare, mutate and check read."""
    return sum(sum(c.values()) for wl in storms
               for c in side.workloads.get(wl, {}).get("anomalies", []))


def missing_work(side):
    """Storms of a side that gave no result with work done (no result line,
    a skip, an error or 0 operations in a guest): each is a failure."""
    jobs = len(side.outcomes)
    return [wl for wl, w in side.workloads.items()
            if len(w["ops_per_s"]) < jobs or not all(w["ops_per_s"])]


def side_ok(side):
    """Every guest passed and every storm did work in each of them."""
    return bool(side.outcomes) and all(o["outcome"] == Outcome.PASS for o in side.outcomes) \
        and not missing_work(side)
