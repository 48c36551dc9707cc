"""Command line: each subcommand is one pipeline stage or a chain of them."""

import argparse
import os
import sys

import json
import time

from . import real, report, tree
from .common import REPO, PipelineError, cache_dir
from .guest import boot_once, guest_parts, kernel_for, run_dir


def cmd_kernel(args):
    for arch in args.arch:
        kernel_for(args, arch)
    return 0


def cmd_run(args):
    rd = run_dir(args, "run")
    reps, evidence = [], []
    for arch in args.arch:
        rec, kinfo, work, files, tests = guest_parts(args, arch)
        rep = boot_once(args, rec, kinfo, work, files, tests, os.path.join(rd, arch),
                        cmd=args.cmd)
        reps.append(rep)
        evidence.append(real.evidence_for_run(rep, rec, kinfo, work, os.path.join(rd, arch)))
    text = "\n".join(report.render(r) + "\n" + e for r, e in zip(reps, evidence))
    with open(os.path.join(rd, "summary.txt"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    with open(os.path.join(rd, "report.json"), "w", encoding="utf-8") as f:
        json.dump({"runs": [{k: r[k] for k in ("arch", "kernel", "boot", "ktap_summary",
                                                "kcsan")} for r in reps]}, f, indent=1)
    print(text)
    print(f"artifacts: {rd} (console.log, ktap.txt, report.json, evidence.txt per arch; "
          "summary.txt)")
    bad = [r for r in reps if r["boot"]["outcome"] != "pass"]
    return 1 if bad else 0


class Tally:
    """Results of 'check', closed by the plain 'N passed, N failed' line."""

    def __init__(self):
        self.rows = []

    def add(self, name, ok, detail=""):
        self.rows.append((name, ok, detail))
        print(f"{'ok' if ok else 'FAIL':4}  {name}{'  -- ' + detail if detail else ''}",
              flush=True)

    def close(self):
        passed = sum(1 for _, ok, _ in self.rows if ok)
        failed = len(self.rows) - passed
        print(f"{passed} passed, {failed} failed")
        return 0 if failed == 0 else 1


# Guest commands that must reach the host as something other than a pass.
RUNNER_CASES = (
    ("runner: failing command -> fail, status 3", "exit 3", "fail", 3, None),
    ("runner: kernel panic -> panic", "echo c > /proc/sysrq-trigger", "panic", None, None),
    ("runner: hang -> hang at the host timeout", "sleep 100000", "hang", None, 20),
    ("runner: passing command -> pass", "true", "pass", 0, None),
)


def _host_step(tally, name, argv):
    import subprocess
    res = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    tail = (res.stdout + res.stderr).strip().splitlines()[-3:]
    tally.add(name, res.returncode == 0, "" if res.returncode == 0 else " | ".join(tail))


def _driver_json(drv, argv):
    import subprocess
    res = subprocess.run([drv] + argv + ["--json"], capture_output=True, text=True,
                         check=False, timeout=120)
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    return res.returncode, rows


def host_leg(tally, workdir):
    """The C++ driver's host tests and the real-hardware leg: store buffering
    was not observed under TCG here but is on the host CPU."""
    import subprocess
    out = os.path.join(workdir, "host-user")
    res = subprocess.run(["make", "-s", "-C", os.path.join(REPO, "user"), f"OUTPUT={out}",
                          "test"], capture_output=True, text=True, check=False)
    tail = (res.stdout + res.stderr).strip().splitlines()[-2:]
    tally.add("host: C++ driver unit tests (gtest)", res.returncode == 0, " | ".join(tail))
    drv = os.path.join(out, "uringrace")
    rows = {}
    for fence in ("on", "off"):
        rc, got = _driver_json(drv, ["litmus", "--ops", "2000000", "--duration", "60",
                                       "--fence", fence])
        for r in got:
            rows[(r["workload"], fence)] = r
    for proto in ("litmus:sqpoll_wakeup", "litmus:ringbuf_notify"):
        on, off = rows.get((proto, "on")), rows.get((proto, "off"))
        if not on or not off:
            tally.add(f"host: {proto}", False, "driver gave no result")
            continue
        won, woff = on["counts"]["witnesses"], off["counts"]["witnesses"]
        detail = (f"fence on: {won} witnesses in {on['ops']} iterations; fence off: {woff} "
                  f"in {off['ops']} ({1e6 * woff / max(off['ops'], 1):.0f}/M)")
        tally.add(f"host: {proto} clean with the fence", won == 0 and on["ops"] >= 1000000,
                  detail)
        tally.add(f"host: {proto} store buffering seen without it",
                  woff > 0 and off["ops"] >= 1000000, detail)
    rc, got = _driver_json(drv, ["sqpoll", "--duration", "2", "--fence", "on"])
    if rc == 4:
        tally.add("host: real SQPOLL storm, fence on: no stall", True,
                  "skipped: " + (got[0].get("skipped", "") if got else "?"))
    else:
        r = got[0] if got else {"ops": 0, "counts": {}}
        _, offr = _driver_json(drv, ["sqpoll", "--duration", "2", "--fence", "off"])
        off = offr[0] if offr else {"ops": 0, "counts": {}}
        tally.add("host: real SQPOLL storm, fence on: no stall",
                  rc == 0 and r["ops"] > 0 and r["counts"].get("stalls", 1) == 0,
                  f"on: {r['counts'].get('stalls')} stalls in {r['ops']}; off (measured, "
                  f"not asserted): {off['counts'].get('stalls')} in {off['ops']}")


def _symbolize_step(arch, rep, rec, kinfo, work):
    """faddr2line with this build's module (and cross binutils on arm64): the
    top frame of the module's KCSAN reports must come back as kmod/<file>.c:line."""
    import re
    from . import artifacts, symbolize
    mods = [r for r in rep["reports"] if report.scope(r) == "uringrace"][:4]
    name = f"{arch}: KCSAN stacks symbolized to file:line (faddr2line)"
    if not mods:
        return name, False, "no module KCSAN report in this run to symbolize"
    symbolize.symbolize(mods, kinfo, rec, {"uringrace": artifacts.kmod_path(work)})
    tops = [a["stack"][0] for r in mods for a in r["accesses"] if a["stack"]]
    good = [t for t in tops if t.get("where")
            and re.match(r"(\(inlined by\) )?kmod/\w+\.c:\d+ ", t["where"][-1])]
    ex = tops[0].get("where", ["none"])[-1] if tops else "none"
    return name, bool(tops) and len(good) == len(tops), \
        f"{len(good)}/{len(tops)} top frames placed, e.g. {tops[0]['fn']} -> {ex}"


def _fleet_step(args, arch, rec, kinfo, work, files, rd):
    """The installed collection, run by the kernel's own run_kselftest.sh in
    the guest, as a lab would: two tests that need the module and the
    driver found inside the collection."""
    from . import artifacts
    name = f"{arch}: fleet: run_kselftest.sh runs 'make -C selftests install' output"
    coll = artifacts.install_collection(kinfo, rec, work, files["usr/bin/uringrace"],
                                        files["lib/modules/uringrace.ko"])
    gcmd = ("cd /opt/kselftest && ./run_kselftest.sh -t uringrace:io_uring_nop "
            "-t uringrace:control")
    r = boot_once(args, rec, kinfo, work, coll, [], os.path.join(rd, arch, "fleet"), cmd=gcmd)
    with open(os.path.join(rd, arch, "fleet", "ktap.txt"), encoding="utf-8",
              errors="replace") as f:
        ktap = f.read()
    want = ("ok 1 selftests: uringrace: io_uring_nop", "ok 2 selftests: uringrace: control")
    ok = r["boot"]["outcome"] == "pass" and all(w in ktap for w in want) \
        and "not ok" not in ktap
    return name, ok, f"{r['boot']['outcome']}; " + ", ".join(
        f"{w.split(': ')[-1]} {'ok' if w in ktap else 'missing'}" for w in want)


def cmd_check(args):
    rd = run_dir(args, "check")
    tally = Tally()
    _host_step(tally, "host: parser, classifier, config and cpio unit tests",
               ["python3", "-m", "unittest", "discover", "-s", "tests", "-t", "."])
    # checkpatch.pl comes from the kernel tree: have it extracted first (on a
    # fresh machine nothing else has done so yet)
    try:
        tree.resolve(args.ksrc, args.kver)
    except PipelineError as exc:
        tally.add("host: kernel tree for checkpatch", False, str(exc))
    _host_step(tally, "host: lint (checkpatch, clang-format, shellcheck)",
               ["bash", "scripts/lint.sh"])
    host_leg(tally, os.path.join(cache_dir(), "work"))
    for arch in args.arch:
        try:
            rec, kinfo, work, files, tests = guest_parts(args, arch)
        except PipelineError as exc:
            tally.add(f"{arch}: build", False, str(exc))
            continue
        rep = boot_once(args, rec, kinfo, work, files, tests, os.path.join(rd, arch))
        print(report.render(rep), flush=True)
        s = rep["ktap_summary"]
        ran = s["passed"] + s["failed"]
        tally.add(f"{arch}: selftests in the KCSAN guest", rep["boot"]["outcome"] == "pass"
                  and s["failed"] == 0 and ran == len(tests),
                  f"{rep['boot']['outcome']}, {s['passed']} passed, {s['failed']} failed, "
                  f"{s['skipped']} skipped of {len(tests)}")
        tally.add(*_symbolize_step(arch, rep, rec, kinfo, work))
        if arch != args.arch[0]:
            continue
        tally.add(*_fleet_step(args, arch, rec, kinfo, work, files, rd))
        for name, gcmd, want, want_status, tmo in RUNNER_CASES:
            sub = os.path.join(rd, arch, "runner-" + want)
            r = boot_once(args, rec, kinfo, work, {}, [], sub, cmd=gcmd, timeout=tmo)
            got = r["boot"]
            ok = got["outcome"] == want and (want_status is None or got["status"] == want_status)
            tally.add(f"{arch}: {name}", ok, f"got {got['outcome']} ({got['reason']})")
    print(f"artifacts: {rd}")
    return tally.close()


def cmd_bench_pipeline(args):
    """Per arch: cold build (recorded when the cache entry was made, or
    measured now with COLD=1 in a throw-away cache), warm no-op rebuild,
    QEMU start to /init (median of 3 boots) and a whole warm check."""
    import statistics
    import subprocess
    import tempfile
    rows = []
    for arch in args.arch:
        row = {"arch": arch}
        if os.environ.get("COLD") == "1":
            with tempfile.TemporaryDirectory(prefix="urr-cold-") as tmp:
                t0 = time.time()
                subprocess.run(["python3", os.path.join(REPO, "scripts", "urr"), "--arch", arch,
                                "kernel"], env={**os.environ, "URINGRACE_CACHE": tmp},
                               check=True)
                row["cold_build_s"] = round(time.time() - t0, 1)
        rec, kinfo = kernel_for(args, arch)
        row.setdefault("cold_build_s", kinfo.get("cold_seconds") or "n/a (COLD=1)")
        t0 = time.time()
        rec, kinfo = kernel_for(args, arch)
        row["warm_rebuild_s"] = round(time.time() - t0, 1)
        row["warm_compiled"] = kinfo["compiled"]
        rec, kinfo, work, files, tests = guest_parts(args, arch)
        boots = []
        for i in range(3):
            rep = boot_once(args, rec, kinfo, work, {}, [],
                            os.path.join(work, f"bench-boot-{i}"), cmd="true")
            if rep["boot"]["to_init_s"] is not None:
                boots.append(rep["boot"]["to_init_s"])
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
    """Time to first detection of each KCSAN-detected buggy variant over RUNS
    runs (default 5) per arch, and each fixed variant's clean run length, in
    one guest boot per arch."""
    import re
    import statistics
    runs = int(os.environ.get("RUNS") or 5)
    buggy = [sc + "_buggy" for sc in ("iowq_flags", "sq_head", "cq_tail")]
    fixed = [sc + "_fixed" for sc in ("iowq_flags", "sq_head", "cq_tail", "sqpoll_wakeup",
                                       "ringbuf_notify")]
    loop = " ".join(buggy)
    cmd = (f"cd /usr/lib/uringrace/selftests && for i in $(seq {runs}); do for v in {loop}; "
           f"do URINGRACE_ONLY=$v ./scenarios; done; done; for v in {' '.join(fixed)}; do "
           f"URINGRACE_ONLY=$v ./scenarios; done; true")
    line_re = re.compile(r"verdict:(\w+) (buggy|fixed) on (\S+): (\d+) ops in ([\d.]+) s;.*"
                         r"KCSAN: probe (\d+) matched.*kmsg (\d+) matched.*first detection "
                         r"(none )?([\d.]+) s")
    rd = run_dir(args, "bench-scenarios")
    table = []
    for arch in args.arch:
        rec, kinfo, work, files, tests = guest_parts(args, arch)
        rep = boot_once(args, rec, kinfo, work, files, tests, os.path.join(rd, arch), cmd=cmd,
                        timeout=max(args.timeout, 120 + runs * 60))
        if rep["boot"]["outcome"] != "pass":
            print(f"{arch}: guest {rep['boot']['outcome']} ({rep['boot']['reason']})")
            table.append({"arch": arch, "outcome": rep["boot"]["outcome"]})
            continue
        with open(os.path.join(rd, arch, "ktap.txt"), encoding="utf-8") as f:
            text = f.read()
        samples = {}
        for m in line_re.finditer(text):
            key = f"{m.group(1)}_{m.group(2)}"
            first = None if m.group(8) else float(m.group(9))
            samples.setdefault(key, []).append((first, float(m.group(5)), int(m.group(4))))
        for key in buggy + fixed:
            got = samples.get(key, [])
            firsts = [f for f, _, _ in got if f is not None]
            row = {"arch": arch, "variant": key, "runs": len(got), "detected": len(firsts)}
            if key.endswith("_buggy") and firsts:
                row.update(median_s=round(statistics.median(firsts), 2),
                           min_s=round(min(firsts), 2), max_s=round(max(firsts), 2))
            if key.endswith("_fixed") and got:
                row["clean_s"] = round(sum(t for f, t, _ in got if f is None), 1)
                row["ops"] = sum(o for _, _, o in got)
            table.append(row)
    print(f"{'arch':8} {'variant':22} {'runs':>4} {'detected':>8} {'median':>8} {'min':>6} "
          f"{'max':>6} {'clean run':>10}")
    for r in table:
        if "variant" not in r:
            continue
        print(f"{r['arch']:8} {r['variant']:22} {r['runs']:>4} {r['detected']:>8} "
              f"{str(r.get('median_s', '-')):>8} {str(r.get('min_s', '-')):>6} "
              f"{str(r.get('max_s', '-')):>6} {str(r.get('clean_s', '-')):>10}")
    print("goal: every buggy variant detected in every run; median < 10 s on x86_64")
    with open(os.path.join(rd, "bench-scenarios.json"), "w", encoding="utf-8") as f:
        json.dump(table, f, indent=1)
    print(f"artifacts: {rd}")
    return 0


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


def _driver_script(runs):
    """Guest shell running the driver once per (label, argv): a '## label'
    line, then its JSON line (read back by real.driver_results)."""
    parts = [f"echo '## {label}'; /usr/bin/uringrace {' '.join(argv)} --json"
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
                          for k, v in r["counts"].items()
                          if k in ("stalls", "witnesses", "bad_cqe"))
        rows.append((where, label, r["workload"], f"{r['ops']} ops, {rate:,.0f}/s; {extra}"))
    return rows


def cmd_bench_driver(args):
    """In one run, on the host and in each guest: NOP round trips raw vs
    liburing (ratio), SQPOLL and module sqpoll_wakeup stalls per million with
    and without the fence, litmus witnesses per million with and without."""
    import subprocess
    secs = os.environ.get("BENCH_SECONDS") or "3"
    rd = run_dir(args, "bench-driver")
    out = os.path.join(cache_dir(), "work", "host-user")
    subprocess.run(["make", "-s", "-C", os.path.join(REPO, "user"), f"OUTPUT={out}",
                    os.path.join(out, "uringrace")], check=True)
    drv = os.path.join(out, "uringrace")
    host = []
    for label, argv in BENCH_DRIVER:
        if argv[0] == "sqpoll_wakeup":
            continue  # needs the module: guests only
        _, got = _driver_json(drv, [a.format(d=secs) for a in argv])
        host += [(label, r) for r in got]
    results = {"host": host}
    for arch in args.arch:
        rec, kinfo, work, files, tests = guest_parts(args, arch)
        runs = [(label, [a.format(d=secs) for a in argv]) for label, argv in BENCH_DRIVER]
        script = "insmod /lib/modules/uringrace.ko; " + _driver_script(runs)
        rep = boot_once(args, rec, kinfo, work, files, tests, os.path.join(rd, arch),
                        cmd=script)
        got = list(real.driver_results(os.path.join(rd, arch, "ktap.txt")).items())
        results[arch] = got
        if rep["boot"]["outcome"] != "pass":
            print(f"{arch}: guest {rep['boot']['outcome']}: {rep['boot']['reason']}")
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


def parser():
    p = argparse.ArgumentParser(prog="urr", description=__doc__)
    p.add_argument("--ksrc", default=os.environ.get("KSRC") or None,
                   help="kernel tree (default: Debian's linux-source-$KVER)")
    p.add_argument("--kver", default=os.environ.get("KVER") or tree.DEFAULT_KVER)
    p.add_argument("--arch", type=lambda s: [a for a in s.replace(",", " ").split() if a],
                   default=(os.environ.get("ARCHES") or "x86_64").replace(",", " ").split(),
                   help="x86_64, arm64 or 'x86_64,arm64'")
    _guest_opts(p)
    sub = p.add_subparsers(dest="cmd_name", required=True)
    k = sub.add_parser("kernel", help="configure and build the KCSAN kernel (cached)")
    k.set_defaults(func=cmd_kernel)
    r = sub.add_parser("run", help="build everything, boot, run the selftests, report")
    r.set_defaults(func=cmd_run)
    cp = sub.add_parser("compare", help="the same storms on two trees, side by side")
    cp.set_defaults(func=real.cmd_compare)
    br = sub.add_parser("bench-real", help="time to first io_uring report per workload and tree")
    br.set_defaults(func=real.cmd_bench_real)
    bd = sub.add_parser("bench-driver", help="driver figures on the host and in each guest")
    bd.set_defaults(func=cmd_bench_driver)
    bs = sub.add_parser("bench-scenarios", help="time to first detection, RUNS runs per arch")
    bs.set_defaults(func=cmd_bench_scenarios)
    b = sub.add_parser("bench-pipeline", help="pipeline timings per arch (COLD=1: real cold build)")
    b.set_defaults(func=cmd_bench_pipeline)
    c = sub.add_parser("check", help="host unit tests, lint, guest selftests, runner tests")
    c.set_defaults(func=cmd_check, cmd=None)
    for sp in (r,):
        sp.add_argument("--cmd", default=os.environ.get("CMD") or None,
                        help="run this shell command in the guest instead of the selftests")
    return p


# Measured (README, "Tuning"): on 2 vCPUs, checking 1 access in 200 instead of
# KCSAN's 1 in 4000 doubled io_uring reports per minute and halved the time to
# the first io-wq race on Debian 6.1, for a 4x slower io-wq storm.
DEFAULT_KCSAN_ARGS = "kcsan.skip_watch=200"


def _guest_opts(p):
    env = os.environ.get
    p.add_argument("--smp", type=int, default=int(env("SMP") or 2))
    p.add_argument("--mem", type=int, default=int(env("MEM") or 2048))
    p.add_argument("--timeout", type=int, default=int(env("TIMEOUT") or 900),
                   help="host-side limit for one guest run, seconds")
    p.add_argument("--accel", default=env("ACCEL") or "auto", choices=("auto", "tcg", "kvm"))
    kargs = env("KCSAN_ARGS") or DEFAULT_KCSAN_ARGS
    p.add_argument("--kcsan-args", default="" if kargs == "none" else kargs,
                   help=f"extra kernel command line (default {DEFAULT_KCSAN_ARGS}; "
                        "'none' for KCSAN's own defaults)")
    p.add_argument("--out", default=env("OUT") or os.path.join(REPO, "out"))
    return p


def main(argv):
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except PipelineError as exc:
        print(f"uringrace: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("uringrace: interrupted", file=sys.stderr)
        return 130
