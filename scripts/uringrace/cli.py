"""Command line: each subcommand is one pipeline stage or a chain of them."""

import argparse
import os
import sys

import json
import time

from . import artifacts, initramfs, kbuild, qemu, report, tree
from .common import REPO, PipelineError, cache_dir, load_arch, log


def _kernel(args, arch):
    rec = load_arch(arch)
    src, identity = tree.resolve(args.ksrc, args.kver)
    ver = tree.check_tree(src, rec)
    log(f"tree {src} (linux {ver}, {identity})")
    info = kbuild.build(src, identity, rec)
    info["version"] = ver
    return rec, info


def cmd_kernel(args):
    for arch in args.arch:
        _kernel(args, arch)
    return 0


def guest_parts(args, arch):
    """Kernel + everything the guest needs for one arch (all cached)."""
    rec, kinfo = _kernel(args, arch)
    work = os.path.join(cache_dir(), "work", f"{arch}-{kinfo['key']}")
    os.makedirs(work, exist_ok=True)
    ko = artifacts.build_kmod(kinfo, rec, work)
    files, tests = artifacts.build_selftests(kinfo, rec, work)
    files["lib/modules/uringrace.ko"] = ko
    return rec, kinfo, work, files, tests


def boot_once(args, rec, kinfo, work, files, tests, outdir, cmd=None, timeout=None):
    """Pack the initramfs for this run, boot it, write the report; return it."""
    os.makedirs(outdir, exist_ok=True)
    busybox = artifacts.busybox_for(rec)
    init = os.path.join(REPO, "guest", "init")
    initrd = initramfs.pack(os.path.join(outdir, "initramfs.cpio"), busybox, init, files,
                            tests, cmd=cmd)
    probe_rd = initramfs.pack(os.path.join(work, "probe.cpio"), busybox, init, {}, [],
                              cmd="true")
    accel = qemu.pick_accel(rec, args.accel, kinfo["image"], probe_rd, work)
    res = qemu.boot(rec, kinfo["image"], initrd, outdir, smp=args.smp, mem=args.mem,
                    accel=accel, timeout=timeout or args.timeout,
                    extra_append=args.kcsan_args)
    rep = report.build(outdir, res, kinfo)
    os.unlink(initrd)  # large and rebuilt in a second from cached parts
    return rep


def _run_dir(args, what):
    root = os.path.abspath(args.out)
    rd = os.path.join(root, f"{what}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(rd, exist_ok=True)
    latest = os.path.join(root, f"{what}-latest")
    if os.path.islink(latest) or os.path.exists(latest):
        os.unlink(latest)
    os.symlink(os.path.basename(rd), latest)
    return rd


def cmd_run(args):
    rd = _run_dir(args, "run")
    reps = []
    for arch in args.arch:
        rec, kinfo, work, files, tests = guest_parts(args, arch)
        reps.append(boot_once(args, rec, kinfo, work, files, tests,
                              os.path.join(rd, arch), cmd=args.cmd))
    text = "\n".join(report.render(r) for r in reps)
    with open(os.path.join(rd, "summary.txt"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    with open(os.path.join(rd, "report.json"), "w", encoding="utf-8") as f:
        json.dump({"runs": [{k: r[k] for k in ("arch", "kernel", "boot", "ktap_summary",
                                                "kcsan")} for r in reps]}, f, indent=1)
    print(text)
    print(f"artifacts: {rd} (console.log, ktap.txt, report.json per arch; summary.txt)")
    bad = [r for r in reps if r["boot"]["outcome"] != "pass"]
    return 1 if bad else 0


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
    for sp in (r,):
        sp.add_argument("--cmd", default=os.environ.get("CMD") or None,
                        help="run this shell command in the guest instead of the selftests")
    return p


def _guest_opts(p):
    env = os.environ.get
    p.add_argument("--smp", type=int, default=int(env("SMP") or 2))
    p.add_argument("--mem", type=int, default=int(env("MEM") or 2048))
    p.add_argument("--timeout", type=int, default=int(env("TIMEOUT") or 900),
                   help="host-side limit for one guest run, seconds")
    p.add_argument("--accel", default=env("ACCEL") or "auto", choices=("auto", "tcg", "kvm"))
    p.add_argument("--kcsan-args", default=env("KCSAN_ARGS") or "",
                   help="extra kernel command line, e.g. kcsan.skip_watch=200")
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
