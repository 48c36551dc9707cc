"""'make bench-pipeline', 'bench-scenarios', 'bench-driver': figures,
printed side by side, never asserted."""

import json
import os
import statistics
import subprocess
import tempfile
import time

from . import artifacts, catalog, results
from .common import REPO
from .guest import boot_once, guest_parts, kernel_for, run_dir
from .storms import driver_results, run_driver_host


def cmd_bench_pipeline(args):
    """Per arch: cold build (recorded when the cache entry was made, or
    measured now with COLD=1 in a throw-away cache), warm no-op rebuild,
    QEMU start to /init (median of 3 boots) and a whole warm check."""
    rows = []
    for arch in args.arch:
        row = {"arch": arch}
        if args.cold:
            with tempfile.TemporaryDirectory(prefix="urr-cold-") as tmp:
                t0 = time.time()
                subprocess.run(["python3", os.path.join(REPO, "scripts", "urr"), "--arch", arch,
                                "kernel"], env={**os.environ, "URINGRACE_CACHE": tmp},
                               check=True)
                row["cold_build_s"] = round(time.time() - t0, 1)
        rec, kinfo = kernel_for(args, arch)
        row.setdefault("cold_build_s", kinfo.cold_seconds or "n/a (COLD=1)")
        t0 = time.time()
        rec, kinfo = kernel_for(args, arch)
        row["warm_rebuild_s"] = round(time.time() - t0, 1)
        row["warm_compiled"] = kinfo.compiled
        rec, kinfo, work, files, tests = guest_parts(args, arch)
        boots = []
        for i in range(3):
            rep = boot_once(args, rec, kinfo, work, {}, [],
                            os.path.join(work, f"bench-boot-{i}"), cmd="true")
            if rep["boot"].to_init_s is not None:
                boots.append(rep["boot"].to_init_s)
        row["to_init_s"] = round(statistics.median(boots), 2) if boots else None
        t0 = time.time()
        res = subprocess.run(["python3", os.path.join(REPO, "scripts", "urr"), "--arch", arch,
                              "check"], capture_output=True, text=True, check=False)
        row["check_s"] = round(time.time() - t0, 1)
        row["check_closing"] = (res.stdout.strip().splitlines() or ["?"])[-1]
        rows.append(row)
    print(f"{'arch':8} {'cold build':>11} {'warm rebuild':>13} {'compiled':>9} "
          f"{'QEMU->/init':>12} {'warm check':>11}  check result")
    for r in rows:
        print(f"{r['arch']:8} {str(r['cold_build_s']) + ' s':>11} "
              f"{str(r['warm_rebuild_s']) + ' s':>13} {r['warm_compiled']:>9} "
              f"{str(r['to_init_s']) + ' s':>12} {str(r['check_s']) + ' s':>11}  "
              f"{r['check_closing']}")
    print("goals: warm check < 180 s per arch; QEMU start to /init < 10 s on x86_64")
    rd = run_dir(args, "bench")
    with open(os.path.join(rd, "bench-pipeline.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1)
    print(f"artifacts: {rd}")
    return 0


def cmd_bench_scenarios(args):
    """Per arch, in one guest boot, RUNS times (default 5) each: every buggy
    kthread variant that verdicts.txt expects to be detected there (detection
    rate, time to detect; a run ends at its first detection) and every fixed
    one for FIXED_SECONDS (default 2: ten times the buggy medians; false
    positives and work done). Buggy variants not observable on the platform
    are listed as such: their rates are measured by bench-driver."""
    runs, fixed_secs = args.runs, args.fixed_seconds
    rd = run_dir(args, "bench-scenarios")
    table = []
    for arch in args.arch:
        expect = {sc: (catalog.verdict_for(sc, "buggy", "kthread", arch, "tcg") or {}).get(
            "expect") for sc in catalog.scenario_names()}
        buggy = [f"{sc}_buggy" for sc, e in expect.items() if e == "detected"]
        fixed = [f"{sc}_fixed" for sc in catalog.scenario_names()]
        table += [{"arch": arch, "variant": f"{sc}_buggy", "runs": 0, "detected": 0,
                   "detector": e} for sc, e in expect.items() if e != "detected"]
        cmd = (f"cd /{artifacts.COLLECTION}/uringrace && for i in $(seq {runs}); do for v in "
               f"{' '.join(buggy)}; do URINGRACE_ONLY=$v ./scenarios; done; for v in "
               f"{' '.join(fixed)}; do URINGRACE_SECONDS={fixed_secs} URINGRACE_ONLY=$v "
               "./scenarios; done; done; true")
        rec, kinfo, work, files, tests = guest_parts(args, arch)
        rep = boot_once(args, rec, kinfo, work, files, tests, os.path.join(rd, arch), cmd=cmd,
                        timeout=max(args.timeout, 120 + runs * (4 * len(buggy) + (
                            fixed_secs + 4) * len(fixed))))
        if not rep["boot"].passed:
            print(f"{arch}: guest {rep['boot'].outcome} ({rep['boot'].reason})")
            table.append({"arch": arch, "outcome": rep["boot"].outcome})
            continue
        samples = {}
        for r in results.parse_results(results.read(os.path.join(rd, arch, "ktap.txt"))):
            samples.setdefault(r.get("label"), []).append(r)
        for key in buggy + fixed:
            got = samples.get(key, [])
            firsts = [r["first_s"] for r in got if r.get("first_s") is not None]
            row = {"arch": arch, "variant": key, "runs": len(got), "detected": len(firsts),
                   "detector": got[0]["detector"] if got else "-",
                   "ops": sum(r["ops"] for r in got),
                   "no_work": sum(1 for r in got if not r["ops"])}
            if key.endswith("_buggy") and firsts:
                row.update(median_s=round(statistics.median(firsts), 2),
                           min_s=round(min(firsts), 2), max_s=round(max(firsts), 2))
            if key.endswith("_fixed") and got:
                row["clean_s"] = round(sum(r["seconds"] for r in got
                                           if r.get("first_s") is None), 1)
            table.append(row)
    print(f"RUNS={runs}, fixed variants {fixed_secs} s a run (FIXED_SECONDS)")
    print(f"{'arch':8} {'variant':22} {'detector':14} {'runs':>4} {'detected':>8} "
          f"{'median':>8} {'min':>6} {'max':>6} {'clean s':>8} {'ops':>10}")
    for r in table:
        if "variant" not in r:
            continue
        print(f"{r['arch']:8} {r['variant']:22} {r['detector']:14} {r['runs']:>4} "
              f"{r['detected']:>8} {str(r.get('median_s', '-')):>8} "
              f"{str(r.get('min_s', '-')):>6} {str(r.get('max_s', '-')):>6} "
              f"{str(r.get('clean_s', '-')):>8} {r.get('ops', '-'):>10}")
    print("goal: every buggy variant detected in at least 99 of 100 runs, every fixed one in "
          "none; a run without work (ops 0) counts for neither")
    with open(os.path.join(rd, "bench-scenarios.json"), "w", encoding="utf-8") as f:
        json.dump(table, f, indent=1)
    print(f"artifacts: {rd}")
    bad = [r for r in table if "variant" in r and r["runs"] and (
        r["no_work"] or (r["variant"].endswith("_fixed") and r["detected"]))]
    return 1 if bad or any("outcome" in r for r in table) else 0


BENCH_DRIVER = (
    ("nop raw", ["nop", "--via", "raw", "--threads", "1", "--duration", "{d}"]),
    ("nop liburing", ["nop", "--via", "liburing", "--threads", "1", "--duration", "{d}"]),
    ("sqpoll fence on", ["sqpoll", "--fence", "on", "--duration", "{d}"]),
    ("sqpoll fence off", ["sqpoll", "--fence", "off", "--duration", "{d}"]),
    ("module sqpoll_wakeup on", ["sqpoll_wakeup", "--variant", "fixed", "--fence", "on",
                                 "--duration", "{d}"]),
    ("module sqpoll_wakeup off", ["sqpoll_wakeup", "--variant", "buggy", "--fence", "off",
                                  "--duration", "{d}"]),
    ("litmus on", ["litmus", "--fence", "on", "--duration", "{d}"]),
    ("litmus off", ["litmus", "--fence", "off", "--duration", "{d}"]),
)


def driver_script(runs):
    """Guest shell running the driver once per (label, argv), each result
    line labelled (read back by storms.driver_results)."""
    parts = [f"/usr/bin/uringrace {' '.join(argv)} --json --label '{label}'"
             for label, argv in runs]
    return "; ".join(parts) + "; true"


def _bench_driver_rows(where, lines):
    rows = []
    for label, r in lines:
        if r.get("skipped"):
            rows.append((where, label, r["workload"], "skipped: " + r["skipped"][:60]))
            continue
        rate = r["ops"] / r["seconds"] if r["seconds"] else 0
        extra = "; ".join(f"{k} {v} ({1e6 * v / max(r['ops'], 1):.1f}/M)"
                          for k, v in r.get("anomalies", {}).items())
        rows.append((where, label, r["workload"], f"{r['ops']} ops, {rate:,.0f}/s; {extra}"))
    return rows


def cmd_bench_driver(args):
    """In one run, on the host and in each guest: NOP round trips raw vs
    liburing (ratio), SQPOLL and module sqpoll_wakeup stalls per million with
    and without the fence, litmus witnesses per million with and without."""
    secs = str(args.bench_seconds)
    rd = run_dir(args, "bench-driver")
    drv = artifacts.build_host_driver()
    host = []
    for label, argv in BENCH_DRIVER:
        if argv[0] == "sqpoll_wakeup":
            continue  # needs the module: guests only
        _, got = run_driver_host(drv, [a.format(d=secs) for a in argv])
        host += [(label, r) for r in got]
    results = {"host": host}
    for arch in args.arch:
        rec, kinfo, work, files, tests = guest_parts(args, arch)
        runs = [(label, [a.format(d=secs) for a in argv]) for label, argv in BENCH_DRIVER]
        script = "insmod /lib/modules/uringrace.ko; " + driver_script(runs)
        rep = boot_once(args, rec, kinfo, work, files, tests, os.path.join(rd, arch),
                        cmd=script)
        got = list(driver_results(os.path.join(rd, arch, "ktap.txt")).items())
        results[arch] = got
        if not rep["boot"].passed:
            print(f"{arch}: guest {rep['boot'].outcome}: {rep['boot'].reason}")
    rows = []
    for where, lines in results.items():
        rows += _bench_driver_rows(where, lines)
        nop = {lab: r for lab, r in lines if lab.startswith("nop") and not r.get("skipped")}
        if len(nop) == 2:
            raw, lib = nop["nop raw"], nop["nop liburing"]
            ratio = (raw["ops"] / raw["seconds"]) / max(lib["ops"] / lib["seconds"], 1e-9)
            rows.append((where, "nop raw/liburing", "", f"ratio {ratio:.2f} (goal >= 1)"))
    for row in rows:
        print(f"{row[0]:8} {row[1]:26} {row[2]:22} {row[3]}")
    with open(os.path.join(rd, "bench-driver.json"), "w", encoding="utf-8") as f:
        json.dump({k: [[lab, r] for lab, r in v] for k, v in results.items()}, f, indent=1)
    print(f"artifacts: {rd}")
    return 0
