"""'make bench-real': time to the first io_uring report per workload and
tree, against the peer (liburing's own tests)."""

import dataclasses
import json
import os
import statistics

from .common import PipelineError
from .guest import run_dir
from .records import Outcome
from .storms import STORMS, run_side


PEER_FIRST_S = 52.0  # liburing's tests, Debian 6.1, 4 vCPUs, skip_watch=200 (DESIGN.md)


def _knobs(spec):
    """KNOBS="label=kernel args@smp;...": KCSAN settings to measure; default
    the run's own (KCSAN_ARGS, SMP)."""
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
    runs, secs, fleet = args.runs, str(args.storm_seconds), args.jobs or 2
    pick = args.bench_storms
    storms = tuple(s for s in STORMS if not pick or s[0] in pick)
    if not storms:
        raise PipelineError(f"BENCH_STORMS={','.join(pick)}: none of "
                            + ", ".join(n for n, _ in STORMS))
    trees = [args.side_a[:2], args.side_b[:2]]
    knobs = _knobs(args.knobs) or [("as run", args.kcsan_args, args.smp)]
    rd = run_dir(args, "bench-real")
    rows = []
    for arch in args.arch:
        for ks, kv in trees:
            for label, kargs, smp in knobs:
                for jobs in sorted({1, fleet}):
                    sub = dataclasses.replace(args.for_tree(ks, kv), kcsan_args=kargs,
                                              smp=smp or args.smp)
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
            ts = [e["t_workload"] for e in s.events
                  if e["workload"] == name and e["scope"] == "io_uring"
                  and e["t_workload"] is not None]
            if ts:
                firsts.append(min(ts))
        per_wl[name] = {"hits": len(firsts), "median_first_s": _median(firsts),
                        "firsts": firsts}
    iowq, any_io, rate, bad = [], [], [], 0
    for s in samples:
        bad += sum(1 for o in s.outcomes if o["outcome"] != Outcome.PASS)
        ev = [e for e in s.events if e["scope"] == "io_uring"]
        t = [e["t"] for e in ev if e["id"] == "iowq-worker-flags"]
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
