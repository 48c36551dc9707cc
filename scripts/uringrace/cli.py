"""Command line: each subcommand is one pipeline stage or a chain of them;
the work is in the modules named beside each."""

import argparse
import dataclasses
import json
import os
import sys

from . import bench, bench_real, bench_sb, check, html, lava, mutate, report, tree
from .common import PipelineError, log
from .config import DEFAULT_KCSAN_ARGS, Settings
from .compare import callouts
from .evidence import evidence_for_run
from .guest import boot_once, guest_parts, kernel_for, run_dir
from .records import to_json
from .storms import STORMS, missing_work, run_side, side_ok
from .text import render_compare, render_evidence


def cmd_kernel(args):
    for arch in args.arch:
        kernel_for(args, arch)
    return 0


def cmd_run(args):
    rd = run_dir(args, "run")
    reps, evidence, headlines = [], [], []
    for arch in args.arch:
        rec, kinfo, work, files, tests = guest_parts(args, arch)
        rep = boot_once(args, rec, kinfo, work, files, tests, os.path.join(rd, arch),
                        cmd=args.cmd)
        reps.append(rep)
        summary, new = evidence_for_run(rep, rec, kinfo, work, os.path.join(rd, arch),
                                        args.expect)
        evidence.append(summary)
        headlines += new + [f"kernel log on {arch}: {p}" for p in rep["log_problems"]]
    # what fails the run and was not a test's own verdict comes first
    text = "\n".join([f"<== {h}" for h in headlines] +
                     [report.render(r) + "\n" + e for r, e in zip(reps, evidence)])
    with open(os.path.join(rd, "summary.txt"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    with open(os.path.join(rd, "report.json"), "w", encoding="utf-8") as f:
        json.dump({"runs": [{k: r[k] for k in ("arch", "kernel", "boot", "ktap_summary",
                                                "kcsan")} for r in reps]}, f, indent=1,
                  default=to_json)
    print(text)
    print(f"artifacts: {rd} (console.log, ktap.txt, report.json, evidence.txt per arch; "
          "summary.txt)")
    bad = [r for r in reps if not r["boot"].passed]
    return 1 if bad or headlines else 0


def cmd_compare(args):
    """Run the same real io_uring storms on tree A and tree B (default Debian
    6.1 and 6.12; KSRC_A/KSRC_B for a patch before and after); print per
    workload the KCSAN reports by title side by side and call out races gone
    in B or new in B; the io_uring reports in full, symbolized; JSON and HTML."""
    secs, jobs = str(args.storm_seconds), args.jobs or 1
    sides = {"A": args.side_a + ((),), "B": args.side_b + ((),)}
    if args.patches:
        tree.check_patches(args.patches)  # before tree A's side takes minutes
        # PATCH: A is the run's tree (KSRC or KVER), B the same plus the patches
        sides = {"A": (args.ksrc, args.kver, args.side_a[2], ()),
                 "B": (args.ksrc, args.kver, args.side_b[2], args.patches)}
    rd = run_dir(args, "compare")
    (ka, va, xa), (kb, _, xb) = args.side_a, args.side_b
    if not args.patches and ka and kb:
        # two git trees of one history: B as a patch on A, built from A's build
        patch, why = tree.diff_as_patch(os.path.realpath(ka), os.path.realpath(kb), rd)
        if patch:
            sides = {"A": (ka, va, xa, ()), "B": (ka, va, xb, (patch,))}
        else:
            log(f"KSRC_B: a build of its own ({why})")
    result, texts = {}, []
    for arch in args.arch:
        res = {}
        for lab, (ks, kv, ex, patches) in sides.items():
            res[lab] = run_side(args.for_tree(ks, kv, patches), arch,
                                os.path.join(rd, f"{arch}-{lab}"), secs, jobs=jobs, expect_file=ex,
                                reuse=bool(sides["B"][3]) and lab == "A" and args.reuse_a)
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
        json.dump(result, f, indent=1, default=to_json)
    html.write_compare(os.path.join(rd, "compare.html"), result, STORMS)
    print(f"artifacts: {rd} (compare.txt, compare.json, compare.html, evidence-<arch>.txt, "
          "console.log per guest)")
    bad = [s for r in result.values() for s in r.values() if not side_ok(s)]
    for s in (s for r in result.values() for s in r.values()):
        for wl in missing_work(s):
            print(f"uringrace: {s['arch']} {s['tree']}: storm {wl} did no work: not a pass")
    forbidden = [c for r in result.values() for c in callouts(r["A"], r["B"])
                 if c[0].startswith(("FORBIDDEN", "ANOMALIES"))]
    return 1 if bad or forbidden else 0


# each subcommand: its name, the function that runs it, its help line
COMMANDS = (
    ("kernel", cmd_kernel, "configure and build the KCSAN kernel (cached)"),
    ("run", cmd_run, "build everything, boot, run the selftests, report"),
    ("compare", cmd_compare, "the same storms on two trees (or a tree and PATCH=), side by side"),
    ("mutate", mutate.cmd_mutate, "mutants of real io_uring through the patch loop, scored"),
    ("mutate-score", mutate.cmd_mutate_score,
     "the catalog's score from the newest earlier run of each mutant"),
    ("check", check.cmd_check, "host unit tests, lint, guest selftests, runner tests"),
    ("lava", lava.cmd_lava, "LAVA job definitions per arch, with their artifacts, validated"),
    ("check-lava", lava.cmd_check_lava, "the x86-64 job run by lava-run, against make run"),
    ("bench-real", bench_real.cmd_bench_real, "time to first io_uring report per workload, tree"),
    ("bench-driver", bench.cmd_bench_driver, "driver figures on the host and in each guest"),
    ("bench-patch", mutate.cmd_bench_patch, "the patch loop's cost against a full rebuild"),
    ("bench-sb", bench_sb.cmd_bench_sb, "store buffering: every fence form, host and guests"),
    ("bench-scenarios", bench.cmd_bench_scenarios, "detection per variant, RUNS runs per arch"),
    ("bench-pipeline", bench.cmd_bench_pipeline, "pipeline timings per arch (COLD=1: cold build)"),
)


def parser():
    d = Settings.defaults_from_env()
    p = argparse.ArgumentParser(prog="urr", description=__doc__)
    p.add_argument("--ksrc", default=d.ksrc,
                   help="kernel tree (default: Debian's linux-source-$KVER)")
    p.add_argument("--kver", default=d.kver)
    p.add_argument("--arch", type=lambda s: tuple(a for a in s.replace(",", " ").split() if a),
                   default=d.arch, help="x86_64, arm64 or 'x86_64,arm64'")
    p.add_argument("--smp", type=int, default=d.smp)
    p.add_argument("--mem", type=int, default=d.mem)
    p.add_argument("--timeout", type=int, default=d.timeout,
                   help="host-side limit for one guest run, seconds")
    p.add_argument("--accel", default=d.accel, choices=("auto", "tcg", "kvm"))
    p.add_argument("--kcsan-args", default=d.kcsan_args,
                   help=f"extra kernel command line (default {DEFAULT_KCSAN_ARGS}; "
                        "KCSAN_ARGS=none for KCSAN's own defaults)")
    p.add_argument("--out", default=d.out)
    sub = p.add_subparsers(dest="cmd_name", required=True)
    for name, func, what in COMMANDS:
        sp = sub.add_parser(name, help=what)
        sp.set_defaults(func=func)
        if name == "run":
            sp.add_argument("--cmd", default=d.cmd,
                            help="run this shell command in the guest instead of the selftests")
    return p


def settings(argv):
    """(the command's function, its Settings): the environment read once,
    the options over it."""
    args = parser().parse_args(argv)
    opts = {k: v for k, v in vars(args).items() if k not in ("func", "cmd_name")}
    return args.func, dataclasses.replace(Settings.defaults_from_env(), **opts)


def main(argv):
    try:
        func, cfg = settings(argv)
        return func(cfg)
    except PipelineError as exc:
        print(f"uringrace: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("uringrace: interrupted", file=sys.stderr)
        return 130
